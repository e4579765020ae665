//! The Lua sandbox that runs custom health checks (`health.lua`).
//!
//! One fresh LuaJIT state per evaluation, as Argo CD creates one gopher-lua state per call:
//! no state leaks between objects and a script cannot poison the next run. The state is
//! built in mlua's safe mode (no `debug`, no `ffi`, no C modules) and then trimmed further
//! (see the module manual in `health/mod.rs` for the list of what scripts can use).
//!
//! Limits, all enforced here rather than trusted to the script:
//! - **time**: LuaJIT does not call instruction hooks from JIT-compiled traces, so the JIT
//!   is switched off for health scripts (they are short; the interpreter is plenty) and a
//!   count hook checks a wall-clock deadline every `instruction_interval` instructions.
//!   `pcall`/`xpcall` are wrapped so a script cannot swallow the time-limit error, and
//!   `coroutine` is removed (a resumed coroutine would catch it too).
//! - **memory**: mlua's allocator limit on the state; an allocation over the limit raises
//!   Lua's "not enough memory" error.

use super::HealthError;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Value as LuaValue, VmState};
use mooring_core::app::{HealthStatus, HealthStatusCode};
use serde_json::Value;
use std::cell::Cell;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Limits applied to every health script run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LuaLimits {
    /// Wall-clock budget for one evaluation. Argo CD uses 1 s.
    pub timeout: Duration,
    /// Bytes the Lua state may allocate (object tables included).
    pub memory_bytes: usize,
    /// How often (in VM instructions) the deadline is checked.
    pub instruction_interval: u32,
}

impl Default for LuaLimits {
    fn default() -> Self {
        LuaLimits {
            timeout: Duration::from_secs(1),
            memory_bytes: 64 * 1024 * 1024,
            instruction_interval: 1_000,
        }
    }
}

/// Deepest object nesting converted into Lua tables; deeper input is refused.
const MAX_OBJECT_DEPTH: usize = 256;

/// Runs before the script, with the hook not yet armed. Trims the globals to the sandbox
/// and wraps the error-catching functions so the time limit cannot be swallowed.
const PRELUDE: &str = r#"
jit.off()
jit.flush()
jit = nil
coroutine = nil
dofile, loadfile, load, loadstring = nil, nil, nil, nil
collectgarbage = nil
string.dump = nil
local safe_os = { time = os.time, date = os.date, clock = os.clock, difftime = os.difftime }
os = safe_os
if table.getn == nil then
  table.getn = function(t) return #t end
end
local modules = { os = safe_os, string = string, table = table, math = math }
require = function(name)
  local m = modules[name]
  if m == nil then
    error("module '" .. tostring(name) .. "' is not available to health scripts", 2)
  end
  return m
end
local raw_pcall, raw_xpcall, raw_error, hit = pcall, xpcall, error, __mooring_limit_hit
__mooring_limit_hit = nil
local function pass(ok, ...)
  if not ok and hit() then raw_error((...), 0) end
  return ok, ...
end
pcall = function(f, ...) return pass(raw_pcall(f, ...)) end
xpcall = function(f, h, ...) return pass(raw_xpcall(f, h, ...)) end
"#;

/// Run `script` against `obj` (exposed as the global `obj`) and return the health it
/// reports. Errors name the script as `<inline>`; use [`super::Script::run`] to get the
/// script's path in messages.
pub fn run_lua(script: &str, obj: &Value, limits: &LuaLimits) -> Result<HealthStatus, HealthError> {
    run_named("<inline>", script, obj, limits)
}

