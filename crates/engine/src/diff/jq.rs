//! Bounded evaluation of `jqPathExpressions` with jaq.
//!
//! An ignoreDifferences entry is user input that runs inside the controller on every
//! refresh, so an expression such as `repeat(.)`, `range(1e12)`, `until(false; .)` or
//! `def f: [f]; f` must end with an error instead of hanging, exhausting memory or
//! overflowing the stack. What is done, in order:
//!
//! 1. **Size**: expressions over [`MAX_EXPR_BYTES`] are refused.
//! 2. **Lexical screen**: the `*` operator is refused outside string literals, because
//!    `"x" * 1e12` is a single native step that allocates a terabyte (nothing between
//!    steps can interrupt it). No ignoreDifferences path expression needs to multiply.
//!    String interpolation (`"\(…)"`) is refused too (see 6), and so are the names
//!    `mooring_raw_*` of the natives that are only reached through size guards.
//! 3. **Own parse**: the expression must parse on its own, so wrapping it as
//!    `path(EXPR)` cannot be escaped with a stray `)`; it is wrapped with newlines so a
//!    trailing `# comment` cannot swallow the closing parenthesis.
//! 4. **Curated natives**: `halt` (which would exit the process), `env` (which would reveal
//!    the controller's environment) and the logging natives are replaced by versions that
//!    fail or do nothing; modules cannot be loaded (`include`/`import` fail).
//! 5. **Step budget, deadline and stack guard**: the interpreter looks up its table of
//!    terms on every step it takes; Mooring's data type counts those look-ups. After
//!    [`MAX_STEPS`] steps, after [`TIMEOUT`], or when the evaluation's stack use passes
//!    [`STACK_GUARD_BYTES`], evaluation is abandoned by unwinding the worker thread
//!    (`std::panic::resume_unwind`, which runs no panic hook, so nothing is printed). The
//!    native `range` is replaced by one that counts a step per output, so `[range(1e12)]`
//!    is also stopped.
//! 6. **Memory budget**: the bytes the evaluation allocates are counted on its thread
//!    (the [`crate::meter`] allocator); once one side's evaluation holds more than
//!    [`MEMORY_BYTES`] the next step stops it, so `reduce range(31) as $i ("x"; . + .)`
//!    (or the same with `[.] + [.]` or objects) is refused after a few dozen steps and a
//!    few tens of megabytes instead of growing the process by gigabytes. What one step
//!    can allocate on its own is bounded separately:
//!    - values shared rather than copied (`[., .]`, `{a: ., b: .}` doubled 31 times are
//!      small in memory) grow exponentially only when written out as text, so every
//!      conversion to text (`tostring`, `tojson`, `@text`, `@json`, `@sh`, `@html`,
//!      `@uri`, `@base64`, `join`, and the values quoted in error messages) is written
//!      into a buffer capped at [`MAX_TEXT_BYTES`]; string interpolation `"\(…)"`, which
//!      jaq converts without such a cap, is refused by the screen (use `tostring` and
//!      `+`);
//!    - the natives whose output is many times their input (`explode`, `fromjson`,
//!      `indices`, the regular-expression functions, `escape_html`, `encode_uri`,
//!      `encode_base64`) refuse an input whose JSON text is over
//!      [`MAX_AMPLIFIED_INPUT_BYTES`].
//!
//!    Going past any of these stops the evaluation like the step budget does (a
//!    [`DiffError::JqLimit`] naming the expression and the limit), so `try` cannot catch
//!    it and carry on.
//! 7. **Path cap**: at most [`MAX_PATHS`] paths per expression and side.
//! 8. **Worker thread**: evaluation runs on a worker thread with its own 32 MiB stack,
//!    one worker per calling thread (so a runaway in one reconcile never delays another),
//!    which keeps up to 256 compiled expressions (compiling jaq's standard library costs
//!    milliseconds; a cached evaluation costs microseconds). Both sides of a diff are one
//!    job sharing one budget. The caller waits at most [`TIMEOUT`] plus a grace period;
//!    if the worker has not answered by then it is abandoned (it ends on its own after
//!    the operation it is stuck in) and the next call starts a fresh one.
//!
//! Limits: the step budget cannot interrupt a single native operation that is itself
//! slow (for example `tostring` on a value grown by repeated doubling, `. + .`); such an
//! operation runs to its end on the worker thread (whose next step is then refused) while
//! the caller has already returned the error. Memory is metered per step, so one step can
//! overshoot [`MEMORY_BYTES`] by what it allocates itself (a doubling step: twice the
//! budget). Cancellation relies on unwinding, so the crate must not be built with
//! `panic = "abort"`.

