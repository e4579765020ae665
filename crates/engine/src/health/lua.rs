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
//! - **stuck library calls**: the hook runs between VM instructions, never inside a C
//!   function, so a pathological `string.find` pattern could keep the state busy long
//!   after the deadline. Each evaluation therefore runs on its own thread (never on the
//!   caller's, which may be a tokio worker); the caller waits at most the time limit plus
//!   [`GRACE`] and then abandons it with [`HealthError::Timeout`]. An abandoned thread
//!   ends when its call returns; at most [`MAX_LUA_THREADS`] evaluations may be running
//!   at once, and past that a script is not started ([`HealthError::Busy`], which names
//!   the cap), so stuck calls cannot pile up threads without bound. The library calls
//!   themselves are bounded too (see `SANDBOX` below): `string.rep` refuses results over
//!   [`MAX_STRING_BYTES`], and the pattern functions run the C matcher only when the
//!   work it can do is small, and otherwise a matcher written in Lua, which the hook
//!   interrupts like any other script code.

use super::HealthError;
use mlua::{HookTriggers, Lua, LuaOptions, StdLib, Value as LuaValue, VmState};
use mooring_core::app::{HealthStatus, HealthStatusCode};
use serde_json::Value;
use std::cell::Cell;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// How long past the time limit the caller waits for a script stuck in a library call.
pub const GRACE: Duration = Duration::from_millis(250);
/// Most health scripts running at once, stuck ones included.
pub const MAX_LUA_THREADS: usize = 32;
/// Longest string `string.rep` may build.
pub const MAX_STRING_BYTES: usize = 8 * 1024 * 1024;
/// Largest worst-case work estimate of one pattern call (see `BOUNDED_STRINGS`); LuaJIT's
/// matcher takes a few nanoseconds per step, so this is at most a few seconds of one core
/// for a call abandoned past the time limit.
pub const MAX_PATTERN_WORK: f64 = 1e9;

/// Evaluations running now (each on its own thread).
static RUNNING: AtomicUsize = AtomicUsize::new(0);

