//! Container logs of the simulated Pods, served by `pods/{name}/log`.
//!
//! `kubectl logs` is the first thing anyone runs on a misbehaving workload, so simulated
//! containers write what real ones would: start-up lines that fit the image (an nginx
//! entrypoint, a model server loading its model, a generic service listening on its
//! port), one access-log line per request, a stack trace before a crash-looping container
//! exits, progress and a result for Job Pods.
//!
//! Memory is bounded: each container *instance* (a restart is a new instance; the current
//! and the previous one are kept, for `--previous`) holds at most [`MAX_LINES`] written
//! lines and [`MAX_BYTES`] bytes, oldest dropped, and lines longer than [`MAX_LINE_BYTES`]
//! are cut. Request lines are not stored at all: like the Pod's metrics
//! ([`super::metrics`]) they are a closed-form function of time — request *i* of a
//! container started at *t₀* with rate *r* happened at *t₀ + i/r*, its status and latency
//! derived from *i* — so a reader computes the lines of the window it wants, and an idle
//! cluster does no work. The same request rate (`sim.mooring.dev/request-rate`), error
//! rate and mean latency annotations drive both. Requests really answered through a
//! load-balancer address ([`super::listeners`]) are written as lines too.
//!
//! A reader takes a snapshot ([`PodLogs::read`]) and, to follow, polls with the
//! [`Cursor`] it got ([`PodLogs::poll`]): nothing is buffered per reader, so a slow reader
//! only falls behind (and loses what leaves the window), it never holds up the kubelet.
//! A Pod's logs go when the Pod goes.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

/// Most lines kept (and shown) per container instance.
pub const MAX_LINES: usize = 1000;
/// Most bytes kept (and shown) per container instance.
pub const MAX_BYTES: usize = 256 * 1024;
/// Longer lines are cut to this many bytes.
pub const MAX_LINE_BYTES: usize = 16 * 1024;
/// Synthesized lines a single poll returns at most (a reader that fell further behind
/// skips ahead).
const MAX_POLL_LINES: u64 = MAX_LINES as u64;

/// Nanoseconds since the Unix epoch.
pub type Nanos = i64;

/// Now, in [`Nanos`].
pub fn now_nanos() -> Nanos {
    i64::try_from(mooring_core::time::now().as_nanosecond()).unwrap_or(i64::MAX)
}

/// A timestamp as Go's `time.RFC3339Nano` writes it (trailing zeros of the fraction
/// dropped), as the kubelet prefixes lines with `timestamps=true`.
pub fn rfc3339_nano(ts: Nanos) -> String {
    let secs = ts.div_euclid(1_000_000_000);
    let frac = ts.rem_euclid(1_000_000_000);
    let base = mooring_core::time::from_unix(secs)
        .map(mooring_core::time::format)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".into());
    if frac == 0 {
        return base;
    }
    let digits = format!("{frac:09}");
    let digits = digits.trim_end_matches('0');
    format!("{}.{digits}Z", base.trim_end_matches('Z'))
}

/// How a container's request lines look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Style {
    /// nginx-like combined access log.
    Web,
    /// A Python model server (uvicorn access log).
    Serving,
    /// logfmt.
    Generic,
}

impl Style {
    /// The style fitting an image name.
    pub fn of_image(image: &str) -> Style {
        let i = image.to_ascii_lowercase();
        let repo = i.rsplit('/').next().unwrap_or(&i);
        const SERVING: &[&str] = &[
            "vllm",
            "triton",
            "tgi",
            "text-generation",
            "torchserve",
            "kserve",
            "serve",
            "model",
            "ollama",
            "llama",
            "mlserver",
            "seldon",
            "bentoml",
            "predict",
            "infer",
        ];
        const WEB: &[&str] = &["nginx", "httpd", "caddy", "envoy", "traefik", "haproxy"];
        if SERVING.iter().any(|s| repo.contains(s)) {
            Style::Serving
        } else if WEB.iter().any(|s| repo.contains(s)) {
            Style::Web
        } else {
            Style::Generic
        }
    }
}

/// Lines produced over time by a running container instance.
#[derive(Debug, Clone, PartialEq)]
pub enum Synth {
    /// Requests at `rate` per (real) second: `error_rate` of them answered 500, latency
    /// exponentially distributed around `latency_ms`.
    Requests {
        style: Style,
        rate: f64,
        error_rate: f64,
        latency_ms: f64,
    },
    /// A Job's progress: one line per `1/rate` seconds.
    Work { rate: f64 },
}