use super::path::{Path, Seg};
use super::DiffError;
use jaq_core::data::{DataT, HasLut};
use jaq_core::load::{Arena, File, Loader};
use jaq_core::native::{run, v, Fun};
use jaq_core::{Ctx, Exn, ValX, Vars};
use jaq_json::Val;
use jaq_std::ValT as _;
use serde::Deserialize;
use serde_json::Value;
use std::cell::Cell;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Longest accepted expression, in bytes.
pub const MAX_EXPR_BYTES: usize = 4096;
/// Most paths one expression may produce on one side of a diff.
pub const MAX_PATHS: usize = 10_000;
/// Most interpreter steps one evaluation may take.
pub const MAX_STEPS: u64 = 2_000_000;
/// Wall-clock limit of one evaluation (Argo CD's default jq timeout is also one second).
pub const TIMEOUT: Duration = Duration::from_secs(1);
/// Stack of the worker thread.
const STACK_BYTES: usize = 32 * 1024 * 1024;
/// Stack use at which evaluation is stopped (leaves ample room below the guard page).
pub const STACK_GUARD_BYTES: usize = 16 * 1024 * 1024;
/// Net bytes one side's evaluation may hold (its input value included) before it is
/// stopped.
pub const MEMORY_BYTES: usize = 32 * 1024 * 1024;
/// Longest text a value may be converted to (`tostring`, `tojson`, error messages).
pub const MAX_TEXT_BYTES: usize = 4 * 1024 * 1024;
/// Largest input (as JSON text) of a native whose output is many times its input.
pub const MAX_AMPLIFIED_INPUT_BYTES: usize = 1024 * 1024;
/// How long the caller waits beyond the deadline for the worker to notice it.
const GRACE: Duration = Duration::from_millis(500);

/// Why a bounded evaluation was stopped.
#[derive(Debug, Clone, Copy)]
enum Stop {
    Steps,
    Deadline,
    Stack,
    Memory,
    Text,
    AmplifiedInput,
}

impl Stop {
    fn describe(self) -> String {
        match self {
            Stop::Steps => format!("took more than {MAX_STEPS} evaluation steps"),
            Stop::Deadline => format!("ran longer than {} ms", TIMEOUT.as_millis()),
            Stop::Stack => "recursed too deeply".to_string(),
            Stop::Memory => format!(
                "built values larger than {} MiB",
                MEMORY_BYTES / (1024 * 1024)
            ),
            Stop::Text => format!("converted a value to text longer than {MAX_TEXT_BYTES} bytes"),
            Stop::AmplifiedInput => format!(
                "gave an input longer than {MAX_AMPLIFIED_INPUT_BYTES} bytes (as JSON text) to \
                 a function whose output is many times its input"
            ),
        }
    }
}

#[derive(Clone, Copy)]
struct Budget {
    deadline: Instant,
    steps: u64,
    stack_base: usize,
}

thread_local! {
    static BUDGET: Cell<Option<Budget>> = const { Cell::new(None) };
}

fn stack_address() -> usize {
    let marker = 0u8;
    std::ptr::addr_of!(marker) as usize
}

/// Count one interpreter step; abandon the evaluation (by unwinding) when over budget.
fn tick() {
    let Some(mut b) = BUDGET.with(Cell::get) else {
        return;
    };
    b.steps += 1;
    let stop = if b.steps > MAX_STEPS {
        Some(Stop::Steps)
    } else if b.steps % 256 == 0 && Instant::now() > b.deadline {
        Some(Stop::Deadline)
    } else if stack_address().abs_diff(b.stack_base) > STACK_GUARD_BYTES {
        Some(Stop::Stack)
    } else if crate::meter::over_budget() {
        Some(Stop::Memory)
    } else {
        None
    };
    BUDGET.with(|c| c.set(Some(b)));
    if let Some(stop) = stop {
        std::panic::resume_unwind(Box::new(stop));
    }
}

