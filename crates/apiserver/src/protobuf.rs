//! Kubernetes' protobuf wire format (`application/vnd.kubernetes.protobuf`) for built-in
//! kinds, converted to and from the JSON the rest of the server handles.
//!
//! kubectl's generators (`kubectl create deployment|secret|…`, `autoscale`) and client-go
//! with protobuf enabled send and read this format. An object on the wire is the 4-byte
//! magic `k8s\0` followed by a `runtime.Unknown` envelope: `typeMeta {apiVersion, kind}`,
//! `raw` (the kind's message, e.g. `api.apps.v1.Deployment`), `contentEncoding` and
//! `contentType` (both empty). Messages are read and written with `prost-reflect` over
//! Kubernetes' own descriptors ([`crate::proto`]), never with hand-written codecs.
//!
//! Objects are stored as JSON, so this module only translates, with Kubernetes' JSON
//! mapping of the apimachinery types ([`crate::proto::JsonShape`]): `meta.v1.Time` is an
//! RFC 3339 string with seconds (the protobuf nanoseconds are dropped, as the real server
//! drops them) and a zero time is absent; `MicroTime` keeps microseconds; `Duration` is a
//! Go duration string; `IntOrString` a number (type 0) or a string (type 1); `Quantity` a
//! string; `RawExtension`, `FieldsV1` and apiextensions' `JSON` carry raw JSON bytes that
//! become embedded JSON; `bytes` fields are base64 (`Secret.data`); map fields are objects;
//! fields embedded inline in Go (a Volume's source) are flattened into their parent; and
//! `JSONSchemaProps` renames its fields (`$ref`, `x-kubernetes-…`) and has union types.
//! Unset fields are omitted.
//!
//! A watch in protobuf is a stream of frames, each a 4-byte big-endian length followed by
//! a `meta.v1.WatchEvent` message *without* the envelope (Kubernetes' stream serializer is
//! the raw one); the event's `object.raw` holds the object with its envelope.
//!
//! Custom resources and Mooring's own kinds have no protobuf form: a protobuf body for them
//! is a `415`, as Kubernetes answers for custom resources, and a response falls back to
//! JSON when the client accepts it (`406` otherwise).
//!
//! # Where it differs from Kubernetes
//!
//! * Go writes every non-pointer scalar field to protobuf, zero or not, and leaves zeros
//!   out of JSON (`omitempty`); a pointer field is written only when set, and an explicit
//!   zero then matters (`replicas: 0`). The descriptors do not say which fields are
//!   pointers, so zeros are judged by [`crate::proto::keeps_zero`]: required fields keep
//!   them, optional empty strings are dropped (an explicit `storageClassName: ""` sent in
//!   protobuf is lost), optional `false` is kept, optional zero numbers only for the
//!   pointer fields named there.
//! * Discovery, OpenAPI and `Table` answers are JSON only (clients ask for them in JSON).
//! * As in Kubernetes, `fieldValidation` does not apply to protobuf bodies (protobuf has
//!   no duplicate keys, and unknown field numbers are skipped).

use crate::proto::{self, JsonShape};
use base64::Engine as _;
use prost::Message as _;
use prost_reflect::{
    DynamicMessage, FieldDescriptor, Kind, MapKey, MessageDescriptor, ReflectMessage as _,
    Value as PValue,
};
use serde_json::{Map, Value};
use std::collections::HashMap;

/// The media type.
pub const MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The media type of a protobuf watch stream.
pub const WATCH_MEDIA_TYPE: &str = "application/vnd.kubernetes.protobuf;stream=watch";

/// The 4 bytes every Kubernetes protobuf object starts with.
pub const MAGIC: &[u8; 4] = b"k8s\0";

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum ProtobufError {
    #[error("the protobuf body does not start with the Kubernetes magic number \"k8s\\x00\" (got {0:?})")]
    Magic(Vec<u8>),
    #[error("the protobuf envelope (runtime.Unknown) does not decode: {0}")]
    Envelope(String),
    #[error("the protobuf body has contentEncoding {0:?}: only the empty encoding is supported")]
    ContentEncoding(String),
    #[error(
        "the protobuf body names no kind (typeMeta.apiVersion and typeMeta.kind are required)"
    )]
    NoType,
    #[error("no kind {kind:?} is registered for version {api_version:?} in protobuf")]
    UnknownType { api_version: String, kind: String },
    #[error("the protobuf {message} does not decode: {error}")]
    Message { message: String, error: String },
    #[error("{path}: {problem}")]
    Field { path: String, problem: String },
    #[error("the protobuf descriptor of {0} is missing")]
    Descriptor(String),
}

fn field_error(path: &str, problem: impl Into<String>) -> ProtobufError {
    ProtobufError::Field {
        path: if path.is_empty() {
            "(object)".into()
        } else {
            path.into()
        },
        problem: problem.into(),
    }
}

/// An object read from a protobuf body: its type and its JSON form.
#[derive(Debug, Clone, PartialEq)]
pub struct Decoded {
    pub api_version: String,
    pub kind: String,
    /// With `apiVersion` and `kind` set from the envelope.
    pub object: Value,
}

