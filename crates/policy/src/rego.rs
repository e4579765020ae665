//! Compiling and evaluating Rego with regorus, with OPA's answers.
//!
//! Every policy format Mooring reads (Gatekeeper templates, conftest policies, Rego unit
//! tests) ends up here. A [`Policy`] is a set of compiled modules plus their `data`
//! document; it is immutable once built and cheap to clone, so callers evaluate many inputs
//! against one compilation (each evaluation works on a clone of the prepared engine, which
//! shares the parsed modules).
//!
//! Three things make the answers match OPA's rather than regorus's defaults:
//!
//! * **Syntax version.** Gatekeeper templates are Rego v0; conftest policies may be either.
//!   [`RegoVersion::Auto`] parses as v0 (which also accepts `import rego.v1` and
//!   `import future.keywords`) and falls back to v1.
//! * **Built-in errors are undefined**, as in OPA's non-strict mode: `to_number("abc")`
//!   makes its expression undefined instead of failing the whole evaluation.
//! * **Source-level differences** are rewritten before parsing by [`super::compat`]: a
//!   reference followed by a newline and `(` is two expressions, and v0 chained bodies
//!   `p[x] {…} {…}` are two rules.
//!
//! Limits: every evaluation runs under a wall-clock budget ([`Limits::eval_timeout`],
//! checked cooperatively by regorus's interpreter every few work units), and a policy file
//! larger than [`Limits::max_policy_bytes`] is refused. Exceeding either is an error that
//! names the limit; nothing is ever silently skipped.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use regorus::Value;

/// The Rego engine itself, for benchmarks that compare Mooring with a bare integration.
pub use regorus;

/// Errors of compiling or evaluating Rego.
#[derive(Debug, thiserror::Error)]
pub enum RegoError {
    /// A module did not parse or compile. `line` is 1-based; 0 when regorus gave none.
    #[error("{file}:{line}: {message}")]
    Compile {
        file: String,
        line: u32,
        message: String,
    },
    /// Evaluation failed (a conflict, a type error in strict places, a bad query).
    #[error("evaluating {query}: {message}")]
    Eval { query: String, message: String },
    /// Evaluation ran longer than its budget.
    #[error("evaluating {query} exceeded the time limit of {limit:?}; simplify the policy or raise --eval-timeout")]
    TimeLimit { query: String, limit: Duration },
    /// The `data` document could not be loaded.
    #[error("loading data: {0}")]
    Data(String),
}

/// Which Rego syntax a source is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum RegoVersion {
    /// Rego v0 (Gatekeeper, older conftest). `import rego.v1` switches a module to v1.
    V0,
    /// Rego v1 (OPA 1.x default).
    V1,
    /// Try v0 first, then v1.
    #[default]
    Auto,
}

/// One Rego module's text and the name errors are reported under.
#[derive(Debug, Clone)]
pub struct RegoSource {
    pub path: String,
    pub text: String,
}

impl RegoSource {
    pub fn new(path: impl Into<String>, text: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            text: text.into(),
        }
    }
}

/// Resource limits of compilation and evaluation.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Wall-clock budget of one evaluation (one review, one test rule).
    pub eval_timeout: Duration,
    /// Largest policy file accepted.
    pub max_policy_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            eval_timeout: Duration::from_secs(2),
            max_policy_bytes: 1 << 20,
        }
    }
}

/// A compiled set of Rego modules with their data document.
#[derive(Clone)]
pub struct Policy {
    engine: regorus::Engine,
    limits: Limits,
    packages: Arc<Vec<String>>,
}

impl std::fmt::Debug for Policy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Policy")
            .field("packages", &self.packages)
            .finish()
    }
}