impl Synth {
    fn rate(&self) -> f64 {
        let r = match self {
            Synth::Requests { rate, .. } | Synth::Work { rate } => *rate,
        };
        if r.is_finite() {
            r.clamp(0.0, 1.0e6)
        } else {
            0.0
        }
    }

    /// The `i`th line (0-based) of seed `seed`.
    fn line(&self, i: u64, ts: Nanos, seed: u64) -> String {
        match self {
            Synth::Work { .. } => format!("Processing batch {}", i + 1),
            Synth::Requests {
                style,
                error_rate,
                latency_ms,
                ..
            } => {
                let err = error_rate.clamp(0.0, 1.0);
                // Exactly floor(n × err) of the first n requests fail, as the metrics count.
                let failed = ((i + 1) as f64 * err).floor() > (i as f64 * err).floor();
                let code = if failed { 500 } else { 200 };
                let h = mix(seed ^ i.wrapping_mul(0x9e37_79b9_7f4a_7c15));
                let u = ((h >> 11) as f64 + 1.0) / ((1u64 << 53) as f64 + 1.0);
                let latency = -latency_ms.max(0.001) * u.ln();
                let client = format!("10.244.{}.{}", (h >> 8) % 3, 2 + (h >> 16) % 250);
                let port = 30000 + (h >> 24) % 30000;
                match style {
                    Style::Web => {
                        let when = clf_time(ts);
                        let bytes = if failed { 177 } else { 615 };
                        format!("{client} - - [{when}] \"GET / HTTP/1.1\" {code} {bytes} \"-\" \"python-requests/2.32.3\" rt={:.3}", latency / 1000.0)
                    }
                    Style::Serving => {
                        let reason = if failed {
                            "500 Internal Server Error"
                        } else {
                            "200 OK"
                        };
                        format!("INFO:     {client}:{port} - \"POST /v1/predict HTTP/1.1\" {reason}")
                    }
                    Style::Generic => format!(
                        "level=info msg=\"request served\" method=GET path=/ status={code} duration={latency:.1}ms remote={client}:{port}"
                    ),
                }
            }
        }
    }
}