/// The type an envelope names, without decoding the object (to answer 415 for kinds that
/// have no protobuf form before anything else).
pub fn envelope_type(body: &[u8]) -> Result<(String, String, Vec<u8>), ProtobufError> {
    let rest = body
        .strip_prefix(MAGIC.as_slice())
        .ok_or_else(|| ProtobufError::Magic(body.iter().take(4).copied().collect()))?;
    let unknown_desc = unknown_descriptor()?;
    let env = DynamicMessage::decode(unknown_desc, rest)
        .map_err(|e| ProtobufError::Envelope(e.to_string()))?;
    let get_str = |m: &DynamicMessage, name: &str| {
        m.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let encoding = get_str(&env, "contentEncoding");
    if !encoding.is_empty() {
        return Err(ProtobufError::ContentEncoding(encoding));
    }
    let (api_version, kind) = match env.get_field_by_name("typeMeta") {
        Some(tm) => match tm.as_message() {
            Some(tm) => (get_str(tm, "apiVersion"), get_str(tm, "kind")),
            None => (String::new(), String::new()),
        },
        None => (String::new(), String::new()),
    };
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::NoType);
    }
    let raw = env
        .get_field_by_name("raw")
        .and_then(|v| v.as_bytes().map(|b| b.to_vec()))
        .unwrap_or_default();
    Ok((api_version, kind, raw))
}

/// The message of a type on the wire: a kind of an API group, or `Status`, which every
/// group answers with (`apiVersion: v1`, message of meta.v1).
fn message_for_type(api_version: &str, kind: &str) -> Option<MessageDescriptor> {
    proto::message_for(api_version, kind).or_else(|| match kind {
        "Status" => proto::meta_message("Status"),
        _ => None,
    })
}

fn unknown_descriptor() -> Result<MessageDescriptor, ProtobufError> {
    proto::pool()
        .and_then(|p| p.get_message_by_name("apimachinery.pkg.runtime.Unknown"))
        .ok_or_else(|| ProtobufError::Descriptor("runtime.Unknown".into()))
}

/// Decode a protobuf request body (magic, envelope, object) into JSON.
pub fn decode(body: &[u8]) -> Result<Decoded, ProtobufError> {
    let (api_version, kind, raw) = envelope_type(body)?;
    let desc = message_for_type(&api_version, &kind).ok_or_else(|| ProtobufError::UnknownType {
        api_version: api_version.clone(),
        kind: kind.clone(),
    })?;
    let msg = DynamicMessage::decode(desc.clone(), raw.as_slice()).map_err(|e| {
        ProtobufError::Message {
            message: desc.full_name().to_string(),
            error: e.to_string(),
        }
    })?;
    let mut object = message_to_json(&msg, "")?;
    if let Some(o) = object.as_object_mut() {
        // apiVersion and kind first, as Kubernetes writes them.
        let mut with_type = Map::new();
        with_type.insert("apiVersion".into(), Value::String(api_version.clone()));
        with_type.insert("kind".into(), Value::String(kind.clone()));
        with_type.append(o);
        object = Value::Object(with_type);
    }
    Ok(Decoded {
        api_version,
        kind,
        object,
    })
}

