//! Source rewrites that make regorus parse Rego the way OPA does.
//!
//! regorus and OPA disagree on two pieces of syntax that published policies use. Rather
//! than fork the parser, Mooring rewrites the source text before handing it over, keeping
//! every line where it was so error locations stay right:
//!
//! * **A reference followed by a newline and `(`.** OPA ends an expression at the newline,
//!   so `x := input.a` then `(input.b == 1)` on the next line are two expressions; regorus
//!   reads `input.a(input.b == 1)` as a call. Inside a body, a `;` is inserted at the end of
//!   the first line.
//! * **Chained bodies in v0** (`p[x] { a } { b }`) mean two rules with one head, an "or".
//!   regorus takes the second body for an `else`. The head is repeated before the second
//!   body.
//! * **Import aliases** (`import data.lib.k`, then `k.v`) are replaced by the full
//!   reference (`data.lib.k.v`). regorus resolves an alias in the wrong module when a
//!   package is split over several files and a rule is reached through another module's
//!   alias under `with input as …`, leaving a defined rule undefined; full references have
//!   one meaning everywhere. An alias that a local variable shadows is left alone.
//!
//! * **A head term that can be undefined in a partial rule** (`violation[{"msg": f(x)}]`,
//!   `violation contains {"msg": x.y} if`, `p[x.name] = x`). OPA evaluates the head after
//!   the body, and an undefined key or value only drops that one element. regorus 0.14
//!   instead resets the whole rule to undefined: elements already produced are lost (a
//!   silent pass) and the next one fails with "not an object". Such a key (or value)
//!   becomes a variable, assigned from the same expression at the end of the body, which
//!   regorus gets right. Heads that only name body variables are left alone.
//! * **OPA's operator functions** (`equal(a, b)`, `neq`, `lt`, `lte`, `gt`, `gte`, `plus`,
//!   `minus`, `mul`, `div`, `rem`) are the built-ins behind the infix operators; regorus
//!   only knows the operators. A two-argument call becomes the infix expression.
//! * **Operands of a negated expression that OPA evaluates before the `not`.** OPA's
//!   compiler rewrites every rule body before evaluation, negated expressions included
//!   (stages `RewriteExprTerms`, `RewriteEquals`, `RewriteDynamicTerms` of its
//!   `ast/compile.go`): a call nested in an operand (`count(x)` in `count(x) > 0`) and the
//!   references a call or comparison takes as arguments (`input.a` in `input.a != 1`,
//!   `startswith(input.a, "x")`, `f(input.a)`, `input.a in s`) are bound to variables in
//!   expressions placed *before* the negated one. So when such an operand is undefined, the
//!   whole body is undefined, `not` or not. Equality (`==`, `=`, `equal`) is unification by
//!   then and keeps its top-level references, and so does a bare reference: `not input.a
//!   == 1` and `not input.a` hold when `input.a` is undefined. regorus evaluates every
//!   operand inside the negation, so each of those answers flipped. The same operands are
//!   moved out here, as `__mooring_negN := (…)` before the `not` (with the expression's
//!   `with` modifiers), which also keeps OPA's iteration when the operand iterates.
//!
//! The last two parse the module with regorus's own parser and edit the text at the spans
//! it reports, so they see exactly the expressions regorus will evaluate; a module that does
//! not parse is left as it is (the compile step reports the error). Line numbers after the
//! edited literal do not move.
//!
//! The scanner knows strings (with escapes), raw strings and comments, and tracks bracket
//! nesting; it never looks inside a string or comment.

use regorus::unstable as rast;

#[cfg(test)]
mod proptests;

/// Rewrites `text`; `v0` enables the v0-only rewrite of chained bodies.
pub fn rewrite(text: &str, v0: bool) -> String {
    let text = resolve_imports(text);
    let text = rewrite_structure(&text, v0);
    let text = hoist_head_calls(&text);
    let text = operator_calls_to_infix(&text, v0);
    hoist_negated_operands(&text, v0)
}

/// The variables hoisted head terms are bound to (rule scopes are separate, so one name
/// of each serves).
const HOISTED_KEY: &str = "__mooring_key";
const HOISTED_VALUE: &str = "__mooring_value";

