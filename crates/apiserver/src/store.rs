//! Storage: SQLite for durability, an in-memory index for reads, and an event log for watch.
//!
//! The design follows etcd as Kubernetes uses it. There is one global revision; every write
//! (create, update, delete) takes the next revision, which becomes the object's
//! `metadata.resourceVersion`. Writes are serialised through one writer lock and committed
//! to SQLite (WAL, one transaction per write) before they become visible, so a write that
//! was acknowledged survives a restart, and the revision continues from where it stopped.
//!
//! Reads never touch SQLite: all objects are held in memory as their serialised JSON (so a
//! list is a concatenation, not a re-serialisation) plus the few parsed fields the server
//! filters and indexes on (labels, uid, owner uids). Watchers read a bounded log of recent
//! events and then follow a broadcast channel; asking for a revision older than the log
//! holds is answered with 410 Gone, exactly like a compacted etcd revision. After a restart
//! the log starts empty, so only the current revision can be watched from.
//!
//! Each logged event also holds the object as it was before the write, so the log doubles
//! as etcd's MVCC history: [`Store::list_at`] rebuilds a past revision (continue tokens
//! page over the snapshot of their first page; `resourceVersionMatch=Exact`), and a watch
//! with a selector can tell an object leaving its selection from one that never matched.
//!
//! Writes are expressed as a closure over the current object ([`Store::write`]), executed
//! under the writer lock: optimistic-concurrency checks, generation bumps and finalizer
//! logic in the API layer are therefore atomic with the write itself.

use crate::error::ApiError;
use bytes::Bytes;
use rusqlite::{params, Connection, OptionalExtension};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::path::Path;
use std::sync::{Arc, Mutex, RwLock};
use tokio::sync::broadcast;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot make {path} private (0600): {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("storage error in {path}: {source}")]
    Sqlite {
        path: String,
        #[source]
        source: rusqlite::Error,
    },
    #[error("stored object {key} is not valid JSON: {source}")]
    Corrupt {
        key: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot serialise object {key}: {source}")]
    Serialise {
        key: String,
        #[source]
        source: serde_json::Error,
    },
}

/// A storage failure reaches a client as a 500. The conversion lives here, next to
/// `StoreError`, so that `error` (the lower layer) does not need to know about the store.
impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError::Internal(e.to_string())
    }
}

/// Identity of a stored object: storage key of its resource (`group/plural`), namespace
/// (empty for cluster-scoped) and name.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ObjKey {
    pub resource: String,
    pub namespace: String,
    pub name: String,
}

impl ObjKey {
    pub fn new(resource: &str, namespace: &str, name: &str) -> Self {
        ObjKey {
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        }
    }
}

impl std::fmt::Display for ObjKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.namespace.is_empty() {
            write!(f, "{} {}", self.resource, self.name)
        } else {
            write!(f, "{} {}/{}", self.resource, self.namespace, self.name)
        }
    }
}

/// One stored object version.
#[derive(Debug)]
pub struct Stored {
    pub key: ObjKey,
    pub rv: u64,
    /// The full object as JSON, with `metadata.resourceVersion` set to `rv`.
    pub json: Bytes,
    pub labels: serde_json::Map<String, Value>,
    pub uid: String,
    /// uids from `metadata.ownerReferences`.
    pub owners: Vec<String>,
    /// `metadata.deletionTimestamp` is set: the object is being deleted (what the
    /// garbage collector looks at on every write, without parsing the object).
    pub deleting: bool,
}