/// Decode a protobuf `DeleteOptions` body. client-go sends it with the envelope naming
/// the group version of the resource being deleted (`apps/v1`, `DeleteOptions`); the
/// message is always `meta.v1.DeleteOptions`.
pub fn decode_delete_options(body: &[u8]) -> Result<Value, ProtobufError> {
    let (api_version, kind, raw) = envelope_type(body)?;
    if kind != "DeleteOptions" {
        return Err(ProtobufError::UnknownType { api_version, kind });
    }
    let desc = proto::meta_message("DeleteOptions")
        .ok_or_else(|| ProtobufError::Descriptor("meta.v1.DeleteOptions".into()))?;
    let msg = DynamicMessage::decode(desc, raw.as_slice()).map_err(|e| ProtobufError::Message {
        message: "DeleteOptions".into(),
        error: e.to_string(),
    })?;
    message_to_json(&msg, "")
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// A decoded message as Kubernetes JSON, by its [`JsonShape`].
fn message_to_json(msg: &DynamicMessage, path: &str) -> Result<Value, ProtobufError> {
    let desc = msg.descriptor();
    let str_field = |name: &str| {
        msg.get_field_by_name(name)
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    };
    let i64_field = |name: &str| msg.get_field_by_name(name).and_then(|v| v.as_i64());
    let has = |name: &str| msg.has_field_by_name(name);
    Ok(match proto::json_shape(&desc) {
        JsonShape::Object => {
            let mut out = Map::new();
            object_fields(msg, path, &mut out)?;
            Value::Object(out)
        }
        JsonShape::Time => match i64_field("seconds") {
            Some(s) if has("seconds") => Value::String(format_time(s, None, path)?),
            _ => Value::Null,
        },
        JsonShape::MicroTime => match i64_field("seconds") {
            Some(s) if has("seconds") || has("nanos") => {
                let nanos = msg
                    .get_field_by_name("nanos")
                    .and_then(|v| v.as_i32())
                    .unwrap_or(0);
                Value::String(format_time(s, Some(nanos), path)?)
            }
            _ => Value::Null,
        },
        JsonShape::Duration => Value::String(go_duration(i64_field("duration").unwrap_or(0))),
        JsonShape::IntOrString => {
            if i64_field("type") == Some(1) {
                Value::String(str_field("strVal"))
            } else {
                let v = msg
                    .get_field_by_name("intVal")
                    .and_then(|v| v.as_i32())
                    .unwrap_or(0);
                Value::from(v)
            }
        }
        JsonShape::Quantity => Value::String(str_field("string")),
        JsonShape::Embedded => {
            let raw = desc
                .fields()
                .find(|f| f.kind() == Kind::Bytes)
                .and_then(|f| msg.get_field(&f).as_bytes().cloned())
                .unwrap_or_default();
            if raw.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&raw).map_err(|e| {
                    field_error(path, format!("the embedded object is not JSON: {e}"))
                })?
            }
        }
        JsonShape::StringList => match msg.get_field_by_name("items") {
            Some(v) => list_of_strings(&v),
            None => Value::Array(vec![]),
        },
        JsonShape::SchemaOrArray => {
            let schemas = msg
                .get_field_by_name("jSONSchemas")
                .and_then(|v| v.as_list().map(<[PValue]>::to_vec))
                .unwrap_or_default();
            if !schemas.is_empty() {
                let mut out = Vec::new();
                for (i, s) in schemas.iter().enumerate() {
                    if let Some(m) = s.as_message() {
                        out.push(message_to_json(m, &format!("{path}[{i}]"))?);
                    }
                }
                Value::Array(out)
            } else {
                schema_or_null(msg, path)?
            }
        }
        JsonShape::SchemaOrBool => {
            if has("schema") {
                schema_or_null(msg, path)?
            } else {
                Value::Bool(
                    msg.get_field_by_name("allows")
                        .and_then(|v| v.as_bool())
                        .unwrap_or(false),
                )
            }
        }
        JsonShape::SchemaOrStringArray => {
            let prop = msg
                .get_field_by_name("property")
                .map(|v| list_of_strings(&v))
                .unwrap_or(Value::Array(vec![]));
            if prop.as_array().is_some_and(|a| !a.is_empty()) {
                prop
            } else {
                schema_or_null(msg, path)?
            }
        }
    })
}

fn schema_or_null(msg: &DynamicMessage, path: &str) -> Result<Value, ProtobufError> {
    match msg.get_field_by_name("schema") {
        Some(v) if msg.has_field_by_name("schema") => match v.as_message() {
            Some(m) => message_to_json(m, path),
            None => Ok(Value::Null),
        },
        _ => Ok(Value::Null),
    }
}

fn list_of_strings(v: &PValue) -> Value {
    Value::Array(
        v.as_list()
            .unwrap_or_default()
            .iter()
            .filter_map(|s| s.as_str().map(|s| Value::String(s.to_string())))
            .collect(),
    )
}

/// The set fields of an object-shaped message into `out` (inline messages flattened).
fn object_fields(
    msg: &DynamicMessage,
    path: &str,
    out: &mut Map<String, Value>,
) -> Result<(), ProtobufError> {
    for (field, value) in msg.fields() {
        if proto::is_inline(&field) {
            if let Some(inner) = value.as_message() {
                object_fields(inner, path, out)?;
            }
            continue;
        }
        if is_zero(value) && !proto::keeps_zero(&field) {
            continue;
        }
        let key = proto::json_key(&field).into_owned();
        let fpath = join(path, &key);
        let v = field_to_json(&field, value, &fpath)?;
        if !v.is_null() {
            out.insert(key, v);
        }
    }
    Ok(())
}

/// A scalar at its Go zero value, which Go writes to protobuf for every non-pointer field.
fn is_zero(value: &PValue) -> bool {
    match value {
        PValue::Bool(b) => !b,
        PValue::I32(n) => *n == 0,
        PValue::I64(n) => *n == 0,
        PValue::U32(n) => *n == 0,
        PValue::U64(n) => *n == 0,
        PValue::F32(f) => *f == 0.0,
        PValue::F64(f) => *f == 0.0,
        PValue::String(s) => s.is_empty(),
        PValue::Bytes(b) => b.is_empty(),
        PValue::EnumNumber(n) => *n == 0,
        PValue::Message(_) | PValue::List(_) | PValue::Map(_) => false,
    }
}

fn field_to_json(
    field: &FieldDescriptor,
    value: &PValue,
    path: &str,
) -> Result<Value, ProtobufError> {
    match value {
        PValue::List(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(scalar_to_json(item, &format!("{path}[{i}]"))?);
            }
            Ok(Value::Array(out))
        }
        PValue::Map(entries) => {
            let mut keys: Vec<&MapKey> = entries.keys().collect();
            keys.sort();
            let mut out = Map::new();
            for k in keys {
                let name = match k {
                    MapKey::String(s) => s.clone(),
                    MapKey::Bool(b) => b.to_string(),
                    MapKey::I32(n) => n.to_string(),
                    MapKey::I64(n) => n.to_string(),
                    MapKey::U32(n) => n.to_string(),
                    MapKey::U64(n) => n.to_string(),
                };
                let v = &entries[k];
                let fpath = join(path, &name);
                out.insert(name, scalar_to_json(v, &fpath)?);
            }
            Ok(Value::Object(out))
        }
        other => {
            let _ = field;
            scalar_to_json(other, path)
        }
    }
}