pub(super) fn run_named(
    name: &str,
    script: &str,
    obj: &Value,
    limits: &LuaLimits,
) -> Result<HealthStatus, HealthError> {
    let lua_err = |e: mlua::Error| HealthError::Lua {
        script: name.to_string(),
        message: describe(&e),
    };
    let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH | StdLib::OS | StdLib::JIT;
    let lua = Lua::new_with(libs, LuaOptions::default()).map_err(lua_err)?;
    // With LuaJIT this only fails when the state was created without mlua's allocator,
    // which `new_with` never does; refuse to run unbounded rather than ignore it.
    lua.set_memory_limit(limits.memory_bytes).map_err(lua_err)?;

    let timed_out = Rc::new(Cell::new(false));
    let globals = lua.globals();
    let flag = timed_out.clone();
    let hit = lua
        .create_function(move |_, ()| Ok(flag.get()))
        .map_err(lua_err)?;
    globals.set("__mooring_limit_hit", hit).map_err(lua_err)?;
    let print = lua
        .create_function(|lua, args: mlua::Variadic<LuaValue>| {
            let mut parts = Vec::with_capacity(args.len());
            for a in args {
                let s = lua
                    .coerce_string(a.clone())?
                    .map(|s| s.to_string_lossy())
                    .unwrap_or_else(|| a.type_name().to_string());
                parts.push(s);
            }
            tracing::debug!(target: "mooring::health::lua", "{}", parts.join("\t"));
            Ok(())
        })
        .map_err(lua_err)?;
    globals.set("print", print).map_err(lua_err)?;
    lua.load(PRELUDE)
        .set_name("=mooring-sandbox")
        .exec()
        .map_err(lua_err)?;

    let obj_value = to_lua(&lua, obj, 0).map_err(lua_err)?;
    globals.set("obj", obj_value).map_err(lua_err)?;

    let deadline = Instant::now() + limits.timeout;
    let flag = timed_out.clone();
    lua.set_hook(
        HookTriggers::new().every_nth_instruction(limits.instruction_interval.max(1)),
        move |_, _| {
            if flag.get() || Instant::now() >= deadline {
                flag.set(true);
                return Err(mlua::Error::runtime(
                    "health script exceeded its time limit",
                ));
            }
            Ok(VmState::Continue)
        },
    )
    .map_err(lua_err)?;

    let result = lua
        .load(script)
        .set_name(format!("={name}"))
        .set_mode(mlua::chunk::ChunkMode::Text)
        .eval::<LuaValue>();
    lua.remove_hook();

    let value = match result {
        Ok(v) => v,
        Err(e) => {
            if timed_out.get() {
                return Err(HealthError::Timeout {
                    script: name.to_string(),
                    limit: limits.timeout,
                });
            }
            if is_memory_error(&e) {
                return Err(HealthError::Memory {
                    script: name.to_string(),
                    limit: limits.memory_bytes,
                });
            }
            return Err(lua_err(e));
        }
    };
    from_lua(&lua, name, value)
}

/// Convert the script's return value into a health status.
fn from_lua(lua: &Lua, name: &str, value: LuaValue) -> Result<HealthStatus, HealthError> {
    let table = match value {
        LuaValue::Table(t) => t,
        other => {
            return Err(HealthError::BadReturn {
                script: name.to_string(),
                found: other.type_name().to_string(),
            })
        }
    };
    let field = |key: &str| -> Result<Option<String>, HealthError> {
        let v: LuaValue = table.get(key).map_err(|e| HealthError::Lua {
            script: name.to_string(),
            message: describe(&e),
        })?;
        match v {
            LuaValue::Nil => Ok(None),
            LuaValue::String(_) | LuaValue::Integer(_) | LuaValue::Number(_) => Ok(lua
                .coerce_string(v)
                .ok()
                .flatten()
                .map(|s| s.to_string_lossy())),
            other => Err(HealthError::BadReturn {
                script: name.to_string(),
                found: format!("a table whose `{key}` is a {}", other.type_name()),
            }),
        }
    };
    let status = field("status")?.unwrap_or_default();
    let message = field("message")?.unwrap_or_default();
    let code = HealthStatusCode::parse(&status).ok_or_else(|| HealthError::InvalidStatus {
        script: name.to_string(),
        status: status.clone(),
    })?;
    Ok(HealthStatus::new(code, message))
}

/// JSON → Lua as Argo CD's `decodeValue`: objects and arrays become tables (arrays
/// 1-based), `null` becomes `nil` (the key is absent), numbers are Lua numbers.
fn to_lua(lua: &Lua, v: &Value, depth: usize) -> mlua::Result<LuaValue> {
    if depth > MAX_OBJECT_DEPTH {
        return Err(mlua::Error::runtime(format!(
            "object is nested deeper than {MAX_OBJECT_DEPTH} levels"
        )));
    }
    Ok(match v {
        Value::Null => LuaValue::Nil,
        Value::Bool(b) => LuaValue::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => LuaValue::Integer(i),
            None => LuaValue::Number(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => LuaValue::String(lua.create_string(s)?),
        Value::Array(items) => {
            let t = lua.create_table_with_capacity(items.len(), 0)?;
            for (i, item) in items.iter().enumerate() {
                t.raw_set(i + 1, to_lua(lua, item, depth + 1)?)?;
            }
            LuaValue::Table(t)
        }
        Value::Object(map) => {
            let t = lua.create_table_with_capacity(0, map.len())?;
            for (k, item) in map {
                t.raw_set(k.as_str(), to_lua(lua, item, depth + 1)?)?;
            }
            LuaValue::Table(t)
        }
    })
}

fn is_memory_error(e: &mlua::Error) -> bool {
    match e {
        mlua::Error::MemoryError(_) => true,
        mlua::Error::CallbackError { cause, .. } => is_memory_error(cause),
        mlua::Error::WithContext { cause, .. } => is_memory_error(cause),
        other => other.to_string().contains("not enough memory"),
    }
}

/// The Lua message without mlua's Rust-side wrapping, keeping the traceback short.
fn describe(e: &mlua::Error) -> String {
    match e {
        mlua::Error::SyntaxError { message, .. } => format!("syntax error: {message}"),
        mlua::Error::RuntimeError(m) => m.clone(),
        mlua::Error::CallbackError { cause, .. } => describe(cause),
        other => other.to_string(),
    }
}
