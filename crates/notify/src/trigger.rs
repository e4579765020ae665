//! Triggers: `when` and `oncePer`, expr-lang expressions over the object, as Argo CD.
//!
//! notifications-engine evaluates each condition of a trigger with the Go `expr` language
//! over `app` (the Application as a map); Mooring uses the same language's Rust
//! implementation (`expr-lang`, as `mooring_engine::analysis` does for Argo Rollouts).
//! Argo CD adds a `time` helper the catalog uses (`time.Parse(ts)`, `time.Now()`; the
//! values have Go's methods `.Before`, `.After`, `.Sub`, and durations `.Minutes()`);
//! Mooring maps them onto expr-lang's temporal values: `time.Parse(x)` is `date(x)`,
//! `t.Sub(u)` is `t - u`, and `time.Now()` the evaluation time the caller passes (never
//! the wall clock, so evaluation is a pure function).
//!
//! A condition that fails to evaluate is not triggered and its error is returned (Argo CD
//! logs it); a result that is not a boolean is not triggered either (Argo CD's `ok &&
//! bool`). `oncePer` is printed as Go's `%v` would (`<nil>` for nil). Expressions come from
//! a ConfigMap an admin writes but are still bounded: length and nesting are capped
//! before parsing, so a hostile condition is an error, never a stack overflow.

use expr::{Context, Environment, Value as ExprValue};
use serde::Deserialize;
use serde_json::Value;

/// Longest `when`/`oncePer` accepted, in bytes.
pub const MAX_EXPRESSION_LEN: usize = 4096;
/// Deepest nesting of `(`, `[` and `{` accepted.
pub const MAX_NESTING: usize = 32;

/// Why an expression could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TriggerError {
    #[error("expression is {len} bytes long; the limit is {MAX_EXPRESSION_LEN}")]
    TooLong { len: usize },
    #[error("expression `{expression}` nests deeper than {MAX_NESTING} levels")]
    TooDeep { expression: String },
    #[error("expression `{expression}` does not compile: {message}")]
    Compile { expression: String, message: String },
    #[error("expression `{expression}` failed: {message}")]
    Eval { expression: String, message: String },
    #[error("condition `{expression}` returned {value}, not a boolean")]
    NotBool { expression: String, value: String },
}

/// One condition of a trigger.
#[derive(Debug, Clone, PartialEq, Deserialize, Default)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Condition {
    #[serde(default)]
    pub when: String,
    #[serde(default)]
    pub send: Vec<String>,
    #[serde(default)]
    pub once_per: String,
    #[serde(default)]
    pub description: String,
}

/// What one condition of a trigger gave.
#[derive(Debug, Clone, PartialEq)]
pub struct ConditionResult {
    /// notifications-engine's condition key: `[<index>].<base64url(sha1(when))>`.
    pub key: String,
    /// `oncePer` evaluated (empty without `oncePer`, or when not triggered).
    pub once_per: String,
    /// Templates to send.
    pub templates: Vec<String>,
    pub triggered: bool,
}

/// Check that an expression is well-formed (length, nesting, syntax).
pub fn check(expression: &str) -> Result<(), TriggerError> {
    compile(expression).map(|_| ())
}

/// The condition key notifications-engine writes into the delivery state.
pub fn condition_key(index: usize, when: &str) -> String {
    use base64::Engine as _;
    // sha1dc only reports an error for a detected collision attack, which a ConfigMap
    // string cannot be used for here: fall back to the plain digest bytes it computed.
    let digest: [u8; 20] = match sha1dc::digest(when.as_bytes()) {
        Ok(d) => d.into(),
        Err(c) => c.digest().into(),
    };
    format!(
        "[{index}].{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)
    )
}

/// Evaluate every condition of a trigger over `object` (bound as `app`) at `now`.
/// A condition that fails is not triggered; its error is in the second list.
pub fn evaluate(
    conditions: &[Condition],
    object: &Value,
    now: mooring_core::time::Timestamp,
) -> (Vec<ConditionResult>, Vec<TriggerError>) {
    evaluate_with(conditions, &[("app", object)], "false", now)
}

/// [`evaluate`] with more variables (an event trigger binds `app` and `event`) and what an
/// empty `when` means (`false` for Argo CD's triggers, `true` for event triggers, which
/// fire once per event).
pub fn evaluate_with(
    conditions: &[Condition],
    variables: &[(&str, &Value)],
    empty_when: &str,
    now: mooring_core::time::Timestamp,
) -> (Vec<ConditionResult>, Vec<TriggerError>) {
    let mut results = Vec::new();
    let mut errors = Vec::new();
    let vars = Vars::new(variables, now);
    for (i, c) in conditions.iter().enumerate() {
        let when = if c.when.trim().is_empty() {
            empty_when
        } else {
            c.when.as_str()
        };
        let mut r = ConditionResult {
            key: condition_key(i, &c.when),
            once_per: String::new(),
            templates: c.send.clone(),
            triggered: false,
        };
        match vars.run(when) {
            Ok(ExprValue::Bool(b)) => r.triggered = b,
            Ok(other) => errors.push(TriggerError::NotBool {
                expression: when.to_string(),
                value: other.to_string(),
            }),
            Err(e) => errors.push(e),
        }
        if r.triggered && !c.once_per.is_empty() {
            match vars.run(&c.once_per) {
                Ok(v) => r.once_per = go_print(&v),
                Err(e) => errors.push(e),
            }
        }
        results.push(r);
    }
    (results, errors)
}