fn scalar_to_json(value: &PValue, path: &str) -> Result<Value, ProtobufError> {
    Ok(match value {
        PValue::Bool(b) => Value::Bool(*b),
        PValue::I32(n) => Value::from(*n),
        PValue::I64(n) => Value::from(*n),
        PValue::U32(n) => Value::from(*n),
        PValue::U64(n) => Value::from(*n),
        PValue::F32(f) => number(f64::from(*f), path)?,
        PValue::F64(f) => number(*f, path)?,
        PValue::String(s) => Value::String(s.clone()),
        PValue::Bytes(b) => Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
        PValue::EnumNumber(n) => Value::from(*n),
        PValue::Message(m) => message_to_json(m, path)?,
        PValue::List(_) | PValue::Map(_) => {
            return Err(field_error(
                path,
                "a nested list or map is not a Kubernetes type",
            ))
        }
    })
}

fn number(f: f64, path: &str) -> Result<Value, ProtobufError> {
    serde_json::Number::from_f64(f)
        .map(Value::Number)
        .ok_or_else(|| field_error(path, format!("{f} is not a JSON number")))
}

/// RFC 3339 in UTC, with seconds (`Time`) or microseconds (`MicroTime`), as Go's
/// `time.RFC3339` and `RFC3339Micro` layouts print them.
fn format_time(
    seconds: i64,
    micro_nanos: Option<i32>,
    path: &str,
) -> Result<String, ProtobufError> {
    let ts = jiff::Timestamp::from_second(seconds)
        .map_err(|e| field_error(path, format!("time {seconds}s is out of range: {e}")))?;
    let dt = ts.to_zoned(jiff::tz::TimeZone::UTC).datetime();
    Ok(match micro_nanos {
        None => format!("{}Z", dt.strftime("%Y-%m-%dT%H:%M:%S")),
        Some(n) => {
            if !(0..1_000_000_000).contains(&n) {
                return Err(field_error(path, format!("nanos {n} is out of range")));
            }
            format!("{}.{:06}Z", dt.strftime("%Y-%m-%dT%H:%M:%S"), n / 1000)
        }
    })
}

/// A duration in nanoseconds as Go's `time.Duration.String()` prints it (`1h2m3.5s`,
/// `150ms`, `0s`).
pub fn go_duration(nanos: i64) -> String {
    if nanos == 0 {
        return "0s".into();
    }
    let neg = nanos < 0;
    let u = nanos.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if u < 1_000_000_000 {
        // Below a second: the largest unit that keeps an integer part.
        let (unit, div) = if u < 1_000 {
            ("ns", 1u64)
        } else if u < 1_000_000 {
            ("µs", 1_000)
        } else {
            ("ms", 1_000_000)
        };
        out.push_str(&fraction(u, div));
        out.push_str(unit);
        return out;
    }
    let hours = u / 3_600_000_000_000;
    let rem = u % 3_600_000_000_000;
    let minutes = rem / 60_000_000_000;
    let secs = rem % 60_000_000_000;
    if hours > 0 {
        out.push_str(&format!("{hours}h"));
    }
    if hours > 0 || minutes > 0 {
        out.push_str(&format!("{minutes}m"));
    }
    out.push_str(&fraction(secs, 1_000_000_000));
    out.push('s');
    out
}

/// `value / div` with the fractional digits Go prints (trailing zeros dropped).
fn fraction(value: u64, div: u64) -> String {
    let whole = value / div;
    let frac = value % div;
    if frac == 0 {
        return whole.to_string();
    }
    let width = div.to_string().len() - 1;
    let digits = format!("{frac:0width$}");
    format!("{whole}.{}", digits.trim_end_matches('0'))
}

/// Parse a Go duration string (`1h2m3.5s`, `-1.5h`, `300ms`, `0`) into nanoseconds.
pub fn parse_go_duration(text: &str) -> Option<i64> {
    let (neg, mut s) = match text.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    if s == "0" {
        return Some(0);
    }
    if s.is_empty() {
        return None;
    }
    let mut total: f64 = 0.0;
    while !s.is_empty() {
        let end = s
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|e| *e > 0)?;
        let num: f64 = s[..end].parse().ok()?;
        s = &s[end..];
        let unit_end = s
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(s.len());
        let scale = match &s[..unit_end] {
            "ns" => 1.0,
            "us" | "µs" | "μs" => 1e3,
            "ms" => 1e6,
            "s" => 1e9,
            "m" => 60e9,
            "h" => 3600e9,
            _ => return None,
        };
        total += num * scale;
        s = &s[unit_end..];
    }
    if total > i64::MAX as f64 {
        return None;
    }
    let n = total.round() as i64;
    Some(if neg { -n } else { n })
}

/// A JSON value could not be given a protobuf form (a stored object whose field has a
/// type its message does not allow): the caller answers in JSON instead.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("{path}: cannot be encoded as protobuf: {problem}")]
pub struct EncodeError {
    pub path: String,
    pub problem: String,
}

