//! Label selectors and field selectors, parsed and evaluated like Kubernetes does.
//!
//! Every list and watch request may carry `?labelSelector=` and `?fieldSelector=`, and
//! workload controllers match Pods against `spec.selector` objects. Clients (kubectl, Argo CD,
//! kube-rs informers) rely on the exact grammar and on the error texts, so the parser is a port
//! of `k8s.io/apimachinery/pkg/labels` (lexer + recursive-descent parser, requirement
//! validation through [`crate::validation`]) and `k8s.io/apimachinery/pkg/fields` (term
//! splitting with `\,` `\=` `\\` escapes).
//!
//! This is Mooring's one label-selector implementation: the API server (list/watch,
//! workload controllers, the scale subresource), ApplicationSet generators, Gatekeeper's
//! `labelSelector`/`namespaceSelector` and rollback policies all evaluate selectors here, so
//! CI, the controller and the REST API cannot disagree about which objects a selector picks.
//! [`Labels`] lets it run over JSON `metadata.labels` and typed label maps alike.
//!
//! Two deliberate deviations from Kubernetes:
//! * `key in ()` / `key notin ()` are rejected ("values set can't be empty") instead of being
//!   read as the set `{""}`; write `key in (,)` (or `key=`) to select the empty value.
//! * Field selectors accept any dotted path and evaluate it generically against the object's
//!   JSON (Kubernetes allows only a per-kind list of fields); whitespace around a field-selector
//!   term and its operator is ignored.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

use crate::validation::{aggregate, go_quote, invalid, is_qualified_name, is_valid_label_value};

/// Why a label or field selector was rejected. The `Display` texts follow Kubernetes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectorError {
    /// A requirement of a label selector string is malformed or invalid.
    #[error("unable to parse requirement: {0}")]
    Parse(String),
    /// The label selector string is malformed between requirements
    /// (e.g. `found ',', expected: identifier after ','`).
    #[error("{0}")]
    Syntax(String),
    /// A structured (`metav1.LabelSelector`) selector is invalid.
    #[error("{0}")]
    Invalid(String),
    /// A field selector string is malformed.
    #[error("{0}")]
    Field(String),
}

/// A label set a selector is evaluated against: an object's `metadata.labels` as JSON, or
/// a typed label map (clusters of an ApplicationSet generator, Gatekeeper review targets).
pub trait Labels {
    /// The value of label `key`, if set.
    fn label(&self, key: &str) -> Option<Cow<'_, str>>;
}

impl Labels for Map<String, Value> {
    fn label(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).map(label_value_string)
    }
}

impl Labels for BTreeMap<String, String> {
    fn label(&self, key: &str) -> Option<Cow<'_, str>> {
        self.get(key).map(|v| Cow::Borrowed(v.as_str()))
    }
}

/// A label requirement operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    /// `key in (a,b)`
    In,
    /// `key notin (a,b)`
    NotIn,
    /// `key=a`
    Equals,
    /// `key==a`
    DoubleEquals,
    /// `key!=a`
    NotEquals,
    /// `key`
    Exists,
    /// `!key`
    DoesNotExist,
    /// `key>1`
    GreaterThan,
    /// `key<1`
    LessThan,
}

/// One requirement of a label selector; all requirements must hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    key: String,
    operator: Operator,
    /// Sorted and deduplicated, as Kubernetes' string set.
    values: Vec<String>,
}

impl Requirement {
    /// Builds and validates a requirement, like Kubernetes' `labels.NewRequirement`.
    pub fn new(
        key: &str,
        operator: Operator,
        values: Vec<String>,
    ) -> Result<Requirement, Vec<String>> {
        let mut errs = Vec::new();
        let key_errs = is_qualified_name(key);
        if !key_errs.is_empty() {
            errs.push(invalid("key", key, &key_errs.join("; ")));
        }
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(
                        "values: Invalid value: []string{}: for 'in', 'notin' operators, \
                         values set can't be empty"
                            .to_string(),
                    );
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: exact-match compatibility requires one \
                         single value",
                        go_string_slice(&values)
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(format!(
                        "values: Invalid value: {}: values set must be empty for exists and \
                         does not exist",
                        go_string_slice(&values)
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(format!(
                        "values: Invalid value: {}: for 'Gt', 'Lt' operators, exactly one value \
                         is required",
                        go_string_slice(&values)
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid(
                            &format!("values[{i}]"),
                            v,
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let value_errs = is_valid_label_value(v);
            if !value_errs.is_empty() {
                errs.push(invalid(
                    &format!("values[{i}][{key}]"),
                    v,
                    &value_errs.join("; "),
                ));
            }
        }
        if !errs.is_empty() {
            return Err(errs);
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// The label key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// The operator.
    pub fn operator(&self) -> Operator {
        self.operator
    }

    /// The values, sorted and deduplicated (empty for `Exists`/`DoesNotExist`).
    pub fn values(&self) -> &[String] {
        &self.values
    }

    /// Whether `labels` satisfy this requirement (Kubernetes' `Requirement.Matches`).
    pub fn matches(&self, labels: &(impl Labels + ?Sized)) -> bool {
        let actual = labels.label(&self.key);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                actual.is_some_and(|v| self.has_value(&v))
            }
            Operator::NotIn | Operator::NotEquals => actual.is_none_or(|v| !self.has_value(&v)),
            Operator::Exists => actual.is_some(),
            Operator::DoesNotExist => actual.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(Ok(actual)) = actual.map(|v| v.parse::<i64>()) else {
                    return false;
                };
                let [wanted] = self.values.as_slice() else {
                    return false;
                };
                let Ok(wanted) = wanted.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    actual > wanted
                } else {
                    actual < wanted
                }
            }
        }
    }

    fn has_value(&self, v: &str) -> bool {
        self.values.binary_search_by(|x| x.as_str().cmp(v)).is_ok()
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let first = self.values.first().map(String::as_str).unwrap_or("");
        match self.operator {
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Exists => write!(f, "{}", self.key),
            Operator::Equals => write!(f, "{}={first}", self.key),
            Operator::DoubleEquals => write!(f, "{}=={first}", self.key),
            Operator::NotEquals => write!(f, "{}!={first}", self.key),
            Operator::GreaterThan => write!(f, "{}>{first}", self.key),
            Operator::LessThan => write!(f, "{}<{first}", self.key),
            Operator::In => write!(f, "{} in ({})", self.key, self.values_text()),
            Operator::NotIn => write!(f, "{} notin ({})", self.key, self.values_text()),
        }
    }
}

impl Requirement {
    /// The values of `in`/`notin`, comma-separated. The set holding only the empty value
    /// is `,`: Kubernetes prints `()`, which Mooring reads as no values and rejects (see
    /// the module docs), so the printed selector would not parse back.
    fn values_text(&self) -> String {
        match self.values.as_slice() {
            [only] if only.is_empty() => ",".to_string(),
            values => values.join(","),
        }
    }
}

/// Go's `%#v` of a `[]string`, used in Kubernetes' requirement error messages.
fn go_string_slice(values: &[String]) -> String {
    let items: Vec<String> = values.iter().map(|v| go_quote(v)).collect();
    format!("[]string{{{}}}", items.join(", "))
}

/// A label as a string; labels are strings in valid objects, other scalars are compared by
/// their textual form.
fn label_value_string(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s.as_str()),
        Value::Null => Cow::Borrowed(""),
        other => Cow::Owned(other.to_string()),
    }
}