/// jaq data kind whose look-up table access counts steps.
struct Guarded;

impl DataT for Guarded {
    type V<'a> = Val;
    type Data<'a> = GuardedLut<'a>;
}

#[derive(Clone)]
struct GuardedLut<'a>(&'a jaq_core::Lut<Guarded>);

impl<'a> HasLut<'a, Guarded> for GuardedLut<'a> {
    fn lut(&self) -> &'a jaq_core::Lut<Guarded> {
        tick();
        self.0
    }
}

/// `range($from; $to; $by)` with one step counted per output (jaq's own is native and
/// would not be interrupted between outputs).
fn guarded_range<'a>(from: Val, to: Val, by: Val) -> impl Iterator<Item = ValX<'a, Val>> {
    use std::cmp::Ordering::{Equal, Greater, Less};
    let cmp = by.partial_cmp(&Val::from(0isize)).unwrap_or(Equal);
    let mut next: Option<ValX<'a, Val>> = Some(Ok(from));
    std::iter::from_fn(move || {
        tick();
        match next.take()? {
            Ok(x) => {
                let go = match cmp {
                    Greater => x < to,
                    Less => x > to,
                    Equal => x != to,
                };
                if !go {
                    return None;
                }
                next = Some((x.clone() + by.clone()).map_err(Exn::from));
                Some(Ok(x))
            }
            Err(e) => Some(Err(e)),
        }
    })
}

/// Stock natives whose output can be many times their input; they are renamed and
/// reached through [`GUARD_DEFS`], which checks the input's size first.
const AMPLIFYING: [(&str, usize, &str); 9] = [
    ("explode", 0, "mooring_raw_explode"),
    ("fromjson", 0, "mooring_raw_fromjson"),
    ("indices", 1, "mooring_raw_indices"),
    ("matches", 2, "mooring_raw_matches"),
    ("split_matches", 2, "mooring_raw_split_matches"),
    ("split_", 2, "mooring_raw_split_"),
    ("escape_html", 0, "mooring_raw_escape_html"),
    ("encode_uri", 0, "mooring_raw_encode_uri"),
    ("encode_base64", 0, "mooring_raw_encode_base64"),
];

/// Loaded before jaq's own definitions (which call these names).
const GUARD_DEFS: &str = r#"
def explode: mooring_guard | mooring_raw_explode;
def fromjson: mooring_guard | mooring_raw_fromjson;
def indices($i): mooring_guard | mooring_raw_indices($i);
def matches($re; $flags): mooring_guard | mooring_raw_matches($re; $flags);
def split_matches($re; $flags): mooring_guard | mooring_raw_split_matches($re; $flags);
def split_($re; $flags): mooring_guard | mooring_raw_split_($re; $flags);
def escape_html: mooring_guard | mooring_raw_escape_html;
def encode_uri: mooring_guard | mooring_raw_encode_uri;
def encode_base64: mooring_guard | mooring_raw_encode_base64;
"#;

/// Loaded after jaq's definitions: every conversion to text goes through the capped
/// `mooring_tostring` instead of jaq's string interpolation.
const TEXT_DEFS: &str = r#"
def tostring: mooring_tostring;
def @text: mooring_tostring;
def join($s): .[] |= tostring | .[:-1][] += $s | reduce .[] as $x (""; . + $x);
def @sh: [if isarray then .[] end | if . >= "" then "'" + escape_sh + "'" else tostring end] | join(" ");
def @html: tostring | escape_html;
def @htmld: tostring | unescape_html;
def @uri: tostring | encode_uri;
def @urid: tostring | decode_uri;
def @base64: tostring | encode_base64;
def @base64d: tostring | decode_base64;
"#;

/// A `fmt::Write` that keeps (or, with `keep` false, only counts) at most `cap` bytes
/// and fails past that, which stops the formatting of a value early.
struct Capped {
    buf: String,
    len: usize,
    cap: usize,
    keep: bool,
    over: bool,
}