fn encode_error(path: &str, problem: impl Into<String>) -> EncodeError {
    EncodeError {
        path: path.to_string(),
        problem: problem.into(),
    }
}

/// Encode the JSON form of an object as the message `desc` (without envelope).
pub fn json_to_message(desc: &MessageDescriptor, v: &Value) -> Result<DynamicMessage, EncodeError> {
    value_to_message(desc, v, "")
}

fn value_to_message(
    desc: &MessageDescriptor,
    v: &Value,
    path: &str,
) -> Result<DynamicMessage, EncodeError> {
    let mut msg = DynamicMessage::new(desc.clone());
    let set = |msg: &mut DynamicMessage, name: &str, value: PValue| -> Result<(), EncodeError> {
        msg.try_set_field_by_name(name, value)
            .map_err(|e| encode_error(path, e.to_string()))
    };
    match proto::json_shape(desc) {
        JsonShape::Object => {
            let o = v
                .as_object()
                .ok_or_else(|| encode_error(path, "an object was expected"))?;
            object_to_message(&mut msg, o, path)?;
        }
        JsonShape::Time | JsonShape::MicroTime => {
            let s = v
                .as_str()
                .ok_or_else(|| encode_error(path, "a time string was expected"))?;
            let ts: jiff::Timestamp = s
                .parse()
                .map_err(|e| encode_error(path, format!("{s:?} is not an RFC 3339 time: {e}")))?;
            set(&mut msg, "seconds", PValue::I64(ts.as_second()))?;
            if proto::json_shape(desc) == JsonShape::MicroTime {
                set(&mut msg, "nanos", PValue::I32(ts.subsec_nanosecond()))?;
            }
        }
        JsonShape::Duration => {
            let s = v
                .as_str()
                .ok_or_else(|| encode_error(path, "a duration string was expected"))?;
            let n = parse_go_duration(s)
                .ok_or_else(|| encode_error(path, format!("{s:?} is not a duration")))?;
            set(&mut msg, "duration", PValue::I64(n))?;
        }
        JsonShape::IntOrString => match v {
            Value::Number(n) => {
                let i = n
                    .as_i64()
                    .and_then(|i| i32::try_from(i).ok())
                    .ok_or_else(|| encode_error(path, format!("{n} is not a 32-bit integer")))?;
                set(&mut msg, "type", PValue::I64(0))?;
                set(&mut msg, "intVal", PValue::I32(i))?;
            }
            Value::String(s) => {
                set(&mut msg, "type", PValue::I64(1))?;
                set(&mut msg, "strVal", PValue::String(s.clone()))?;
            }
            _ => return Err(encode_error(path, "a number or a string was expected")),
        },
        JsonShape::Quantity => {
            let s = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                _ => return Err(encode_error(path, "a quantity string was expected")),
            };
            set(&mut msg, "string", PValue::String(s))?;
        }
        JsonShape::Embedded => {
            let field = desc
                .fields()
                .find(|f| f.kind() == Kind::Bytes)
                .ok_or_else(|| encode_error(path, "no bytes field"))?;
            let raw = serde_json::to_vec(v).map_err(|e| encode_error(path, e.to_string()))?;
            msg.set_field(&field, PValue::Bytes(raw.into()));
        }
        JsonShape::StringList => {
            set(&mut msg, "items", strings(v, path)?)?;
        }
        JsonShape::SchemaOrArray => {
            let schema = schema_desc(desc, path)?;
            match v {
                Value::Array(items) => {
                    let mut list = Vec::new();
                    for (i, item) in items.iter().enumerate() {
                        list.push(PValue::Message(value_to_message(
                            &schema,
                            item,
                            &format!("{path}[{i}]"),
                        )?));
                    }
                    set(&mut msg, "jSONSchemas", PValue::List(list))?;
                }
                other => {
                    let m = value_to_message(&schema, other, path)?;
                    set(&mut msg, "schema", PValue::Message(m))?;
                }
            }
        }
        JsonShape::SchemaOrBool => match v {
            Value::Bool(b) => set(&mut msg, "allows", PValue::Bool(*b))?,
            other => {
                let schema = schema_desc(desc, path)?;
                set(&mut msg, "allows", PValue::Bool(true))?;
                let m = value_to_message(&schema, other, path)?;
                set(&mut msg, "schema", PValue::Message(m))?;
            }
        },
        JsonShape::SchemaOrStringArray => match v {
            Value::Array(_) => set(&mut msg, "property", strings(v, path)?)?,
            other => {
                let schema = schema_desc(desc, path)?;
                let m = value_to_message(&schema, other, path)?;
                set(&mut msg, "schema", PValue::Message(m))?;
            }
        },
    }
    Ok(msg)
}

fn schema_desc(union: &MessageDescriptor, path: &str) -> Result<MessageDescriptor, EncodeError> {
    union
        .get_field_by_name("schema")
        .and_then(|f| match f.kind() {
            Kind::Message(m) => Some(m),
            _ => None,
        })
        .ok_or_else(|| encode_error(path, "no schema field"))
}