/// A parsed label selector: a conjunction of [`Requirement`]s, sorted by key.
#[derive(Debug, Clone, PartialEq)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    /// `true` for the selector that matches nothing (a `null` `metav1.LabelSelector`).
    nothing: bool,
}

impl LabelSelector {
    /// Parses Kubernetes' label selector syntax: `a=b`, `a==b`, `a!=b`, `a in (x,y)`,
    /// `a notin (x)`, `a`, `!a`, `a>1`, `a<5`, joined by `,` (AND). An empty string selects
    /// everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let tokens = lex(s);
        let mut parser = Parser { tokens, pos: 0 };
        let mut requirements = parser.parse()?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// The selector with no requirements, which matches every object.
    pub fn everything() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: false,
        }
    }

    /// The selector that matches no object (what a `null` structured selector means).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// Whether this selector has no requirements and therefore matches everything.
    pub fn is_empty(&self) -> bool {
        !self.nothing && self.requirements.is_empty()
    }

    /// The requirements, sorted by key.
    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Whether an object with these labels (the `metadata.labels` object; pass an empty map
    /// when it is missing) is selected.
    pub fn matches(&self, labels: &(impl Labels + ?Sized)) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Builds a selector from a `metav1.LabelSelector` JSON object (`matchLabels` and
    /// `matchExpressions` with operators `In`, `NotIn`, `Exists`, `DoesNotExist`), as found in
    /// a Deployment's `spec.selector`. `null` matches nothing; `{}` matches everything.
    pub fn from_label_selector_json(v: &Value) -> Result<Self, SelectorError> {
        let obj = match v {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(obj) => obj,
            other => {
                return Err(SelectorError::Invalid(format!(
                    "label selector must be an object, got {}",
                    json_kind(other)
                )))
            }
        };
        let mut requirements = Vec::new();
        let mut errs = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(labels)) => {
                for (key, value) in labels {
                    let Value::String(value) = value else {
                        errs.push(format!(
                            "matchLabels[{key}]: Invalid value: {}: must be a string",
                            json_kind(value)
                        ));
                        continue;
                    };
                    match Requirement::new(key, Operator::Equals, vec![value.clone()]) {
                        Ok(r) => requirements.push(r),
                        Err(e) => errs.extend(e),
                    }
                }
            }
            Some(other) => errs.push(format!(
                "matchLabels: Invalid value: {}: must be an object",
                json_kind(other)
            )),
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for (i, expr) in exprs.iter().enumerate() {
                    match parse_match_expression(i, expr) {
                        Ok(r) => requirements.push(r),
                        Err(e) => errs.extend(e),
                    }
                }
            }
            Some(other) => errs.push(format!(
                "matchExpressions: Invalid value: {}: must be an array",
                json_kind(other)
            )),
        }
        if !errs.is_empty() {
            return Err(SelectorError::Invalid(aggregate(&errs)));
        }
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }
}

/// One `matchExpressions` entry of a `metav1.LabelSelector`.
fn parse_match_expression(i: usize, expr: &Value) -> Result<Requirement, Vec<String>> {
    let path = format!("matchExpressions[{i}]");
    let Value::Object(expr) = expr else {
        return Err(vec![format!(
            "{path}: Invalid value: {}: must be an object",
            json_kind(expr)
        )]);
    };
    let key = match expr.get("key") {
        Some(Value::String(k)) => k.as_str(),
        None | Some(Value::Null) => "",
        Some(other) => {
            return Err(vec![format!(
                "{path}.key: Invalid value: {}: must be a string",
                json_kind(other)
            )])
        }
    };
    let operator = match expr.get("operator") {
        Some(Value::String(op)) => match op.as_str() {
            "In" => Operator::In,
            "NotIn" => Operator::NotIn,
            "Exists" => Operator::Exists,
            "DoesNotExist" => Operator::DoesNotExist,
            other => {
                return Err(vec![format!(
                    "{} is not a valid label selector operator",
                    go_quote(other)
                )])
            }
        },
        None | Some(Value::Null) => {
            return Err(vec![
                "\"\" is not a valid label selector operator".to_string()
            ])
        }
        Some(other) => {
            return Err(vec![format!(
                "{path}.operator: Invalid value: {}: must be a string",
                json_kind(other)
            )])
        }
    };
    let values = match expr.get("values") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(items)) => {
            let mut values = Vec::with_capacity(items.len());
            for (j, item) in items.iter().enumerate() {
                match item {
                    Value::String(s) => values.push(s.clone()),
                    other => {
                        return Err(vec![format!(
                            "{path}.values[{j}]: Invalid value: {}: must be a string",
                            json_kind(other)
                        )])
                    }
                }
            }
            values
        }
        Some(other) => {
            return Err(vec![format!(
                "{path}.values: Invalid value: {}: must be an array",
                json_kind(other)
            )])
        }
    };
    Requirement::new(key, operator, values)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

impl fmt::Display for LabelSelector {
    /// The canonical string form (requirements sorted by key, joined by `,`), which parses
    /// back to an equal selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.requirements.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{r}")?;
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Label selector lexer and parser (port of k8s.io/apimachinery/pkg/labels/selector.go).

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Tok {
    Error,
    EndOfString,
    ClosedPar,
    Comma,
    DoesNotExist,
    DoubleEquals,
    Equals,
    GreaterThan,
    Identifier,
    In,
    LessThan,
    NotEquals,
    NotIn,
    OpenPar,
}

fn keyword_or_symbol(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::ClosedPar,
        "," => Tok::Comma,
        "!" => Tok::DoesNotExist,
        "==" => Tok::DoubleEquals,
        "=" => Tok::Equals,
        ">" => Tok::GreaterThan,
        "in" => Tok::In,
        "<" => Tok::LessThan,
        "!=" => Tok::NotEquals,
        "notin" => Tok::NotIn,
        "(" => Tok::OpenPar,
        _ => return None,
    })
}

fn is_whitespace(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\r' | '\n')
}