impl std::fmt::Write for Capped {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        if self.len + s.len() > self.cap {
            if self.keep {
                let mut end = self.cap - self.len;
                while !s.is_char_boundary(end) {
                    end -= 1;
                }
                self.buf.push_str(&s[..end]);
            }
            self.over = true;
            return Err(std::fmt::Error);
        }
        self.len += s.len();
        if self.keep {
            self.buf.push_str(s);
        }
        Ok(())
    }
}

/// Format `v` into at most `cap` bytes: the text, and whether it was cut.
fn capped_text(v: &dyn std::fmt::Display, cap: usize, keep: bool) -> (String, bool) {
    let mut w = Capped {
        buf: String::new(),
        len: 0,
        cap,
        keep,
        over: false,
    };
    // An error here is the cap (Capped is the only writer that fails).
    let _ = std::fmt::write(&mut w, format_args!("{v}"));
    (w.buf, w.over)
}

/// `tostring`/`tojson` with the text capped at [`MAX_TEXT_BYTES`]; past the cap the
/// evaluation is stopped like any other runaway (an error the expression could catch
/// with `try` would let it go on).
fn capped_to_text(v: Val, json: bool) -> Val {
    if !json {
        if let Val::TStr(b) | Val::BStr(b) = v {
            return Val::TStr(b);
        }
    }
    let (text, over) = capped_text(&v, MAX_TEXT_BYTES, true);
    if over {
        std::panic::resume_unwind(Box::new(Stop::Text));
    }
    Val::utf8_str(text)
}

fn natives() -> Vec<Fun<Guarded>> {
    const REPLACED: [(&str, usize); 7] = [
        ("range", 3),
        ("halt", 1),
        ("env", 0),
        ("debug_empty", 0),
        ("stderr_empty", 0),
        ("input", 0),
        ("tojson", 0),
    ];
    let stock = jaq_core::funs::<Guarded>()
        .chain(jaq_std::funs::<Guarded>())
        .chain(jaq_json::funs::<Guarded>())
        .filter(|(name, args, _)| !REPLACED.contains(&(*name, args.len())))
        .map(|(name, args, native)| {
            let renamed = AMPLIFYING
                .iter()
                .find(|(n, arity, _)| *n == name && *arity == args.len())
                .map_or(name, |(_, _, raw)| *raw);
            (renamed, args, native)
        });
    let ours: [jaq_core::native::Filter<jaq_core::RunPtr<Guarded>>; 8] = [
        ("range", v(3), |mut cv| {
            let by = cv.0.pop_var();
            let to = cv.0.pop_var();
            let from = cv.0.pop_var();
            Box::new(guarded_range(from, to, by))
        }),
        ("halt", v(1), |_| {
            jaq_core::native::bome(Err(jaq_core::Error::str(
                "halt is not available in ignoreDifferences",
            )))
        }),
        ("env", v(0), |_| {
            jaq_core::native::bome(Err(jaq_core::Error::str(
                "env is not available in ignoreDifferences",
            )))
        }),
        ("debug_empty", v(0), |_| Box::new(std::iter::empty())),
        ("stderr_empty", v(0), |_| Box::new(std::iter::empty())),
        ("tojson", v(0), |cv| {
            jaq_core::native::bome(Ok(capped_to_text(cv.1, true)))
        }),
        ("mooring_tostring", v(0), |cv| {
            jaq_core::native::bome(Ok(capped_to_text(cv.1, false)))
        }),
        ("mooring_guard", v(0), |cv| {
            let (_, over) = capped_text(&cv.1, MAX_AMPLIFIED_INPUT_BYTES, false);
            if over {
                std::panic::resume_unwind(Box::new(Stop::AmplifiedInput));
            }
            jaq_core::native::bome(Ok(cv.1))
        }),
    ];
    stock.chain(ours.into_iter().map(run::<Guarded>)).collect()
}