impl Policy {
    /// Compiles `sources` (all of them, or an error naming the first that fails).
    pub fn compile(
        sources: &[RegoSource],
        version: RegoVersion,
        limits: Limits,
    ) -> Result<Self, RegoError> {
        let mut engine = regorus::Engine::new();
        engine.set_strict_builtin_errors(false);
        engine.set_gather_prints(true);
        engine.set_execution_timer_config(regorus::utils::limits::ExecutionTimerConfig {
            limit: limits.eval_timeout,
            check_interval: NonZeroU32::MIN,
        });
        add_deprecated_builtins(&mut engine);
        add_opa_sprintf(&mut engine);
        let mut packages = Vec::new();
        for source in sources {
            if source.text.len() > limits.max_policy_bytes {
                return Err(RegoError::Compile {
                    file: source.path.clone(),
                    line: 0,
                    message: format!(
                        "policy is {} bytes, more than the limit of {}",
                        source.text.len(),
                        limits.max_policy_bytes
                    ),
                });
            }
            let package = add_module(&mut engine, source, version)?;
            if !packages.contains(&package) {
                packages.push(package);
            }
        }
        // Surface compile-time errors (unsafe variables, unknown functions, conflicts in
        // definitions) now, with their file and line, instead of at the first evaluation.
        // Probing the engine itself also prepares it (rule analysis, scheduling), so the
        // clones made per evaluation start prepared instead of redoing that work each time.
        if let Err(err) = engine.eval_query("true".to_string(), false) {
            return Err(compile_error("", &err.to_string()));
        }
        // OPA rejects a call to a function that neither a module nor the built-ins define
        // when compiling; regorus only notices when evaluation reaches the call.
        check_functions(engine.get_modules())?;
        Ok(Self {
            engine,
            limits,
            packages: Arc::new(packages),
        })
    }

    /// Adds a data document (merged with what is there).
    pub fn add_data(&mut self, data: &serde_json::Value) -> Result<(), RegoError> {
        self.add_data_value(Value::from(data.clone()))
    }

    /// Like [`Policy::add_data`] with an already converted document, so one conversion can
    /// serve many policies (regorus values are reference counted: cloning one is cheap).
    pub fn add_data_value(&mut self, data: Value) -> Result<(), RegoError> {
        self.engine
            .add_data(data)
            .map_err(|err| RegoError::Data(err.to_string()))?;
        // Adding data unprepares the engine; prepare it again once here rather than in
        // every per-evaluation clone.
        self.engine
            .eval_query("true".to_string(), false)
            .map_err(|err| RegoError::Data(err.to_string()))?;
        Ok(())
    }

    /// The packages of the compiled modules, as `data.a.b` paths.
    pub fn packages(&self) -> &[String] {
        &self.packages
    }

    /// Names of the rules (not functions) defined at the top of `package` (`data.a.b`).
    pub fn rule_names(&self, package: &str) -> Vec<String> {
        let mut engine = self.engine.clone();
        let mut names = Vec::new();
        for module in engine.get_modules().iter() {
            let path = regorus::utils::get_path_string(&module.package.refr, Some("data"));
            if path.ok().as_deref() != Some(package) {
                continue;
            }
            for rule in &module.policy {
                if let Some(name) = rule_name(rule) {
                    if !names.contains(&name) {
                        names.push(name);
                    }
                }
            }
        }
        names
    }

    /// One name per rule definition at the top of `package` (a rule with two bodies is listed
    /// twice), as conftest counts rules when it computes successes.
    pub fn rule_definitions(&self, package: &str) -> Vec<String> {
        let mut engine = self.engine.clone();
        let mut names = Vec::new();
        for module in engine.get_modules().iter() {
            let path = regorus::utils::get_path_string(&module.package.refr, Some("data"));
            if path.ok().as_deref() != Some(package) {
                continue;
            }
            names.extend(module.policy.iter().filter_map(|rule| rule_name(rule)));
        }
        names
    }

    /// Evaluates the rule at `path` (`data.pkg.rule`) with `input`. `Ok(None)` when the rule
    /// is undefined.
    pub fn eval_rule(&self, path: &str, input: Value) -> Result<Option<Value>, RegoError> {
        let mut engine = self.engine.clone();
        engine.set_input(input);
        match engine.eval_rule(path.to_string()) {
            Ok(Value::Undefined) => Ok(None),
            Ok(value) => Ok(Some(value)),
            Err(err) => Err(self.eval_error(path, err)),
        }
    }

    /// Evaluates a whole query with `input`; the values of its first result's expressions,
    /// or `None` when the query is undefined.
    pub fn eval_query(&self, query: &str, input: Value) -> Result<Option<Vec<Value>>, RegoError> {
        let mut engine = self.engine.clone();
        engine.set_input(input);
        self.run_query(&mut engine, query).map(|(value, _)| value)
    }