/// SplitMix64 finaliser: a cheap, well-spread hash of a number.
fn mix(mut z: u64) -> u64 {
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// `06/Dec/2026:16:58:01 +0000`, the time format of nginx's access log.
fn clf_time(ts: Nanos) -> String {
    mooring_core::time::from_unix(ts.div_euclid(1_000_000_000))
        .map(|t| t.strftime("%d/%b/%Y:%H:%M:%S +0000").to_string())
        .unwrap_or_default()
}

/// What a container prints when it starts.
pub fn startup_lines(
    style: Style,
    container: &str,
    image: &str,
    port: i64,
    ts: Nanos,
) -> Vec<String> {
    match style {
        Style::Web => {
            let t = mooring_core::time::from_unix(ts.div_euclid(1_000_000_000))
                .map(|t| t.strftime("%Y/%m/%d %H:%M:%S").to_string())
                .unwrap_or_default();
            vec![
                "/docker-entrypoint.sh: /docker-entrypoint.d/ is not empty, will attempt to perform configuration".into(),
                "/docker-entrypoint.sh: Configuration complete; ready for start up".into(),
                format!("{t} [notice] 1#1: using the \"epoll\" event method"),
                format!("{t} [notice] 1#1: nginx/1.27.3 ({image})"),
                format!("{t} [notice] 1#1: start worker processes"),
                format!("{t} [notice] 1#1: listening on 0.0.0.0:{port}"),
            ]
        }
        Style::Serving => {
            let model = image
                .rsplit('/')
                .next()
                .unwrap_or(image)
                .split([':', '@'])
                .next()
                .unwrap_or(container);
            vec![
                "INFO:     Started server process [1]".into(),
                "INFO:     Waiting for application startup.".into(),
                format!("Loading model {model} from /models/{model} (image {image})"),
                format!("Model {model} loaded in 2.41s"),
                "INFO:     Application startup complete.".into(),
                format!(
                    "INFO:     Uvicorn running on http://0.0.0.0:{port} (Press CTRL+C to quit)"
                ),
            ]
        }
        Style::Generic => vec![
            format!("level=info msg=\"starting {container}\" image={image}"),
            "level=info msg=\"configuration loaded\" source=env".into(),
            format!("level=info msg=\"listening\" addr=0.0.0.0:{port}"),
        ],
    }
}

/// What a crashing container prints before it exits with code 1.
pub fn crash_lines(style: Style) -> Vec<String> {
    match style {
        Style::Serving => vec![
            "Traceback (most recent call last):".into(),
            "  File \"/app/server.py\", line 42, in <module>".into(),
            "    main()".into(),
            "  File \"/app/server.py\", line 17, in main".into(),
            "    model = load_model(os.environ[\"MODEL_PATH\"])".into(),
            "  File \"<frozen os>\", line 714, in __getitem__".into(),
            "KeyError: 'MODEL_PATH'".into(),
        ],
        Style::Web | Style::Generic => vec![
            "panic: runtime error: invalid memory address or nil pointer dereference".into(),
            "[signal SIGSEGV: segmentation violation code=0x1 addr=0x0 pc=0x4a5b2c]".into(),
            String::new(),
            "goroutine 1 [running]:".into(),
            "main.loadConfig(0x0)".into(),
            "\t/app/main.go:42 +0x2c".into(),
            "main.main()".into(),
            "\t/app/main.go:17 +0x45".into(),
        ],
    }
}

/// What a Job Pod prints when its work ends.
pub fn job_exit_lines(code: i64, batches: u64) -> Vec<String> {
    if code == 0 {
        vec![
            format!("Done: processed {batches} batches"),
            "Job completed successfully".into(),
        ]
    } else {
        vec![
            format!(
                "Error: batch {} failed: connection reset by peer",
                batches + 1
            ),
            format!("exit status {code}"),
        ]
    }
}

/// One logged line.
#[derive(Debug, Clone)]
struct Line {
    ts: Nanos,
    seq: u64,
    text: String,
}

/// One run of a container.
#[derive(Debug)]
struct Instance {
    restart: i64,
    lines: VecDeque<Line>,
    bytes: usize,
    next_seq: u64,
    synth: Option<(Synth, Nanos)>,
    ended: Option<Nanos>,
    seed: u64,
}

impl Instance {
    fn push(&mut self, ts: Nanos, mut text: String) {
        if text.len() > MAX_LINE_BYTES {
            let mut cut = MAX_LINE_BYTES;
            while !text.is_char_boundary(cut) {
                cut -= 1;
            }
            text.truncate(cut);
        }
        // Lines keep their order even if the clock steps back.
        let ts = self.lines.back().map_or(ts, |l| ts.max(l.ts));
        self.bytes += text.len() + 1;
        self.lines.push_back(Line {
            ts,
            seq: self.next_seq,
            text,
        });
        self.next_seq += 1;
        while self.lines.len() > MAX_LINES || self.bytes > MAX_BYTES {
            match self.lines.pop_front() {
                Some(l) => self.bytes -= l.text.len() + 1,
                None => break,
            }
        }
    }

    /// Synthesized lines so far: (count at `now`, first index's time, nanos per line).
    fn synth_count(&self, now: Nanos) -> u64 {
        let Some((s, from)) = &self.synth else {
            return 0;
        };
        let until = self.ended.map_or(now, |e| e.min(now));
        let rate = s.rate();
        if until <= *from || rate <= 0.0 {
            return 0;
        }
        ((until - from) as f64 / 1e9 * rate).floor().min(1.0e15) as u64
    }

    fn synth_ts(&self, i: u64) -> Nanos {
        match &self.synth {
            Some((s, from)) if s.rate() > 0.0 => from + ((i + 1) as f64 / s.rate() * 1e9) as Nanos,
            _ => 0,
        }
    }

    /// Synthesized lines `[lo, hi)`.
    fn synth_lines(&self, lo: u64, hi: u64) -> Vec<(Nanos, String)> {
        let Some((s, _)) = &self.synth else {
            return vec![];
        };
        (lo..hi)
            .map(|i| {
                let ts = self.synth_ts(i);
                (ts, s.line(i, ts, self.seed))
            })
            .collect()
    }

    /// The first synthesized index at or after `since`.
    fn synth_index_at(&self, since: Nanos) -> u64 {
        match &self.synth {
            Some((s, from)) if s.rate() > 0.0 && since > *from => {
                let i = ((since - from) as f64 / 1e9 * s.rate()).floor() as u64;
                i.saturating_sub(1)
            }
            _ => 0,
        }
    }
}

/// Where a follower is: the next stored line and the next synthesized one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Cursor {
    seq: u64,
    synth: u64,
}