/// Refuse `*` outside string literals and string interpolation (see the module docs),
/// and the renamed natives' names.
fn screen(expr: &str) -> Result<(), String> {
    if expr.len() > MAX_EXPR_BYTES {
        return Err(format!(
            "expression is {} bytes, over the {MAX_EXPR_BYTES}-byte limit",
            expr.len()
        ));
    }
    if expr.contains("mooring_raw_") {
        return Err("names starting with `mooring_raw_` are reserved".to_string());
    }
    let mut in_string = false;
    let mut chars = expr.chars();
    while let Some(c) = chars.next() {
        if in_string {
            match c {
                '\\' if chars.next() == Some('(') => {
                    return Err("string interpolation `\\(…)` is not allowed (it converts \
                         values to text without a size limit); use `tostring` and `+`"
                        .to_string());
                }
                '"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_string = true,
            '#' => {
                // comment to end of line
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
            }
            '*' => {
                return Err(
                    "the `*` operator is not allowed (string repetition cannot be bounded)"
                        .to_string(),
                )
            }
            _ => {}
        }
    }
    Ok(())
}

fn describe_load_errors(errs: jaq_core::load::Errors<&str, ()>) -> String {
    use jaq_core::load::Error;
    let mut out = Vec::new();
    for (_file, err) in errs {
        match err {
            Error::Io(es) => out.extend(es.into_iter().map(|(p, e)| format!("{p}: {e}"))),
            Error::Lex(es) => out.extend(es.into_iter().map(|(expect, rest)| {
                format!("expected {} at `{}`", expect.as_str(), snippet(rest))
            })),
            Error::Parse(es) => out.extend(es.into_iter().map(|(expect, rest)| {
                format!("expected {} at `{}`", expect.as_str(), snippet(rest))
            })),
        }
    }
    out.join("; ")
}

fn snippet(s: &str) -> String {
    let s: String = s.chars().take(40).collect();
    if s.is_empty() {
        "end of expression".into()
    } else {
        s
    }
}

/// Parse and compile; returns the error text for the user.
fn compile<'s>(arena: &'s Arena, code: &'s str) -> Result<jaq_core::Filter<Guarded>, String> {
    let parse_ours = |code: &'static str| {
        jaq_core::load::parse(code, |p| p.defs())
            .expect("Mooring's own jq definitions parse")
            .into_iter()
    };
    let defs = parse_ours(GUARD_DEFS)
        .chain(jaq_core::defs())
        .chain(jaq_std::defs())
        .chain(jaq_json::defs())
        .chain(parse_ours(TEXT_DEFS));
    let loader = Loader::new(defs);
    let modules = loader
        .load(arena, File { code, path: () })
        .map_err(describe_load_errors)?;
    jaq_core::Compiler::default()
        .with_funs(natives())
        .compile(modules)
        .map_err(|errs| {
            errs.into_iter()
                .flat_map(|(_file, es)| es)
                .map(|(name, undef)| format!("undefined {} `{name}`", undef.as_str()))
                .collect::<Vec<_>>()
                .join("; ")
        })
}

/// Parse `expr` on its own (so `path(EXPR)` cannot be escaped), then compile
/// `path(EXPR)`.
fn compile_path_expr(expr: &str) -> Result<jaq_core::Filter<Guarded>, String> {
    screen(expr)?;
    let arena = Arena::default();
    Loader::new(jaq_core::defs())
        .load(
            &arena,
            File {
                code: expr,
                path: (),
            },
        )
        .map_err(describe_load_errors)?;
    let wrapped = format!("path(\n{expr}\n)");
    let arena = Arena::default();
    compile(&arena, &wrapped)
}

/// Check that an expression is acceptable (screen, parse, compile) without running it.
pub(crate) fn validate(expr: &str) -> Result<(), DiffError> {
    paths_each(expr, &[], false).map(drop)
}

/// What one side's evaluation gave.
enum SideOutcome {
    Paths(Vec<Path>),
    Runtime(String),
    TooMany,
    NotAPath,
}

/// Why a whole job failed.
enum JobFailure {
    Compile(String),
    Stopped(Stop),
    Crashed,
}

struct Job {
    expr: String,
    inputs: Vec<Value>,
    reply: mpsc::Sender<Result<Vec<SideOutcome>, JobFailure>>,
}

/// Compiled expressions kept by a worker (compiling jaq's standard library for every
/// diff would cost milliseconds); cleared when full.
const CACHE_ENTRIES: usize = 256;

thread_local! {
    /// Each calling thread has its own worker, so one runaway expression never delays
    /// another thread's diff.
    static WORKER: std::cell::RefCell<Option<mpsc::Sender<Job>>> =
        const { std::cell::RefCell::new(None) };
}