fn is_special_symbol(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

/// Splits a label selector string into tokens, always ending with `EndOfString`.
fn lex(s: &str) -> Vec<(Tok, String)> {
    let chars: Vec<char> = s.chars().collect();
    let mut pos = 0;
    let mut tokens = Vec::new();
    loop {
        while pos < chars.len() && is_whitespace(chars[pos]) {
            pos += 1;
        }
        let Some(&c) = chars.get(pos) else {
            tokens.push((Tok::EndOfString, String::new()));
            return tokens;
        };
        if is_special_symbol(c) {
            // Longest match among the symbol tokens.
            let mut buffer = String::new();
            let mut last: Option<(Tok, String)> = None;
            while let Some(&c) = chars.get(pos) {
                if !is_special_symbol(c) {
                    break;
                }
                buffer.push(c);
                if let Some(tok) = keyword_or_symbol(&buffer) {
                    last = Some((tok, buffer.clone()));
                    pos += 1;
                } else if last.is_some() {
                    break;
                } else {
                    pos += 1;
                }
            }
            tokens.push(last.unwrap_or_else(|| {
                (
                    Tok::Error,
                    format!("error expected: keyword found '{buffer}'"),
                )
            }));
        } else {
            let start = pos;
            while pos < chars.len() && !is_whitespace(chars[pos]) && !is_special_symbol(chars[pos])
            {
                pos += 1;
            }
            let word: String = chars[start..pos].iter().collect();
            let tok = match keyword_or_symbol(&word) {
                Some(tok @ (Tok::In | Tok::NotIn)) => tok,
                _ => Tok::Identifier,
            };
            tokens.push((tok, word));
        }
    }
}

/// In `Values` context the keywords `in`/`notin` are ordinary identifiers; they are operators
/// only where an operator is expected.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Context {
    KeyAndOperator,
    Values,
}

struct Parser {
    tokens: Vec<(Tok, String)>,
    pos: usize,
}

const BINARY_OPERATORS: &str = "in, notin, =, ==, !=, gt, lt";

impl Parser {
    fn lookahead(&self, ctx: Context) -> (Tok, String) {
        let (tok, lit) = self
            .tokens
            .get(self.pos)
            .cloned()
            .unwrap_or((Tok::EndOfString, String::new()));
        match tok {
            Tok::In | Tok::NotIn if ctx == Context::Values => (Tok::Identifier, lit),
            _ => (tok, lit),
        }
    }

    fn consume(&mut self, ctx: Context) -> (Tok, String) {
        let item = self.lookahead(ctx);
        if self.pos < self.tokens.len() {
            self.pos += 1;
        }
        item
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, SelectorError> {
        let mut requirements = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Context::Values);
            match tok {
                Tok::Identifier | Tok::DoesNotExist => {
                    requirements.push(self.parse_requirement().map_err(SelectorError::Parse)?);
                    let (t, l) = self.consume(Context::Values);
                    match t {
                        Tok::EndOfString => return Ok(requirements),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Context::Values);
                            if t2 != Tok::Identifier && t2 != Tok::DoesNotExist {
                                return Err(SelectorError::Syntax(format!(
                                    "found '{l2}', expected: identifier after ','"
                                )));
                            }
                        }
                        _ => {
                            return Err(SelectorError::Syntax(format!(
                                "found '{l}', expected: ',' or 'end of string'"
                            )))
                        }
                    }
                }
                Tok::EndOfString => return Ok(requirements),
                _ => {
                    return Err(SelectorError::Syntax(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    )))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, operator) = self.parse_key_and_infer_operator()?;
        if let Some(op @ (Operator::Exists | Operator::DoesNotExist)) = operator {
            return Requirement::new(&key, op, Vec::new()).map_err(|e| aggregate(&e));
        }
        let operator = self.parse_operator()?;
        let values = match operator {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, operator, values).map_err(|e| aggregate(&e))
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut operator = None;
        let (mut tok, mut lit) = self.consume(Context::Values);
        if tok == Tok::DoesNotExist {
            operator = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Context::Values);
        }
        if tok != Tok::Identifier {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        let key_errs = is_qualified_name(&lit);
        if !key_errs.is_empty() {
            return Err(invalid("key", &lit, &key_errs.join("; ")));
        }
        let (next, _) = self.lookahead(Context::Values);
        if (next == Tok::EndOfString || next == Tok::Comma) && operator.is_none() {
            operator = Some(Operator::Exists);
        }
        Ok((lit, operator))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Context::KeyAndOperator);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::GreaterThan => Operator::GreaterThan,
            Tok::LessThan => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => return Err(format!("found '{lit}', expected: {BINARY_OPERATORS}")),
        })
    }

    /// `( ... )` after `in`/`notin`.
    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Context::Values);
        if tok != Tok::OpenPar {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Context::Values);
        match tok {
            Tok::Identifier | Tok::Comma => {
                let values = self.parse_identifiers_list()?;
                let (tok, _) = self.consume(Context::Values);
                if tok != Tok::ClosedPar {
                    return Err(format!("found '{lit}', expected: ')'"));
                }
                Ok(values)
            }
            Tok::ClosedPar => {
                // Kubernetes reads `()` as {""}; Mooring rejects it (see module docs), which
                // Requirement::new reports as an empty values set.
                self.consume(Context::Values);
                Ok(Vec::new())
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut values: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(Context::Values);
            match tok {
                Tok::Identifier => {
                    values.push(lit);
                    let (tok2, lit2) = self.lookahead(Context::Values);
                    match tok2 {
                        Tok::Comma => continue,
                        Tok::ClosedPar => return Ok(values),
                        _ => return Err(format!("found '{lit2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    // `(,`, `,,` and `,)` denote the empty value.
                    if values.is_empty() {
                        values.push(String::new());
                    }
                    let (tok2, _) = self.lookahead(Context::Values);
                    if tok2 == Tok::ClosedPar {
                        values.push(String::new());
                        return Ok(values);
                    }
                    if tok2 == Tok::Comma {
                        self.consume(Context::Values);
                        values.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    /// The single value after `=`, `==`, `!=`, `>` or `<` (may be empty: `a=`).
    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Context::Values);
        if tok == Tok::EndOfString || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Context::Values);
        if tok == Tok::Identifier {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field selectors (port of k8s.io/apimachinery/pkg/fields/selector.go).

/// One field selector term: `field=value` / `field==value` (`equal`) or `field!=value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldTerm {
    /// Dotted path into the object, e.g. `metadata.name`.
    pub field: String,
    /// The unescaped value.
    pub value: String,
    /// `true` for `=`/`==`, `false` for `!=`.
    pub equal: bool,
}

impl FieldTerm {
    fn matches(&self, obj: &Value) -> bool {
        let found = field_value(obj, &self.field);
        let same = found.as_deref() == Some(self.value.as_str());
        same == self.equal
    }
}

/// A parsed field selector: a conjunction of [`FieldTerm`]s, sorted by their printed form.
#[derive(Debug, Clone, PartialEq)]
pub struct FieldSelector {
    terms: Vec<FieldTerm>,
}

impl FieldSelector {
    /// Parses `metadata.name=x`, `metadata.name==x`, `metadata.name!=x`, ... joined by `,`
    /// (AND). Any dotted path is accepted (`spec.nodeName`, `status.phase`,
    /// `involvedObject.name`). Values may escape `\,` `\=` `\\`; an unescaped `,` splits terms
    /// and an unescaped `=` in a value is an error, as in Kubernetes. An empty string selects
    /// everything.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort();
        let mut terms = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let cant_understand = || {
                SelectorError::Field(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                ))
            };
            let (lhs, op, rhs) = split_term(part).ok_or_else(cant_understand)?;
            let field = lhs.trim();
            if field.is_empty() {
                return Err(cant_understand());
            }
            let value = unescape_value(rhs.trim())?;
            terms.push(FieldTerm {
                field: field.to_string(),
                value,
                equal: op != "!=",
            });
        }
        // Kubernetes sorts the terms as written; sorting them as printed as well makes the
        // printed form canonical: ` b=1,a==2` and `a=2,b=1` are one selector, printed
        // `a=2,b=1`, which parses back to the same terms in the same order.
        terms.sort_by_cached_key(FieldTerm::to_string);
        Ok(FieldSelector { terms })
    }

    /// The terms, sorted by their printed form.
    pub fn terms(&self) -> &[FieldTerm] {
        &self.terms
    }

    /// Whether the object (its full JSON) satisfies every term. A path is walked through
    /// nested objects; strings, numbers and booleans compare by their text, a missing or
    /// `null` field is `""`, and an object or array never equals a value.
    pub fn matches(&self, obj: &Value) -> bool {
        self.terms.iter().all(|t| t.matches(obj))
    }

    /// Whether this selector has no terms and therefore matches everything.
    pub fn is_empty(&self) -> bool {
        self.terms.is_empty()
    }

    /// The name pinned by a `metadata.name=` term, if any (lets the store narrow a scan).
    pub fn exact_name(&self) -> Option<&str> {
        self.exact("metadata.name")
    }

    /// The namespace pinned by a `metadata.namespace=` term, if any.
    pub fn exact_namespace(&self) -> Option<&str> {
        self.exact("metadata.namespace")
    }

    fn exact(&self, field: &str) -> Option<&str> {
        self.terms
            .iter()
            .find(|t| t.equal && t.field == field)
            .map(|t| t.value.as_str())
    }
}

impl fmt::Display for FieldTerm {
    /// `field=value` or `field!=value`, with the value escaped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = if self.equal { "=" } else { "!=" };
        // `a!` then `=` would read as `a` then `!=`: a blank keeps them apart (it is
        // trimmed off the field when parsed).
        let gap = if self.field.ends_with('!') { " " } else { "" };
        write!(f, "{}{gap}{op}{}", self.field, escape_value(&self.value))
    }
}

impl fmt::Display for FieldSelector {
    /// The canonical string form, with values escaped; it parses back to an equal selector.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, t) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{t}")?;
        }
        Ok(())
    }
}

