//! Safe YAML parsing for manifests and request bodies.
//!
//! serde_yaml is unmaintained; serde-saphyr is a maintained pure-Rust parser whose default
//! budget bounds alias expansion, nesting and node counts, so a "billion laughs" document
//! fails fast with an error instead of exhausting memory. On top of that we cap the input
//! size, because a 2 GiB manifest is as hostile as an alias bomb.
//!
//! # Reading the ecosystem's files as their Go tools do
//!
//! Argo CD's `health_test.yaml` and Gatekeeper's gator suites are read by Go programs, and
//! a test file means what those programs make of it. [`parse_go_first`] decodes a file the
//! way one of two Go stacks does, with the same limits as above:
//!
//! * [`GoYaml::Sigs`]: `sigs.k8s.io/yaml` (Argo CD's health harness): go-yaml v2 reads the
//!   first YAML document, YAML 1.1 scalars (`yes` is `true`), and a mapping key written
//!   twice keeps its last value. The repeated keys are reported, so callers can warn.
//! * [`GoYaml::V3`]: go-yaml v3 (gator): the first document, YAML 1.2 booleans (`yes` is a
//!   string), and a repeated mapping key is an error ("mapping key already defined").
//!
//! In both only the first document counts: what follows a `---` after it is not even
//! parsed. Both then hand the result to `encoding/json`, which matches object keys to a
//! struct's fields case-insensitively (`inputpath` fills `InputPath`); [`go_struct`] does
//! that step for a declared [`GoShape`].

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value};
use std::fmt;

/// Largest YAML document accepted by default (bytes).
pub const MAX_YAML_BYTES: usize = 8 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    #[error("YAML input is {size} bytes, over the {limit}-byte limit")]
    TooLarge { size: usize, limit: usize },
    #[error("invalid YAML: {0}")]
    Parse(String),
    /// A mapping key written twice, where the reading tool refuses it ([`GoYaml::V3`]).
    #[error(
        "mapping key {key:?} at line {line} is already defined{}",
        in_path(path)
    )]
    DuplicateKey {
        path: String,
        key: String,
        line: u64,
    },
}

fn in_path(path: &str) -> String {
    if path.is_empty() {
        String::new()
    } else {
        format!(" (in {path})")
    }
}

fn check_size(input: &str) -> Result<(), YamlError> {
    if input.len() > MAX_YAML_BYTES {
        return Err(YamlError::TooLarge {
            size: input.len(),
            limit: MAX_YAML_BYTES,
        });
    }
    Ok(())
}

/// Parse one YAML (or JSON) document into a JSON value.
pub fn parse_one(input: &str) -> Result<Value, YamlError> {
    check_size(input)?;
    serde_saphyr::from_str::<Value>(input).map_err(|e| YamlError::Parse(e.to_string()))
}

/// Parse a multi-document YAML stream; empty documents are skipped.
pub fn parse_all(input: &str) -> Result<Vec<Value>, YamlError> {
    check_size(input)?;
    let docs: Vec<Value> =
        serde_saphyr::from_multiple(input).map_err(|e| YamlError::Parse(e.to_string()))?;
    Ok(docs.into_iter().filter(|d| !d.is_null()).collect())
}

/// Which Go YAML stack a file is written for (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GoYaml {
    /// `sigs.k8s.io/yaml` (go-yaml v2, then `encoding/json`): Argo CD.
    Sigs,
    /// go-yaml v3 (then `encoding/json`): Gatekeeper's gator.
    V3,
}

/// A mapping key written twice, whose last value was kept ([`GoYaml::Sigs`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateKey {
    /// Where the mapping is, as `tests[0].healthStatus` (empty at the top level).
    pub path: String,
    pub key: String,
    /// 1-based line of the repeated key.
    pub line: u64,
}

impl fmt::Display for DuplicateKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "mapping key {:?} at line {} is repeated{}; the last value is used",
            self.key,
            self.line,
            in_path(&self.path)
        )
    }
}

/// The first document of a file, decoded as a Go tool decodes it.
#[derive(Debug, Clone, PartialEq)]
pub struct GoDocument {
    /// `Null` when the first document is empty.
    pub value: Value,
    /// Repeated keys, in file order ([`GoYaml::Sigs`] only; [`GoYaml::V3`] refuses them).
    pub duplicate_keys: Vec<DuplicateKey>,
}

