//! Success and failure conditions of Argo Rollouts metrics, evaluated with expr-lang.
//!
//! Argo Rollouts evaluates `successCondition`/`failureCondition` with the Go `expr`
//! language; Mooring uses its Rust implementation (`expr-lang`) so that the same strings
//! (`result[0] >= 0.95`, `isNaN(result)`, `len(result) == 0 || result[0] < 0.05`) mean
//! the same thing. The environment is Argo's: the variable `result` (whatever the
//! provider produced: a number, an array, a map, a string or nil) and the functions
//! `isNaN`, `isInf`, `isNil`, `default(value, fallback)`, `asInt` and `asFloat`, plus the
//! language's own built-ins (`len`, `all`, `any`, `in`, arithmetic, `and`/`or`/`not`).
//!
//! A condition must produce a boolean; anything else (`result[0]`, a typo producing a
//! number) is an error naming the condition and what it produced, because silently
//! treating `3` as false would fail or pass a rollout for the wrong reason. NaN behaves
//! as in Go: every ordered comparison with NaN is false. Expressions are capped in size
//! ([`MAX_CONDITION_LEN`]) since they come from user manifests.

use expr::{Context, Environment, Value as ExprValue};
use std::collections::BTreeMap;
use std::fmt;

/// Longest condition accepted, in bytes.
pub const MAX_CONDITION_LEN: usize = 4096;

/// A measurement value as a provider produced it.
#[derive(Debug, Clone, PartialEq, Default)]
pub enum MetricValue {
    #[default]
    Nil,
    Bool(bool),
    Number(f64),
    String(String),
    Array(Vec<MetricValue>),
    Map(BTreeMap<String, MetricValue>),
}

impl From<&serde_json::Value> for MetricValue {
    fn from(v: &serde_json::Value) -> Self {
        use serde_json::Value as J;
        match v {
            J::Null => MetricValue::Nil,
            J::Bool(b) => MetricValue::Bool(*b),
            J::Number(n) => MetricValue::Number(n.as_f64().unwrap_or(f64::NAN)),
            J::String(s) => MetricValue::String(s.clone()),
            J::Array(a) => MetricValue::Array(a.iter().map(MetricValue::from).collect()),
            J::Object(o) => MetricValue::Map(
                o.iter()
                    .map(|(k, v)| (k.clone(), MetricValue::from(v)))
                    .collect(),
            ),
        }
    }
}

fn fmt_number(n: f64) -> String {
    if n.is_nan() {
        "NaN".into()
    } else if n == f64::INFINITY {
        "+Inf".into()
    } else if n == f64::NEG_INFINITY {
        "-Inf".into()
    } else {
        // Shortest form that round-trips (0.99, 3, 1e-05 → 0.00001).
        format!("{n}")
    }
}

/// How a measurement's `value` is recorded in the status: `0.99`, `[0.99,0.98]`, `NaN`.
impl fmt::Display for MetricValue {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MetricValue::Nil => f.write_str("<nil>"),
            MetricValue::Bool(b) => write!(f, "{b}"),
            MetricValue::Number(n) => f.write_str(&fmt_number(*n)),
            MetricValue::String(s) => f.write_str(s),
            MetricValue::Array(a) => {
                f.write_str("[")?;
                for (i, v) in a.iter().enumerate() {
                    if i > 0 {
                        f.write_str(",")?;
                    }
                    write!(f, "{v}")?;
                }
                f.write_str("]")
            }
            MetricValue::Map(m) => {
                f.write_str("map[")?;
                for (i, (k, v)) in m.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{k}:{v}")?;
                }
                f.write_str("]")
            }
        }
    }
}

fn to_expr(v: &MetricValue) -> ExprValue {
    match v {
        MetricValue::Nil => ExprValue::Nil,
        MetricValue::Bool(b) => ExprValue::Bool(*b),
        MetricValue::Number(n) => ExprValue::Float(*n),
        MetricValue::String(s) => ExprValue::String(s.clone()),
        MetricValue::Array(a) => ExprValue::Array(a.iter().map(to_expr).collect()),
        MetricValue::Map(m) => {
            ExprValue::Map(m.iter().map(|(k, v)| (k.clone(), to_expr(v))).collect())
        }
    }
}

/// Why a condition could not be evaluated.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ConditionError {
    #[error("condition is {len} bytes long; the limit is {MAX_CONDITION_LEN}")]
    TooLong { len: usize },
    #[error("condition is empty")]
    Empty,
    #[error("condition `{condition}` does not compile: {message}")]
    Compile { condition: String, message: String },
    #[error("condition `{condition}` failed: {message}")]
    Eval { condition: String, message: String },
    #[error("condition `{condition}` returned {value}, not a boolean")]
    NotBool { condition: String, value: String },
}

fn one_arg(name: &str, args: Vec<ExprValue>) -> expr::Result<ExprValue> {
    let mut it = args.into_iter();
    match (it.next(), it.next()) {
        (Some(v), None) => Ok(v),
        _ => Err(expr::Error::ExprError(format!(
            "{name}() takes exactly one argument"
        ))),
    }
}