    /// Like [`Policy::eval_query`], also returning the output of `print` calls and, when
    /// `coverage` is set, the coverage report of this evaluation.
    pub fn eval_query_traced(
        &self,
        query: &str,
        input: Option<Value>,
        coverage: bool,
    ) -> Result<Traced, RegoError> {
        let mut engine = self.engine.clone();
        if let Some(input) = input {
            engine.set_input(input);
        }
        engine.set_enable_coverage(coverage);
        let (value, prints) = self.run_query(&mut engine, query)?;
        let coverage = if coverage {
            engine.get_coverage_report().ok()
        } else {
            None
        };
        Ok(Traced {
            value,
            prints,
            coverage,
        })
    }

    fn run_query(
        &self,
        engine: &mut regorus::Engine,
        query: &str,
    ) -> Result<(Option<Vec<Value>>, Vec<String>), RegoError> {
        let results = engine
            .eval_query(query.to_string(), false)
            .map_err(|err| self.eval_error(query, err))?;
        let prints = engine.take_prints().unwrap_or_default();
        let value = results
            .result
            .into_iter()
            .next()
            .map(|r| r.expressions.into_iter().map(|e| e.value).collect());
        Ok((value, prints))
    }

    fn eval_error(&self, query: &str, err: anyhow::Error) -> RegoError {
        if err
            .chain()
            .any(|cause| cause.downcast_ref::<regorus::LimitError>().is_some())
            || err.to_string().contains("time limit")
        {
            return RegoError::TimeLimit {
                query: query.to_string(),
                limit: self.limits.eval_timeout,
            };
        }
        RegoError::Eval {
            query: query.to_string(),
            message: err.to_string(),
        }
    }
}

/// The result of [`Policy::eval_query_traced`].
pub struct Traced {
    pub value: Option<Vec<Value>>,
    pub prints: Vec<String>,
    pub coverage: Option<regorus::coverage::Report>,
}

fn add_module(
    engine: &mut regorus::Engine,
    source: &RegoSource,
    version: RegoVersion,
) -> Result<String, RegoError> {
    let attempt = |engine: &mut regorus::Engine, v0: bool| {
        let text = super::compat::rewrite(&source.text, v0);
        engine.set_rego_v0(v0);
        engine.add_policy(source.path.clone(), text)
    };
    let result = match version {
        RegoVersion::V0 => attempt(engine, true),
        RegoVersion::V1 => attempt(engine, false),
        // Try the syntax the file seems to be written in first, and report its error if
        // neither parses: v1 text can parse as (different) v0 rules, so order matters.
        RegoVersion::Auto => {
            let v0_first = !looks_v1(&source.text);
            attempt(engine, v0_first).or_else(|first| attempt(engine, !v0_first).map_err(|_| first))
        }
    };
    result.map_err(|err| compile_error(&source.path, &err.to_string()))
}

/// OPA keeps a few deprecated built-ins for v0 policies, and published Gatekeeper templates
/// still call them (`re_match` above all); regorus dropped them. They are registered as
/// extensions with OPA's meaning. Wrong argument types make the call undefined, like any
/// built-in error in non-strict mode.
fn add_deprecated_builtins(engine: &mut regorus::Engine) {
    fn collection(v: &Value) -> Option<Vec<Value>> {
        if let Ok(a) = v.as_array() {
            Some(a.iter().cloned().collect())
        } else if let Ok(s) = v.as_set() {
            Some(s.iter().cloned().collect())
        } else {
            None
        }
    }
    let builtins: [(&str, u8, Box<dyn regorus::Extension>); 3] = [
        (
            "re_match",
            2,
            Box::new(|args: Vec<Value>| {
                let (Some(pattern), Some(text)) = (args.first(), args.get(1)) else {
                    return Ok(Value::Undefined);
                };
                let (Ok(pattern), Ok(text)) = (pattern.as_string(), text.as_string()) else {
                    return Ok(Value::Undefined);
                };
                Ok(match regex::Regex::new(pattern) {
                    Ok(re) => Value::from(re.is_match(text)),
                    Err(_) => Value::Undefined,
                })
            }),
        ),
        (
            "any",
            1,
            Box::new(|args: Vec<Value>| {
                Ok(args
                    .first()
                    .and_then(collection)
                    .map_or(Value::Undefined, |c| {
                        Value::from(c.contains(&Value::Bool(true)))
                    }))
            }),
        ),
        (
            "all",
            1,
            Box::new(|args: Vec<Value>| {
                Ok(args
                    .first()
                    .and_then(collection)
                    .map_or(Value::Undefined, |c| {
                        Value::from(c.iter().all(|v| *v == Value::Bool(true)))
                    }))
            }),
        ),
    ];
    for (name, nargs, f) in builtins {
        // A fresh engine has no extensions, so adding cannot collide.
        let _ = engine.add_extension(name.to_string(), nargs, f);
    }
}