fn spawn_worker() -> std::io::Result<mpsc::Sender<Job>> {
    let (tx, rx) = mpsc::channel::<Job>();
    std::thread::Builder::new()
        .name("mooring-jq".into())
        .stack_size(STACK_BYTES)
        .spawn(move || {
            let mut cache = Cache::new();
            // Ends when the calling thread drops its sender (it exited, or gave up on a
            // job that ran past the deadline).
            for job in rx {
                let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                    run_job(&mut cache, &job)
                }));
                BUDGET.with(|b| b.set(None));
                crate::meter::disarm();
                let outcome = match result {
                    Ok(o) => o,
                    Err(payload) => match payload.downcast::<Stop>() {
                        Ok(stop) => Err(JobFailure::Stopped(*stop)),
                        Err(_) => Err(JobFailure::Crashed),
                    },
                };
                // The caller may have given up already; then nobody listens.
                let _ = job.reply.send(outcome);
            }
        })?;
    Ok(tx)
}

type Cache =
    std::collections::HashMap<String, Result<std::rc::Rc<jaq_core::Filter<Guarded>>, String>>;

fn run_job(cache: &mut Cache, job: &Job) -> Result<Vec<SideOutcome>, JobFailure> {
    if cache.len() >= CACHE_ENTRIES && !cache.contains_key(&job.expr) {
        cache.clear();
    }
    let filter = cache
        .entry(job.expr.clone())
        .or_insert_with(|| compile_path_expr(&job.expr).map(std::rc::Rc::new))
        .clone()
        .map_err(JobFailure::Compile)?;
    BUDGET.with(|b| {
        b.set(Some(Budget {
            deadline: Instant::now() + TIMEOUT,
            steps: 0,
            stack_base: stack_address(),
        }))
    });
    Ok(job
        .inputs
        .iter()
        .map(|input| evaluate(&filter, input))
        .collect())
}

/// Evaluate `path(EXPR)` on each input under the bounds in the module docs, on this
/// thread's jq worker. The outer error is for the expression as a whole (does not parse,
/// ran away); the inner ones are per input (a run-time error on that document).
/// `redact` withholds jaq's run-time error text, which can quote input values (Secrets).
pub(crate) fn paths_each(
    expr: &str,
    inputs: &[&Value],
    redact: bool,
) -> Result<Vec<Result<Vec<Path>, DiffError>>, DiffError> {
    let limit = |reason: String| DiffError::JqLimit {
        expr: expr.to_string(),
        reason,
    };
    let (reply, replies) = mpsc::channel();
    let mut job = Job {
        expr: expr.to_string(),
        inputs: inputs.iter().map(|v| (*v).clone()).collect(),
        reply,
    };
    // Send to this thread's worker, starting one if there is none or it has gone.
    let mut sent = false;
    for _ in 0..2 {
        let sender = WORKER.with(|w| w.borrow().clone());
        let sender = match sender {
            Some(s) => s,
            None => {
                let s = spawn_worker()
                    .map_err(|e| limit(format!("could not start the evaluation thread: {e}")))?;
                WORKER.with(|w| *w.borrow_mut() = Some(s.clone()));
                s
            }
        };
        match sender.send(job) {
            Ok(()) => {
                sent = true;
                break;
            }
            Err(mpsc::SendError(j)) => {
                job = j;
                WORKER.with(|w| *w.borrow_mut() = None);
            }
        }
    }
    if !sent {
        return Err(limit("the evaluation thread is not available".to_string()));
    }
    let outcome = match replies.recv_timeout(TIMEOUT + GRACE) {
        Ok(o) => o,
        Err(_) => {
            // Stuck inside one native operation: abandon this worker; it ends after that
            // operation (its next step is over the deadline) and the next call starts a
            // fresh one.
            WORKER.with(|w| *w.borrow_mut() = None);
            return Err(limit(Stop::Deadline.describe()));
        }
    };
    let sides = match outcome {
        Ok(sides) => sides,
        Err(JobFailure::Compile(reason)) => {
            return Err(DiffError::JqParse {
                expr: expr.to_string(),
                reason,
            })
        }
        Err(JobFailure::Stopped(stop)) => return Err(limit(stop.describe())),
        Err(JobFailure::Crashed) => {
            return Err(DiffError::JqEval {
                expr: expr.to_string(),
                reason: "the jq interpreter failed".to_string(),
            })
        }
    };
    let eval = |reason: String| DiffError::JqEval {
        expr: expr.to_string(),
        reason: if redact {
            "error message withheld: the resource is a Secret".to_string()
        } else {
            reason
        },
    };
    sides
        .into_iter()
        .map(|side| match side {
            SideOutcome::Paths(p) => Ok(Ok(p)),
            SideOutcome::Runtime(reason) => Ok(Err(eval(reason))),
            SideOutcome::NotAPath => Ok(Err(DiffError::JqEval {
                expr: expr.to_string(),
                reason: "produced a value that is not a path of object keys and array indexes"
                    .to_string(),
            })),
            SideOutcome::TooMany => Err(limit(format!("produced more than {MAX_PATHS} paths"))),
        })
        .collect()
}