/// The outcome of [`PodLogs::poll`].
#[derive(Debug)]
pub enum Poll {
    /// New lines (maybe none) and where to continue.
    Lines(Vec<(Nanos, String)>, Cursor),
    /// The instance ended and everything was delivered.
    Ended,
    /// The Pod (or this instance) is gone.
    Gone,
}

#[derive(Debug, Default)]
struct PodEntry {
    uid: String,
    containers: HashMap<String, Vec<Instance>>,
}

type PodKey = (String, String);

/// Logs of every simulated container. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct PodLogs {
    inner: Arc<Mutex<HashMap<PodKey, PodEntry>>>,
}

impl std::fmt::Debug for PodLogs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PodLogs").finish_non_exhaustive()
    }
}

impl PodLogs {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PodKey, PodEntry>> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Instance `restart` of a container started, printing `lines`, then producing
    /// `synth` lines from `synth_from` on. Older instances end; only the previous one is
    /// kept.
    #[allow(clippy::too_many_arguments)]
    pub fn started(
        &self,
        namespace: &str,
        pod: &str,
        uid: &str,
        container: &str,
        restart: i64,
        lines: Vec<String>,
        synth: Option<Synth>,
        synth_delay_nanos: i64,
    ) {
        let now = now_nanos();
        let mut all = self.lock();
        let entry = all
            .entry((namespace.to_string(), pod.to_string()))
            .or_default();
        if entry.uid != uid {
            *entry = PodEntry {
                uid: uid.to_string(),
                containers: HashMap::new(),
            };
        }
        let instances = entry.containers.entry(container.to_string()).or_default();
        if instances.iter().any(|i| i.restart >= restart) {
            return;
        }
        for i in instances.iter_mut() {
            i.ended.get_or_insert(now);
        }
        let seed = mix(u64::from(super::util::fnv32a(
            format!("{uid}/{container}/{restart}").as_bytes(),
        )));
        let mut inst = Instance {
            restart,
            lines: VecDeque::new(),
            bytes: 0,
            next_seq: 0,
            synth: synth.map(|s| (s, now + synth_delay_nanos.max(0))),
            ended: None,
            seed,
        };
        for (k, l) in lines.into_iter().enumerate() {
            inst.push(now + k as i64 * 1000, l);
        }
        instances.push(inst);
        instances.sort_by_key(|i| i.restart);
        while instances.len() > 2 {
            instances.remove(0);
        }
    }

    /// Instance `restart` of a container exited after printing `lines`.
    pub fn exited(
        &self,
        namespace: &str,
        pod: &str,
        container: &str,
        restart: i64,
        lines: Vec<String>,
    ) {
        let now = now_nanos();
        let mut all = self.lock();
        let Some(inst) = all
            .get_mut(&(namespace.to_string(), pod.to_string()))
            .and_then(|e| e.containers.get_mut(container))
            .and_then(|v| v.iter_mut().find(|i| i.restart == restart))
        else {
            return;
        };
        if inst.ended.is_some() {
            return;
        }
        let n = inst.synth_count(now);
        // The last synthesized line before the exit, so exit lines come after it.
        let after = if n > 0 { inst.synth_ts(n - 1) } else { now };
        inst.ended = Some(now);
        for (k, l) in lines.into_iter().enumerate() {
            inst.push(now.max(after) + k as i64 * 1000, l);
        }
    }

    /// Synthesized lines a container instance produced by now (Job progress counts).
    pub fn synthesized(&self, namespace: &str, pod: &str, container: &str, restart: i64) -> u64 {
        let all = self.lock();
        all.get(&(namespace.to_string(), pod.to_string()))
            .and_then(|e| e.containers.get(container))
            .and_then(|v| v.iter().find(|i| i.restart == restart))
            .map_or(0, |i| i.synth_count(now_nanos()))
    }