/// A one-sample Prometheus vector (`[NaN]`) counts as its sample for `isNaN`/`isInf`,
/// so `isNaN(result)` works on the usual vector query as well as on a scalar.
fn single(v: ExprValue) -> ExprValue {
    match v {
        ExprValue::Array(mut a) if a.len() == 1 => a.remove(0),
        other => other,
    }
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.add_function("isNaN", |c| match single(one_arg("isNaN", c.args)?) {
        ExprValue::Float(f) => Ok(f.is_nan().into()),
        ExprValue::Integer(_) => Ok(false.into()),
        other => Err(expr::Error::ExprError(format!(
            "isNaN() needs a number, got {other}"
        ))),
    });
    env.add_function("isInf", |c| match single(one_arg("isInf", c.args)?) {
        ExprValue::Float(f) => Ok(f.is_infinite().into()),
        ExprValue::Integer(_) => Ok(false.into()),
        other => Err(expr::Error::ExprError(format!(
            "isInf() needs a number, got {other}"
        ))),
    });
    env.add_function("isNil", |c| {
        Ok(matches!(one_arg("isNil", c.args)?, ExprValue::Nil).into())
    });
    env.add_function("default", |c| {
        let mut it = c.args.into_iter();
        match (it.next(), it.next(), it.next()) {
            (Some(ExprValue::Nil), Some(d), None) => Ok(d),
            (Some(v), Some(_), None) => Ok(v),
            _ => Err(expr::Error::ExprError(
                "default() takes a value and a fallback".into(),
            )),
        }
    });
    env.add_function("asInt", |c| match one_arg("asInt", c.args)? {
        ExprValue::Integer(i) => Ok(ExprValue::Integer(i)),
        ExprValue::Float(f) if f.is_finite() && f.fract() == 0.0 => {
            Ok(ExprValue::Integer(f as i64))
        }
        ExprValue::String(s) => s
            .trim()
            .parse::<i64>()
            .map(ExprValue::Integer)
            .map_err(|_| {
                expr::Error::ExprError(format!("asInt() cannot convert \"{s}\" to an integer"))
            }),
        other => Err(expr::Error::ExprError(format!(
            "asInt() not supported on {other}"
        ))),
    });
    env.add_function("asFloat", |c| match one_arg("asFloat", c.args)? {
        ExprValue::Integer(i) => Ok(ExprValue::Float(i as f64)),
        ExprValue::Float(f) => Ok(ExprValue::Float(f)),
        ExprValue::String(s) => parse_float(&s).map(ExprValue::Float).ok_or_else(|| {
            expr::Error::ExprError(format!("asFloat() cannot convert \"{s}\" to a number"))
        }),
        other => Err(expr::Error::ExprError(format!(
            "asFloat() not supported on {other}"
        ))),
    });
    env
}

fn parse_float(s: &str) -> Option<f64> {
    match s.trim() {
        "NaN" => Some(f64::NAN),
        "+Inf" | "Inf" => Some(f64::INFINITY),
        "-Inf" => Some(f64::NEG_INFINITY),
        t => t.parse().ok(),
    }
}

/// Check that a condition is well-formed (length, syntax) without evaluating it.
pub fn check_condition(condition: &str) -> Result<(), ConditionError> {
    compile(condition).map(|_| ())
}

fn compile(condition: &str) -> Result<expr::Program, ConditionError> {
    if condition.len() > MAX_CONDITION_LEN {
        return Err(ConditionError::TooLong {
            len: condition.len(),
        });
    }
    if condition.trim().is_empty() {
        return Err(ConditionError::Empty);
    }
    expr::compile(condition).map_err(|e| ConditionError::Compile {
        condition: condition.to_string(),
        message: e.to_string(),
    })
}