/// OPA's `sprintf` is Go's `fmt.Sprintf`, which never fails over the number of arguments: a
/// verb without one prints `%!v(MISSING)`, unused ones are listed as `%!(EXTRA int=1,
/// string=a)`. regorus errors instead, and in non-strict mode the error makes the call, and
/// so the message and the violation it belongs to, undefined: a published template whose
/// format has one `%v` too many (k8shorizontalpodautoscaler) silently never reports. This
/// extension, which regorus consults before its built-ins, gives Go's output for the
/// mismatch and leaves all other formatting to regorus's `sprintf`.
fn add_opa_sprintf(engine: &mut regorus::Engine) {
    let f = |args: Vec<Value>| -> anyhow::Result<Value> {
        let (Some(format), Some(list)) = (args.first(), args.get(1)) else {
            return Ok(Value::Undefined);
        };
        let (Ok(format), Ok(list)) = (format.as_string(), list.as_array()) else {
            return Ok(Value::Undefined);
        };
        let list: Vec<Value> = list.iter().cloned().collect();
        let verbs = format_verbs(format);
        let used = list.len().min(verbs.len());
        // Verbs past the last argument become literal text, escaped for the real sprintf.
        let mut text = String::with_capacity(format.len() + 16);
        let mut at = 0;
        for &(start, end, verb) in &verbs[used..] {
            text.push_str(&format[at..start]);
            text.push_str(&format!("%%!{verb}(MISSING)"));
            at = end;
        }
        text.push_str(&format[at..]);
        let Some(mut out) = regorus_sprintf(&text, list[..used].to_vec()) else {
            return Ok(Value::Undefined);
        };
        if list.len() > used {
            let mut extras = Vec::new();
            for v in &list[used..] {
                let (kind, shown) = match v {
                    Value::String(s) => ("string", s.to_string()),
                    Value::Number(n) if n.is_integer() && n.as_i64().is_some() => (
                        "int",
                        regorus_sprintf("%v", vec![v.clone()]).unwrap_or_default(),
                    ),
                    Value::Number(n) if n.is_integer() => (
                        "*big.Int",
                        regorus_sprintf("%v", vec![v.clone()]).unwrap_or_default(),
                    ),
                    Value::Number(_) => (
                        "float64",
                        regorus_sprintf("%v", vec![v.clone()]).unwrap_or_default(),
                    ),
                    _ => (
                        "string",
                        regorus_sprintf("%v", vec![v.clone()]).unwrap_or_default(),
                    ),
                };
                extras.push(format!("{kind}={shown}"));
            }
            out.push_str(&format!("%!(EXTRA {})", extras.join(", ")));
        }
        Ok(Value::from(out))
    };
    // Registered on a fresh engine before anything else, so adding cannot collide.
    let _ = engine.add_extension("sprintf".to_string(), 2, Box::new(f));
}

/// The verbs of a Go format string: byte range of each `%…verb` and the verb character.
/// `%%` is text, not a verb.
fn format_verbs(format: &str) -> Vec<(usize, usize, char)> {
    let mut verbs = Vec::new();
    let mut chars = format.char_indices().peekable();
    while let Some((start, c)) = chars.next() {
        if c != '%' {
            continue;
        }
        if chars.peek().is_some_and(|&(_, n)| n == '%') {
            chars.next();
            continue;
        }
        while chars
            .peek()
            .is_some_and(|&(_, n)| matches!(n, '+' | '-' | '#' | ' ' | '0'..='9' | '.'))
        {
            chars.next();
        }
        if let Some((i, verb)) = chars.next() {
            verbs.push((start, i + verb.len_utf8(), verb));
        }
    }
    verbs
}

/// regorus's own `sprintf` (from an engine without the extension), `None` on its errors.
fn regorus_sprintf(format: &str, args: Vec<Value>) -> Option<String> {
    thread_local! {
        static PLAIN: std::cell::RefCell<regorus::Engine> =
            std::cell::RefCell::new(regorus::Engine::new());
    }
    let input = Value::from(
        [
            (Value::from("f"), Value::from(format)),
            (Value::from("a"), Value::from(args)),
        ]
        .into_iter()
        .collect::<std::collections::BTreeMap<Value, Value>>(),
    );
    PLAIN.with(|engine| {
        let mut engine = engine.borrow_mut();
        engine.set_input(input);
        let results = engine
            .eval_query("sprintf(input.f, input.a)".to_string(), false)
            .ok()?;
        let value = &results.result.first()?.expressions.first()?.value;
        value.as_string().ok().map(|s| s.to_string())
    })
}