fn strings(v: &Value, path: &str) -> Result<PValue, EncodeError> {
    let items = v
        .as_array()
        .ok_or_else(|| encode_error(path, "an array of strings was expected"))?;
    items
        .iter()
        .map(|s| {
            s.as_str()
                .map(|s| PValue::String(s.to_string()))
                .ok_or_else(|| encode_error(path, "an array of strings was expected"))
        })
        .collect::<Result<Vec<_>, _>>()
        .map(PValue::List)
}

fn object_to_message(
    msg: &mut DynamicMessage,
    o: &Map<String, Value>,
    path: &str,
) -> Result<(), EncodeError> {
    let desc = msg.descriptor();
    for field in desc.fields() {
        if proto::is_inline(&field) {
            if let Kind::Message(inner) = field.kind() {
                let mut sub = DynamicMessage::new(inner);
                object_to_message(&mut sub, o, path)?;
                if sub.fields().next().is_some() {
                    msg.set_field(&field, PValue::Message(sub));
                }
            }
            continue;
        }
        let key = proto::json_key(&field);
        let Some(v) = o.get(key.as_ref()) else {
            continue;
        };
        if v.is_null() {
            continue;
        }
        let fpath = join(path, &key);
        let pv = json_to_field(&field, v, &fpath)?;
        msg.set_field(&field, pv);
    }
    Ok(())
}

fn json_to_field(field: &FieldDescriptor, v: &Value, path: &str) -> Result<PValue, EncodeError> {
    if field.is_map() {
        let Kind::Message(entry) = field.kind() else {
            return Err(encode_error(path, "a map without an entry type"));
        };
        let vf = entry.map_entry_value_field();
        let o = v
            .as_object()
            .ok_or_else(|| encode_error(path, "an object was expected"))?;
        let mut map = HashMap::new();
        for (k, item) in o {
            if item.is_null() {
                continue;
            }
            map.insert(
                MapKey::String(k.clone()),
                json_to_scalar(&vf.kind(), item, &join(path, k))?,
            );
        }
        return Ok(PValue::Map(map));
    }
    if field.is_list() {
        let items = v
            .as_array()
            .ok_or_else(|| encode_error(path, "an array was expected"))?;
        let mut list = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            list.push(json_to_scalar(
                &field.kind(),
                item,
                &format!("{path}[{i}]"),
            )?);
        }
        return Ok(PValue::List(list));
    }
    json_to_scalar(&field.kind(), v, path)
}

fn json_to_scalar(kind: &Kind, v: &Value, path: &str) -> Result<PValue, EncodeError> {
    let int = || -> Result<i64, EncodeError> {
        match v {
            Value::Number(n) => n
                .as_i64()
                .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
                .ok_or_else(|| encode_error(path, format!("{n} is not an integer"))),
            _ => Err(encode_error(path, "a number was expected")),
        }
    };
    Ok(match kind {
        Kind::Bool => PValue::Bool(
            v.as_bool()
                .ok_or_else(|| encode_error(path, "a boolean was expected"))?,
        ),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => PValue::I32(
            i32::try_from(int()?).map_err(|_| encode_error(path, "out of 32-bit range"))?,
        ),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => PValue::I64(int()?),
        Kind::Uint32 | Kind::Fixed32 => PValue::U32(
            u32::try_from(int()?).map_err(|_| encode_error(path, "out of 32-bit range"))?,
        ),
        Kind::Uint64 | Kind::Fixed64 => {
            PValue::U64(u64::try_from(int()?).map_err(|_| encode_error(path, "negative"))?)
        }
        Kind::Double => PValue::F64(
            v.as_f64()
                .ok_or_else(|| encode_error(path, "a number was expected"))?,
        ),
        Kind::Float => PValue::F32(
            v.as_f64()
                .ok_or_else(|| encode_error(path, "a number was expected"))? as f32,
        ),
        Kind::String => PValue::String(
            v.as_str()
                .ok_or_else(|| encode_error(path, "a string was expected"))?
                .to_string(),
        ),
        Kind::Bytes => {
            let s = v
                .as_str()
                .ok_or_else(|| encode_error(path, "a base64 string was expected"))?;
            PValue::Bytes(
                base64::engine::general_purpose::STANDARD
                    .decode(s)
                    .map_err(|e| encode_error(path, format!("not base64: {e}")))?
                    .into(),
            )
        }
        Kind::Enum(_) => PValue::EnumNumber(
            i32::try_from(int()?).map_err(|_| encode_error(path, "out of range"))?,
        ),
        Kind::Message(m) => PValue::Message(value_to_message(m, v, path)?),
    })
}

/// Wrap an encoded message in the magic and the `runtime.Unknown` envelope.
pub fn envelope(api_version: &str, kind: &str, raw: Vec<u8>) -> Result<Vec<u8>, EncodeError> {
    let desc = unknown_descriptor().map_err(|e| encode_error("", e.to_string()))?;
    let tm_desc = desc
        .get_field_by_name("typeMeta")
        .and_then(|f| match f.kind() {
            Kind::Message(m) => Some(m),
            _ => None,
        })
        .ok_or_else(|| encode_error("", "runtime.Unknown has no typeMeta"))?;
    let mut tm = DynamicMessage::new(tm_desc);
    tm.set_field_by_name("apiVersion", PValue::String(api_version.into()));
    tm.set_field_by_name("kind", PValue::String(kind.into()));
    let mut env = DynamicMessage::new(desc);
    env.set_field_by_name("typeMeta", PValue::Message(tm));
    env.set_field_by_name("raw", PValue::Bytes(raw.into()));
    env.set_field_by_name("contentEncoding", PValue::String(String::new()));
    env.set_field_by_name("contentType", PValue::String(String::new()));
    let mut out = MAGIC.to_vec();
    out.extend_from_slice(&env.encode_to_vec());
    Ok(out)
}