/// Go's `%v` of an expression's value, for `oncePer`.
fn go_print(v: &ExprValue) -> String {
    match v {
        ExprValue::Nil => "<nil>".into(),
        ExprValue::String(s) => s.clone(),
        other => other.to_string(),
    }
}

struct Vars {
    ctx: Context,
    now: String,
}

impl Vars {
    fn new(variables: &[(&str, &Value)], now: mooring_core::time::Timestamp) -> Vars {
        let mut ctx = Context::default();
        for (name, value) in variables {
            ctx.insert(*name, to_expr(value));
        }
        Vars {
            ctx,
            now: mooring_core::time::format(now),
        }
    }

    fn run(&self, expression: &str) -> Result<ExprValue, TriggerError> {
        let program = compile(expression)?;
        let now = self.now.clone();
        let mut env = Environment::new();
        // `time.Now()` is the time the caller evaluates at, never the wall clock.
        env.add_function("now", move |call| {
            if !call.args.is_empty() {
                return Err(expr::Error::ExprError(
                    "time.Now() takes no arguments".into(),
                ));
            }
            call.env
                .eval_func(call.ctx, "date", vec![ExprValue::String(now.clone())], None)
        });
        env.add_function(SUB, |call| match call.args.as_slice() {
            [ExprValue::DateTime(a), ExprValue::DateTime(b)] => (a.clone() - b.clone())
                .num_nanoseconds()
                .map(ExprValue::Duration)
                .ok_or_else(|| expr::Error::ExprError("Sub: duration out of range".into())),
            other => Err(expr::Error::ExprError(format!(
                "Sub needs two times, got {}",
                other.len()
            ))),
        });
        env.run(&program, &self.ctx)
            .map_err(|e| TriggerError::Eval {
                expression: expression.to_string(),
                message: e.to_string(),
            })
    }
}