/// Names callable without a definition in the modules: regorus's built-ins, the deprecated
/// ones registered above, and `print`.
fn is_builtin(path: &str) -> bool {
    regorus::unstable::BUILTINS.contains_key(path)
        || matches!(path, "re_match" | "any" | "all" | "print")
}

/// Reports the first call to a function no module defines and no built-in provides, with
/// its file and line. Calls are matched to definitions by their last name component, so
/// imports and aliases (`import data.lib.k8s`, `k8s.f(x)`) never cause false reports.
fn check_functions(
    modules: &[regorus::unstable::Ref<regorus::unstable::Module>],
) -> Result<(), RegoError> {
    use regorus::unstable::{Expr, Literal, Query, Rule, RuleHead};

    fn last(path: &str) -> &str {
        path.rsplit('.').next().unwrap_or(path)
    }

    struct Walk<'a> {
        defined: &'a std::collections::BTreeSet<String>,
    }

    impl Walk<'_> {
        fn expr(&self, e: &Expr) -> Result<(), RegoError> {
            match e {
                Expr::Call {
                    span, fcn, params, ..
                } => {
                    if let Ok(path) = regorus::utils::get_path_string(fcn, None) {
                        if !is_builtin(&path) && !self.defined.contains(last(&path)) {
                            return Err(RegoError::Compile {
                                file: span.source.get_path().clone(),
                                line: span.line,
                                message: format!("undefined function {path}"),
                            });
                        }
                    }
                    params.iter().try_for_each(|p| self.expr(p))
                }
                Expr::Array { items, .. } | Expr::Set { items, .. } => {
                    items.iter().try_for_each(|i| self.expr(i))
                }
                Expr::Object { fields, .. } => fields.iter().try_for_each(|(_, k, v)| {
                    self.expr(k)?;
                    self.expr(v)
                }),
                Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
                    self.expr(term)?;
                    self.query(query)
                }
                Expr::ObjectCompr {
                    key, value, query, ..
                } => {
                    self.expr(key)?;
                    self.expr(value)?;
                    self.query(query)
                }
                Expr::UnaryExpr { expr, .. } => self.expr(expr),
                Expr::RefDot { refr, .. } => self.expr(refr),
                Expr::RefBrack { refr, index, .. } => {
                    self.expr(refr)?;
                    self.expr(index)
                }
                Expr::BinExpr { lhs, rhs, .. }
                | Expr::BoolExpr { lhs, rhs, .. }
                | Expr::ArithExpr { lhs, rhs, .. }
                | Expr::AssignExpr { lhs, rhs, .. } => {
                    self.expr(lhs)?;
                    self.expr(rhs)
                }
                Expr::Membership {
                    key,
                    value,
                    collection,
                    ..
                } => {
                    if let Some(k) = key {
                        self.expr(k)?;
                    }
                    self.expr(value)?;
                    self.expr(collection)
                }
                _ => Ok(()),
            }
        }

        fn query(&self, q: &Query) -> Result<(), RegoError> {
            for stmt in &q.stmts {
                match &stmt.literal {
                    Literal::SomeVars { .. } => {}
                    Literal::SomeIn {
                        key,
                        value,
                        collection,
                        ..
                    } => {
                        if let Some(k) = key {
                            self.expr(k)?;
                        }
                        self.expr(value)?;
                        self.expr(collection)?;
                    }
                    Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => {
                        self.expr(expr)?
                    }
                    Literal::Every { domain, query, .. } => {
                        self.expr(domain)?;
                        self.query(query)?;
                    }
                }
                // `with f as g`: the replacement may be a function name, not a call.
                for m in &stmt.with_mods {
                    self.expr(&m.r#as)?;
                }
            }
            Ok(())
        }
    }

    let mut defined = std::collections::BTreeSet::new();
    for module in modules {
        for rule in &module.policy {
            let refr = match rule.as_ref() {
                Rule::Spec {
                    head: RuleHead::Func { refr, .. },
                    ..
                } => refr,
                Rule::Default { refr, args, .. } if !args.is_empty() => refr,
                _ => continue,
            };
            if let Ok(path) = regorus::utils::get_path_string(refr, None) {
                defined.insert(last(&path).to_string());
            }
        }
    }
    let walk = Walk { defined: &defined };
    for module in modules {
        for rule in &module.policy {
            match rule.as_ref() {
                Rule::Spec { head, bodies, .. } => {
                    let assign = match head {
                        RuleHead::Compr { assign, .. } | RuleHead::Func { assign, .. } => {
                            assign.as_ref()
                        }
                        RuleHead::Set { key, .. } => {
                            if let Some(k) = key {
                                walk.expr(k)?;
                            }
                            None
                        }
                    };
                    if let Some(a) = assign {
                        walk.expr(&a.value)?;
                    }
                    for body in bodies {
                        if let Some(a) = &body.assign {
                            walk.expr(&a.value)?;
                        }
                        walk.query(&body.query)?;
                    }
                }
                Rule::Default { value, .. } => walk.expr(value)?,
            }
        }
    }
    Ok(())
}