/// Evaluate one side with the memory meter armed (disarmed again by the worker loop when
/// the evaluation is abandoned by unwinding).
fn evaluate(filter: &jaq_core::Filter<Guarded>, input: &Value) -> SideOutcome {
    crate::meter::arm(MEMORY_BYTES);
    let outcome = evaluate_metered(filter, input);
    crate::meter::disarm();
    outcome
}

fn evaluate_metered(filter: &jaq_core::Filter<Guarded>, input: &Value) -> SideOutcome {
    let input = match Val::deserialize(input) {
        Ok(v) => v,
        Err(e) => return SideOutcome::Runtime(format!("input is not JSON: {e}")),
    };
    let ctx = Ctx::<Guarded>::new(GuardedLut(&filter.lut), Vars::new([]));
    let mut out = Vec::new();
    for item in filter.id.run((ctx, input)) {
        let val = match item {
            Ok(v) => v,
            Err(exn) => {
                return SideOutcome::Runtime(match exn.get_err() {
                    // jaq's messages quote values, which can be huge: format at most a
                    // little more than what is kept.
                    Ok(err) => truncate(&capped_text(&err, 1024, true).0),
                    Err(_) => "evaluation stopped".to_string(),
                });
            }
        };
        if out.len() == MAX_PATHS {
            return SideOutcome::TooMany;
        }
        match to_path(val) {
            Some(p) => out.push(p),
            None => return SideOutcome::NotAPath,
        }
    }
    SideOutcome::Paths(out)
}

fn to_path(val: Val) -> Option<Path> {
    let parts: Vec<Val> = val.into_seq().ok()?;
    parts
        .into_iter()
        .map(|p| {
            if let Some(i) = p.as_isize() {
                Some(Seg::Index(i))
            } else {
                p.as_utf8_bytes()
                    .map(|b| Seg::Key(String::from_utf8_lossy(b).into_owned()))
            }
        })
        .collect()
}