    /// A line written now by the newest running instance of every container of the Pod
    /// (a request really answered through a load-balancer address).
    pub fn append(&self, namespace: &str, pod: &str, line: &str) {
        let now = now_nanos();
        let mut all = self.lock();
        let Some(e) = all.get_mut(&(namespace.to_string(), pod.to_string())) else {
            return;
        };
        for v in e.containers.values_mut() {
            if let Some(inst) = v.last_mut().filter(|i| i.ended.is_none()) {
                inst.push(now, line.to_string());
            }
        }
    }

    /// The Pod is gone: its logs go too (`uid` empty: whichever Pod had the name).
    pub fn remove(&self, namespace: &str, pod: &str, uid: &str) {
        let mut all = self.lock();
        let key = (namespace.to_string(), pod.to_string());
        if all
            .get(&key)
            .is_some_and(|e| e.uid == uid || uid.is_empty())
        {
            all.remove(&key);
        }
    }

    /// Pods with logs (for tests and benchmarks).
    pub fn pods(&self) -> usize {
        self.lock().len()
    }

    /// The lines of instance `restart` of a container at or after `since`, the last
    /// `tail` of them (at most [`MAX_LINES`] / [`MAX_BYTES`]), and the cursor to follow
    /// from. `None` when the instance has no logs (never started here, or gone).
    pub fn read(
        &self,
        at: &InstanceRef<'_>,
        since: Option<Nanos>,
        tail: Option<u64>,
    ) -> Option<(Vec<(Nanos, String)>, Cursor)> {
        let now = now_nanos();
        let all = self.lock();
        let inst = find(&all, at)?;
        let n = inst.synth_count(now);
        let want = tail.unwrap_or(u64::MAX).min(MAX_LINES as u64);
        let lo = n
            .saturating_sub(want)
            .max(since.map_or(0, |s| inst.synth_index_at(s)));
        let mut lines: Vec<(Nanos, String)> = inst
            .lines
            .iter()
            .map(|l| (l.ts, l.text.clone()))
            .chain(inst.synth_lines(lo, n))
            .filter(|(ts, _)| since.is_none_or(|s| *ts >= s))
            .collect();
        lines.sort_by_key(|(ts, _)| *ts);
        let keep = lines.len().min(want as usize);
        lines.drain(..lines.len() - keep);
        let mut bytes: usize = lines.iter().map(|(_, l)| l.len() + 1).sum();
        let mut drop = 0;
        while bytes > MAX_BYTES && drop < lines.len() {
            bytes -= lines[drop].1.len() + 1;
            drop += 1;
        }
        lines.drain(..drop);
        Some((
            lines,
            Cursor {
                seq: inst.next_seq,
                synth: n,
            },
        ))
    }

    /// Lines written since `cursor`.
    pub fn poll(&self, at: &InstanceRef<'_>, cursor: Cursor) -> Poll {
        let now = now_nanos();
        let all = self.lock();
        let Some(inst) = find(&all, at) else {
            return Poll::Gone;
        };
        let n = inst.synth_count(now);
        let lo = cursor.synth.max(n.saturating_sub(MAX_POLL_LINES));
        let mut lines: Vec<(Nanos, String)> = inst
            .lines
            .iter()
            .filter(|l| l.seq >= cursor.seq)
            .map(|l| (l.ts, l.text.clone()))
            .chain(inst.synth_lines(lo, n))
            .collect();
        if lines.is_empty() && inst.ended.is_some() {
            return Poll::Ended;
        }
        lines.sort_by_key(|(ts, _)| *ts);
        Poll::Lines(
            lines,
            Cursor {
                seq: inst.next_seq,
                synth: n.max(cursor.synth),
            },
        )
    }
}

/// One container instance of one Pod (by uid, so a new Pod of the same name is another).
#[derive(Debug, Clone, Copy)]
pub struct InstanceRef<'a> {
    pub namespace: &'a str,
    pub pod: &'a str,
    pub uid: &'a str,
    pub container: &'a str,
    pub restart: i64,
}