/// Escapes `\`, `,` and `=` in a field selector value.
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// Splits on unescaped commas, keeping escapes in the pieces.
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// Splits a term at the first operator (`!=`, `==`, `=`, tried in that order at each position).
fn split_term(term: &str) -> Option<(&str, &'static str, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for op in ["!=", "==", "="] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], op, rhs));
            }
        }
    }
    None
}

fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                other => {
                    return Err(SelectorError::Field(format!(
                        "invalid field selector: invalid escape sequence: \\{other}"
                    )))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(SelectorError::Field(format!(
                    "invalid field selector: unescaped character in value: '{c}'"
                )))
            }
            other => out.push(other),
        }
    }
    if in_slash {
        return Err(SelectorError::Field(
            "invalid field selector: invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

/// The textual value at a dotted path: `Some("")` when missing or null, `None` when the path
/// ends on an object or array.
fn field_value(obj: &Value, path: &str) -> Option<String> {
    let mut cur = obj;
    for segment in path.split('.') {
        match cur.get(segment) {
            Some(next) => cur = next,
            None => return Some(String::new()),
        }
    }
    // Core Events expose `source` as the reporting component.
    if path == "source" {
        if let Some(component) = cur.get("component") {
            cur = component;
        }
    }
    match cur {
        Value::Null => Some(String::new()),
        Value::String(s) => Some(s.clone()),
        Value::Bool(b) => Some(b.to_string()),
        Value::Number(n) => Some(n.to_string()),
        Value::Array(_) | Value::Object(_) => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The one implementation serves JSON labels (API server) and typed label maps
    /// (ApplicationSet clusters, Gatekeeper targets) alike, with apimachinery semantics.
    #[test]
    fn typed_label_maps_match_like_json_labels() {
        let typed: BTreeMap<String, String> = [("env", "prod"), ("tier", "gpu")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let json_labels = labels(json!({"env": "prod", "tier": "gpu"}));
        for (selector, want) in [
            (json!({"matchLabels": {"env": "prod"}}), true),
            (json!({"matchLabels": {"env": "dev"}}), false),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "In", "values": ["gpu", "tpu"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "zone", "operator": "NotIn", "values": ["a"]}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "tier", "operator": "NotIn", "values": ["gpu"]}]}),
                false,
            ),
            (
                json!({"matchExpressions": [{"key": "env", "operator": "Exists"}]}),
                true,
            ),
            (
                json!({"matchExpressions": [{"key": "env", "operator": "DoesNotExist"}]}),
                false,
            ),
            (json!({}), true),
        ] {
            let sel = LabelSelector::from_label_selector_json(&selector).expect("valid");
            assert_eq!(sel.matches(&typed), want, "{selector}");
            assert_eq!(sel.matches(&json_labels), want, "{selector}");
        }
        let parsed = LabelSelector::parse("env=prod,tier in (gpu,tpu),!zone").expect("parse");
        assert!(parsed.matches(&typed));
        for invalid in [
            json!({"matchExpressions": [{"key": "a", "operator": "Equals", "values": ["x"]}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "In"}]}),
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]}),
        ] {
            assert!(
                LabelSelector::from_label_selector_json(&invalid).is_err(),
                "{invalid}"
            );
        }
    }

    fn labels(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    fn sel(s: &str) -> LabelSelector {
        match LabelSelector::parse(s) {
            Ok(sel) => sel,
            Err(e) => panic!("{s:?} should parse: {e}"),
        }
    }

    fn parse_err(s: &str) -> String {
        match LabelSelector::parse(s) {
            Ok(sel) => panic!("{s:?} should not parse, got {sel:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn empty_selects_everything() {
        for s in ["", "   ", "\t\n"] {
            let s = sel(s);
            assert!(s.is_empty());
            assert_eq!(s, LabelSelector::everything());
            assert!(s.matches(&Map::new()));
        }
        assert!(!LabelSelector::nothing().is_empty());
        assert!(!LabelSelector::nothing().matches(&Map::new()));
    }

    #[test]
    fn equality_operators() {
        let l = labels(json!({"app": "web", "tier": "frontend"}));
        assert!(sel("app=web").matches(&l));
        assert!(sel("app==web").matches(&l));
        assert!(sel(" app = web , tier==frontend ").matches(&l));
        assert!(!sel("app=db").matches(&l));
        assert!(sel("app!=db").matches(&l));
        assert!(!sel("app!=web").matches(&l));
        // != and notin match when the label is absent.
        assert!(sel("missing!=x").matches(&l));
        assert!(!sel("missing=x").matches(&l));
        assert!(sel("app=web,tier!=backend").matches(&l));
        assert!(!sel("app=web,tier=backend").matches(&l));
        // `a=` selects the empty value.
        assert!(sel("e=").matches(&labels(json!({"e": ""}))));
        assert!(!sel("e=").matches(&Map::new()));
        assert_eq!(sel("a=b").requirements()[0].operator(), Operator::Equals);
        assert_eq!(
            sel("a==b").requirements()[0].operator(),
            Operator::DoubleEquals
        );
    }

    #[test]
    fn set_based_with_spaces() {
        let l = labels(json!({"env": "prod", "app": "web"}));
        assert!(sel("env in (prod, staging)").matches(&l));
        assert!(sel("env in(prod)").matches(&l));
        assert!(sel("  env   in   (  staging ,prod  )  ").matches(&l));
        assert!(!sel("env in (staging)").matches(&l));
        assert!(sel("env notin (dev,qa)").matches(&l));
        assert!(!sel("env notin (prod)").matches(&l));
        assert!(sel("missing notin (x)").matches(&l));
        assert!(!sel("missing in (x)").matches(&l));
        assert!(sel("env in (prod),app notin (db)").matches(&l));
        let s = sel("env in (b,a,b)");
        assert_eq!(
            s.requirements()[0].values(),
            ["a".to_string(), "b".to_string()]
        );
        // `(,)` explicitly names the empty value.
        let s = sel("env in (,)");
        assert_eq!(s.requirements()[0].values(), [String::new()]);
        assert!(sel("env in (,a)").matches(&labels(json!({"env": ""}))));
        // `in`/`notin` are plain words where a key or value is expected.
        assert!(sel("in in (notin)").matches(&labels(json!({"in": "notin"}))));
    }

    #[test]
    fn exists_and_not_exists() {
        let l = labels(json!({"app": "web"}));
        assert!(sel("app").matches(&l));
        assert!(!sel("db").matches(&l));
        assert!(sel("!db").matches(&l));
        assert!(sel("! db").matches(&l));
        assert!(!sel("!app").matches(&l));
        assert!(sel("app,!db").matches(&l));
        assert_eq!(sel("app").requirements()[0].operator(), Operator::Exists);
        assert_eq!(
            sel("!app").requirements()[0].operator(),
            Operator::DoesNotExist
        );
        assert!(sel("example.com/key").matches(&labels(json!({"example.com/key": "v"}))));
        assert!(sel("example.com/key=v").matches(&labels(json!({"example.com/key": "v"}))));
    }

    #[test]
    fn numeric_comparisons() {
        let l = labels(json!({"replicas": "3", "name": "x"}));
        assert!(sel("replicas>1").matches(&l));
        assert!(sel("replicas > 2").matches(&l));
        assert!(!sel("replicas>3").matches(&l));
        assert!(sel("replicas<5").matches(&l));
        assert!(!sel("replicas<3").matches(&l));
        assert!(!sel("missing>1").matches(&l));
        assert!(!sel("missing<1").matches(&l));
        // A non-numeric label never satisfies gt/lt.
        assert!(!sel("name>1").matches(&l));
        assert_eq!(
            parse_err("a>b"),
            "unable to parse requirement: values[0]: Invalid value: \"b\": for 'Gt', 'Lt' \
             operators, the value must be an integer"
        );
        assert!(LabelSelector::parse("a>1.5").is_err());
        assert!(LabelSelector::parse("a<").is_err());
    }

    #[test]
    fn empty_value_sets_rejected() {
        assert_eq!(
            parse_err("key notin ()"),
            "unable to parse requirement: values: Invalid value: []string{}: for 'in', 'notin' \
             operators, values set can't be empty"
        );
        assert!(LabelSelector::parse("key in ()").is_err());
        assert!(LabelSelector::parse("key in ( )").is_err());
    }

    #[test]
    fn syntax_errors() {
        assert_eq!(
            parse_err(","),
            "found ',', expected: !, identifier, or 'end of string'"
        );
        assert_eq!(parse_err("a,"), "found '', expected: identifier after ','");
        assert_eq!(
            parse_err("a=b,,c"),
            "found ',', expected: identifier after ','"
        );
        assert_eq!(
            parse_err("a=b c=d"),
            "found 'c', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("a=b=c"),
            "found '=', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("!a=b"),
            "found '=', expected: ',' or 'end of string'"
        );
        assert_eq!(
            parse_err("a b"),
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"
        );
        assert_eq!(
            parse_err("!"),
            "unable to parse requirement: found '', expected: identifier"
        );
        assert_eq!(
            parse_err("!!a"),
            "unable to parse requirement: found '!', expected: identifier"
        );
        assert_eq!(
            parse_err("a in b"),
            "unable to parse requirement: found 'b' expected: '('"
        );
        assert_eq!(
            parse_err("a in (b"),
            "unable to parse requirement: found '', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("a in (b c)"),
            "unable to parse requirement: found 'c', expected: ',' or ')'"
        );
        assert_eq!(
            parse_err("a in (=)"),
            "unable to parse requirement: found '=', expected: ',', ')' or identifier"
        );
        assert_eq!(
            parse_err("a=(b)"),
            "unable to parse requirement: found '(', expected: identifier"
        );
        assert!(parse_err("a=>b").starts_with("unable to parse requirement: found '>'"));
        // Unknown operators: `~` is part of the identifier, `=!` lexes as `=` then `!`.
        assert!(LabelSelector::parse("a~=b").is_err());
        assert!(LabelSelector::parse("a=!b").is_err());
        assert!(LabelSelector::parse("a <> b").is_err());
        assert!(LabelSelector::parse("x=a||y=b").is_err());
    }

    #[test]
    fn keys_and_values_are_validated() {
        let e = parse_err("Bad_Key-=v");
        assert!(e.starts_with("unable to parse requirement: key: Invalid value: \"Bad_Key-\": name part must consist"), "{e}");
        let e = parse_err("app=-bad");
        assert!(e.starts_with("unable to parse requirement: values[0][app]: Invalid value: \"-bad\": a valid label must"), "{e}");
        assert!(LabelSelector::parse("Example.com/key=v").is_err());
        assert!(LabelSelector::parse(&format!("k={}", "v".repeat(64))).is_err());
        assert!(LabelSelector::parse(&"k".repeat(64)).is_err());
        assert!(LabelSelector::parse("a/b/c").is_err());
        assert!(LabelSelector::parse("MixedCase_Key.1=Value_2").is_ok());
    }

    #[test]
    fn display_round_trips() {
        let s = sel("z in (b, a), !x, a==1, m!=2, y, n>3, o<4, p=");
        assert_eq!(s.to_string(), "a==1,m!=2,n>3,o<4,p=,!x,y,z in (a,b)");
        assert_eq!(sel(&s.to_string()), s);
        assert_eq!(sel("b=1,a=2"), sel("a=2,b=1"));
    }

    #[test]
    fn from_structured_selector() {
        let v = json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [
                {"key": "env", "operator": "In", "values": ["prod", "staging"]},
                {"key": "canary", "operator": "DoesNotExist"},
                {"key": "tier", "operator": "NotIn", "values": ["db"]},
                {"key": "team", "operator": "Exists"}
            ]
        });
        let s = LabelSelector::from_label_selector_json(&v).expect("valid selector");
        assert_eq!(
            s,
            sel("app=web,env in (prod,staging),!canary,tier notin (db),team")
        );
        assert!(s.matches(&labels(json!({"app": "web", "env": "prod", "team": "ml"}))));
        assert!(!s.matches(&labels(json!({"app": "web", "env": "prod"}))));
        assert!(!s.matches(&labels(
            json!({"app": "web", "env": "prod", "team": "ml", "canary": "1"})
        )));

        let everything = LabelSelector::from_label_selector_json(&json!({})).expect("empty");
        assert!(everything.is_empty());
        assert!(everything.matches(&Map::new()));
        let nothing = LabelSelector::from_label_selector_json(&Value::Null).expect("null");
        assert!(!nothing.matches(&Map::new()));

        let bad_op = json!({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]});
        assert_eq!(
            LabelSelector::from_label_selector_json(&bad_op).map_err(|e| e.to_string()),
            Err("\"Gt\" is not a valid label selector operator".to_string())
        );
        let empty_in = json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]});
        assert!(LabelSelector::from_label_selector_json(&empty_in).is_err());
        let exists_with_values =
            json!({"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x"]}]});
        assert_eq!(
            LabelSelector::from_label_selector_json(&exists_with_values).map_err(|e| e.to_string()),
            Err(
                "values: Invalid value: []string{\"x\"}: values set must be empty for exists and \
                 does not exist"
                    .to_string()
            )
        );
        let bad_label = json!({"matchLabels": {"app": "Bad Value!"}});
        assert!(LabelSelector::from_label_selector_json(&bad_label).is_err());
        let non_string = json!({"matchLabels": {"app": 1}});
        assert!(LabelSelector::from_label_selector_json(&non_string).is_err());
        assert!(LabelSelector::from_label_selector_json(&json!("app=web")).is_err());
    }

    #[test]
    fn field_selector_basics() {
        let pod = json!({
            "metadata": {"name": "web-0", "namespace": "default"},
            "spec": {"nodeName": "node-1", "replicas": 3, "unschedulable": true},
            "status": {"phase": "Running"}
        });
        let parse = |s: &str| FieldSelector::parse(s).expect("valid field selector");
        assert!(parse("").is_empty());
        assert!(parse("").matches(&pod));
        assert!(parse("metadata.name=web-0").matches(&pod));
        assert!(parse("metadata.name==web-0").matches(&pod));
        assert!(!parse("metadata.name!=web-0").matches(&pod));
        assert!(parse("metadata.name!=web-1").matches(&pod));
        assert!(parse("metadata.namespace=default,status.phase=Running").matches(&pod));
        assert!(!parse("metadata.namespace=default,status.phase=Pending").matches(&pod));
        assert!(parse("spec.nodeName=node-1").matches(&pod));
        assert!(parse("spec.replicas=3").matches(&pod));
        assert!(parse("spec.unschedulable=true").matches(&pod));
        // Missing fields read as "".
        assert!(parse("spec.schedulerName=").matches(&pod));
        assert!(parse("spec.schedulerName!=x").matches(&pod));
        assert!(parse("a.b.c=").matches(&pod));
        // Objects never equal a value.
        assert!(!parse("spec=").matches(&pod));
        assert!(parse("spec!=").matches(&pod));
        // Whitespace around terms is ignored.
        assert!(parse(" metadata.name = web-0 , status.phase==Running").matches(&pod));

        let event = json!({
            "involvedObject": {"kind": "Pod", "name": "web-0"},
            "source": {"component": "kubelet"},
            "type": "Normal"
        });
        assert!(
            parse("involvedObject.name=web-0,involvedObject.kind=Pod,type=Normal").matches(&event)
        );
        assert!(parse("source=kubelet").matches(&event));
    }

    #[test]
    fn field_selector_escapes() {
        let obj = json!({"metadata": {"name": "a,b=c\\d"}});
        let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").expect("escaped");
        assert_eq!(s.exact_name(), Some("a,b=c\\d"));
        assert!(s.matches(&obj));
        assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
        assert_eq!(FieldSelector::parse(&s.to_string()).expect("round trip"), s);

        let err = |s: &str| {
            FieldSelector::parse(s)
                .map(|_| ())
                .map_err(|e| e.to_string())
        };
        assert_eq!(
            err(r"metadata.name=a\b"),
            Err(r"invalid field selector: invalid escape sequence: \b".to_string())
        );
        assert_eq!(
            err(r"metadata.name=a\"),
            Err(r"invalid field selector: invalid escape sequence: \".to_string())
        );
        assert_eq!(
            err("metadata.name=a=b"),
            Err("invalid field selector: unescaped character in value: '='".to_string())
        );
        assert_eq!(
            err("metadata.name"),
            Err("invalid selector: 'metadata.name'; can't understand 'metadata.name'".to_string())
        );
        assert!(err("=x").is_err());
        assert!(err("a=b,,c=d").is_ok());
    }

    #[test]
    fn field_selector_exact() {
        let s = FieldSelector::parse("metadata.namespace=ns1,metadata.name==n1").expect("valid");
        assert_eq!(s.exact_name(), Some("n1"));
        assert_eq!(s.exact_namespace(), Some("ns1"));
        let s = FieldSelector::parse("metadata.name!=n1,status.phase=Running").expect("valid");
        assert_eq!(s.exact_name(), None);
        assert_eq!(s.exact_namespace(), None);
        // `!=` is split before `=`, and `==` before `=`.
        let s = FieldSelector::parse("a!=b").expect("valid");
        assert_eq!(
            s.terms()[0],
            FieldTerm {
                field: "a".into(),
                value: "b".into(),
                equal: false
            }
        );
        let s = FieldSelector::parse("a==b").expect("valid");
        assert_eq!(
            s.terms()[0],
            FieldTerm {
                field: "a".into(),
                value: "b".into(),
                equal: true
            }
        );
        // Cluster-scoped objects have no namespace: it reads as "".
        let ns = json!({"metadata": {"name": "team-a"}});
        assert!(FieldSelector::parse("metadata.namespace=")
            .expect("valid")
            .matches(&ns));
    }

    /// Found by `label_selector_print_parse_round_trip`: `key in (,)` (the set holding
    /// only the empty value) printed as `key in ()`, which does not parse.
    #[test]
    fn in_the_empty_value_prints_as_a_selector_that_parses() {
        for text in ["0 in (,)", "0 notin (,)", "0 in ( , )"] {
            let parsed = LabelSelector::parse(text).expect(text);
            assert_eq!(parsed.requirements()[0].values(), [""], "{text}");
            let printed = parsed.to_string();
            assert_eq!(
                LabelSelector::parse(&printed),
                Ok(parsed),
                "{text} printed as {printed}"
            );
        }
        let r = Requirement::new("0", Operator::In, vec![String::new()]).expect("valid");
        assert_eq!(r.to_string(), "0 in (,)");
        let r =
            Requirement::new("0", Operator::NotIn, vec![String::new(), "a".into()]).expect("valid");
        assert_eq!(r.to_string(), "0 notin (,a)");
    }

    /// Found by `field_selector_parse_never_panics_and_prints_canonically`: the field `!`
    /// (from `! =`) printed as `!=`, which reads as an operator with no field.
    #[test]
    fn field_ending_in_bang_prints_apart_from_its_operator() {
        for text in ["! =", "a! =b", "a! !=b", "a!\\ =b"] {
            let parsed = FieldSelector::parse(text).expect(text);
            let printed = parsed.to_string();
            assert_eq!(
                FieldSelector::parse(&printed),
                Ok(parsed),
                "{text} printed as {printed}"
            );
        }
        let parsed = FieldSelector::parse("a! =b").expect("valid");
        assert_eq!(
            parsed.terms(),
            [FieldTerm {
                field: "a!".into(),
                value: "b".into(),
                equal: true
            }]
        );
        assert_eq!(parsed.to_string(), "a! =b");
    }

    /// Found by `field_selector_spellings_print_canonically`: terms were kept in the order
    /// of their text as written, so ` a= ,a.b=` (terms `a`, `a.b`) printed as `a=,a.b=`,
    /// which parses to the terms `a.b`, `a`.
    #[test]
    fn field_terms_are_in_the_order_of_their_printed_form() {
        for (text, canonical) in [
            (" a= ,a.b=", "a.b=,a="),
            ("a==z,a=y", "a=y,a=z"),
            (" b=1,a==2", "a=2,b=1"),
        ] {
            let parsed = FieldSelector::parse(text).expect(text);
            assert_eq!(parsed.to_string(), canonical, "{text}");
            assert_eq!(FieldSelector::parse(canonical), Ok(parsed), "{text}");
        }
    }

    /// Property tests: the printed form of a selector is canonical (it parses back to an
    /// equal selector that prints the same), and no input makes the parsers panic.
    mod props {
        use super::*;
        use proptest::prelude::*;

        /// The name part of a label key or a label value (`[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?`),
        /// with the selector keywords mixed in.
        fn name() -> impl Strategy<Value = String> {
            prop_oneof![
                8 => "[A-Za-z0-9]([-A-Za-z0-9_.]{0,8}[A-Za-z0-9])?",
                1 => Just("in".to_string()),
                1 => Just("notin".to_string()),
            ]
        }

        fn key() -> impl Strategy<Value = String> {
            (
                proptest::option::of("[a-z0-9]([-a-z0-9]{0,4}[a-z0-9])?(\\.[a-z0-9]{1,4}){0,2}"),
                name(),
            )
                .prop_map(|(prefix, name)| match prefix {
                    Some(p) => format!("{p}/{name}"),
                    None => name,
                })
        }

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![1 => Just(String::new()), 6 => name()]
        }

        fn requirement() -> impl Strategy<Value = Requirement> {
            let values = || prop::collection::vec(value(), 1..4);
            (
                key(),
                prop_oneof![
                    (Just(Operator::In), values()),
                    (Just(Operator::NotIn), values()),
                    (Just(Operator::Equals), value().prop_map(|v| vec![v])),
                    (Just(Operator::DoubleEquals), value().prop_map(|v| vec![v])),
                    (Just(Operator::NotEquals), value().prop_map(|v| vec![v])),
                    (Just(Operator::Exists), Just(Vec::new())),
                    (Just(Operator::DoesNotExist), Just(Vec::new())),
                    (
                        Just(Operator::GreaterThan),
                        "[0-9]{1,12}".prop_map(|v| vec![v])
                    ),
                    (
                        Just(Operator::LessThan),
                        "[0-9]{1,12}".prop_map(|v| vec![v])
                    ),
                ],
            )
                .prop_map(|(key, (op, values))| {
                    Requirement::new(&key, op, values).expect("generated requirements are valid")
                })
        }

        /// Text in the label selector alphabet: its symbols, keywords, names and blanks.
        fn label_soup() -> impl Strategy<Value = String> {
            let token = prop_oneof![
                Just("a"),
                Just("b/c"),
                Just("x.y"),
                Just("1"),
                Just("in"),
                Just("notin"),
                Just("("),
                Just(")"),
                Just(","),
                Just("="),
                Just("=="),
                Just("!="),
                Just("!"),
                Just(">"),
                Just("<"),
                Just(" "),
                Just("\t"),
                Just("-"),
                Just("_"),
                Just("é"),
                Just("/"),
                Just("."),
            ];
            prop::collection::vec(token, 0..16).prop_map(|t| t.concat())
        }

        /// A selector's text, its parse, the parse of its printed form, and both printed.
        fn assert_canonical(text: &str, parsed: &LabelSelector) -> Result<(), TestCaseError> {
            let printed = parsed.to_string();
            let reparsed = LabelSelector::parse(&printed);
            prop_assert!(
                reparsed.is_ok(),
                "{text:?} parsed, printed as {printed:?}, which fails: {reparsed:?}"
            );
            let reparsed = reparsed.expect("checked");
            prop_assert_eq!(&reparsed, parsed, "{:?} printed as {:?}", text, printed);
            prop_assert_eq!(reparsed.to_string(), printed);
            Ok(())
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// Generated selectors print to text that parses back to the same requirements.
            #[test]
            fn label_selector_print_parse_round_trip(
                reqs in prop::collection::vec(requirement(), 0..5),
            ) {
                let text = reqs.iter().map(|r| r.to_string()).collect::<Vec<_>>().join(",");
                let parsed = LabelSelector::parse(&text);
                prop_assert!(parsed.is_ok(), "{text:?}: {parsed:?}");
                let parsed = parsed.expect("checked");
                let mut sorted = reqs.clone();
                sorted.sort_by(|a, b| a.key.cmp(&b.key));
                prop_assert_eq!(parsed.requirements(), sorted.as_slice());
                assert_canonical(&text, &parsed)?;
            }

        }

        proptest! {
            // Cheap: a few microseconds a case, and the alphabet is small.
            #![proptest_config(ProptestConfig::with_cases(2048))]

            /// Whatever label selector text parses has a canonical printed form that selects
            /// the same objects; nothing panics.
            #[test]
            fn label_selector_parse_never_panics_and_prints_canonically(
                text in prop_oneof![label_soup(), any::<String>()],
                labels in prop::collection::btree_map(
                    prop_oneof![Just("a".to_string()), Just("b/c".to_string()), Just("x.y".to_string())],
                    prop_oneof![Just(String::new()), Just("1".to_string()), Just("in".to_string()), Just("a".to_string())],
                    0..3,
                ),
            ) {
                if let Ok(parsed) = LabelSelector::parse(&text) {
                    assert_canonical(&text, &parsed)?;
                    let reparsed = LabelSelector::parse(&parsed.to_string()).expect("checked");
                    prop_assert_eq!(parsed.matches(&labels), reparsed.matches(&labels));
                }
            }

            /// Generated field selectors (any value text, escaped) parse to their terms and
            /// print canonically.
            #[test]
            fn field_selector_print_parse_round_trip(
                terms in prop::collection::vec(
                    ("[a-z]{1,6}(\\.[a-zA-Z]{1,6}){0,2}", any::<String>(), any::<bool>()),
                    0..5,
                ),
            ) {
                let text = terms
                    .iter()
                    .map(|(f, v, eq)| format!("{f}{}{}", if *eq { "=" } else { "!=" }, escape_value(v)))
                    .collect::<Vec<_>>()
                    .join(",");
                let parsed = FieldSelector::parse(&text);
                prop_assert!(parsed.is_ok(), "{text:?}: {parsed:?}");
                let parsed = parsed.expect("checked");
                let mut got: Vec<(String, String, bool)> = parsed
                    .terms()
                    .iter()
                    .map(|t| (t.field.clone(), t.value.clone(), t.equal))
                    .collect();
                // Surrounding whitespace of a value is not kept (module docs).
                let mut want: Vec<(String, String, bool)> = terms
                    .iter()
                    .map(|(f, v, eq)| (f.clone(), escape_value(v).trim().to_string(), *eq))
                    .map(|(f, v, eq)| (f, unescape_value(&v).expect("escaped"), eq))
                    .collect();
                got.sort();
                want.sort();
                prop_assert_eq!(got, want);
                let printed = parsed.to_string();
                let reparsed = FieldSelector::parse(&printed);
                prop_assert_eq!(reparsed.as_ref(), Ok(&parsed), "printed as {:?}", printed);
            }

        }

        proptest! {
            // Cheap: a few microseconds a case, and the alphabet is small.
            #![proptest_config(ProptestConfig::with_cases(2048))]

            /// Terms written in any of the accepted spellings (`=` or `==`, blanks around
            /// the parts) print canonically.
            #[test]
            fn field_selector_spellings_print_canonically(
                terms in prop::collection::vec(
                    (
                        prop::sample::select(vec!["a", "b", "a.b", "a!"]),
                        prop::sample::select(vec!["=", "==", "!="]),
                        prop::sample::select(vec!["", "a", "x", "!", "\\,", "\\="]),
                        prop::sample::select(vec!["", " "]),
                        prop::sample::select(vec!["", " "]),
                    ),
                    0..4,
                ),
            ) {
                let text = terms
                    .iter()
                    .map(|(f, op, v, pre, post)| {
                        // `a!==x` is `a` `!=` `=x`, which is refused.
                        let gap = if f.ends_with('!') { " " } else { post };
                        format!("{pre}{f}{gap}{op}{pre}{v}{post}")
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                let parsed = FieldSelector::parse(&text);
                prop_assert!(parsed.is_ok(), "{text:?}: {parsed:?}");
                let parsed = parsed.expect("checked");
                let printed = parsed.to_string();
                let reparsed = FieldSelector::parse(&printed);
                prop_assert_eq!(reparsed.as_ref(), Ok(&parsed), "{:?} printed as {:?}", text, printed);
            }

            /// Whatever field selector text parses has a canonical printed form that selects
            /// the same objects; nothing panics.
            #[test]
            fn field_selector_parse_never_panics_and_prints_canonically(
                text in prop_oneof![
                    prop::collection::vec(
                        prop_oneof![
                            Just("a"), Just("b.c"), Just("="), Just("=="), Just("!="), Just("!"),
                            Just(","), Just("\\"), Just(" "), Just("x"), Just("é"),
                        ],
                        0..16,
                    ).prop_map(|t| t.concat()),
                    any::<String>(),
                ],
                value in prop_oneof![Just(""), Just("x"), Just("a"), Just("=")],
            ) {
                if let Ok(parsed) = FieldSelector::parse(&text) {
                    let printed = parsed.to_string();
                    let reparsed = FieldSelector::parse(&printed);
                    prop_assert_eq!(reparsed.as_ref(), Ok(&parsed), "{:?} printed as {:?}", text, printed);
                    prop_assert_eq!(reparsed.expect("checked").to_string(), printed);
                    let obj = json!({"a": value, "b": {"c": value}});
                    prop_assert_eq!(
                        parsed.matches(&obj),
                        FieldSelector::parse(&parsed.to_string()).expect("checked").matches(&obj)
                    );
                }
            }
        }
    }
}