/// Index of the token closing the bracket opened at `open`, if any.
fn matching_close(tokens: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in tokens.iter().enumerate().skip(open) {
        match t.text {
            "(" | "[" | "{" => depth += 1,
            ")" | "]" | "}" => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// End (exclusive) of a head term starting at `from`: the `if` or body `{` that follows it
/// at depth 0 on the same line.
fn term_end(tokens: &[Token], from: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, k) in tokens.iter().enumerate().skip(from) {
        if k.line_start && j > from && depth == 0 {
            return None;
        }
        match k.text {
            "(" | "[" => depth += 1,
            "{" if depth > 0 || j == from => depth += 1,
            ")" | "]" | "}" => depth = depth.saturating_sub(1),
            "if" | "{" => return Some(j),
            _ => {}
        }
    }
    None
}

/// Whether a head term can be undefined: it calls a function or reads a reference (a
/// dotted name or an index), rather than naming variables the body binds.
fn can_be_undefined(tokens: &[Token]) -> bool {
    tokens.iter().enumerate().any(|(i, t)| {
        let name = t
            .text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        (name && t.text.contains('.') && !t.text.starts_with(|c: char| c.is_ascii_digit()))
            || (t.text == "[" && i > 0)
            || (t.text == "("
                && i > 0
                && t.start == tokens[i - 1].end
                && !is_keyword(tokens[i - 1].text))
    })
}

/// Move head terms that can be undefined out of partial rule heads into the rule body
/// (see the module docs).
fn hoist_head_calls(text: &str) -> String {
    let tokens = scan(text);
    // (start, end, replacement) edits, in order and not overlapping.
    let mut edits: Vec<(usize, usize, String)> = Vec::new();
    let mut i = 0;
    while i < tokens.len() {
        let t = &tokens[i];
        let starts_rule = t.line_start
            && !matches!(t.text, "package" | "import" | "default")
            && t.text
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.');
        // The key's token range [from, to), and the value's, if the rule has one.
        let mut value: Option<(usize, usize)> = None;
        let key = match tokens.get(i + 1) {
            Some(n) if starts_rule && n.text == "[" && n.start == t.end => {
                matching_close(&tokens, i + 1).and_then(|close| {
                    match tokens.get(close + 1).map(|t| t.text) {
                        Some("=" | ":=") => {
                            let end = term_end(&tokens, close + 2)?;
                            value = Some((close + 2, end));
                            Some((i + 2, close, end))
                        }
                        _ => Some((i + 2, close, close + 1)),
                    }
                })
            }
            Some(n) if starts_rule && n.text == "contains" => {
                term_end(&tokens, i + 2).map(|end| (i + 2, end, end))
            }
            _ => None,
        };
        let Some((from, to, after)) = key else {
            i += 1;
            continue;
        };
        let body_open = match tokens.get(after).map(|t| t.text) {
            Some("{") => Some(after),
            Some("if") if tokens.get(after + 1).is_some_and(|t| t.text == "{") => Some(after + 1),
            _ => None,
        };
        let (Some(open), true) = (body_open, from < to) else {
            i = after.max(i + 1);
            continue;
        };
        let Some(close) = matching_close(&tokens, open) else {
            break;
        };
        let mut assigns = String::new();
        for (range, var) in [(Some((from, to)), HOISTED_KEY), (value, HOISTED_VALUE)] {
            let Some((a, b)) = range else {
                continue;
            };
            if a < b && can_be_undefined(&tokens[a..b]) {
                let (start, end) = (tokens[a].start, tokens[b - 1].end);
                edits.push((start, end, var.to_string()));
                assigns.push_str(&format!("{var} := {}; ", &text[start..end]));
            }
        }
        if !assigns.is_empty() {
            let sep = if tokens[close].line_start { "" } else { "; " };
            let assigns = assigns.trim_end_matches("; ");
            edits.push((
                tokens[close].start,
                tokens[close].start,
                format!("{sep}{assigns} "),
            ));
        }
        i = close + 1;
    }
    if edits.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for (start, end, replacement) in edits {
        out.push_str(&text[at..start]);
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(&text[at..]);
    out
}

/// Replace references through import aliases by full references.
fn resolve_imports(text: &str) -> String {
    let tokens = scan(text);
    let mut aliases: Vec<(&str, &str)> = Vec::new();
    let mut import_tokens = Vec::new();
    for (i, t) in tokens.iter().enumerate() {
        if !(t.line_start && t.text == "import") {
            continue;
        }
        let Some(path) = tokens.get(i + 1) else {
            continue;
        };
        import_tokens.push(i + 1);
        let explicit = match (tokens.get(i + 2), tokens.get(i + 3)) {
            (Some(a), Some(alias)) if a.text == "as" && !a.line_start => {
                import_tokens.push(i + 3);
                Some(alias.text)
            }
            _ => None,
        };
        let root = path.text.split('.').next().unwrap_or("");
        let bracketed = tokens
            .get(i + 2)
            .is_some_and(|n| n.text == "[" && n.start == path.end);
        if !matches!(root, "data" | "input") || bracketed {
            continue;
        }
        let alias = explicit.unwrap_or_else(|| path.text.rsplit('.').next().unwrap_or(""));
        if alias.is_empty() || alias == root {
            continue;
        }
        aliases.push((alias, path.text));
    }
    // A local declaration (`k := …`, `some k`, `every k`) shadows the import: keep it.
    aliases.retain(|(alias, _)| {
        !tokens.windows(2).any(|w| {
            (w[0].text == *alias && w[1].text == ":=")
                || (matches!(w[0].text, "some" | "every") && w[1].text == *alias)
        })
    });
    if aliases.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for (i, t) in tokens.iter().enumerate() {
        if import_tokens.contains(&i) || (t.start > 0 && text.as_bytes()[t.start - 1] == b'.') {
            continue;
        }
        let first = t.text.split('.').next().unwrap_or("");
        if let Some((alias, path)) = aliases.iter().find(|(a, _)| *a == first) {
            out.push_str(&text[at..t.start]);
            out.push_str(path);
            at = t.start + alias.len();
        }
    }
    out.push_str(&text[at..]);
    out
}

fn rewrite_structure(text: &str, v0: bool) -> String {
    let tokens = scan(text);
    let mut inserts: Vec<(usize, String)> = Vec::new();
    let mut stack: Vec<u8> = Vec::new();
    // Start of the current rule (first token at depth 0 that began a line).
    let mut rule_start: Option<usize> = None;
    // Where the current rule's first body opened, once known.
    let mut first_body: Option<usize> = None;
    let mut body_just_closed = false;
    let mut prev: Option<&Token> = None;

    for token in &tokens {
        let depth0 = stack.is_empty();
        if depth0 && token.line_start && token.text != "{" && token.text != "else" {
            rule_start = Some(token.start);
            first_body = None;
        }
        match token.text {
            "(" => {
                if let Some(p) = prev {
                    if token.line_start
                        && matches!(stack.last(), Some(b'{' | b'B'))
                        && p.ends_term()
                        && !is_keyword(p.text)
                    {
                        inserts.push((p.end, ";".to_string()));
                    }
                }
                stack.push(b'(');
            }
            "[" => stack.push(b'['),
            "{" => {
                let is_value = prev.is_some_and(|p| p.text == "=" || p.text == ":=");
                let is_body = depth0 && !is_value;
                if is_body {
                    if body_just_closed && v0 {
                        if let (Some(start), Some(body)) = (rule_start, first_body) {
                            let head = text[start..body].trim_end();
                            inserts.push((token.start, format!("\n{head} ")));
                        }
                    } else if first_body.is_none() {
                        first_body = Some(token.start);
                    }
                }
                // 'B' marks a rule body, '{' an object, set or comprehension.
                stack.push(if is_body { b'B' } else { b'{' });
            }
            ")" | "]" | "}" => {
                let closed = stack.pop();
                body_just_closed = stack.is_empty() && closed == Some(b'B');
                prev = Some(token);
                continue;
            }
            _ => {}
        }
        body_just_closed = false;
        prev = Some(token);
    }

    if inserts.is_empty() {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for (pos, insert) in inserts {
        out.push_str(&text[at..pos]);
        out.push_str(&insert);
        at = pos;
    }
    out.push_str(&text[at..]);
    out
}

/// OPA's built-ins behind the infix operators, with the operator regorus understands.
const OPERATOR_FUNCTIONS: [(&str, &str); 11] = [
    ("equal", "=="),
    ("neq", "!="),
    ("lt", "<"),
    ("lte", "<="),
    ("gt", ">"),
    ("gte", ">="),
    ("plus", "+"),
    ("minus", "-"),
    ("mul", "*"),
    ("div", "/"),
    ("rem", "%"),
];

/// Prefix of the variables negated operands are bound to (numbered per module).
const NEGATED_OPERAND: &str = "__mooring_neg";

/// regorus's parse of `text`, or `None` when it does not parse (compiling it reports why).
fn parse_module(text: &str, v0: bool) -> Option<rast::Module> {
    let source = rast::Source::from_contents("compat.rego".to_string(), text.to_string()).ok()?;
    let mut parser = rast::Parser::new(&source).ok()?;
    if !v0 {
        parser.enable_rego_v1().ok()?;
    }
    parser.parse().ok()
}

/// Byte range of a span.
fn range(span: &rast::Span) -> (usize, usize) {
    (span.start as usize, span.end as usize)
}

/// The dotted path an expression names (`f`, `data.lib.f`), if it is one.
fn path_of(expr: &rast::Expr) -> Option<String> {
    regorus::utils::get_path_string(expr, None).ok()
}

/// The first name of every rule and function the module defines: a variable of that name
/// is a reference to the rule, as OPA resolves it.
fn rule_names(module: &rast::Module) -> std::collections::BTreeSet<String> {
    use rast::{Rule, RuleHead};
    module
        .policy
        .iter()
        .filter_map(|rule| {
            let refr = match rule.as_ref() {
                Rule::Spec { head, .. } => match head {
                    RuleHead::Compr { refr, .. }
                    | RuleHead::Set { refr, .. }
                    | RuleHead::Func { refr, .. } => refr,
                },
                Rule::Default { refr, .. } => refr,
            };
            let path = path_of(refr)?;
            Some(path.split(['.', '[']).next().unwrap_or(&path).to_string())
        })
        .collect()
}

/// What [`walk_module`] visits.
enum Node<'a> {
    Expr(&'a rast::Expr),
    /// A statement and whether it is the whole of a rule body written without braces.
    Stmt(&'a rast::LiteralStmt, Option<(usize, usize)>),
}

/// Visits every expression and statement of a module, comprehension and `every` bodies
/// included.
fn walk_module(module: &rast::Module, text: &str, f: &mut dyn FnMut(Node<'_>)) {
    use rast::{Rule, RuleHead};
    for rule in &module.policy {
        match rule.as_ref() {
            Rule::Spec { head, bodies, .. } => {
                match head {
                    RuleHead::Compr { refr, assign, .. } => {
                        walk_expr(refr, f);
                        if let Some(a) = assign {
                            walk_expr(&a.value, f);
                        }
                    }
                    RuleHead::Set { refr, key, .. } => {
                        walk_expr(refr, f);
                        if let Some(k) = key {
                            walk_expr(k, f);
                        }
                    }
                    RuleHead::Func {
                        refr, args, assign, ..
                    } => {
                        walk_expr(refr, f);
                        for a in args {
                            walk_expr(a, f);
                        }
                        if let Some(a) = assign {
                            walk_expr(&a.value, f);
                        }
                    }
                }
                for body in bodies {
                    if let Some(a) = &body.assign {
                        walk_expr(&a.value, f);
                    }
                    let (start, end) = range(&body.query.span);
                    let braced = text.as_bytes().get(start) == Some(&b'{');
                    walk_query(&body.query, (!braced).then_some((start, end)), f);
                }
            }
            Rule::Default { args, value, .. } => {
                for a in args {
                    walk_expr(a, f);
                }
                walk_expr(value, f);
            }
        }
    }
}

fn walk_query(query: &rast::Query, unbraced: Option<(usize, usize)>, f: &mut dyn FnMut(Node<'_>)) {
    use rast::Literal;
    let whole = unbraced.filter(|_| query.stmts.len() == 1);
    for stmt in &query.stmts {
        f(Node::Stmt(stmt, whole));
        match &stmt.literal {
            Literal::SomeVars { .. } => {}
            Literal::SomeIn {
                key,
                value,
                collection,
                ..
            } => {
                if let Some(k) = key {
                    walk_expr(k, f);
                }
                walk_expr(value, f);
                walk_expr(collection, f);
            }
            Literal::Expr { expr, .. } | Literal::NotExpr { expr, .. } => walk_expr(expr, f),
            Literal::Every { domain, query, .. } => {
                walk_expr(domain, f);
                walk_query(query, None, f);
            }
        }
        for w in &stmt.with_mods {
            walk_expr(&w.refr, f);
            walk_expr(&w.r#as, f);
        }
    }
}

fn walk_expr(expr: &rast::Expr, f: &mut dyn FnMut(Node<'_>)) {
    use rast::Expr;
    f(Node::Expr(expr));
    match expr {
        Expr::ArrayCompr { term, query, .. } | Expr::SetCompr { term, query, .. } => {
            walk_expr(term, f);
            walk_query(query, None, f);
        }
        Expr::ObjectCompr {
            key, value, query, ..
        } => {
            walk_expr(key, f);
            walk_expr(value, f);
            walk_query(query, None, f);
        }
        Expr::Call { fcn, params, .. } => {
            walk_expr(fcn, f);
            for p in params {
                walk_expr(p, f);
            }
        }
        _ => {
            for child in term_children(expr)
                .into_iter()
                .chain(operands(expr).unwrap_or_default())
            {
                walk_expr(child, f);
            }
        }
    }
}

/// The sub-terms of a collection or reference (not of calls or comprehensions).
fn term_children(expr: &rast::Expr) -> Vec<&rast::Expr> {
    use rast::Expr;
    match expr {
        Expr::Array { items, .. } | Expr::Set { items, .. } => items.iter().map(|i| &**i).collect(),
        Expr::Object { fields, .. } => fields.iter().flat_map(|(_, k, v)| [&**k, &**v]).collect(),
        Expr::RefDot { refr, .. } => vec![&**refr],
        Expr::RefBrack { refr, index, .. } => vec![&**refr, &**index],
        _ => Vec::new(),
    }
}

/// The arguments of an expression OPA evaluates as a built-in or function call (infix
/// operators included), or `None` for a term.
fn operands(expr: &rast::Expr) -> Option<Vec<&rast::Expr>> {
    use rast::Expr;
    match expr {
        Expr::Call { params, .. } => Some(params.iter().map(|p| &**p).collect()),
        Expr::BinExpr { lhs, rhs, .. }
        | Expr::BoolExpr { lhs, rhs, .. }
        | Expr::ArithExpr { lhs, rhs, .. }
        | Expr::AssignExpr { lhs, rhs, .. } => Some(vec![&**lhs, &**rhs]),
        Expr::Membership {
            key,
            value,
            collection,
            ..
        } => Some(
            key.iter()
                .map(|k| &**k)
                .chain([&**value, &**collection])
                .collect(),
        ),
        Expr::UnaryExpr { expr, .. } => Some(vec![&**expr]),
        _ => None,
    }
}

/// `==`, `=` and `equal(a, b)`: unification once OPA's `RewriteEquals` ran.
fn is_equality(expr: &rast::Expr) -> bool {
    use rast::{AssignOp, BoolOp, Expr};
    match expr {
        Expr::BoolExpr { op, .. } => *op == BoolOp::Eq,
        Expr::AssignExpr { op, .. } => *op == AssignOp::Eq,
        Expr::Call { fcn, params, .. } => {
            params.len() == 2 && path_of(fcn).as_deref() == Some("equal")
        }
        _ => false,
    }
}

/// Collects the byte ranges of the operands OPA binds before evaluating the negated `expr`
/// (see the module docs), outermost first and never overlapping.
struct Hoists<'a> {
    globals: &'a std::collections::BTreeSet<String>,
    ranges: Vec<(usize, usize)>,
}

impl Hoists<'_> {
    fn of(&mut self, expr: &rast::Expr) {
        // RewriteExprTerms: calls nested anywhere in the operands (or in a term).
        match operands(expr) {
            Some(ops) => ops.into_iter().for_each(|op| self.nested_calls(op)),
            None => term_children(expr)
                .into_iter()
                .for_each(|c| self.nested_calls(c)),
        }
        // RewriteDynamicTerms.
        match operands(expr) {
            Some(ops) if is_equality(expr) => {
                ops.into_iter().for_each(|op| self.dynamics_in_term(op))
            }
            Some(ops) => ops.into_iter().for_each(|op| self.dynamics_one(op)),
            None => self.dynamics_in_term(expr),
        }
    }

    fn covered(&self, expr: &rast::Expr) -> bool {
        let (start, end) = range(expr.span());
        self.ranges.iter().any(|&(s, e)| s <= start && end <= e)
    }

    fn hoist(&mut self, expr: &rast::Expr) {
        if !self.covered(expr) {
            self.ranges.push(range(expr.span()));
        }
    }

    fn nested_calls(&mut self, expr: &rast::Expr) {
        if operands(expr).is_some() {
            self.hoist(expr);
        } else {
            term_children(expr)
                .into_iter()
                .for_each(|c| self.nested_calls(c));
        }
    }

    fn is_ref(&self, expr: &rast::Expr) -> bool {
        use rast::Expr;
        match expr {
            Expr::RefDot { .. } | Expr::RefBrack { .. } => true,
            Expr::Var { .. } => path_of(expr)
                .is_some_and(|v| v == "input" || v == "data" || self.globals.contains(&v)),
            _ => false,
        }
    }

    /// The dynamic operands of a reference (`x` in `a[x]`), or the term itself when it is
    /// not a reference.
    fn dynamics_in_term(&mut self, expr: &rast::Expr) {
        use rast::Expr;
        if self.covered(expr) {
            return;
        }
        match expr {
            Expr::RefBrack { refr, index, .. } => {
                self.dynamics_in_term(refr);
                self.dynamics_one(index);
            }
            Expr::RefDot { refr, .. } => self.dynamics_in_term(refr),
            Expr::Var { .. } => {}
            Expr::ArrayCompr { .. } | Expr::SetCompr { .. } | Expr::ObjectCompr { .. } => {}
            _ => self.dynamics_one(expr),
        }
    }

    /// References and comprehensions, alone or inside collections.
    fn dynamics_one(&mut self, expr: &rast::Expr) {
        use rast::Expr;
        if self.covered(expr) {
            return;
        }
        match expr {
            _ if self.is_ref(expr) => self.hoist(expr),
            Expr::ArrayCompr { .. } | Expr::SetCompr { .. } | Expr::ObjectCompr { .. } => {
                self.hoist(expr)
            }
            Expr::Array { .. } | Expr::Set { .. } | Expr::Object { .. } => term_children(expr)
                .into_iter()
                .for_each(|c| self.dynamics_one(c)),
            _ => {}
        }
    }
}

/// Applies `(start, end, replacement)` edits, in order of position (edits at one position
/// keep their order); an edit overlapping an earlier one is dropped.
fn apply_edits(text: &str, mut edits: Vec<(usize, usize, String)>) -> String {
    edits.sort_by_key(|&(start, _, _)| start);
    let mut out = String::with_capacity(text.len() + 64);
    let mut at = 0;
    for (start, end, replacement) in edits {
        if start < at || end > text.len() {
            continue;
        }
        out.push_str(text.get(at..start).unwrap_or(""));
        out.push_str(&replacement);
        at = end;
    }
    out.push_str(text.get(at..).unwrap_or(""));
    out
}

/// Whether `expr` holds a call of an operator function (that the module does not define).
fn operator_call(
    expr: &rast::Expr,
    defined: &std::collections::BTreeSet<String>,
) -> Option<&'static str> {
    let rast::Expr::Call { fcn, params, .. } = expr else {
        return None;
    };
    let name = path_of(fcn)?;
    if params.len() != 2 || defined.contains(&name) {
        return None;
    }
    OPERATOR_FUNCTIONS
        .iter()
        .find(|(f, _)| *f == name)
        .map(|(_, op)| *op)
}

/// `equal(a, b)` → `((a) == (b))`, and so on for [`OPERATOR_FUNCTIONS`]; innermost calls
/// first, one nesting level per round.
fn operator_calls_to_infix(text: &str, v0: bool) -> String {
    if !OPERATOR_FUNCTIONS
        .iter()
        .any(|(name, _)| text.contains(&format!("{name}(")))
    {
        return text.to_string();
    }
    // One round per nesting level of such calls, until none is left: every round but the
    // last replaces at least one call, so there are at most as many rounds as calls. (A
    // fixed number of rounds left the outermost calls of a deeper nest for the next
    // rewrite, which then changed the text again.)
    let rounds = OPERATOR_FUNCTIONS
        .iter()
        .map(|(name, _)| text.matches(&format!("{name}(")).count())
        .sum::<usize>();
    let mut text = text.to_string();
    for _ in 0..=rounds {
        let Some(module) = parse_module(&text, v0) else {
            break;
        };
        let defined = rule_names(&module);
        let mut edits = Vec::new();
        walk_module(&module, &text, &mut |node| {
            let Node::Expr(expr) = node else {
                return;
            };
            let (Some(op), rast::Expr::Call { params, .. }) = (operator_call(expr, &defined), expr)
            else {
                return;
            };
            let mut nested = false;
            for p in params {
                walk_expr(p, &mut |n| {
                    if let Node::Expr(e) = n {
                        nested |= operator_call(e, &defined).is_some();
                    }
                });
            }
            if nested {
                return;
            }
            let (start, end) = range(expr.span());
            let (a, b) = (range(params[0].span()), range(params[1].span()));
            let mut replacement = format!("(({}) {op} ({})", &text[a.0..a.1], &text[b.0..b.1]);
            let lost = text[start..end]
                .matches('\n')
                .count()
                .saturating_sub(replacement.matches('\n').count());
            replacement.push_str(&"\n".repeat(lost));
            replacement.push(')');
            edits.push((start, end, replacement));
        });
        if edits.is_empty() {
            break;
        }
        text = apply_edits(&text, edits);
    }
    text
}

/// Binds the operands OPA evaluates before a negated expression to variables defined just
/// before it (see the module docs).
fn hoist_negated_operands(text: &str, v0: bool) -> String {
    if !text.contains("not") {
        return text.to_string();
    }
    let Some(module) = parse_module(text, v0) else {
        return text.to_string();
    };
    let globals = rule_names(&module);
    let mut edits = Vec::new();
    let mut counter = 0usize;
    walk_module(&module, text, &mut |node| {
        let Node::Stmt(stmt, unbraced) = node else {
            return;
        };
        let rast::Literal::NotExpr { expr, .. } = &stmt.literal else {
            return;
        };
        let mut hoists = Hoists {
            globals: &globals,
            ranges: Vec::new(),
        };
        hoists.of(expr);
        if hoists.ranges.is_empty() {
            return;
        }
        let withs = match (stmt.with_mods.first(), stmt.with_mods.last()) {
            (Some(first), Some(last)) => {
                format!(" {}", &text[range(&first.span).0..range(&last.span).1])
            }
            _ => String::new(),
        };
        if withs.contains('\n') {
            // Copying it would move every later line; leave this literal as it is.
            return;
        }
        hoists.ranges.sort();
        let mut prefix = String::new();
        if let Some((start, end)) = unbraced {
            // `p if not …`: the body becomes a braced block so it can hold several literals.
            edits.push((start, start, "{ ".to_string()));
            edits.push((end, end, " }".to_string()));
        }
        for (start, end) in hoists.ranges {
            let var = format!("{NEGATED_OPERAND}{counter}");
            counter += 1;
            prefix.push_str(&format!("{var} := ({}){withs}; ", &text[start..end]));
            edits.push((start, end, var));
        }
        edits.push((range(&stmt.span).0, range(&stmt.span).0, prefix));
    });
    if edits.is_empty() {
        return text.to_string();
    }
    apply_edits(text, edits)
}

#[derive(Debug)]
struct Token<'a> {
    text: &'a str,
    start: usize,
    end: usize,
    /// The first token on its line.
    line_start: bool,
}

impl Token<'_> {
    /// Whether the token can end a term, so that a following `(` would make a call.
    fn ends_term(&self) -> bool {
        let last = self.text.as_bytes().last().copied().unwrap_or(b' ');
        last.is_ascii_alphanumeric() || matches!(last, b'_' | b']' | b')' | b'}' | b'"' | b'`')
    }
}

fn is_keyword(word: &str) -> bool {
    matches!(
        word,
        "not" | "with" | "as" | "else" | "some" | "in" | "if" | "contains" | "every" | "default"
    )
}

/// Splits Rego into structural tokens: identifiers/numbers, strings, and single
/// punctuation characters (`:=` and `==` kept whole). Comments and whitespace are dropped.
fn scan(text: &str) -> Vec<Token<'_>> {
    let bytes = text.as_bytes();
    let mut tokens = Vec::new();
    let mut i = 0;
    let mut line_start = true;
    while i < bytes.len() {
        let c = bytes[i];
        let start = i;
        match c {
            b'\n' => {
                line_start = true;
                i += 1;
                continue;
            }
            b' ' | b'\t' | b'\r' => {
                i += 1;
                continue;
            }
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' {
                    i += 1;
                }
                continue;
            }
            b'"' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'"' && bytes[i] != b'\n' {
                    if bytes[i] == b'\\' {
                        i += 1;
                    }
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
            }
            b'`' => {
                i += 1;
                while i < bytes.len() && bytes[i] != b'`' {
                    i += 1;
                }
                i = (i + 1).min(bytes.len());
            }
            c if c.is_ascii_alphanumeric() || c == b'_' || c >= 0x80 => {
                while i < bytes.len()
                    && (bytes[i].is_ascii_alphanumeric()
                        || bytes[i] == b'_'
                        || bytes[i] == b'.'
                        || bytes[i] >= 0x80)
                {
                    i += 1;
                }
            }
            _ => {
                let two = bytes.get(i + 1).copied();
                i += if matches!((c, two), (b':', Some(b'=')) | (b'=', Some(b'='))) {
                    2
                } else {
                    1
                };
            }
        }
        // Token boundaries fall on ASCII bytes, so the slice is always valid UTF-8.
        tokens.push(Token {
            text: text.get(start..i).unwrap_or(""),
            start,
            end: i,
            line_start,
        });
        line_start = false;
    }
    tokens
}

#[cfg(test)]
mod tests {
    use super::rewrite;

    #[test]
    fn newline_paren_becomes_a_new_expression() {
        let src = "package t\np[y] {\n  y := input.a\n  (input.b == 1)\n}\n";
        assert_eq!(
            rewrite(src, true),
            "package t\np[y] {\n  y := input.a;\n  (input.b == 1)\n}\n"
        );
    }

    #[test]
    fn calls_on_one_line_and_continuations_are_untouched() {
        for src in [
            "package t\np { f(1) }\n",
            "package t\np { x := [\n  (1 + 2)\n] }\n",
            "package t\np { not\n  (1 == 2) }\n",
            "package t\np { x := count(\n  input.a) }\n",
            "package t\np { x := \"a\n(\" }\n",
            "package t\n# p { x\n(y) }\n",
        ] {
            assert_eq!(rewrite(src, true), src, "{src}");
        }
    }

    #[test]
    fn chained_bodies_repeat_the_head() {
        let src = "package t\nviolation[{\"msg\": m}] { m := \"a\" } { m := \"b\" }\n";
        assert_eq!(
            rewrite(src, true),
            "package t\nviolation[{\"msg\": m}] { m := \"a\" } \nviolation[{\"msg\": m}] { m := \"b\" }\n"
        );
        let multi = "package t\np[x] {\n  x := 1\n} {\n  x := 2\n}\n";
        assert_eq!(
            rewrite(multi, true),
            "package t\np[x] {\n  x := 1\n} \np[x] {\n  x := 2\n}\n"
        );
        // Not in v1, where the syntax does not exist.
        assert_eq!(rewrite(multi, false), multi);
    }

    #[test]
    fn import_aliases_become_full_references() {
        let src = "package main\nimport rego.v1\nimport data.lib.k\nimport data.lib.q as other\ndeny contains k.v if other[x]\nf(y) := k.g(y)\nz := x.k\n";
        assert_eq!(
            rewrite(src, true),
            "package main\nimport rego.v1\nimport data.lib.k\nimport data.lib.q as other\ndeny contains data.lib.k.v if data.lib.q[x]\nf(y) := data.lib.k.g(y)\nz := x.k\n"
        );
        // Shadowed by a local variable: untouched.
        let shadow = "package main\nimport data.lib.k\np { k := 1; k == 1 }\n";
        assert_eq!(rewrite(shadow, true), shadow);
        // Imports of keywords and whole documents are not aliases.
        let kw = "package main\nimport future.keywords.in\nimport input\np { 1 in input.x }\n";
        assert_eq!(rewrite(kw, true), kw);
    }

    #[test]
    fn calls_in_partial_set_heads_move_into_the_body() {
        let v0 = "package t\nviolation[{\"msg\": f(v)}] {\n  v := input.a[_]\n}\n";
        assert_eq!(
            rewrite(v0, true),
            "package t\nviolation[__mooring_key] {\n  v := input.a[_]\n__mooring_key := {\"msg\": f(v)} }\n"
        );
        let one_line = "package t\nviolation[{\"msg\": f(v)}] { v := input.a[_] }\n";
        assert_eq!(
            rewrite(one_line, true),
            "package t\nviolation[__mooring_key] { v := input.a[_] ; __mooring_key := {\"msg\": f(v)} }\n"
        );
        let v1 = "package t\nviolation contains {\"msg\": f(v)} if {\n  v := input.a[_]\n}\n";
        assert_eq!(
            rewrite(v1, false),
            "package t\nviolation contains __mooring_key if {\n  v := input.a[_]\n__mooring_key := {\"msg\": f(v)} }\n"
        );
        let object = "package t\np[x.name] = x { x := input.a[_] }\n";
        assert_eq!(
            rewrite(object, true),
            "package t\np[__mooring_key] = x { x := input.a[_] ; __mooring_key := x.name }\n"
        );
        let both = "package t\np[k] := f(k) if { k := 1 }\n";
        assert_eq!(
            rewrite(both, false),
            "package t\np[k] := __mooring_value if { k := 1 ; __mooring_value := f(k) }\n"
        );
        // Heads naming body variables, calls in bodies, one-line v1 bodies: untouched.
        for src in [
            "package t\nviolation[{\"msg\": m, \"details\": {}}] { m := f(1) }\n",
            "package t\np[k] = v { k := 1; v := 2 }\n",
            "package t\nf(x) = y { y := g(x) }\n",
            "package t\ndeny contains f(1) if input.x\n",
            "package t\ndeny contains msg if { msg := f(1) }\n",
        ] {
            assert_eq!(rewrite(src, true), src, "{src}");
        }
    }

    #[test]
    fn operator_functions_become_infix() {
        let src = "package t\np if { equal(input.a, 1); neq(plus(input.b,\n 1), 2) }\n";
        assert_eq!(
            rewrite(src, false),
            "package t\np if { ((input.a) == (1)); (((input.b) + (1)) != (2)\n) }\n"
        );
        // A module's own function of that name, and other arities, are left alone.
        let own = "package t\nequal(a, b) := a == b\np if equal(1, 1)\nq if gt(1, 2, x)\n";
        assert_eq!(rewrite(own, false), own);
    }

    #[test]
    fn operands_of_negations_move_before_the_not_as_in_opa() {
        let src = "package t\np if { not input.a != 1; not count(input.b) > 0 }\n";
        assert_eq!(
            rewrite(src, false),
            "package t\np if { __mooring_neg0 := (input.a); not __mooring_neg0 != 1; __mooring_neg1 := (count(input.b)); not __mooring_neg1 > 0 }\n"
        );
        // A body without braces gets them; `with` modifiers go with the operand.
        let one = "package t\np if not startswith(input.a, \"x\") with input as {\"a\": 1}\n";
        assert_eq!(
            rewrite(one, false),
            "package t\np if { __mooring_neg0 := (input.a) with input as {\"a\": 1}; not startswith(__mooring_neg0, \"x\") with input as {\"a\": 1} }\n"
        );
        // Lines after the literal keep their numbers when the operand spans lines.
        let multi =
            "package t\np {\n  not f(input.a,\n    input.b)\n  x := 1\n}\nf(a, b) { a == b }\n";
        let out = rewrite(multi, true);
        assert_eq!(out.lines().count(), multi.lines().count(), "{out}");
        assert!(
            out.lines().nth(4).is_some_and(|l| l.contains("x := 1")),
            "{out}"
        );
        // Equality, bare references, local variables and constants stay inside.
        for src in [
            "package t\np if { not input.a == 1 }\n",
            "package t\np if { not input.a }\n",
            "package t\np if { x := 1; not x > 0 }\n",
            "package t\np if { not f(\"a\", 1) }\nf(a, b) if a == b\n",
            "package t\np if { not input.a[_] == input.b }\n",
        ] {
            assert_eq!(rewrite(src, false), src, "{src}");
        }
    }

    #[test]
    fn else_and_value_objects_are_not_chains() {
        for src in [
            "package t\np = 1 { false } else = 2 { true }\n",
            "package t\np = {\"a\": 1} { true }\n",
            "package t\np { true }\nq { true }\n",
        ] {
            assert_eq!(rewrite(src, true), src, "{src}");
        }
    }
}
