//! The one work queue of the controller, shared by Applications ([`crate::queue`]) and
//! ApplicationSets ([`crate::appset`]): keys (`namespace/name`) arrive on an unbounded
//! channel from many senders (watches, webhooks, the jittered poll, repository and
//! cluster Secret watches) and a handler runs for each, with the rules a Kubernetes work
//! queue has (client-go's `workqueue`, which controller-runtime and kube-runtime follow):
//!
//! - a key waiting to run is queued once, however often it is sent;
//! - a key is never run twice at once: sent while it runs, it runs once more afterwards
//!   (it changed while being reconciled, so the result may already be stale);
//! - at most `concurrency` keys run at a time;
//! - the handler may ask to run the key again after a delay; each key has at most one
//!   pending timer, and a later request only moves it sooner (client-go's `AddAfter`);
//! - the running handlers and the timers belong to the queue's task: aborting that task
//!   (stopping the controller) aborts them too, like a killed process.
//!
//! Why not kube-runtime's `Controller`: its triggers are object watches, while most of
//! ours are bare keys (webhooks, the poll, Secret watches, live-object changes mapped to
//! an app through the tracking index), and it would own the watches the controller
//! already runs. This type keeps the senders as they are and has one home for the rules.

use std::collections::{BTreeSet, HashMap, HashSet, VecDeque};
use std::future::Future;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The queue's bookkeeping, without I/O: which keys wait, run, changed while running,
/// and when each timer fires.
#[derive(Debug, Default)]
struct Keys {
    /// Keys waiting to run, in arrival order, each once.
    pending: VecDeque<String>,
    queued: HashSet<String>,
    /// Keys whose handler runs now.
    busy: HashSet<String>,
    /// Busy keys sent again while running: they run once more when done.
    dirty: HashSet<String>,
    /// One timer per key: when it fires.
    timers: HashMap<String, Instant>,
    by_deadline: BTreeSet<(Instant, String)>,
}

impl Keys {
    /// A key was sent (or its timer fired).
    fn add(&mut self, key: String) {
        if self.busy.contains(&key) {
            self.dirty.insert(key);
        } else if self.queued.insert(key.clone()) {
            self.pending.push_back(key);
        }
    }

    /// The next key to run, now marked busy.
    fn start(&mut self) -> Option<String> {
        let key = self.pending.pop_front()?;
        self.queued.remove(&key);
        self.busy.insert(key.clone());
        Some(key)
    }

    /// `key`'s handler finished at `now`, asking to run again after `after`, if any.
    fn done(&mut self, key: &str, after: Option<Duration>, now: Instant) {
        self.busy.remove(key);
        if self.dirty.remove(key) {
            self.add(key.to_string());
        }
        if let Some(after) = after {
            self.schedule(key, now + after);
        }
    }

    /// Run `key` at `at`, unless its timer already fires sooner.
    fn schedule(&mut self, key: &str, at: Instant) {
        match self.timers.get(key) {
            Some(t) if *t <= at => return,
            Some(t) => {
                self.by_deadline.remove(&(*t, key.to_string()));
            }
            None => {}
        }
        self.timers.insert(key.to_string(), at);
        self.by_deadline.insert((at, key.to_string()));
    }

    /// When the next timer fires.
    fn next_deadline(&self) -> Option<Instant> {
        self.by_deadline.first().map(|(t, _)| *t)
    }

    /// Queue the keys whose timers fired by `now`.
    fn fire(&mut self, now: Instant) {
        while let Some((t, key)) = self.by_deadline.first().cloned() {
            if t > now {
                break;
            }
            self.by_deadline.remove(&(t, key.clone()));
            self.timers.remove(&key);
            self.add(key);
        }
    }
}

/// A work queue running `handler` for the keys received, at most `concurrency` at a time.
pub(crate) struct WorkQueue {
    concurrency: usize,
    /// Set to the number of keys waiting after every change (`workqueue_depth`).
    depth: Option<prometheus_client::metrics::gauge::Gauge>,
}

impl WorkQueue {
    /// A queue running at most `concurrency` keys at a time (at least one).
    pub(crate) fn new(concurrency: usize) -> Self {
        WorkQueue {
            concurrency: concurrency.max(1),
            depth: None,
        }
    }