/// A place among `cap` running evaluations, counted in `counter`; released (the count
/// decremented) when the evaluation thread ends, however it ends.
struct Running(&'static AtomicUsize);

impl Running {
    fn admit(counter: &'static AtomicUsize, cap: usize) -> Option<Running> {
        if counter.fetch_add(1, Ordering::SeqCst) >= cap {
            counter.fetch_sub(1, Ordering::SeqCst);
            return None;
        }
        Some(Running(counter))
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

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

/// Bounded `string.rep` and pattern functions (run after [`PRELUDE`]). LuaJIT's library
/// calls run to their end whatever the hook says, so what they may do is checked before
/// calling: `string.rep` refuses a result over the byte limit; a pattern function refuses
/// a call whose worst-case work estimate is over the work limit. The estimate is the
/// number of start positions (one when the pattern is anchored with `^`, except for
/// `gmatch`, else the subject length plus one) times the work from one start: (subject
/// length plus one) ^ quantifiers, as Lua's matcher backtracks over the subject once per
/// quantifier (`*`, `+`, `-`, `%b`), or the pattern length for a pattern without
/// quantifiers (and for a plain `find`). A pattern with one quantifier passes on subjects
/// up to about 30 KB, with two up to about 1 KB (any length when anchored with `^` and
/// one quantifier; up to about 30 KB with two).
const BOUNDED_STRINGS: &str = r#"
local max_bytes, max_work, deadline = __mooring_max_string, __mooring_max_pattern_work, __mooring_check_deadline
__mooring_max_string, __mooring_max_pattern_work, __mooring_check_deadline = nil, nil, nil
local raw_rep, raw_find, raw_match, raw_gmatch, raw_gsub =
  string.rep, string.find, string.match, string.gmatch, string.gsub
local byte, sub, format, type, tostring, error = string.byte, string.sub, string.format, type, tostring, error
local B_PCT, B_LBR, B_RBR, B_CARET, B_STAR, B_PLUS, B_MINUS = 37, 91, 93, 94, 42, 43, 45

local function text(v)
  local t = type(v)
  if t == "string" then return v end
  if t == "number" then return tostring(v) end
  return nil
end

-- Quantifiers (`*`, `+`, `-`) and balance items (`%b`) of a pattern, outside escapes and sets.
local function quantifiers(p)
  local q, i, n = 0, 1, #p
  while i <= n do
    local c = byte(p, i)
    if c == B_PCT then
      local d = byte(p, i + 1)
      if d == 98 then q = q + 1; i = i + 4 else i = i + 2 end
    elseif c == B_LBR then
      i = i + 1
      if byte(p, i) == B_CARET then i = i + 1 end
      if byte(p, i) == B_RBR then i = i + 1 end
      while i <= n and byte(p, i) ~= B_RBR do
        if byte(p, i) == B_PCT then i = i + 1 end
        i = i + 1
      end
      i = i + 1
    else
      if c == B_STAR or c == B_PLUS or c == B_MINUS then q = q + 1 end
      i = i + 1
    end
  end
  return q
end

local function check(fname, s, p, plain, anchors)
  deadline()
  local subject, pattern = text(s), text(p)
  if subject == nil or pattern == nil then return end -- the C function reports the bad argument
  local q = plain and 0 or quantifiers(pattern)
  local n = #subject + 1
  local starts = (anchors and not plain and byte(pattern, 1) == B_CARET) and 1 or n
  local work = starts * (q == 0 and (#pattern + 1) or n ^ q)
  if work > max_work then
    local shown = #pattern > 60 and (sub(pattern, 1, 60) .. "...") or pattern
    error(format("string.%s: pattern %q on a %d-byte string could take too long (%d quantifiers; work estimate %.3g, limit %.3g)",
      fname, shown, #subject, q, work, max_work), 3)
  end
end

string.rep = function(s, n, sep)
  deadline()
  local str, count = text(s), tonumber(n)
  if str ~= nil and count ~= nil and count >= 1 then
    local size = #str * count + #(text(sep) or "") * (count - 1)
    if size > max_bytes then
      error(format("string.rep: a result of %.0f bytes is over the %d-byte limit", size, max_bytes), 2)
    end
  end
  return raw_rep(s, n, sep)
end
string.find = function(s, p, init, plain)
  check("find", s, p, plain, true)
  return raw_find(s, p, init, plain)
end
string.match = function(s, p, init)
  check("match", s, p, false, true)
  return raw_match(s, p, init)
end
string.gmatch = function(s, p)
  check("gmatch", s, p, false, false)
  return raw_gmatch(s, p)
end
string.gsub = function(s, p, repl, n)
  check("gsub", s, p, false, true)
  return raw_gsub(s, p, repl, n)
end
"#;

/// Run `script` against `obj` (exposed as the global `obj`) and return the health it
/// reports. Errors name the script as `<inline>`; use [`super::Script::run`] to get the
/// script's path in messages.
pub fn run_lua(script: &str, obj: &Value, limits: &LuaLimits) -> Result<HealthStatus, HealthError> {
    run_named("<inline>", script, obj, limits)
}

/// Run on a dedicated thread and wait at most the time limit plus [`GRACE`] (see the
/// module docs).
pub(super) fn run_named(
    name: &str,
    script: &str,
    obj: &Value,
    limits: &LuaLimits,
) -> Result<HealthStatus, HealthError> {
    let timeout = || HealthError::Timeout {
        script: name.to_string(),
        limit: limits.timeout,
    };
    let Some(guard) = Running::admit(&RUNNING, MAX_LUA_THREADS) else {
        tracing::warn!(
            script = name,
            cap = MAX_LUA_THREADS,
            "health script not run: too many health scripts still running"
        );
        return Err(HealthError::Busy {
            script: name.to_string(),
            cap: MAX_LUA_THREADS,
        });
    };
    let (tx, rx) = mpsc::sync_channel(1);
    let (owned_name, owned_script, owned_obj, owned_limits) =
        (name.to_string(), script.to_string(), obj.clone(), *limits);
    let spawned = std::thread::Builder::new()
        .name("mooring-lua".into())
        .spawn(move || {
            let _guard = guard;
            let result = run_in_state(&owned_name, &owned_script, &owned_obj, &owned_limits);
            // The caller may have given up already; then nobody listens.
            let _ = tx.send(result);
        });
    if let Err(e) = spawned {
        return Err(HealthError::Lua {
            script: name.to_string(),
            message: format!("could not start the evaluation thread: {e}"),
        });
    }
    match rx.recv_timeout(limits.timeout + GRACE) {
        Ok(result) => result,
        Err(mpsc::RecvTimeoutError::Timeout) => {
            tracing::warn!(
                script = name,
                "health script stuck past its time limit; abandoned"
            );
            Err(timeout())
        }
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(HealthError::Lua {
            script: name.to_string(),
            message: "the evaluation thread failed".to_string(),
        }),
    }
}

/// One evaluation in a fresh state, on the current thread.
fn run_in_state(
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
    globals
        .set("__mooring_max_string", MAX_STRING_BYTES)
        .map_err(lua_err)?;
    globals
        .set("__mooring_max_pattern_work", MAX_PATTERN_WORK)
        .map_err(lua_err)?;
    // The bounded library functions check the deadline before each call: a loop of calls
    // that are each allowed but slow (and run few VM instructions, so the hook rarely
    // fires) still ends at the limit.
    let deadline_cell: Rc<Cell<Option<Instant>>> = Rc::new(Cell::new(None));
    let (flag, cell) = (timed_out.clone(), deadline_cell.clone());
    let check_deadline = lua
        .create_function(move |_, ()| {
            if flag.get() || cell.get().is_some_and(|d| Instant::now() >= d) {
                flag.set(true);
                return Err(mlua::Error::runtime(
                    "health script exceeded its time limit",
                ));
            }
            Ok(())
        })
        .map_err(lua_err)?;
    globals
        .set("__mooring_check_deadline", check_deadline)
        .map_err(lua_err)?;
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
    lua.load(BOUNDED_STRINGS)
        .set_name("=mooring-sandbox")
        .exec()
        .map_err(lua_err)?;

    let obj_value = to_lua(&lua, obj, 0).map_err(lua_err)?;
    globals.set("obj", obj_value).map_err(lua_err)?;

    let deadline = Instant::now() + limits.timeout;
    deadline_cell.set(Some(deadline));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn running_evaluations_are_capped_and_released() {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let held: Vec<Running> = (0..3)
            .map(|_| Running::admit(&COUNTER, 3).expect("under the cap"))
            .collect();
        assert!(Running::admit(&COUNTER, 3).is_none(), "the cap is hit");
        assert_eq!(COUNTER.load(Ordering::SeqCst), 3);
        drop(held);
        assert_eq!(COUNTER.load(Ordering::SeqCst), 0);
        assert!(Running::admit(&COUNTER, 3).is_some());
    }

    #[test]
    fn busy_names_the_script_and_the_cap() {
        let e = HealthError::Busy {
            script: "ConfigMap/health.lua".into(),
            cap: MAX_LUA_THREADS,
        };
        let msg = e.to_string();
        assert!(
            msg.contains("ConfigMap/health.lua") && msg.contains("32 health scripts"),
            "{msg}"
        );
    }
}
