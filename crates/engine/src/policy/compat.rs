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
//!
//! The scanner knows strings (with escapes), raw strings and comments, and tracks bracket
//! nesting; it never looks inside a string or comment.

/// Rewrites `text`; `v0` enables the v0-only rewrite of chained bodies.
pub fn rewrite(text: &str, v0: bool) -> String {
    let text = resolve_imports(text);
    let text = rewrite_structure(&text, v0);
    hoist_head_calls(&text)
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