    /// Report the number of keys waiting (not running) in `gauge`.
    pub(crate) fn with_depth(mut self, gauge: prometheus_client::metrics::gauge::Gauge) -> Self {
        self.depth = Some(gauge);
        self
    }

    /// Run until every sender of `rx` is gone. `handler` returns when to run the key
    /// again, if it should. Aborting the task running this aborts the running handlers.
    pub(crate) async fn run<H, F>(self, mut rx: mpsc::UnboundedReceiver<String>, mut handler: H)
    where
        H: FnMut(String) -> F,
        F: Future<Output = Option<Duration>> + Send + 'static,
    {
        let mut keys = Keys::default();
        let mut running = tokio::task::JoinSet::new();
        let mut running_keys: HashMap<tokio::task::Id, String> = HashMap::new();
        loop {
            while running.len() < self.concurrency {
                let Some(key) = keys.start() else {
                    break;
                };
                let work = handler(key.clone());
                let task = running.spawn(work);
                running_keys.insert(task.id(), key);
            }
            if let Some(g) = &self.depth {
                g.set(i64::try_from(keys.pending.len()).unwrap_or(i64::MAX));
            }
            let deadline = keys.next_deadline();
            tokio::select! {
                key = rx.recv() => match key {
                    Some(key) => keys.add(key),
                    None => return,
                },
                Some(done) = running.join_next_with_id(), if !running.is_empty() => {
                    let (id, after) = match done {
                        Ok((id, after)) => (id, after),
                        Err(e) => {
                            tracing::error!("work queue handler failed: {e}");
                            (e.id(), None)
                        }
                    };
                    if let Some(key) = running_keys.remove(&id) {
                        keys.done(&key, after, Instant::now());
                    }
                }
                () = sleep_until(deadline), if deadline.is_some() => keys.fire(Instant::now()),
            }
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(t) => tokio::time::sleep_until(t).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// What the handler saw: keys started, in order, and the most running at once.
    #[derive(Default)]
    struct Log {
        started: Vec<String>,
        running: usize,
        most: usize,
    }

    /// A queue whose handler records into the log, takes `work` (paused time) and
    /// returns `after` for keys it names.
    fn spawn(
        concurrency: usize,
        work: Duration,
        after: HashMap<String, Duration>,
    ) -> (
        mpsc::UnboundedSender<String>,
        Arc<Mutex<Log>>,
        tokio::task::JoinHandle<()>,
    ) {
        let (tx, rx) = mpsc::unbounded_channel();
        let log: Arc<Mutex<Log>> = Arc::default();
        let l = log.clone();
        let task = tokio::spawn(WorkQueue::new(concurrency).run(rx, move |key: String| {
            let (l, after) = (l.clone(), after.get(&key).copied());
            async move {
                {
                    let mut g = l.lock().expect("log");
                    g.started.push(key);
                    g.running += 1;
                    g.most = g.most.max(g.running);
                }
                tokio::time::sleep(work).await;
                l.lock().expect("log").running -= 1;
                after
            }
        }));
        (tx, log, task)
    }

    fn started(log: &Mutex<Log>) -> Vec<String> {
        log.lock().expect("log").started.clone()
    }

    async fn settle() {
        for _ in 0..20 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_key_sent_while_running_runs_once_more() {
        let (tx, log, _task) = spawn(4, Duration::from_secs(1), HashMap::new());
        tx.send("a".into()).expect("send");
        settle().await;
        for _ in 0..5 {
            tx.send("a".into()).expect("send");
        }
        settle().await;
        assert_eq!(started(&log), ["a"], "never twice at once");
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(started(&log), ["a", "a"], "once more, not five times");
    }

    #[tokio::test(start_paused = true)]
    async fn a_waiting_key_is_queued_once() {
        let (tx, log, _task) = spawn(1, Duration::from_secs(1), HashMap::new());
        for k in ["a", "b", "b", "c", "b"] {
            tx.send(k.into()).expect("send");
        }
        tokio::time::sleep(Duration::from_secs(10)).await;
        assert_eq!(started(&log), ["a", "b", "c"]);
    }

    #[tokio::test(start_paused = true)]
    async fn at_most_concurrency_keys_run_at_once() {
        let (tx, log, _task) = spawn(2, Duration::from_secs(1), HashMap::new());
        for k in ["a", "b", "c", "d", "e"] {
            tx.send(k.into()).expect("send");
        }
        settle().await;
        assert_eq!(started(&log).len(), 2);
        tokio::time::sleep(Duration::from_secs(10)).await;
        let log = log.lock().expect("log");
        assert_eq!(log.started.len(), 5);
        assert_eq!(log.most, 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_requeue_after_runs_the_key_again_after_the_delay() {
        let after = HashMap::from([("a".to_string(), Duration::from_secs(30))]);
        let (tx, log, _task) = spawn(1, Duration::from_secs(1), after);
        tx.send("a".into()).expect("send");
        tokio::time::sleep(Duration::from_secs(30)).await;
        assert_eq!(started(&log), ["a"], "not before the delay");
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert_eq!(started(&log), ["a", "a"]);
        tokio::time::sleep(Duration::from_secs(31)).await;
        assert_eq!(started(&log), ["a", "a", "a"], "and again after each run");
    }

    #[tokio::test(start_paused = true)]
    async fn one_timer_per_key() {
        let after = HashMap::from([("a".to_string(), Duration::from_secs(30))]);
        let (tx, log, _task) = spawn(1, Duration::from_secs(1), after);
        // Three runs within the delay: each asks for a timer, one fires.
        for _ in 0..3 {
            tx.send("a".into()).expect("send");
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
        assert_eq!(started(&log).len(), 3);
        tokio::time::sleep(Duration::from_secs(26)).await;
        assert_eq!(started(&log).len(), 4, "the first timer fired");
        tokio::time::sleep(Duration::from_secs(20)).await;
        assert_eq!(
            started(&log).len(),
            4,
            "the later requests did not add timers"
        );
    }

    #[test]
    fn a_sooner_request_moves_the_timer() {
        let now = Instant::now();
        let mut keys = Keys::default();
        keys.schedule("a", now + Duration::from_secs(30));
        keys.schedule("a", now + Duration::from_secs(60));
        assert_eq!(keys.next_deadline(), Some(now + Duration::from_secs(30)));
        keys.schedule("a", now + Duration::from_secs(2));
        assert_eq!(keys.next_deadline(), Some(now + Duration::from_secs(2)));
        assert_eq!(keys.by_deadline.len(), 1);
        keys.fire(now + Duration::from_secs(2));
        assert_eq!(keys.start().as_deref(), Some("a"));
        assert_eq!(keys.next_deadline(), None);
    }

    #[tokio::test(start_paused = true)]
    async fn aborting_the_queue_stops_running_work() {
        let (tx, log, task) = spawn(2, Duration::from_secs(60), HashMap::new());
        tx.send("a".into()).expect("send");
        tx.send("b".into()).expect("send");
        settle().await;
        assert_eq!(log.lock().expect("log").running, 2);
        task.abort();
        let _ = task.await;
        settle().await;
        // The handlers were dropped mid-sleep: they never finish.
        tokio::time::sleep(Duration::from_secs(120)).await;
        assert_eq!(log.lock().expect("log").running, 2);
        assert_eq!(Arc::strong_count(&log), 1, "the handlers were dropped");
    }

    #[tokio::test(start_paused = true)]
    async fn a_panicking_handler_frees_its_key() {
        let (tx, rx) = mpsc::unbounded_channel::<String>();
        let runs = Arc::new(Mutex::new(0));
        let r = runs.clone();
        let _task = tokio::spawn(WorkQueue::new(1).run(rx, move |_key: String| {
            let r = r.clone();
            async move {
                let n = {
                    let mut g = r.lock().expect("runs");
                    *g += 1;
                    *g
                };
                assert!(n > 1, "first run panics");
                None
            }
        }));
        tx.send("a".into()).expect("send");
        settle().await;
        tx.send("a".into()).expect("send");
        settle().await;
        assert_eq!(*runs.lock().expect("runs"), 2);
    }
}