fn looks_v1(text: &str) -> bool {
    text.lines().any(|line| {
        let line = line.split('#').next().unwrap_or("");
        line.contains(" if ") || line.contains(" if{") || line.contains(" contains ")
    })
}

/// Turns a regorus error (`--> file:line:col` then the source excerpt and `error: …`) into a
/// [`RegoError::Compile`] with file and line.
fn compile_error(default_file: &str, text: &str) -> RegoError {
    let mut file = default_file.to_string();
    let mut line = 0;
    let mut message = String::new();
    for l in text.lines() {
        let t = l.trim();
        if let Some(location) = t.strip_prefix("-->") {
            let mut parts = location.trim().rsplitn(3, ':');
            let _col = parts.next();
            line = parts.next().and_then(|n| n.parse().ok()).unwrap_or(0);
            if let Some(f) = parts.next() {
                file = f.to_string();
            }
        } else if let Some(m) = t.strip_prefix("error:") {
            message = m.trim().to_string();
        }
    }
    if message.is_empty() {
        message = text.trim().to_string();
    }
    RegoError::Compile {
        file,
        line,
        message,
    }
}

fn rule_name(rule: &regorus::unstable::Rule) -> Option<String> {
    use regorus::unstable::{Rule, RuleHead};
    let refr = match rule {
        Rule::Spec {
            head: RuleHead::Compr { refr, .. } | RuleHead::Set { refr, .. },
            ..
        } => refr,
        Rule::Default { refr, args, .. } if args.is_empty() => refr,
        _ => return None,
    };
    let path = regorus::utils::get_path_string(refr, None).ok()?;
    Some(path.split(['.', '[']).next().unwrap_or(&path).to_string())
}

/// Converts a JSON value for evaluation.
pub fn to_value(json: &serde_json::Value) -> Value {
    Value::from(json.clone())
}