/// Evaluate `condition` with `result` bound to `value`.
pub fn evaluate_condition(condition: &str, value: &MetricValue) -> Result<bool, ConditionError> {
    let program = compile(condition)?;
    let mut ctx = Context::default();
    ctx.insert("result", to_expr(value));
    let out = environment()
        .run(&program, &ctx)
        .map_err(|e| ConditionError::Eval {
            condition: condition.to_string(),
            message: e.to_string(),
        })?;
    match out {
        ExprValue::Bool(b) => Ok(b),
        other => Err(ConditionError::NotBool {
            condition: condition.to_string(),
            value: other.to_string(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use MetricValue::{Array, Nil, Number};

    fn eval(c: &str, v: &MetricValue) -> Result<bool, ConditionError> {
        evaluate_condition(c, v)
    }

    #[test]
    fn argo_conditions() {
        let v = Array(vec![Number(0.97)]);
        assert_eq!(eval("result[0] >= 0.95", &v), Ok(true));
        assert_eq!(eval("result[0] < 0.95", &v), Ok(false));
        assert_eq!(eval("len(result) == 0", &Array(vec![])), Ok(true));
        assert_eq!(eval("len(result) == 0", &v), Ok(false));
        assert_eq!(
            eval("default(result[0], 0) < 0.05", &Array(vec![Number(0.01)])),
            Ok(true)
        );
        assert_eq!(eval("default(result, 0) < 0.05", &Nil), Ok(true));
        assert_eq!(eval("result == nil", &Nil), Ok(true));
        assert_eq!(eval("isNil(result)", &Nil), Ok(true));
        assert_eq!(eval("isNil(result)", &v), Ok(false));
        assert_eq!(
            eval("asFloat(result) > 1", &MetricValue::String("1.5".into())),
            Ok(true)
        );
        assert_eq!(
            eval("asInt(result) == 3", &MetricValue::String("3".into())),
            Ok(true)
        );
        assert_eq!(eval("asInt(result) == 3", &Number(3.0)), Ok(true));
        assert_eq!(eval("result == 3", &Number(3.0)), Ok(true));
        assert_eq!(eval("result > 2 && result < 4", &Number(3.0)), Ok(true));
        assert_eq!(
            eval("result > 2 and not (result > 4)", &Number(3.0)),
            Ok(true)
        );
        assert_eq!(eval("!(result > 2) || result == 3", &Number(3.0)), Ok(true));
        assert_eq!(
            eval(
                "all(result, {# > 0.9})",
                &Array(vec![Number(0.95), Number(0.99)])
            ),
            Ok(true)
        );
        assert_eq!(
            eval(
                "any(result, {# < 0.9})",
                &Array(vec![Number(0.95), Number(0.5)])
            ),
            Ok(true)
        );
        assert_eq!(eval("result * 100 >= 95", &Number(0.96)), Ok(true));
        assert_eq!(
            eval(
                "\"ok\" in result",
                &Array(vec![MetricValue::String("ok".into())])
            ),
            Ok(true)
        );
        let m = MetricValue::from(&serde_json::json!({"data": {"ok": true}}));
        assert_eq!(eval("result.data.ok == true", &m), Ok(true));
        assert_eq!(eval("result", &MetricValue::Bool(true)), Ok(true));
    }

    #[test]
    fn nan_and_inf_behave_as_in_argo() {
        let nan = Number(f64::NAN);
        assert_eq!(eval("isNaN(result)", &nan), Ok(true));
        assert_eq!(eval("isNaN(result)", &Number(1.0)), Ok(false));
        assert_eq!(eval("result >= 0.95", &nan), Ok(false));
        assert_eq!(eval("result < 0.95", &nan), Ok(false));
        assert_eq!(
            eval("result[0] >= 0.95", &Array(vec![nan.clone()])),
            Ok(false)
        );
        assert_eq!(eval("isInf(result)", &Number(f64::INFINITY)), Ok(true));
        assert_eq!(eval("isInf(result)", &Number(1.0)), Ok(false));
        assert_eq!(eval("isNaN(result)", &Array(vec![nan.clone()])), Ok(true));
        assert!(eval("isNaN(result)", &Array(vec![nan.clone(), nan.clone()])).is_err());
    }

    #[test]
    fn a_non_boolean_result_is_an_error() {
        let e = eval("result[0] + 2", &Array(vec![Number(1.0)])).expect_err("not bool");
        assert_eq!(
            e.to_string(),
            "condition `result[0] + 2` returned 3, not a boolean"
        );
        assert!(matches!(
            eval("result", &Nil),
            Err(ConditionError::NotBool { .. })
        ));
    }

    #[test]
    fn errors_are_clear() {
        let e = eval("result[0] >=", &Nil).expect_err("syntax");
        assert!(matches!(e, ConditionError::Compile { .. }), "{e}");
        assert!(e.to_string().contains("result[0] >="), "{e}");
        let e = eval("result[0] >= 0.95", &Array(vec![])).expect_err("index");
        assert!(matches!(e, ConditionError::Eval { .. }), "{e}");
        let e = eval("nosuch(result)", &Nil).expect_err("function");
        assert!(e.to_string().contains("nosuch"), "{e}");
        let e = eval("asFloat(result) > 1", &MetricValue::String("abc".into())).expect_err("conv");
        assert!(e.to_string().contains("abc"), "{e}");
        let long = format!("result == {}", "1 + ".repeat(2000));
        assert!(matches!(
            eval(&long, &Nil),
            Err(ConditionError::TooLong { .. })
        ));
        assert_eq!(eval("  ", &Nil), Err(ConditionError::Empty));
        assert!(check_condition("result > 1").is_ok());
    }

    #[test]
    fn values_are_recorded_like_argo() {
        assert_eq!(
            Array(vec![Number(0.99), Number(1.0)]).to_string(),
            "[0.99,1]"
        );
        assert_eq!(Number(f64::NAN).to_string(), "NaN");
        assert_eq!(Array(vec![]).to_string(), "[]");
        assert_eq!(Number(f64::INFINITY).to_string(), "+Inf");
    }
}