fn find<'a>(all: &'a HashMap<PodKey, PodEntry>, at: &InstanceRef<'_>) -> Option<&'a Instance> {
    all.get(&(at.namespace.to_string(), at.pod.to_string()))
        .filter(|e| e.uid == at.uid)?
        .containers
        .get(at.container)?
        .iter()
        .find(|i| i.restart == at.restart)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(uid: &str, restart: i64) -> InstanceRef<'_> {
        InstanceRef {
            namespace: "ns",
            pod: "p",
            uid,
            container: "c",
            restart,
        }
    }

    #[test]
    fn timestamps_are_rfc3339_nano() {
        assert_eq!(rfc3339_nano(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339_nano(1_500_000_000), "1970-01-01T00:00:01.5Z");
        assert_eq!(
            rfc3339_nano(1_000_000_123),
            "1970-01-01T00:00:01.000000123Z"
        );
    }

    #[test]
    fn styles_follow_images() {
        assert_eq!(Style::of_image("nginx:1.27"), Style::Web);
        assert_eq!(
            Style::of_image("ghcr.io/acme/model-server:v2"),
            Style::Serving
        );
        assert_eq!(Style::of_image("vllm/vllm-openai"), Style::Serving);
        assert_eq!(Style::of_image("busybox"), Style::Generic);
    }

    #[test]
    fn instances_are_bounded_and_keep_the_previous_one() {
        let logs = PodLogs::default();
        logs.started("ns", "p", "u", "c", 0, vec!["hello".into()], None, 0);
        for i in 0..(MAX_LINES + 50) {
            logs.append("ns", "p", &format!("line {i}"));
        }
        let (lines, _) = logs.read(&at("u", 0), None, None).expect("logs");
        assert_eq!(lines.len(), MAX_LINES);
        assert_eq!(lines.last().map(|l| l.1.as_str()), Some("line 1049"));
        // Huge lines are cut; bytes stay bounded.
        for _ in 0..40 {
            logs.append("ns", "p", &"x".repeat(100_000));
        }
        let (lines, _) = logs.read(&at("u", 0), None, None).expect("logs");
        let bytes: usize = lines.iter().map(|l| l.1.len() + 1).sum();
        assert!(bytes <= MAX_BYTES, "{bytes}");
        assert!(lines.iter().all(|l| l.1.len() <= MAX_LINE_BYTES));
        // Restarts: current and previous kept, older dropped.
        logs.exited("ns", "p", "c", 0, vec!["bye".into()]);
        logs.started("ns", "p", "u", "c", 1, vec!["again".into()], None, 0);
        logs.started("ns", "p", "u", "c", 2, vec!["and again".into()], None, 0);
        assert!(logs.read(&at("u", 0), None, None).is_none());
        let (prev, _) = logs.read(&at("u", 1), None, None).expect("previous");
        assert_eq!(prev[0].1, "again");
        // Another Pod with the same name (new uid) starts afresh; removal drops all.
        assert!(logs.read(&at("other", 2), None, None).is_none());
        logs.remove("ns", "p", "u");
        assert_eq!(logs.pods(), 0);
    }

    #[test]
    fn request_lines_are_a_function_of_time() {
        let logs = PodLogs::default();
        let synth = Synth::Requests {
            style: Style::Generic,
            rate: 1.0e6,
            error_rate: 0.5,
            latency_ms: 50.0,
        };
        logs.started("ns", "p", "u", "c", 0, vec!["start".into()], Some(synth), 0);
        std::thread::sleep(std::time::Duration::from_millis(5));
        let (lines, cursor) = logs.read(&at("u", 0), None, Some(10)).expect("logs");
        assert_eq!(lines.len(), 10);
        assert!(lines.windows(2).all(|w| w[0].0 <= w[1].0));
        // Half the requests fail, as the error rate says.
        let all = logs.read(&at("u", 0), None, None).expect("logs").0;
        let failed = all.iter().filter(|l| l.1.contains("status=500")).count();
        assert!(
            (failed as i64 - all.len() as i64 / 2).abs() <= 1,
            "{failed}"
        );
        std::thread::sleep(std::time::Duration::from_millis(2));
        match logs.poll(&at("u", 0), cursor) {
            Poll::Lines(more, next) => {
                assert!(!more.is_empty() && more.len() as u64 <= MAX_POLL_LINES);
                assert!(more[0].0 >= lines[9].0);
                assert!(next.synth > cursor.synth);
            }
            other => panic!("{other:?}"),
        }
        logs.exited("ns", "p", "c", 0, vec![]);
        let end = logs.read(&at("u", 0), None, None).expect("logs").1;
        assert!(matches!(logs.poll(&at("u", 0), end), Poll::Ended));
        assert!(matches!(
            logs.poll(
                &InstanceRef {
                    pod: "gone",
                    ..at("u", 0)
                },
                end
            ),
            Poll::Gone
        ));
    }
}