/// Encode an object (with `apiVersion` and `kind`) as a protobuf body, or `None` when its
/// kind has no protobuf form.
pub fn encode_object(v: &Value) -> Option<Result<Vec<u8>, EncodeError>> {
    let api_version = v.get("apiVersion")?.as_str()?;
    let kind = v.get("kind")?.as_str()?;
    let desc = message_for_type(api_version, kind)?;
    Some(json_to_message(&desc, v).and_then(|m| envelope(api_version, kind, m.encode_to_vec())))
}

/// One frame of a protobuf watch stream: length, then the raw `WatchEvent` whose object
/// is `object` in its envelope (see the module docs). `None` when the object has no
/// protobuf form.
pub fn watch_frame(event_type: &str, object: &Value) -> Option<Result<Vec<u8>, EncodeError>> {
    let inner = match encode_object(object)? {
        Ok(b) => b,
        Err(e) => return Some(Err(e)),
    };
    let desc = proto::meta_message("WatchEvent")?;
    let raw_desc = proto::pool()?.get_message_by_name("apimachinery.pkg.runtime.RawExtension")?;
    let mut raw = DynamicMessage::new(raw_desc);
    raw.set_field_by_name("raw", PValue::Bytes(inner.into()));
    let mut ev = DynamicMessage::new(desc);
    ev.set_field_by_name("type", PValue::String(event_type.into()));
    ev.set_field_by_name("object", PValue::Message(raw));
    let body = ev.encode_to_vec();
    let len = match u32::try_from(body.len()) {
        Ok(l) => l,
        Err(_) => return Some(Err(encode_error("", "a watch event over 4 GiB"))),
    };
    let mut out = len.to_be_bytes().to_vec();
    out.extend_from_slice(&body);
    Some(Ok(out))
}

/// Read one frame's `WatchEvent` (without its length prefix): the event type and the
/// object, as clients read a protobuf watch.
pub fn decode_watch_event(frame: &[u8]) -> Result<(String, Value), ProtobufError> {
    let desc = proto::meta_message("WatchEvent")
        .ok_or_else(|| ProtobufError::Descriptor("meta.v1.WatchEvent".into()))?;
    let ev = DynamicMessage::decode(desc, frame).map_err(|e| ProtobufError::Message {
        message: "WatchEvent".into(),
        error: e.to_string(),
    })?;
    let kind = ev
        .get_field_by_name("type")
        .and_then(|v| v.as_str().map(str::to_string))
        .unwrap_or_default();
    let raw = ev
        .get_field_by_name("object")
        .and_then(|o| {
            o.as_message()
                .and_then(|m| m.get_field_by_name("raw"))
                .and_then(|r| r.as_bytes().map(|b| b.to_vec()))
        })
        .unwrap_or_default();
    Ok((kind, decode(&raw)?.object))
}