/// The text of the first YAML document of `input` (leading comments and directives
/// included), found with the YAML parser itself; what follows is not parsed, as go-yaml's
/// `Unmarshal` does not parse it.
fn first_document(input: &str) -> Result<&str, YamlError> {
    use serde_saphyr::granit_parser::{Event, Parser};
    let mut documents = 0;
    for event in Parser::new_from_str(input) {
        let (event, span) = event.map_err(|e| YamlError::Parse(e.to_string()))?;
        match event {
            Event::DocumentStart(..) => {
                documents += 1;
                if documents == 2 {
                    let at = span.start.byte_offset().ok_or_else(|| {
                        YamlError::Parse("the YAML parser gave no byte offset".into())
                    })?;
                    return Ok(input.get(..at).unwrap_or(input));
                }
            }
            Event::StreamEnd => break,
            _ => {}
        }
    }
    Ok(input)
}

/// Decodes the first document of `input` as `dialect` does (see the module docs).
pub fn parse_go_first(input: &str, dialect: GoYaml) -> Result<GoDocument, YamlError> {
    check_size(input)?;
    let text = first_document(input)?;
    let options = serde_saphyr::options! {
        duplicate_keys: serde_saphyr::DuplicateKeyPolicy::PassThrough,
        strict_booleans: dialect == GoYaml::V3,
    };
    let mut state = GoState {
        dialect,
        duplicates: Vec::new(),
        refused: None,
    };
    let result = serde_saphyr::with_deserializer_from_str_with_options(text, options, |de| {
        GoSeed {
            state: &mut state,
            path: String::new(),
        }
        .deserialize(de)
    });
    if let Some(dup) = state.refused {
        return Err(YamlError::DuplicateKey {
            path: dup.path,
            key: dup.key,
            line: dup.line,
        });
    }
    let value = result.map_err(|e| YamlError::Parse(e.to_string()))?;
    Ok(GoDocument {
        value,
        duplicate_keys: state.duplicates,
    })
}

struct GoState {
    dialect: GoYaml,
    duplicates: Vec<DuplicateKey>,
    /// The repeated key that made a [`GoYaml::V3`] decode fail.
    refused: Option<DuplicateKey>,
}

/// Builds a JSON value, tracking repeated mapping keys with their path.
struct GoSeed<'a> {
    state: &'a mut GoState,
    path: String,
}

impl<'de> DeserializeSeed<'de> for GoSeed<'_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for GoSeed<'_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::from(v))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Value, E> {
        serde_json::Number::from_f64(v)
            .map(Value::Number)
            .ok_or_else(|| E::custom(format!("{v} has no JSON form")))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_string()))
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        self.deserialize(d)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        loop {
            let path = format!("{}[{}]", self.path, items.len());
            match seq.next_element_seed(GoSeed {
                state: &mut *self.state,
                path,
            })? {
                Some(item) => items.push(item),
                None => break,
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<serde_saphyr::Spanned<GoKey>>()? {
            let name = key.value.0;
            let path = if self.path.is_empty() {
                name.clone()
            } else {
                format!("{}.{name}", self.path)
            };
            let value = map.next_value_seed(GoSeed {
                state: &mut *self.state,
                path,
            })?;
            if out.contains_key(&name) {
                let dup = DuplicateKey {
                    path: self.path.clone(),
                    key: name.clone(),
                    line: key.referenced.line(),
                };
                if self.state.dialect == GoYaml::V3 {
                    let message = format!("mapping key {name:?} already defined");
                    self.state.refused = Some(dup);
                    return Err(de::Error::custom(message));
                }
                self.state.duplicates.push(dup);
            }
            out.insert(name, value);
        }
        Ok(Value::Object(out))
    }
}

/// A mapping key as Go's YAML-to-JSON conversion spells it: numbers and booleans become
/// their text; `null` and collections are refused (`unsupported map key`).
struct GoKey(String);