/// Converts an evaluation result back to JSON.
pub fn from_value(value: &Value) -> serde_json::Value {
    serde_json::to_value(value).unwrap_or(serde_json::Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(text: &str) -> Policy {
        Policy::compile(
            &[RegoSource::new("p.rego", text)],
            RegoVersion::Auto,
            Limits::default(),
        )
        .expect("compiles")
    }

    fn eval(p: &Policy, query: &str, input: serde_json::Value) -> Option<serde_json::Value> {
        p.eval_rule(query, to_value(&input))
            .expect("evaluates")
            .map(|v| from_value(&v))
    }

    /// The golden table of `not` with undefined operands (OPA v1.20's answers), in v1 and,
    /// where the case is plain v0, in v0 spelling too.
    #[test]
    fn negation_with_undefined_operands_gives_opas_answers() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/policy/negation/undefined-operands.yaml"
        );
        let text = std::fs::read_to_string(path).expect("fixture readable");
        let doc = mooring_core::yaml::parse_one(&text).expect("fixture parses");
        let cases = doc["cases"].as_array().expect("cases");
        assert!(cases.len() >= 14, "the issue's table has 14 rows");
        let input = serde_json::json!({"obj": {}});
        let mut wrong = Vec::new();
        for case in cases {
            let expr = case["expr"].as_str().expect("expr");
            let functions = case["functions"].as_str().unwrap_or("");
            let want = serde_json::json!(case["want"].clone());
            let mut sources = vec![(
                RegoVersion::V1,
                format!("package t\nv contains \"v\" if {{ {expr} }}\n{functions}"),
            )];
            if functions.is_empty() && !expr.contains(" in ") {
                sources.push((
                    RegoVersion::V0,
                    format!("package t\nv[\"v\"] {{ {expr} }}\n"),
                ));
                // The same literal on its own line in a multi-line body.
                sources.push((
                    RegoVersion::V0,
                    format!("package t\nv[\"v\"] {{\n  true\n  {expr}\n}}\n"),
                ));
            }
            for (version, src) in sources {
                let p = match Policy::compile(
                    &[RegoSource::new("t.rego", &src)],
                    version,
                    Limits::default(),
                ) {
                    Ok(p) => p,
                    Err(e) => {
                        wrong.push(format!("{version:?} `{expr}`: {e}"));
                        continue;
                    }
                };
                let got = eval(&p, "data.t.v", input.clone()).unwrap_or(serde_json::json!([]));
                if got != want {
                    wrong.push(format!("{version:?} `{expr}`: got {got}, OPA gives {want}"));
                }
            }
        }
        assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    }

    #[test]
    fn v0_and_v1_sources_both_compile() {
        let v0 = policy("package a\ndeny[msg] { input.x; msg := \"x\" }\n");
        let v1 = policy("package a\ndeny contains msg if { input.x; msg := \"x\" }\n");
        for p in [v0, v1] {
            assert_eq!(
                eval(&p, "data.a.deny", serde_json::json!({"x": true})),
                Some(serde_json::json!(["x"]))
            );
        }
    }

    #[test]
    fn rules_reached_through_an_import_alias_keep_with_input() {
        // OPA: defined and true. Without the alias rewrite regorus leaves it undefined.
        let sources = [
            RegoSource::new("a.rego", "package main\nimport rego.v1\nx := 1\n"),
            RegoSource::new("b.rego", "package lib.k\nimport rego.v1\nv := input.a\n"),
            RegoSource::new(
                "c.rego",
                "package main\nimport rego.v1\nimport data.lib.k\ndeny contains k.v if true\n",
            ),
            RegoSource::new(
                "d.rego",
                "package t\nimport rego.v1\nimport data.main\ntest_alias if {\n  main.deny == {1} with input as {\"a\": 1}\n}\n",
            ),
        ];
        let p = Policy::compile(&sources, RegoVersion::Auto, Limits::default()).expect("compiles");
        assert_eq!(
            eval(&p, "data.t.test_alias", serde_json::json!({})),
            Some(serde_json::json!(true))
        );
    }

    #[test]
    fn undefined_call_in_a_set_head_drops_only_its_element() {
        // OPA: {"1", "2"}. regorus alone answers {} here (the undefined element for "a",
        // evaluated last, resets the rule), or fails with "not an object" in other orders.
        for items in [
            serde_json::json!([{"n": "b", "x": "1"}, {"n": "c", "x": "2"}, {"n": "a"}]),
            serde_json::json!([{"n": "a"}, {"n": "b", "x": "1"}, {"n": "c", "x": "2"}]),
        ] {
            for src in [
                "package a\nviolation[{\"msg\": f(v)}] {\n  v := input.items[_]\n}\nf(v) := m { m := v.x }\n",
                "package a\nimport rego.v1\nviolation contains {\"msg\": f(v)} if { v := input.items[_] }\nf(v) := v.x\n",
                "package a\nviolation[{\"msg\": v.x}] { v := input.items[_] }\n",
                "package a\nviolation[{\"msg\": m}] { items[_] = v; m := v.x }\nitems[v.x] = v { v := input.items[_] }\n",
            ] {
                let p = policy(src);
                assert_eq!(
                    eval(&p, "data.a.violation", serde_json::json!({"items": items})),
                    Some(serde_json::json!([{"msg": "1"}, {"msg": "2"}])),
                    "{src}"
                );
            }
        }
    }

    #[test]
    fn sprintf_argument_count_mismatch_prints_like_go() {
        // OPA (Go fmt): the message is defined. regorus alone errors, so it is undefined.
        let p = policy(concat!(
            "package a\n",
            "missing := sprintf(\"%v <%s> has %d: %v\", [\"k\", \"n\"])\n",
            "extra := sprintf(\"%v\", [\"a\", 1, 1.5, \"b\", {\"x\": [true]}])\n",
            "plain := sprintf(\"%v%% %s %d %.2f\", [{\"a\"}, \"s\", 3, 1.5])\n",
        ));
        let get = |rule: &str| eval(&p, &format!("data.a.{rule}"), serde_json::json!({}));
        assert_eq!(
            get("missing"),
            Some(serde_json::json!("k <n> has %!d(MISSING): %!v(MISSING)"))
        );
        assert_eq!(
            get("extra"),
            Some(serde_json::json!(
                "a%!(EXTRA int=1, float64=1.5, string=b, string={\"x\": [true]})"
            ))
        );
        assert_eq!(get("plain"), Some(serde_json::json!("{\"a\"}% s 3 1.50")));
    }

    #[test]
    fn builtin_errors_are_undefined() {
        let p = policy(
            "package a\nviolation[m] { to_number(\"abc\"); m := \"bad\" }\nviolation[m] { m := \"good\" }\n",
        );
        assert_eq!(
            eval(&p, "data.a.violation", serde_json::json!({})),
            Some(serde_json::json!(["good"]))
        );
    }

    #[test]
    fn compile_errors_name_file_and_line() {
        let err = Policy::compile(
            &[
                RegoSource::new("ok.rego", "package a\nx := 1\n"),
                RegoSource::new("bad.rego", "package b\n\nallow {\n  input.x ==\n}\n"),
            ],
            RegoVersion::Auto,
            Limits::default(),
        )
        .expect_err("does not compile");
        match err {
            RegoError::Compile { file, line, .. } => {
                assert_eq!(file, "bad.rego");
                assert!(line >= 3, "line {line}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn undefined_functions_are_compile_errors_with_file_and_line() {
        let err = Policy::compile(
            &[
                RegoSource::new("lib.rego", "package lib.k8s\nhas_label(o, l) { o.metadata.labels[l] }\n"),
                RegoSource::new(
                    "p.rego",
                    "package a\nimport data.lib.k8s\nok[m] { k8s.has_label(input, \"x\"); re_match(\"a\", \"a\"); strings.any_prefix_match(\"ab\", [\"a\"]); m := 1 }\n\nbad[m] {\n  m := sprintf(\"%v\", [no_such_fn(input)])\n}\n",
                ),
            ],
            RegoVersion::V0,
            Limits::default(),
        )
        .expect_err("undefined function");
        match err {
            RegoError::Compile {
                file,
                line,
                message,
            } => {
                assert_eq!(file, "p.rego");
                assert_eq!(line, 6);
                assert!(message.contains("no_such_fn"), "{message}");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn unsafe_variables_are_compile_errors() {
        let err = Policy::compile(
            &[RegoSource::new("u.rego", "package a\nallow { x == y }\n")],
            RegoVersion::V0,
            Limits::default(),
        );
        assert!(err.is_err(), "{err:?}");
    }

    #[test]
    fn runaway_evaluation_hits_the_time_limit() {
        let p = Policy::compile(
            &[RegoSource::new(
                "slow.rego",
                "package a\nslow[x] { some i, j, k; numbers.range(1, 300)[i]; numbers.range(1, 300)[j]; numbers.range(1, 300)[k]; x := i + j + k }\n",
            )],
            RegoVersion::V0,
            Limits {
                eval_timeout: Duration::from_millis(50),
                ..Limits::default()
            },
        )
        .expect("compiles");
        let err = p
            .eval_rule("data.a.slow", to_value(&serde_json::json!({})))
            .expect_err("times out");
        assert!(matches!(err, RegoError::TimeLimit { .. }), "{err:?}");
        assert!(err.to_string().contains("time limit"));
    }

    #[test]
    fn oversized_policies_are_refused() {
        let big = format!("package a\n{}", "# padding\n".repeat(200_000));
        let err = Policy::compile(
            &[RegoSource::new("big.rego", big)],
            RegoVersion::V0,
            Limits::default(),
        )
        .expect_err("too big");
        assert!(err.to_string().contains("limit"), "{err}");
    }

    #[test]
    fn rule_names_list_rules_not_functions() {
        let p = policy(
            "package a\ndeny[m] { m := 1 }\nwarn_x[m] { m := 2 }\nf(x) = x\ntest_one { true }\n",
        );
        let names = p.rule_names("data.a");
        assert_eq!(names, vec!["deny", "warn_x", "test_one"]);
    }
}