impl Stored {
    /// Parse the stored JSON. It was produced by `serde_json`, so this only fails on a
    /// corrupted database row.
    pub fn value(&self) -> Result<Value, StoreError> {
        serde_json::from_slice(&self.json).map_err(|source| StoreError::Corrupt {
            key: self.key.to_string(),
            source,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    Added,
    Modified,
    Deleted,
}

impl EventType {
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

#[derive(Debug)]
pub struct Event {
    pub kind: EventType,
    pub object: Arc<Stored>,
    /// The object before this write (`None` for a create): watchers with selectors need
    /// it to tell "left the selection" from "never matched", and [`Store::list_at`] to
    /// rebuild a past revision.
    pub prev: Option<Arc<Stored>>,
}

impl Event {
    pub fn rv(&self) -> u64 {
        self.object.rv
    }
}

/// What a write closure decides.
pub enum Write {
    /// Store this object (its `metadata.resourceVersion` is set by the store).
    Put(Value),
    Delete,
    /// Change nothing.
    Keep,
}

/// Result of a write.
#[derive(Debug, Clone)]
pub enum Written {
    Created(Arc<Stored>),
    Updated(Arc<Stored>),
    Deleted(Arc<Stored>),
    Unchanged(Option<Arc<Stored>>),
}

impl Written {
    pub fn stored(&self) -> Option<&Arc<Stored>> {
        match self {
            Written::Created(s) | Written::Updated(s) | Written::Deleted(s) => Some(s),
            Written::Unchanged(s) => s.as_ref(),
        }
    }
}

/// Backlog of events plus the live receiver for everything after them.
pub type WatchStart = (Vec<Arc<Event>>, broadcast::Receiver<Arc<Event>>);

type ByName = BTreeMap<(String, String), Arc<Stored>>;

struct State {
    rev: u64,
    objects: HashMap<String, ByName>,
    by_owner: HashMap<String, BTreeSet<ObjKey>>,
    by_uid: HashMap<String, ObjKey>,
    log: VecDeque<Arc<Event>>,
    /// JSON bytes of the logged events' objects.
    log_bytes: usize,
    /// Lowest revision a watch may start from (exclusive start revision).
    oldest_watchable: u64,
}

pub struct Store {
    conn: Mutex<Connection>,
    state: RwLock<State>,
    tx: broadcast::Sender<Arc<Event>>,
    log_capacity: usize,
    /// Bound on [`State::log_bytes`]: with many Applications, 50,000 events of status
    /// writes (several KiB each, plus the previous version each holds) would keep
    /// hundreds of MiB. Kubernetes' watch cache is bounded too; a watcher resuming from
    /// before the log gets `410 Gone` and lists again.
    log_bytes_capacity: usize,
    path: String,
}

/// How many past events watchers can resume from by default.
pub const DEFAULT_EVENT_LOG: usize = 50_000;
/// How many bytes of past objects the event log keeps by default (whichever bound of the
/// two is reached first applies). The previous version each event holds can add as much
/// again for objects whose earlier event has left the log.
pub const DEFAULT_EVENT_LOG_BYTES: usize = 64 << 20;

impl Store {
    /// Bound the event log to `bytes` of objects as well as to its event count.
    pub fn with_log_bytes(mut self, bytes: usize) -> Self {
        self.log_bytes_capacity = bytes;
        self
    }

    /// Open (or create) the store in `dir/cluster.db`; `None` keeps it in memory.
    pub fn open(dir: Option<&Path>, log_capacity: usize) -> Result<Self, StoreError> {
        let path = dir
            .map(|d| d.join("cluster.db").display().to_string())
            .unwrap_or_else(|| ":memory:".to_string());
        let sql = |source| StoreError::Sqlite {
            path: path.clone(),
            source,
        };
        if let Some(d) = dir {
            // Private before SQLite opens it: it gives its -wal and -shm files the
            // database's mode, and an older data directory's files are tightened.
            let io = |source| StoreError::Io {
                path: path.clone(),
                source,
            };
            crate::files::touch_private(&d.join("cluster.db")).map_err(io)?;
            for f in ["cluster.db-wal", "cluster.db-shm"] {
                crate::files::make_private_if_exists(&d.join(f)).map_err(io)?;
            }
        }
        let conn = match dir {
            Some(d) => Connection::open(d.join("cluster.db")).map_err(sql)?,
            None => Connection::open_in_memory().map_err(sql)?,
        };
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             PRAGMA busy_timeout=5000;
             CREATE TABLE IF NOT EXISTS objects (
                resource TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL,
                rv INTEGER NOT NULL, data BLOB NOT NULL,
                PRIMARY KEY (resource, namespace, name)) WITHOUT ROWID;
             CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);",
        )
        .map_err(sql)?;
        let mut rev: u64 = conn
            .query_row("SELECT value FROM meta WHERE key = 'revision'", [], |r| {
                r.get::<_, i64>(0)
            })
            .optional()
            .map_err(sql)?
            .unwrap_or(0) as u64;
        let mut objects: HashMap<String, ByName> = HashMap::new();
        let mut by_owner: HashMap<String, BTreeSet<ObjKey>> = HashMap::new();
        let mut by_uid: HashMap<String, ObjKey> = HashMap::new();
        {
            let mut stmt = conn
                .prepare("SELECT resource, namespace, name, rv, data FROM objects")
                .map_err(sql)?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, String>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Vec<u8>>(4)?,
                    ))
                })
                .map_err(sql)?;
            for row in rows {
                let (resource, namespace, name, obj_rv, data) = row.map_err(sql)?;
                let key = ObjKey {
                    resource,
                    namespace,
                    name,
                };
                let value: Value =
                    serde_json::from_slice(&data).map_err(|source| StoreError::Corrupt {
                        key: key.to_string(),
                        source,
                    })?;
                rev = rev.max(obj_rv as u64);
                let stored = Arc::new(make_stored(
                    key.clone(),
                    obj_rv as u64,
                    Bytes::from(data),
                    &value,
                ));
                for o in &stored.owners {
                    by_owner.entry(o.clone()).or_default().insert(key.clone());
                }
                if !stored.uid.is_empty() {
                    by_uid.insert(stored.uid.clone(), key.clone());
                }
                objects
                    .entry(key.resource.clone())
                    .or_default()
                    .insert((key.namespace, key.name), stored);
            }
        }
        // In-process consumers (the garbage collector, the simulation controllers) answer
        // a lag with a full resync, which at 100k objects costs far more than the slots:
        // room for a burst of a fleet's writes. (The ring keeps its last events alive,
        // as the log does, so it stays well under the log's length.)
        let (tx, _) = broadcast::channel(16_384);
        Ok(Store {
            conn: Mutex::new(conn),
            state: RwLock::new(State {
                rev,
                objects,
                by_owner,
                by_uid,
                log: VecDeque::new(),
                log_bytes: 0,
                oldest_watchable: rev,
            }),
            tx,
            log_capacity: log_capacity.max(1),
            log_bytes_capacity: DEFAULT_EVENT_LOG_BYTES,
            path,
        })
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, State> {
        self.state
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The current global revision.
    pub fn revision(&self) -> u64 {
        self.read().rev
    }

    pub fn get(&self, key: &ObjKey) -> Option<Arc<Stored>> {
        self.read()
            .objects
            .get(&key.resource)?
            .get(&(key.namespace.clone(), key.name.clone()))
            .cloned()
    }

    /// All objects of a resource (optionally in one namespace), in (namespace, name)
    /// order, with the revision the list is consistent at.
    pub fn list(&self, resource: &str, namespace: Option<&str>) -> (Vec<Arc<Stored>>, u64) {
        let st = self.read();
        let items = match st.objects.get(resource) {
            None => vec![],
            Some(m) => match namespace {
                None => m.values().cloned().collect(),
                Some(ns) => m
                    .range((ns.to_string(), String::new())..)
                    .take_while(|((n, _), _)| n == ns)
                    .map(|(_, v)| v.clone())
                    .collect(),
            },
        };
        (items, st.rev)
    }

    /// The objects of a resource (optionally in one namespace) as they were at revision
    /// `rev`, in (namespace, name) order: the current objects with the logged writes
    /// after `rev` undone, newest first. `Err(oldest)` when the log no longer reaches back
    /// to `rev` (as a compacted etcd revision); a `rev` at or beyond the current revision
    /// is the current list.
    pub fn list_at(
        &self,
        resource: &str,
        namespace: Option<&str>,
        rev: u64,
    ) -> Result<Vec<Arc<Stored>>, u64> {
        let st = self.read();
        if rev < st.oldest_watchable && rev < st.rev {
            return Err(st.oldest_watchable);
        }
        let in_scope =
            |k: &ObjKey| k.resource == resource && namespace.is_none_or(|n| k.namespace == n);
        let mut items: BTreeMap<(String, String), Arc<Stored>> = match st.objects.get(resource) {
            None => BTreeMap::new(),
            Some(m) => m
                .iter()
                .filter(|((ns, _), _)| namespace.is_none_or(|n| ns == n))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        };
        for e in st.log.iter().rev() {
            if e.rv() <= rev {
                break;
            }
            let k = &e.object.key;
            if !in_scope(k) {
                continue;
            }
            let id = (k.namespace.clone(), k.name.clone());
            match &e.prev {
                Some(p) => {
                    items.insert(id, p.clone());
                }
                None => {
                    items.remove(&id);
                }
            }
        }
        Ok(items.into_values().collect())
    }

    /// Number of stored objects of a resource, across namespaces.
    pub fn count(&self, resource: &str) -> usize {
        self.read().objects.get(resource).map_or(0, BTreeMap::len)
    }

    /// Every namespaced object in a namespace, across resources.
    pub fn keys_in_namespace(&self, namespace: &str) -> Vec<ObjKey> {
        let st = self.read();
        st.objects
            .iter()
            .flat_map(|(res, m)| {
                m.keys()
                    .filter(|(ns, _)| ns == namespace)
                    .map(|(ns, name)| ObjKey::new(res, ns, name))
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Objects whose ownerReferences name `uid`.
    pub fn dependents(&self, uid: &str) -> Vec<ObjKey> {
        self.read()
            .by_owner
            .get(uid)
            .map(|s| s.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// The object with this uid, if it exists (GC uses it to find dangling owners).
    pub fn by_uid(&self, uid: &str) -> Option<Arc<Stored>> {
        let key = self.read().by_uid.get(uid).cloned()?;
        self.get(&key)
    }

    /// Every stored object, across resources (for resyncs after a lagged event stream).
    pub fn all(&self) -> Vec<Arc<Stored>> {
        self.read()
            .objects
            .values()
            .flat_map(|m| m.values().cloned())
            .collect()
    }

    /// Start a watch: the events after revision `since` still in the log, and a receiver
    /// for everything after them. `Err(oldest)` when `since` is older than the log.
    pub fn watch_from(&self, since: u64) -> Result<WatchStart, u64> {
        let st = self.read();
        if since < st.oldest_watchable {
            return Err(st.oldest_watchable);
        }
        let rx = self.tx.subscribe();
        let start = st.log.partition_point(|e| e.rv() <= since);
        let backlog = st.log.iter().skip(start).cloned().collect();
        Ok((backlog, rx))
    }

    /// How many objects the store holds.
    pub fn object_count(&self) -> usize {
        self.read().by_uid.len()
    }

    /// Watches following the event stream now: every open HTTP watch, plus the
    /// in-process ones (the simulation's controllers). A soak test reads it to see that
    /// watches cut by a client or a partition are let go.
    pub fn watchers(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Events after `since` still in the log (for a watcher that lagged behind).
    pub fn events_since(&self, since: u64) -> Result<Vec<Arc<Event>>, u64> {
        let st = self.read();
        if since < st.oldest_watchable {
            return Err(st.oldest_watchable);
        }
        let start = st.log.partition_point(|e| e.rv() <= since);
        Ok(st.log.iter().skip(start).cloned().collect())
    }

    /// Atomically read-modify-write one object. The closure sees the current version and
    /// the revision the write will get; nothing is written if it returns an error.
    pub fn write<F>(&self, key: &ObjKey, f: F) -> Result<Written, ApiError>
    where
        F: FnOnce(Option<&Arc<Stored>>, u64) -> Result<Write, ApiError>,
    {
        let conn = self
            .conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.get(key);
        let next = self.revision() + 1;
        let decision = f(current.as_ref(), next)?;
        // The version the event carries: the new object, or the deleted one at the
        // revision of its deletion (as etcd reports a delete).
        let (kind, mut value) = match decision {
            Write::Keep => return Ok(Written::Unchanged(current)),
            Write::Put(value) if current.is_some() => (EventType::Modified, value),
            Write::Put(value) => (EventType::Added, value),
            Write::Delete => match &current {
                Some(cur) => (EventType::Deleted, cur.value()?),
                None => return Ok(Written::Unchanged(None)),
            },
        };
        set_resource_version(&mut value, next);
        let json = serde_json::to_vec(&value).map_err(|source| StoreError::Serialise {
            key: key.to_string(),
            source,
        })?;
        self.persist(
            &conn,
            key,
            next,
            (kind != EventType::Deleted).then_some(&json),
        )
        .map_err(|source| StoreError::Sqlite {
            path: self.path.clone(),
            source,
        })?;
        let stored = Arc::new(make_stored(key.clone(), next, Bytes::from(json), &value));
        let written = match kind {
            EventType::Added => Written::Created(stored.clone()),
            EventType::Modified => Written::Updated(stored.clone()),
            EventType::Deleted => Written::Deleted(stored.clone()),
        };
        let event = Event {
            kind,
            object: stored,
            prev: current.clone(),
        };
        self.publish(current.as_deref(), event);
        drop(conn);
        Ok(written)
    }

    /// Write (or, with `json = None`, delete) one row and the revision in one transaction.
    fn persist(
        &self,
        conn: &Connection,
        key: &ObjKey,
        rev: u64,
        json: Option<&Vec<u8>>,
    ) -> rusqlite::Result<()> {
        let tx = conn.unchecked_transaction()?;
        match json {
            Some(data) => {
                tx.prepare_cached(
                    "INSERT OR REPLACE INTO objects (resource, namespace, name, rv, data)
                     VALUES (?1, ?2, ?3, ?4, ?5)",
                )?
                .execute(params![
                    key.resource,
                    key.namespace,
                    key.name,
                    rev as i64,
                    data
                ])?;
            }
            None => {
                tx.prepare_cached(
                    "DELETE FROM objects WHERE resource = ?1 AND namespace = ?2 AND name = ?3",
                )?
                .execute(params![key.resource, key.namespace, key.name])?;
            }
        }
        bump_revision(&tx, rev)?;
        tx.commit()
    }

    fn publish(&self, previous: Option<&Stored>, event: Event) {
        let mut st = self
            .state
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let stored = event.object.clone();
        let key = &stored.key;
        if let Some(prev) = previous {
            if st.by_uid.get(&prev.uid) == Some(key) {
                st.by_uid.remove(&prev.uid);
            }
            for o in &prev.owners {
                if let Some(set) = st.by_owner.get_mut(o) {
                    set.remove(key);
                    if set.is_empty() {
                        st.by_owner.remove(o);
                    }
                }
            }
        }
        let by_name = st.objects.entry(key.resource.clone()).or_default();
        if event.kind == EventType::Deleted {
            by_name.remove(&(key.namespace.clone(), key.name.clone()));
        } else {
            by_name.insert((key.namespace.clone(), key.name.clone()), stored.clone());
            if !stored.uid.is_empty() {
                st.by_uid.insert(stored.uid.clone(), key.clone());
            }
            for o in &stored.owners {
                st.by_owner
                    .entry(o.clone())
                    .or_default()
                    .insert(key.clone());
            }
        }
        st.rev = stored.rv;
        let event = Arc::new(event);
        st.log_bytes += event.object.json.len();
        st.log.push_back(event.clone());
        // The newest event always stays (a watch from the current revision must work).
        while st.log.len() > self.log_capacity
            || (st.log_bytes > self.log_bytes_capacity && st.log.len() > 1)
        {
            if let Some(old) = st.log.pop_front() {
                st.log_bytes -= old.object.json.len();
                st.oldest_watchable = old.rv();
            }
        }
        // No receivers is fine: nobody is watching.
        let _ = self.tx.send(event);
    }
}

fn bump_revision(tx: &rusqlite::Transaction<'_>, rev: u64) -> rusqlite::Result<()> {
    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES ('revision', ?1)")?
        .execute(params![rev as i64])?;
    Ok(())
}

fn set_resource_version(value: &mut Value, rv: u64) {
    if let Some(meta) = value.get_mut("metadata").and_then(Value::as_object_mut) {
        meta.insert("resourceVersion".into(), Value::String(rv.to_string()));
    }
}

fn make_stored(key: ObjKey, rv: u64, json: Bytes, value: &Value) -> Stored {
    let meta = value.get("metadata");
    let labels = meta
        .and_then(|m| m.get("labels"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let uid = meta
        .and_then(|m| m.get("uid"))
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_string();
    let owners = meta
        .and_then(|m| m.get("ownerReferences"))
        .and_then(Value::as_array)
        .map(|refs| {
            refs.iter()
                .filter_map(|r| r.get("uid").and_then(Value::as_str).map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let deleting = meta.is_some_and(|m| m.get("deletionTimestamp").is_some());
    Stored {
        key,
        rv,
        json,
        labels,
        uid,
        owners,
        deleting,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn put(store: &Store, name: &str, v: Value) -> Written {
        store
            .write(&ObjKey::new("/configmaps", "default", name), |_, _| {
                Ok(Write::Put(v))
            })
            .expect("write")
    }

    #[test]
    fn revisions_are_global_and_monotonic() {
        let s = Store::open(None, 10).expect("open");
        let a = put(&s, "a", json!({"metadata": {"name": "a"}}));
        let b = put(&s, "b", json!({"metadata": {"name": "b"}}));
        assert_eq!(a.stored().expect("a").rv, 1);
        assert_eq!(b.stored().expect("b").rv, 2);
        let v = s
            .get(&ObjKey::new("/configmaps", "default", "b"))
            .expect("b")
            .value()
            .expect("json");
        assert_eq!(v["metadata"]["resourceVersion"], "2");
    }

    #[test]
    fn persists_across_reopen() {
        let dir = tempfile::tempdir().expect("tmp");
        {
            let s = Store::open(Some(dir.path()), 10).expect("open");
            put(&s, "a", json!({"metadata": {"name": "a"}}));
            put(&s, "b", json!({"metadata": {"name": "b"}}));
            s.write(&ObjKey::new("/configmaps", "default", "a"), |_, _| {
                Ok(Write::Delete)
            })
            .expect("delete");
        }
        let s = Store::open(Some(dir.path()), 10).expect("reopen");
        assert_eq!(s.revision(), 3);
        assert!(s.get(&ObjKey::new("/configmaps", "default", "a")).is_none());
        let c = put(&s, "c", json!({"metadata": {"name": "c"}}));
        assert_eq!(c.stored().expect("c").rv, 4);
        // The log restarted empty: only the current revision can be watched from.
        assert!(s.watch_from(2).is_err());
        assert!(s.watch_from(3).is_ok());
    }

    #[test]
    fn watch_log_compacts() {
        let s = Store::open(None, 2).expect("open");
        for n in ["a", "b", "c", "d"] {
            put(&s, n, json!({"metadata": {"name": n}}));
        }
        assert!(s.watch_from(1).is_err());
        let (backlog, _) = s.watch_from(2).expect("within log");
        assert_eq!(
            backlog.iter().map(|e| e.rv()).collect::<Vec<_>>(),
            vec![3, 4]
        );
    }

    #[test]
    fn watch_log_is_bounded_by_bytes_too() {
        let s = Store::open(None, 100).expect("open").with_log_bytes(200);
        let big = "x".repeat(80);
        for n in ["a", "b", "c", "d"] {
            put(&s, n, json!({"metadata": {"name": n}, "data": {"v": big}}));
        }
        // About 120 bytes each: only the newest event fits in 200 bytes.
        assert!(s.watch_from(2).is_err());
        let (backlog, _) = s.watch_from(3).expect("the newest event stays");
        assert_eq!(backlog.iter().map(|e| e.rv()).collect::<Vec<_>>(), vec![4]);
    }

    #[test]
    fn failed_closure_writes_nothing() {
        let s = Store::open(None, 10).expect("open");
        let r = s.write(&ObjKey::new("/configmaps", "default", "x"), |_, _| {
            Err(ApiError::BadRequest("no".into()))
        });
        assert!(r.is_err());
        assert_eq!(s.revision(), 0);
    }

    #[test]
    fn owner_index_follows_writes() {
        let s = Store::open(None, 10).expect("open");
        put(
            &s,
            "a",
            json!({"metadata": {"name": "a", "ownerReferences": [{"uid": "u1"}]}}),
        );
        assert_eq!(s.dependents("u1").len(), 1);
        put(&s, "a", json!({"metadata": {"name": "a"}}));
        assert!(s.dependents("u1").is_empty());
    }
}