impl<'de> de::Deserialize<'de> for GoKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct KeyVisitor;
        impl Visitor<'_> for KeyVisitor {
            type Value = GoKey;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean mapping key")
            }
            fn visit_str<E>(self, v: &str) -> Result<GoKey, E> {
                Ok(GoKey(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<GoKey, E> {
                Ok(GoKey(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<GoKey, E> {
                Ok(GoKey(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<GoKey, E> {
                Ok(GoKey(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<GoKey, E> {
                Ok(GoKey(v.to_string()))
            }
        }
        d.deserialize_any(KeyVisitor)
    }
}

/// The Go struct a document is decoded into, as far as `encoding/json` cares: field names
/// (as the struct spells them, `json` tag or Go name) and what each holds.
#[derive(Debug, Clone, Copy)]
pub enum GoShape {
    /// A struct with these fields.
    Struct(&'static [(&'static str, GoShape)]),
    /// A slice of this.
    List(&'static GoShape),
    /// A `string`: [`GoYaml::Sigs`] turns a number or boolean written there into its text.
    Str,
    /// Anything else, taken as it is.
    Any,
}

/// Keys of `value` that no field of `shape` takes, as paths (`tests[0].inputpaths`).
pub type UnknownFields = Vec<String>;

/// `value` as `encoding/json` decodes it into `shape`, re-spelled with the fields' own
/// names so that derived deserializers see them:
///
/// * a key fills the field whose name it equals ignoring case (Unicode simple folding, as
///   Go's `bytes.EqualFold`); when several keys fill one field, the last in byte order wins
///   (Go's `json.Marshal` sorted the keys of the decoded map);
/// * `null` leaves a field as it was, or empties a list;
/// * keys no field takes are dropped and returned, so callers can say so.
pub fn go_struct(value: &Value, shape: GoShape, dialect: GoYaml) -> (Value, UnknownFields) {
    let mut unknown = Vec::new();
    let value = go_value(value, shape, dialect, "", &mut unknown);
    (value, unknown)
}

fn go_value(
    value: &Value,
    shape: GoShape,
    dialect: GoYaml,
    path: &str,
    unknown: &mut UnknownFields,
) -> Value {
    match (shape, value) {
        (GoShape::Struct(fields), Value::Object(map)) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for key in keys {
                let at = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                let field = fields
                    .iter()
                    .find(|(name, _)| name == key)
                    .or_else(|| fields.iter().find(|(name, _)| go_fold_eq(name, key)));
                let Some((name, field_shape)) = field else {
                    unknown.push(at);
                    continue;
                };
                match &map[key] {
                    Value::Null if matches!(field_shape, GoShape::List(_) | GoShape::Any) => {
                        out.shift_remove(*name);
                    }
                    Value::Null => {}
                    v => {
                        out.insert(
                            name.to_string(),
                            go_value(v, *field_shape, dialect, &at, unknown),
                        );
                    }
                }
            }
            Value::Object(out)
        }
        (GoShape::List(item), Value::Array(items)) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, v)| go_value(v, *item, dialect, &format!("{path}[{i}]"), unknown))
                .collect(),
        ),
        (GoShape::Str, Value::Number(n)) if dialect == GoYaml::Sigs => Value::String(n.to_string()),
        (GoShape::Str, Value::Bool(b)) if dialect == GoYaml::Sigs => Value::String(b.to_string()),
        // A value of the wrong kind is left for the caller's deserializer to refuse, as
        // encoding/json refuses it.
        _ => value.clone(),
    }
}

/// Go's `bytes.EqualFold`: equal under Unicode simple case folding.
pub fn go_fold_eq(a: &str, b: &str) -> bool {
    fn fold(c: char) -> char {
        match c {
            // The two letters that fold onto ASCII ones but are not their case pairs.
            '\u{17F}' => 's',
            '\u{212A}' => 'k',
            _ => c.to_lowercase().next().unwrap_or(c),
        }
    }
    a.chars().map(fold).eq(b.chars().map(fold))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_documents() {
        let docs = parse_all("a: 1\n---\n---\nb: [x, z]\n").expect("valid");
        assert_eq!(docs.len(), 2, "{docs:?}");
        assert_eq!(docs[1]["b"][1], "z");
    }

    #[test]
    fn alias_bomb_is_refused() {
        let mut y = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='p' {
            y.push_str(&format!(
                "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = c;
        }
        assert!(parse_one(&y).is_err());
    }

    #[test]
    fn go_reads_only_the_first_document() {
        for dialect in [GoYaml::Sigs, GoYaml::V3] {
            // A trailing document, even a non-empty or malformed one, is not read.
            for text in [
                "a: 1\n---\n",
                "a: 1\n---\nb: 2\n",
                "a: 1\n---\n: : [\n",
                "# lead\n---\na: 1\n...\nb: 2\n",
            ] {
                let doc = parse_go_first(text, dialect).expect(text);
                assert_eq!(doc.value, serde_json::json!({"a": 1}), "{text:?}");
            }
            // An empty first document is the document.
            let doc = parse_go_first("---\n---\nb: 2\n", dialect).expect("parses");
            assert_eq!(doc.value, Value::Null);
            assert!(parse_go_first("a: [1\n---\nb: 2\n", dialect).is_err());
        }
    }

    #[test]
    fn go_duplicate_keys_keep_the_last_value_or_fail() {
        let text = "tests:\n- inputPath: a.yaml\n  inputPath: b.yaml\nx: 1\nx: 2\n";
        let doc = parse_go_first(text, GoYaml::Sigs).expect("sigs.k8s.io/yaml accepts it");
        assert_eq!(doc.value["tests"][0]["inputPath"], "b.yaml");
        assert_eq!(doc.value["x"], 2);
        assert_eq!(
            doc.duplicate_keys,
            vec![
                DuplicateKey {
                    path: "tests[0]".into(),
                    key: "inputPath".into(),
                    line: 3
                },
                DuplicateKey {
                    path: String::new(),
                    key: "x".into(),
                    line: 5
                },
            ]
        );
        assert!(doc.duplicate_keys[0]
            .to_string()
            .contains("\"inputPath\" at line 3 is repeated (in tests[0])"));
        match parse_go_first(text, GoYaml::V3) {
            Err(YamlError::DuplicateKey { path, key, line }) => {
                assert_eq!(
                    (path.as_str(), key.as_str(), line),
                    ("tests[0]", "inputPath", 3)
                );
            }
            other => panic!("go-yaml v3 refuses a repeated key: {other:?}"),
        }
    }

    #[test]
    fn go_scalars_follow_each_yaml_version() {
        let sigs =
            parse_go_first("a: yes\nb: on\n1: x\ntrue: z\nc: y\n", GoYaml::Sigs).expect("ok");
        assert_eq!(
            sigs.value,
            serde_json::json!({"a": true, "b": true, "1": "x", "true": "z", "c": true})
        );
        let v3 = parse_go_first("a: yes\nb: true\n", GoYaml::V3).expect("ok");
        assert_eq!(v3.value, serde_json::json!({"a": "yes", "b": true}));
        assert!(parse_go_first("? [a]\n: 1\n", GoYaml::Sigs).is_err());
    }

    #[test]
    fn go_alias_bomb_and_size_limits_still_hold() {
        let mut y = String::from("a: &a [x, x, x, x, x, x, x, x, x, x]\n");
        let mut prev = 'a';
        for c in 'b'..='p' {
            y.push_str(&format!(
                "{c}: &{c} [*{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}, *{prev}]\n"
            ));
            prev = c;
        }
        assert!(parse_go_first(&y, GoYaml::Sigs).is_err());
        let big = "a".repeat(MAX_YAML_BYTES + 1);
        assert!(matches!(
            parse_go_first(&big, GoYaml::V3),
            Err(YamlError::TooLarge { .. })
        ));
    }

    const STATUS: GoShape = GoShape::Struct(&[("status", GoShape::Str), ("message", GoShape::Str)]);
    const TEST: GoShape = GoShape::Struct(&[("InputPath", GoShape::Str), ("HealthStatus", STATUS)]);
    const FILE: GoShape = GoShape::Struct(&[("Tests", GoShape::List(&TEST))]);

    #[test]
    fn go_struct_matches_field_names_like_encoding_json() {
        let doc = serde_json::json!({
            "tests": [
                {"inputpath": "a.yaml", "HEALTHSTATUS": {"Status": "Healthy", "message": 5}},
                {"InputPath": "x", "inputpath": "y", "extra": 1},
                {"inputPath": null, "healthStatus": {"status": true}},
            ],
        });
        let (value, unknown) = go_struct(&doc, FILE, GoYaml::Sigs);
        assert_eq!(
            value,
            serde_json::json!({"Tests": [
                {"InputPath": "a.yaml", "HealthStatus": {"status": "Healthy", "message": "5"}},
                {"InputPath": "y"},
                {"HealthStatus": {"status": "true"}},
            ]})
        );
        assert_eq!(unknown, vec!["tests[1].extra"]);
        // go-yaml v3 leaves non-strings alone: encoding/json refuses them later.
        let (value, _) = go_struct(&doc, FILE, GoYaml::V3);
        assert_eq!(value["Tests"][0]["HealthStatus"]["message"], 5);
        assert!(go_fold_eq("tests", "TEſTS") && go_fold_eq("kind", "\u{212A}IND"));
        assert!(!go_fold_eq("tests", "test"));
    }

    #[test]
    fn oversized_input_is_refused() {
        let big = "a".repeat(MAX_YAML_BYTES + 1);
        assert!(matches!(parse_one(&big), Err(YamlError::TooLarge { .. })));
    }

    /// Property tests: the parsers never panic, refuse what is over their limits with an
    /// error, and read back what a YAML emitter wrote.
    mod props {
        use super::*;
        use proptest::prelude::*;

        /// Text in YAML's alphabet: indicators, anchors, tags, directives, blanks, breaks.
        fn yaml_soup() -> impl Strategy<Value = String> {
            let token = prop_oneof![
                Just("a"),
                Just("1"),
                Just("-1.5e3"),
                Just("yes"),
                Just("null"),
                Just("~"),
                Just(":"),
                Just(": "),
                Just("- "),
                Just("-"),
                Just("? "),
                Just(","),
                Just("["),
                Just("]"),
                Just("{"),
                Just("}"),
                Just("&x "),
                Just("*x"),
                Just("&y "),
                Just("*y"),
                Just("<<: "),
                Just("!!str "),
                Just("!!binary "),
                Just("!!int "),
                Just("!!map "),
                Just("!!seq "),
                Just("!t "),
                Just("'"),
                Just("\""),
                Just("\\"),
                Just("|"),
                Just("|-"),
                Just(">"),
                Just("#"),
                Just("---"),
                Just("..."),
                Just("%YAML 1.2\n"),
                Just("%TAG ! tag:x,2024:\n"),
                Just(" "),
                Just("  "),
                Just("\t"),
                Just("\n"),
                Just("\r\n"),
                Just("\u{feff}"),
                Just("é"),
                Just("\0"),
                Just("\u{85}"),
                Just("\u{2028}"),
            ];
            prop::collection::vec(token, 0..48).prop_map(|t| t.concat())
        }

        fn any_text() -> impl Strategy<Value = String> {
            prop_oneof![
                3 => yaml_soup(),
                1 => any::<String>(),
                1 => prop::collection::vec(any::<u8>(), 0..64)
                    .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            ]
        }

        /// Strings a YAML emitter must quote to keep them strings.
        fn tricky_string() -> impl Strategy<Value = String> {
            prop_oneof![
                2 => any::<String>(),
                2 => "[ -~\t\n]{0,12}",
                1 => prop::sample::select(vec![
                    "", " ", "yes", "No", "on", "OFF", "y", "n", "true", "False", "null", "Null",
                    "~", "1", "-1", "+1", "0x1F", "0o17", "017", "1_000", "1e3", "1.", ".5",
                    ".inf", "-.Inf", ".nan", "12:30", "2024-01-01", "a: b", "- x", "#c", "a #c",
                    "&a", "*a", "!t", "|", ">", "'", "\"", "---", "...", "%", "@", "`", "{}",
                    "[]", "? x", "\n", "a\n", "\na", " a", "a ", "\t", "\r", "\u{85}", "\u{feff}",
                    "\u{2028}", "<<", "=", "\\",
                ])
                .prop_map(str::to_string),
            ]
        }

        fn json_value() -> impl Strategy<Value = Value> {
            let leaf = prop_oneof![
                Just(Value::Null),
                any::<bool>().prop_map(Value::Bool),
                any::<i64>().prop_map(Value::from),
                any::<u64>().prop_map(Value::from),
                tricky_string().prop_map(Value::String),
            ];
            leaf.prop_recursive(4, 48, 6, |inner| {
                prop_oneof![
                    prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
                    prop::collection::vec((tricky_string(), inner), 0..6)
                        .prop_map(|kv| Value::Object(kv.into_iter().collect())),
                ]
            })
        }

        /// `width` values per level, each level a list of aliases of the previous one:
        /// `width^(depth + 1)` scalars once expanded.
        fn alias_bomb(width: usize, depth: usize) -> String {
            let items = |item: &str| vec![item; width].join(", ");
            let mut y = format!("l0: &l0 [{}]\n", items("x"));
            for level in 1..=depth {
                let prev = format!("*l{}", level - 1);
                y.push_str(&format!("l{level}: &l{level} [{}]\n", items(&prev)));
            }
            y
        }

        fn scalars(v: &Value) -> usize {
            match v {
                Value::Array(items) => items.iter().map(scalars).sum(),
                Value::Object(map) => map.values().map(scalars).sum(),
                _ => 1,
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]

            /// No text makes any of the readers panic.
            #[test]
            fn yaml_parsers_never_panic(text in any_text()) {
                let _ = parse_one(&text);
                let _ = parse_all(&text);
                let _ = parse_go_first(&text, GoYaml::Sigs);
                let _ = parse_go_first(&text, GoYaml::V3);
            }

            /// A JSON-like value written by the YAML emitter Mooring prints with reads back
            /// as the same value, through every reader.
            #[test]
            fn yaml_emitted_values_read_back(value in json_value()) {
                let text = serde_saphyr::to_string(&value).expect("serializable");
                let one = parse_one(&text);
                prop_assert_eq!(one.as_ref().ok(), Some(&value), "{:?} -> {:?}: {:?}", value, text, one);
                // As `mooring install` and `admin export` join documents.
                let all = parse_all(&format!("---\n{text}---\n{text}")).expect("parses");
                let want: Vec<Value> = if value.is_null() { vec![] } else { vec![value.clone(), value.clone()] };
                prop_assert_eq!(all, want);
                let v3 = parse_go_first(&text, GoYaml::V3);
                prop_assert!(v3.is_ok(), "{:?}: {:?}", text, v3);
                prop_assert_eq!(v3.expect("checked").value, value);
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(64))]

            /// Alias graphs within the budget expand fully, through both readers.
            #[test]
            fn small_alias_graphs_expand_fully(width in 1usize..8, depth in 0usize..6) {
                let text = alias_bomb(width, depth);
                let expanded: usize = (1..=depth + 1).map(|k| width.pow(k as u32)).sum();
                prop_assume!(expanded <= 20_000);
                let value = parse_one(&text).expect("a small alias graph parses");
                prop_assert_eq!(scalars(&value), expanded);
                let go = parse_go_first(&text, GoYaml::Sigs).expect("a small alias graph parses");
                prop_assert_eq!(go.value, value);
            }
        }

        proptest! {
            // Each case parses up to the node budget (about 0.7 s in a debug build).
            #![proptest_config(ProptestConfig::with_cases(3))]

            /// Alias bombs whose expansion is over the node budget are refused with an
            /// error, not expanded.
            #[test]
            fn alias_bombs_are_refused(width in 2usize..12, depth in 0usize..20) {
                let expanded: usize = (1..=depth + 1).map(|k| width.saturating_pow(k as u32)).sum();
                prop_assume!(expanded > 1_000_000);
                let result = parse_one(&alias_bomb(width, depth));
                prop_assert!(matches!(result, Err(YamlError::Parse(_))), "{width}^{depth}: {result:?}");
            }

            /// A long scalar aliased until the copies are over the scalar-bytes budget
            /// (64 MiB) is refused, however many anchors pad the alias-to-anchor ratio.
            #[test]
            fn aliased_long_scalars_are_refused(
                mib in 1usize..5,
                anchors in 0usize..200,
                extra in 0usize..64,
            ) {
                let copies = 64 / mib + 1 + extra;
                let mut text = format!("big: &big {}\n", "x".repeat(mib << 20));
                for i in 0..anchors {
                    text.push_str(&format!("p{i}: &p{i} v\n"));
                }
                text.push_str("list:\n");
                text.push_str(&"- *big\n".repeat(copies));
                prop_assert!(parse_one(&text).is_err(), "{copies} copies of {mib} MiB accepted");
            }
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(8))]

            /// Input over [`MAX_YAML_BYTES`] is refused by size, whatever it holds.
            #[test]
            fn oversized_input_is_refused_by_size(
                line in "[a-z]{1,8}: [a-z0-9]{1,8}\n",
                extra in 1usize..4096,
            ) {
                let size = MAX_YAML_BYTES + extra;
                let mut text = line.repeat(size / line.len() + 1);
                text.truncate(size);
                for result in [
                    parse_one(&text),
                    parse_all(&text).map(Value::from),
                    parse_go_first(&text, GoYaml::Sigs).map(|d| d.value),
                ] {
                    let refused = matches!(
                        result,
                        Err(YamlError::TooLarge { size: s, limit: MAX_YAML_BYTES }) if s == size
                    );
                    prop_assert!(refused);
                }
            }
        }
    }
}