fn compile(expression: &str) -> Result<expr::Program, TriggerError> {
    if expression.len() > MAX_EXPRESSION_LEN {
        return Err(TriggerError::TooLong {
            len: expression.len(),
        });
    }
    let rewritten = rewrite_time(expression);
    let mut depth = 0usize;
    for c in rewritten.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_NESTING {
                    return Err(TriggerError::TooDeep {
                        expression: expression.to_string(),
                    });
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    expr::compile(&rewritten).map_err(|e| TriggerError::Compile {
        expression: expression.to_string(),
        message: e.to_string(),
    })
}

/// The function `.Sub(` is rewritten to.
const SUB: &str = "mooringTimeSub";

/// Argo CD's `time.Parse(` and `time.Now(` as expr-lang's `date(` and `now(`, and Go's
/// `t.Sub(u)` as `t | mooringTimeSub(u)` (a duration), outside string literals.
fn rewrite_time(expression: &str) -> String {
    let mut out = String::with_capacity(expression.len());
    let mut rest = expression;
    let mut quote: Option<char> = None;
    while let Some(c) = rest.chars().next() {
        if let Some(q) = quote {
            out.push(c);
            rest = &rest[c.len_utf8()..];
            if c == '\\' {
                if let Some(n) = rest.chars().next() {
                    out.push(n);
                    rest = &rest[n.len_utf8()..];
                }
            } else if c == q {
                quote = None;
            }
            continue;
        }
        let word_start = !out
            .chars()
            .next_back()
            .is_some_and(|p| p.is_ascii_alphanumeric() || p == '_' || p == '.' || p == '$');
        if word_start {
            if let Some(r) = rest.strip_prefix("time.Parse(") {
                out.push_str("date(");
                rest = r;
                continue;
            }
            if let Some(r) = rest.strip_prefix("time.Now(") {
                out.push_str("now(");
                rest = r;
                continue;
            }
        }
        // `a.Sub(b)`: expr-lang's temporal values have no `Sub` method but subtract with
        // `-`; a pipe keeps the rest of the chain (`.Minutes()`) applying to the result.
        let after_operand = out
            .chars()
            .next_back()
            .is_some_and(|p| p.is_ascii_alphanumeric() || matches!(p, '_' | ')' | ']'));
        if after_operand {
            if let Some(r) = rest.strip_prefix(".Sub(") {
                out.push_str(&format!(" | {SUB}("));
                rest = r;
                continue;
            }
        }
        if matches!(c, '"' | '\'' | '`') {
            quote = Some(c);
        }
        out.push(c);
        rest = &rest[c.len_utf8()..];
    }
    out
}

fn to_expr(v: &Value) -> ExprValue {
    match v {
        Value::Null => ExprValue::Nil,
        Value::Bool(b) => ExprValue::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => ExprValue::Integer(i),
            None => ExprValue::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => ExprValue::String(s.clone()),
        Value::Array(a) => ExprValue::Array(a.iter().map(to_expr).collect()),
        Value::Object(o) => {
            ExprValue::Map(o.iter().map(|(k, v)| (k.clone(), to_expr(v))).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn now() -> mooring_core::time::Timestamp {
        mooring_core::time::parse("2026-01-02T10:00:00Z").expect("time")
    }

    fn cond(when: &str, once_per: &str) -> Condition {
        Condition {
            when: when.into(),
            send: vec!["t".into()],
            once_per: once_per.into(),
            description: String::new(),
        }
    }

    fn app() -> Value {
        json!({
            "metadata": {"name": "a", "namespace": "argocd"},
            "status": {
                "sync": {"status": "Synced", "revision": "abc"},
                "health": {"status": "Healthy", "lastTransitionTime": "2026-01-02T09:59:00Z"},
                "operationState": {"phase": "Succeeded", "finishedAt": "2026-01-02T09:58:00Z",
                                   "syncResult": {"revision": "abc"}}
            }
        })
    }

    fn one(when: &str, once_per: &str, v: &Value) -> (ConditionResult, Vec<TriggerError>) {
        let (mut r, e) = evaluate(&[cond(when, once_per)], v, now());
        (r.remove(0), e)
    }

    #[test]
    fn catalog_conditions() {
        let a = app();
        for (when, want) in [
            ("true", true),
            ("app.metadata.deletionTimestamp != nil", false),
            ("app.status.operationState != nil and app.status.operationState.phase in ['Succeeded']", true),
            ("app.status.health.status == 'Healthy' and !time.Parse(app.status.health.lastTransitionTime).Before(time.Parse(app.status.operationState.finishedAt))", true),
            ("time.Parse(app.status.health.lastTransitionTime).Before(time.Parse(app.status.operationState.finishedAt))", false),
            ("(time.Now() - time.Parse(app.status.operationState.finishedAt)).Minutes() >= 2", true),
            ("(time.Now() - time.Parse(app.status.operationState.finishedAt)).Minutes() >= 3", false),
            // Argo CD's documented form.
            ("time.Now().Sub(time.Parse(app.status.operationState.finishedAt)).Minutes() >= 2", true),
            ("time.Now().Sub(time.Parse(app.status.operationState.finishedAt)).Minutes() >= 3 || false", false),
            ("app.status.sync.status == 'Unknown'", false),
            ("'time.Parse(' == 'time.Parse('", true),
        ] {
            let (r, e) = one(when, "", &a);
            assert!(e.is_empty(), "{when}: {e:?}");
            assert_eq!(r.triggered, want, "{when}");
        }
    }

    #[test]
    fn once_per_and_key() {
        let (r, e) = one(
            "true",
            "app.status.operationState?.syncResult?.revision",
            &app(),
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(r.once_per, "abc");
        let bare = json!({"metadata": {"name": "a"}, "status": {}});
        let (r, e) = one(
            "true",
            "app.status.operationState?.syncResult?.revision",
            &bare,
        );
        assert!(e.is_empty(), "{e:?}");
        assert_eq!(r.once_per, "<nil>");
        // notifications-engine: base64url(sha1("true")) without padding.
        assert_eq!(condition_key(0, "true"), "[0].X_5TO4MPCKAyY0ipFgr6_IraRNs");
    }

    #[test]
    fn hostile_and_broken_conditions_are_errors() {
        let a = app();
        let deep = format!("{}true{}", "(".repeat(500), ")".repeat(500));
        let long = format!("true{}", " ".repeat(MAX_EXPRESSION_LEN));
        for bad in [deep.as_str(), long.as_str(), "app.status ==", "1 + 1"] {
            let (r, e) = one(bad, "", &a);
            assert!(!r.triggered, "{bad}");
            assert_eq!(e.len(), 1, "{bad}: {e:?}");
        }
        let (r, e) = one("time.Parse(app.nope) == nil", "", &a);
        assert!(!r.triggered);
        assert_eq!(e.len(), 1, "{e:?}");
        assert!(check(&deep).is_err());
        // An empty `when` is `false`, as in Argo CD.
        let (r, e) = one("", "", &a);
        assert!(!r.triggered && e.is_empty());
    }
}