/// Whether a kind can be sent and answered in protobuf.
pub fn supports(api_version: &str, kind: &str) -> bool {
    proto::message_for(api_version, kind).is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn roundtrip(v: &Value) -> Value {
        let body = encode_object(v)
            .expect("has a protobuf form")
            .expect("encodes");
        assert_eq!(&body[..4], MAGIC);
        decode(&body).expect("decodes").object
    }

    #[test]
    fn a_deployment_survives_the_round_trip_with_kubernetes_json() {
        let d = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": "web", "namespace": "demo", "labels": {"app": "web"},
                         "creationTimestamp": "2026-01-02T03:04:05Z",
                         "managedFields": [{"manager": "kubectl", "operation": "Update",
                             "fieldsType": "FieldsV1", "fieldsV1": {"f:spec": {"f:replicas": {}}},
                             "time": "2026-01-02T03:04:05Z"}]},
            "spec": {
                "replicas": 2,
                "selector": {"matchLabels": {"app": "web"}},
                "progressDeadlineSeconds": 600,
                "strategy": {"type": "RollingUpdate",
                             "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": 1}},
                "template": {
                    "metadata": {"labels": {"app": "web"}},
                    "spec": {
                        "containers": [{"name": "web", "image": "nginx",
                            "ports": [{"containerPort": 80, "protocol": "TCP"}],
                            "resources": {"limits": {"cpu": "500m", "memory": "1Gi"}},
                            "readinessProbe": {"httpGet": {"path": "/", "port": "http"},
                                               "periodSeconds": 5}}],
                        "volumes": [{"name": "cfg", "configMap": {"name": "cfg", "defaultMode": 420}}],
                    }
                }
            }
        });
        assert_eq!(roundtrip(&d), d);
    }

    #[test]
    fn special_types_map_to_their_json_forms() {
        let secret = json!({"apiVersion": "v1", "kind": "Secret",
            "metadata": {"name": "s"}, "type": "Opaque",
            "data": {"a": "AAEC/w==", "b": ""}});
        assert_eq!(roundtrip(&secret), secret);
        let ev = json!({"apiVersion": "events.k8s.io/v1", "kind": "Event",
            "metadata": {"name": "e"}, "eventTime": "2026-01-02T03:04:05.123456Z",
            "reportingController": "x", "reportingInstance": "y", "action": "A", "reason": "R"});
        assert_eq!(roundtrip(&ev), ev);
        let hpa = json!({"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": {"name": "h"},
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"},
                     "minReplicas": 2, "maxReplicas": 5,
                     "metrics": [{"type": "Resource", "resource": {"name": "cpu",
                        "target": {"type": "Utilization", "averageUtilization": 80}}}]}});
        assert_eq!(roundtrip(&hpa), hpa);
        let cj = json!({"apiVersion": "batch/v1", "kind": "CronJob", "metadata": {"name": "c"},
            "spec": {"schedule": "0 3 * * *", "timeZone": "Europe/Paris", "suspend": false,
                     "successfulJobsHistoryLimit": 0,
                     "jobTemplate": {"spec": {"backoffLimit": 0, "template": {"spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "c", "image": "busybox"}]}}}}}});
        assert_eq!(roundtrip(&cj), cj);
        let pdb = json!({"apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
            "metadata": {"name": "p"}, "spec": {"minAvailable": "50%"}});
        assert_eq!(roundtrip(&pdb), pdb);
        let crd = json!({"apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "ws.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "ws", "kind": "W"},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object",
                        "x-kubernetes-preserve-unknown-fields": true,
                        "properties": {"spec": {"type": "object",
                            "additionalProperties": {"type": "string"},
                            "x-kubernetes-list-map-keys": ["a"],
                            "default": {"a": [1, "x", null]}},
                            "tags": {"type": "array", "items": {"type": "string"}},
                            "any": {"x-kubernetes-int-or-string": true, "$ref": "#/x"},
                            "closed": {"type": "object", "additionalProperties": false}}}}}]}});
        assert_eq!(roundtrip(&crd), crd);
    }

    #[test]
    fn go_durations() {
        for (n, s) in [
            (0, "0s"),
            (1, "1ns"),
            (1_500, "1.5µs"),
            (150_000_000, "150ms"),
            (1_000_000_000, "1s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-2_000_000_000, "-2s"),
        ] {
            assert_eq!(go_duration(n), s);
            assert_eq!(parse_go_duration(s), Some(n), "{s}");
        }
        assert_eq!(parse_go_duration("1.5h"), Some(5_400_000_000_000));
        for bad in ["", "1", "1x", "h", "1e9s"] {
            assert_eq!(parse_go_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn hostile_bodies_are_errors_not_panics() {
        let cm = json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c"},
                        "data": {"k": "v"}});
        let good = encode_object(&cm).expect("form").expect("encodes");
        assert!(matches!(decode(b"{\"a\":1}"), Err(ProtobufError::Magic(_))));
        assert!(matches!(decode(b"k8s"), Err(ProtobufError::Magic(_))));
        for cut in 5..good.len() {
            // Truncated anywhere: an error (or, where the cut falls between fields, less data).
            let _ = decode(&good[..cut]);
        }
        assert!(matches!(decode(b"k8s\0"), Err(ProtobufError::NoType)));
        // A length prefix larger than the body.
        assert!(matches!(
            decode(b"k8s\0\x0a\xff\x01"),
            Err(ProtobufError::Envelope(_))
        ));
        let unknown = envelope("example.com/v1", "Widget", vec![]).expect("envelope");
        assert!(matches!(
            decode(&unknown),
            Err(ProtobufError::UnknownType { .. })
        ));
        // Invalid UTF-8 in a string field (ConfigMap.data value).
        let mut raw = Vec::new();
        // field 2 (data), map entry: key "k" (field 1), value 0xff (field 2)
        raw.extend_from_slice(&[0x12, 0x06, 0x0a, 0x01, b'k', 0x12, 0x01, 0xff]);
        let body = envelope("v1", "ConfigMap", raw).expect("envelope");
        assert!(matches!(decode(&body), Err(ProtobufError::Message { .. })));
        // Wrong wire type: metadata (field 1) as a varint.
        let body = envelope("v1", "ConfigMap", vec![0x08, 0x01]).expect("envelope");
        assert!(matches!(decode(&body), Err(ProtobufError::Message { .. })));
        // Deeply nested JSONSchemaProps: bounded by the decoder's recursion limit.
        let mut nested = Vec::new();
        for _ in 0..2000 {
            // JSONSchemaProps.not (field 28) holding the previous level.
            let mut next = vec![0xe2, 0x01];
            prost::encoding::encode_varint(nested.len() as u64, &mut next);
            next.extend_from_slice(&nested);
            nested = next;
        }
        let body =
            envelope("apiextensions.k8s.io/v1", "JSONSchemaProps", nested).expect("envelope");
        assert!(decode(&body).is_err());
    }
}