fn truncate(s: &str) -> String {
    const MAX: usize = 200;
    if s.len() <= MAX {
        return s.to_string();
    }
    let mut end = MAX;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn screen_allows_star_in_strings_only() {
        assert!(screen(r#".a | select(.name == "a*b")"#).is_ok());
        assert!(screen(r#"select(.x == "\\(not code)*")"#).is_ok());
        assert!(screen(r#"select(.x == "\(1 * 2)")"#).is_err());
        assert!(screen(r#"."x" * 3"#).is_err());
        assert!(screen(".a # a * comment").is_ok());
    }

    fn stopped(expr: &str) -> String {
        let doc = serde_json::json!({"kind": "ConfigMap", "data": {"a": "b"}});
        match paths_each(expr, &[&doc], false) {
            Err(e @ DiffError::JqLimit { .. }) => e.to_string(),
            Err(other) => panic!("{expr}: expected a limit error, got {other}"),
            Ok(r) => panic!("{expr}: expected a limit error, got {r:?}"),
        }
    }

    #[test]
    fn doubling_is_stopped_by_the_memory_budget() {
        // Strings are stopped by the memory budget; arrays of boxed values are slower to
        // copy (each doubling step is one native operation) and may meet the deadline
        // first in a debug build: either way memory stays bounded.
        for (expr, strict) in [
            (r#".data[reduce range(31) as $i ("x"; . + .)]"#, true),
            (
                r#"select((reduce range(40) as $i ("x"; . + .)) | length > 0)"#,
                true,
            ),
            (
                r#"select((reduce range(40) as $i (["x"]; . + .)) | length > 0)"#,
                false,
            ),
            (
                r#"select((reduce range(40) as $i ([{"a": "x"}]; . + .)) | length > 0)"#,
                false,
            ),
        ] {
            // The limit error is the proof that evaluation stopped (no wall-clock assertion).
            let msg = stopped(expr);
            assert!(
                msg.contains("built values larger than")
                    || (!strict && msg.contains("ran longer than")),
                "{expr}: {msg}"
            );
            assert!(
                msg.contains(&format!("{expr:?}")),
                "names the expression: {msg}"
            );
        }
    }

    #[test]
    fn shared_values_cannot_be_written_out_exponentially() {
        for expr in [
            r#"select((reduce range(40) as $i ("x"; [., .])) | tostring | length > 0)"#,
            r#"select((reduce range(40) as $i ("x"; {a: ., b: .})) | tojson | length > 0)"#,
            r#"select((reduce range(40) as $i ("x"; [., .])) | @base64 | length > 0)"#,
            r#"select((reduce range(40) as $i ("x"; [., .])) | join(",") | length > 0)"#,
            r#"select((reduce range(40) as $i ("x"; [., .])) | try tojson catch 0)"#,
        ] {
            // Stopped by the text cap, not by the deadline: 2^40 copies are never written
            // (no wall-clock assertion; the shared machines are noisy).
            let msg = stopped(expr);
            assert!(msg.contains("text longer than"), "{expr}: {msg}");
        }
        // jaq's error messages quote the value: formatted within a cap.
        let doc = serde_json::json!({"kind": "ConfigMap"});
        let expr = r#"select((reduce range(40) as $i ("x"; [., .])) | .a)"#;
        let out = paths_each(expr, &[&doc], false).expect("evaluates");
        let err = out[0].as_ref().expect_err("refused").to_string();
        assert!(err.len() < 2048, "message is bounded: {}", err.len());
    }

    #[test]
    fn string_interpolation_is_refused_with_a_hint() {
        let err = validate(r#".a | select(.name == "x-\(.b)")"#).expect_err("refused");
        assert!(err.to_string().contains("use `tostring`"), "{err}");
        assert!(validate(r#".a | select(.name == ("x-" + (.b | tostring)))"#).is_ok());
        assert!(validate(".a | mooring_raw_explode").is_err());
    }

    #[test]
    fn legitimate_text_functions_still_work() {
        let doc = serde_json::json!({"a": [1, "b", {"c": true}], "s": "hello world"});
        for (expr, want) in [
            (
                r#"select((.a | tostring) == "[1,\"b\",{\"c\":true}]") | .a"#,
                1,
            ),
            (r#"select((.a | tojson | fromjson) == .a) | .a"#, 1),
            (r#"select((.a[0:2] | join("-")) == "1-b") | .s"#, 1),
            (
                r#"select((.s | test("wor")) and (.s | explode | length) == 11) | .s"#,
                1,
            ),
            (r#"select((.s | split(" ")) == ["hello", "world"]) | .s"#, 1),
            (r#"select((.s | @base64 | @base64d) == .s) | .s"#, 1),
        ] {
            let out = paths_each(expr, &[&doc], false).expect("evaluates");
            let paths = out[0].as_ref().unwrap_or_else(|e| panic!("{expr}: {e}"));
            assert_eq!(paths.len(), want, "{expr}");
        }
    }

    #[test]
    fn amplifying_natives_refuse_huge_inputs() {
        for expr in [
            r#"select((reduce range(21) as $i ("x"; . + .)) | explode | length > 0)"#,
            r#"select((reduce range(20) as $i ("1"; . + "," + .)) | "[" + . + "]" | fromjson | length > 0)"#,
            r#"select((reduce range(21) as $i ("x"; . + .)) | test("y") | not)"#,
        ] {
            let msg = stopped(expr);
            assert!(msg.contains("many times its input"), "{expr}: {msg}");
        }
    }
}
