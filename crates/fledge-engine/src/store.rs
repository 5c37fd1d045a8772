//! The durable store behind `fledge serve`: one SQLite database in WAL mode.
//!
//! One writer thread owns the writing connection and commits whatever is queued in one
//! transaction (a group commit), so many deployments committing at once cost one fsync-free
//! WAL append between them. Reads use a second connection and never wait for the writer.
//!
//! A deployment's row holds its request, its resolved spec and checks, and the core's whole
//! serialised state; its journal (every record) and its notifications' outbox are tables of
//! their own, written in the same transaction as the state they come from.

use std::path::{Path, PathBuf};
use std::sync::mpsc as std_mpsc;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use fledge_core::rollout::{Command, Deployment, DeploymentSpec, Phase, Record};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;
use serde_json::Value;
use tokio::sync::oneshot;

use crate::checks::CheckConfig;
use crate::driver::Journal;
use crate::notify::Sink;

/// What can go wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("the database {path}: {source}")]
    Open {
        path: String,
        source: rusqlite::Error,
    },
    #[error("database error: {0}")]
    Sql(#[from] rusqlite::Error),
    #[error("stored data is not valid: {0}")]
    Corrupt(#[from] serde_json::Error),
    #[error("the store's writer has stopped")]
    Closed,
    #[error(
        "{path} is in use by another fledge serve ({holder}); stop it first, or give this one another --db"
    )]
    Locked { path: String, holder: String },
    #[error("could not lock {path}: {source}")]
    Lock {
        path: String,
        source: std::io::Error,
    },
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY,
    name TEXT UNIQUE,
    request TEXT NOT NULL,
    function TEXT NOT NULL,
    alias TEXT NOT NULL,
    target INTEGER NOT NULL,
    alias_key TEXT NOT NULL,
    endpoint TEXT,
    region TEXT,
    spec TEXT NOT NULL,
    checks TEXT NOT NULL,
    sinks TEXT NOT NULL,
    state TEXT,
    phase TEXT NOT NULL,
    outcome TEXT,
    reason TEXT,
    step INTEGER NOT NULL DEFAULT 0,
    steps INTEGER NOT NULL,
    weight REAL NOT NULL DEFAULT 0,
    paused INTEGER NOT NULL DEFAULT 0,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL,
    finished_at INTEGER
);
CREATE INDEX IF NOT EXISTS deployments_active ON deployments(alias_key) WHERE finished_at IS NULL;
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL,
    at INTEGER NOT NULL,
    body TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_deployment ON events(deployment_id, seq);
CREATE TABLE IF NOT EXISTS notifications (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment_id TEXT NOT NULL,
    sink TEXT NOT NULL,
    body TEXT NOT NULL,
    status TEXT NOT NULL DEFAULT 'pending',
    attempts INTEGER NOT NULL DEFAULT 0,
    next_at INTEGER NOT NULL,
    last_error TEXT,
    created_at INTEGER NOT NULL,
    delivered_at INTEGER
);
CREATE INDEX IF NOT EXISTS notifications_pending ON notifications(next_at) WHERE status = 'pending';
";

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

/// A deployment to be created.
#[derive(Clone, Debug)]
pub struct NewDeployment {
    /// The client's name for it; a second create with the same name is the same deployment.
    pub name: Option<String>,
    /// The request as the client sent it (compared for idempotent creates).
    pub request: Value,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub spec: DeploymentSpec,
    pub checks: CheckConfig,
    pub sinks: Vec<Sink>,
}

impl NewDeployment {
    /// Deployments on the same key may not run at once.
    fn alias_key(&self) -> String {
        format!(
            "{}|{}|{}|{}",
            self.endpoint.as_deref().unwrap_or("aws"),
            self.region.as_deref().unwrap_or(""),
            fledge_aws::bare_name(&self.spec.function),
            self.spec.alias
        )
    }
}

/// What a create did.
#[derive(Debug)]
pub enum Created {
    /// A new deployment.
    New(DeploymentRow),
    /// A deployment by this name exists with the same request: it is the answer.
    Existing(DeploymentRow),
    /// A deployment by this name exists with a different request.
    NameTaken(DeploymentRow),
    /// The alias already has an active deployment.
    AliasBusy(DeploymentRow),
}

/// A deployment as stored.
#[derive(Clone, Debug, Serialize)]
pub struct DeploymentRow {
    pub id: String,
    pub name: Option<String>,
    pub function: String,
    pub alias: String,
    pub target: u64,
    pub endpoint: Option<String>,
    pub region: Option<String>,
    pub phase: String,
    pub outcome: Option<String>,
    pub reason: Option<String>,
    /// 1-based; 0 before the first shift.
    pub step: u64,
    pub steps: u64,
    pub weight: f64,
    pub paused: bool,
    pub created_at: i64,
    pub updated_at: i64,
    pub finished_at: Option<i64>,
    #[serde(skip)]
    pub request: Value,
}

/// A deployment to drive again after a restart.
pub struct Unfinished {
    pub row: DeploymentRow,
    pub spec: DeploymentSpec,
    pub checks: CheckConfig,
    pub sinks: Vec<Sink>,
    /// `None` when it never got past its start (the smoke test, say): start it afresh.
    pub state: Option<Deployment>,
}

/// One record of a deployment's journal.
#[derive(Clone, Debug, Serialize)]
pub struct EventRow {
    pub seq: i64,
    pub at: i64,
    pub record: Value,
}

/// One notification in the outbox.
#[derive(Clone, Debug, Serialize)]
pub struct NotificationRow {
    pub id: i64,
    pub deployment_id: String,
    pub sink: Sink,
    pub body: Value,
    pub status: String,
    pub attempts: u32,
    pub last_error: Option<String>,
}

/// Which deployments to list.
#[derive(Clone, Debug, Default)]
pub struct Filter {
    /// `active`, `finished`, or an outcome (`promoted`, `rolled_back`, `aborted`, `failed`).
    pub state: Option<String>,
    pub function: Option<String>,
    pub limit: Option<u32>,
}

/// Counts for `/metrics`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Counts {
    /// (phase or outcome, count)
    pub by_state: Vec<(String, u64)>,
    /// (function, alias, weight) of active deployments.
    pub weights: Vec<(String, String, f64)>,
    /// (outcome, count, total seconds)
    pub outcomes: Vec<(String, u64, f64)>,
    pub notifications_failed: u64,
    pub notifications_pending: u64,
    pub notifications_sent: u64,
}

type Reply<T> = oneshot::Sender<Result<T, StoreError>>;

enum Job {
    Create(Box<NewDeployment>, Reply<Created>),
    Commit(Box<CommitJob>, Reply<()>),
    FinishUnstarted {
        id: String,
        outcome: String,
        reason: String,
        at: i64,
        record: String,
        sinks: Vec<String>,
        reply: Reply<()>,
    },
    Notified {
        id: i64,
        result: Result<(), String>,
        retry_at: Option<i64>,
        reply: Reply<()>,
    },
}

struct CommitJob {
    id: String,
    state: String,
    phase: String,
    outcome: Option<String>,
    reason: Option<String>,
    step: usize,
    weight: f64,
    paused: bool,
    finished: bool,
    records: Vec<(i64, String)>,
    notifications: Vec<(String, String)>,
}

/// The store: cheap to clone.
#[derive(Clone)]
pub struct Store {
    writer: std_mpsc::Sender<Job>,
    reader: Arc<Mutex<Connection>>,
    path: PathBuf,
    /// Signalled when notifications are queued.
    queued: Arc<tokio::sync::Notify>,
}

/// Takes `<db>.lock` for this process, so that two servers never drive the same
/// deployments. The operating system releases it when the process ends, however it ends.
fn take_lock(db: &Path) -> Result<std::fs::File, StoreError> {
    use std::io::{Read, Seek, Write};
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    let path = PathBuf::from(name);
    let failed = |source| StoreError::Lock {
        path: path.display().to_string(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut holder = String::new();
            let _ = file.read_to_string(&mut holder);
            return Err(StoreError::Locked {
                path: db.display().to_string(),
                holder: match holder.trim() {
                    "" => "its process id is not recorded".to_owned(),
                    pid => format!("process {pid}"),
                },
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(failed(e)),
    }
    file.set_len(0)
        .and_then(|()| file.rewind())
        .and_then(|()| write!(file, "{}", std::process::id()))
        .map_err(failed)?;
    Ok(file)
}

fn open(path: &Path) -> Result<Connection, StoreError> {
    let open_error = |source| StoreError::Open {
        path: path.display().to_string(),
        source,
    };
    let conn = Connection::open(path).map_err(open_error)?;
    conn.busy_timeout(std::time::Duration::from_secs(10))
        .map_err(open_error)?;
    // WAL with synchronous=NORMAL survives a crash of the process (what SIGKILL tests);
    // FULL would add an fsync per commit to survive power loss too.
    conn.pragma_update(None, "journal_mode", "WAL")
        .map_err(open_error)?;
    conn.pragma_update(None, "synchronous", "NORMAL")
        .map_err(open_error)?;
    Ok(conn)
}

impl Store {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: &Path) -> Result<Store, StoreError> {
        let lock = take_lock(path)?;
        let writer_conn = open(path)?;
        writer_conn.execute_batch(SCHEMA)?;
        let reader = open(path)?;
        let (tx, rx) = std_mpsc::channel();
        std::thread::Builder::new()
            .name("fledge-store".into())
            .spawn(move || {
                // The lock lives as long as the writer: one process drives a database.
                let _lock = lock;
                writer_loop(writer_conn, rx)
            })
            .map_err(|e| StoreError::Open {
                path: path.display().to_string(),
                source: rusqlite::Error::ToSqlConversionFailure(Box::new(e)),
            })?;
        Ok(Store {
            writer: tx,
            reader: Arc::new(Mutex::new(reader)),
            path: path.to_owned(),
            queued: Arc::new(tokio::sync::Notify::new()),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Signalled whenever a commit queues notifications.
    pub fn queued(&self) -> Arc<tokio::sync::Notify> {
        self.queued.clone()
    }

    async fn ask<T>(&self, job: impl FnOnce(Reply<T>) -> Job) -> Result<T, StoreError> {
        let (tx, rx) = oneshot::channel();
        self.writer.send(job(tx)).map_err(|_| StoreError::Closed)?;
        rx.await.map_err(|_| StoreError::Closed)?
    }

    async fn read<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let reader = self.reader.clone();
        tokio::task::spawn_blocking(move || f(&reader.lock().expect("reader lock")))
            .await
            .map_err(|_| StoreError::Closed)?
    }

    /// Creates a deployment unless its name or its alias is taken.
    pub async fn create(&self, new: NewDeployment) -> Result<Created, StoreError> {
        self.ask(|reply| Job::Create(Box::new(new), reply)).await
    }

    /// What would stop `new` from being created now (its name taken, or its alias busy),
    /// read without taking the writer; [`Store::create`] checks again atomically.
    pub async fn obstacle(&self, new: &NewDeployment) -> Result<Option<Created>, StoreError> {
        let new = new.clone();
        self.read(move |c| obstacle(c, &new)).await
    }

    /// A journal that commits deployment `id`'s transitions, queueing a notification per
    /// sink for every notable record.
    pub fn journal(&self, id: &str, sinks: Vec<Sink>) -> Arc<dyn Journal> {
        Arc::new(StoreJournal {
            store: self.clone(),
            id: id.to_owned(),
            sinks: sinks
                .iter()
                .map(|s| serde_json::to_string(s).expect("a sink serialises"))
                .collect(),
            thinning: Mutex::new(Thinning::default()),
        })
    }

    /// Ends a deployment that never started (its smoke test failed): its row, its journal's
    /// one `record` (the end), and that record's notifications, in one transaction.
    pub async fn finish_unstarted(
        &self,
        id: &str,
        record: &Record,
        sinks: &[Sink],
    ) -> Result<(), StoreError> {
        let (outcome, reason) = match &record.kind {
            fledge_core::rollout::RecordKind::Finished {
                outcome, reason, ..
            } => (outcome.to_string(), reason.clone()),
            _ => ("failed".to_owned(), "ended before it started".to_owned()),
        };
        let (id, at, record) = (
            id.to_owned(),
            record.at.0 as i64,
            serde_json::to_string(record)?,
        );
        let sinks: Vec<String> = sinks
            .iter()
            .map(|s| serde_json::to_string(s).expect("a sink serialises"))
            .collect();
        let queued = !sinks.is_empty();
        self.ask(|reply| Job::FinishUnstarted {
            id,
            outcome,
            reason,
            at,
            record,
            sinks,
            reply,
        })
        .await?;
        if queued {
            self.queued.notify_one();
        }
        Ok(())
    }

    /// Records a delivery attempt: delivered, retry at `retry_at`, or given up.
    pub async fn notified(
        &self,
        id: i64,
        result: Result<(), String>,
        retry_at: Option<i64>,
    ) -> Result<(), StoreError> {
        self.ask(|reply| Job::Notified {
            id,
            result,
            retry_at,
            reply,
        })
        .await
    }

    pub async fn get(&self, id: &str) -> Result<Option<DeploymentRow>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| Ok(row_by_id(c, &id).optional()?)).await
    }

    pub async fn list(&self, filter: Filter) -> Result<Vec<DeploymentRow>, StoreError> {
        self.read(move |c| {
            let mut sql = format!("SELECT {ROW_COLUMNS} FROM deployments WHERE 1=1");
            let mut args: Vec<String> = Vec::new();
            match filter.state.as_deref() {
                None => {}
                Some("active") => sql.push_str(" AND finished_at IS NULL"),
                Some("finished") => sql.push_str(" AND finished_at IS NOT NULL"),
                Some(other) => {
                    args.push(other.to_owned());
                    sql.push_str(&format!(
                        " AND (outcome = ?{n} OR (outcome IS NULL AND phase = ?{n}))",
                        n = args.len()
                    ));
                }
            }
            if let Some(f) = filter.function {
                args.push(f);
                sql.push_str(&format!(" AND function = ?{}", args.len()));
            }
            sql.push_str(&format!(
                " ORDER BY created_at DESC, id DESC LIMIT {}",
                filter.limit.unwrap_or(1000)
            ));
            let mut stmt = c.prepare(&sql)?;
            let rows = stmt
                .query_map(rusqlite::params_from_iter(args.iter()), row)?
                .collect::<Result<Vec<_>, _>>()?;
            Ok(rows)
        })
        .await
    }

    /// Records of deployment `id` after sequence number `after`.
    pub async fn events(
        &self,
        id: &str,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EventRow>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT seq, at, body FROM events WHERE deployment_id = ?1 AND seq > ?2 ORDER BY seq LIMIT ?3",
            )?;
            let rows = stmt
                .query_map(params![id, after, limit], |r| {
                    Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?, r.get::<_, String>(2)?))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(seq, at, body)| {
                    Ok(EventRow {
                        seq,
                        at,
                        record: serde_json::from_str(&body)?,
                    })
                })
                .collect()
        })
        .await
    }

    /// Every deployment that has not finished, to drive again after a restart.
    pub async fn unfinished(&self) -> Result<Vec<Unfinished>, StoreError> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {ROW_COLUMNS}, spec, checks, sinks, state FROM deployments WHERE finished_at IS NULL ORDER BY created_at"
            ))?;
            let rows = stmt
                .query_map([], |r| {
                    Ok((
                        row(r)?,
                        r.get::<_, String>(ROW_COLUMN_COUNT)?,
                        r.get::<_, String>(ROW_COLUMN_COUNT + 1)?,
                        r.get::<_, String>(ROW_COLUMN_COUNT + 2)?,
                        r.get::<_, Option<String>>(ROW_COLUMN_COUNT + 3)?,
                    ))
                })?
                .collect::<Result<Vec<_>, _>>()?;
            rows.into_iter()
                .map(|(row, spec, checks, sinks, state)| {
                    Ok(Unfinished {
                        row,
                        spec: serde_json::from_str(&spec)?,
                        checks: serde_json::from_str(&checks)?,
                        sinks: serde_json::from_str(&sinks)?,
                        state: state.map(|s| serde_json::from_str(&s)).transpose()?,
                    })
                })
                .collect()
        })
        .await
    }

    /// The stored state of deployment `id`, if it has started.
    pub async fn state(&self, id: &str) -> Result<Option<Deployment>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            let state: Option<Option<String>> = c
                .query_row("SELECT state FROM deployments WHERE id = ?1", [&id], |r| {
                    r.get(0)
                })
                .optional()?;
            Ok(state
                .flatten()
                .map(|s| serde_json::from_str(&s))
                .transpose()?)
        })
        .await
    }

    /// Notifications due for delivery.
    pub async fn due_notifications(&self, limit: u32) -> Result<Vec<NotificationRow>, StoreError> {
        let now = now_ms();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, deployment_id, sink, body, status, attempts, last_error FROM notifications
                 WHERE status = 'pending' AND next_at <= ?1 ORDER BY id LIMIT ?2",
            )?;
            notification_rows(&mut stmt, params![now, limit])
        })
        .await
    }

    /// The next moment a pending notification is due, if any is pending.
    pub async fn next_notification_at(&self) -> Result<Option<i64>, StoreError> {
        self.read(|c| {
            Ok(c.query_row(
                "SELECT MIN(next_at) FROM notifications WHERE status = 'pending'",
                [],
                |r| r.get(0),
            )?)
        })
        .await
    }

    /// Deployment `id`'s notifications, delivered, pending and failed.
    pub async fn notifications(&self, id: &str) -> Result<Vec<NotificationRow>, StoreError> {
        let id = id.to_owned();
        self.read(move |c| {
            let mut stmt = c.prepare(
                "SELECT id, deployment_id, sink, body, status, attempts, last_error FROM notifications
                 WHERE deployment_id = ?1 ORDER BY id",
            )?;
            notification_rows(&mut stmt, params![id])
        })
        .await
    }

    pub async fn counts(&self) -> Result<Counts, StoreError> {
        self.read(|c| {
            let mut counts = Counts::default();
            let mut stmt = c.prepare(
                "SELECT COALESCE(outcome, phase), COUNT(*) FROM deployments GROUP BY 1 ORDER BY 1",
            )?;
            counts.by_state = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get::<_, i64>(1)? as u64)))?
                .collect::<Result<_, _>>()?;
            let mut stmt = c.prepare(
                "SELECT function, alias, weight FROM deployments WHERE finished_at IS NULL ORDER BY function, alias",
            )?;
            counts.weights = stmt
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
                .collect::<Result<_, _>>()?;
            let mut stmt = c.prepare(
                "SELECT outcome, COUNT(*), SUM(finished_at - created_at) / 1000.0 FROM deployments
                 WHERE outcome IS NOT NULL GROUP BY outcome ORDER BY outcome",
            )?;
            counts.outcomes = stmt
                .query_map([], |r| {
                    Ok((r.get(0)?, r.get::<_, i64>(1)? as u64, r.get(2)?))
                })?
                .collect::<Result<_, _>>()?;
            let mut stmt =
                c.prepare("SELECT status, COUNT(*) FROM notifications GROUP BY status")?;
            for pair in stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))? {
                let (status, n) = pair?;
                match status.as_str() {
                    "failed" => counts.notifications_failed = n as u64,
                    "pending" => counts.notifications_pending = n as u64,
                    _ => counts.notifications_sent = n as u64,
                }
            }
            Ok(counts)
        })
        .await
    }
}

fn notification_rows(
    stmt: &mut rusqlite::Statement<'_>,
    params: impl rusqlite::Params,
) -> Result<Vec<NotificationRow>, StoreError> {
    let rows = stmt
        .query_map(params, |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, String>(4)?,
                r.get::<_, i64>(5)?,
                r.get::<_, Option<String>>(6)?,
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    rows.into_iter()
        .map(
            |(id, deployment_id, sink, body, status, attempts, last_error)| {
                Ok(NotificationRow {
                    id,
                    deployment_id,
                    sink: serde_json::from_str(&sink)?,
                    body: serde_json::from_str(&body)?,
                    status,
                    attempts: attempts as u32,
                    last_error,
                })
            },
        )
        .collect()
}

const ROW_COLUMNS: &str = "id, name, function, alias, target, endpoint, phase, outcome, reason, step, steps, weight, paused, created_at, updated_at, finished_at, request, region";
const ROW_COLUMN_COUNT: usize = 18;

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<DeploymentRow> {
    let request: String = r.get(16)?;
    Ok(DeploymentRow {
        id: r.get(0)?,
        name: r.get(1)?,
        function: r.get(2)?,
        alias: r.get(3)?,
        target: r.get::<_, i64>(4)? as u64,
        endpoint: r.get(5)?,
        phase: r.get(6)?,
        outcome: r.get(7)?,
        reason: r.get(8)?,
        step: r.get::<_, i64>(9)? as u64,
        steps: r.get::<_, i64>(10)? as u64,
        weight: r.get(11)?,
        paused: r.get(12)?,
        created_at: r.get(13)?,
        updated_at: r.get(14)?,
        finished_at: r.get(15)?,
        request: serde_json::from_str(&request).unwrap_or(Value::Null),
        region: r.get(17)?,
    })
}

/// A phase's name as the API shows it.
pub fn phase_name(phase: &Phase) -> String {
    match phase {
        Phase::Recording => "recording".into(),
        Phase::PreTrafficHook => "pre_traffic_hook".into(),
        Phase::Shifting => "shifting".into(),
        Phase::PostTrafficHook => "post_traffic_hook".into(),
        Phase::RollingBack { .. } => "rolling_back".into(),
        Phase::Done { outcome, .. } => outcome.to_string(),
    }
}

struct StoreJournal {
    store: Store,
    id: String,
    sinks: Vec<String>,
    thinning: Mutex<Thinning>,
}

/// Routine checks kept in a step: every one of the first [`ROUTINE_KEPT`], then one a
/// minute. A check is routine when it is its transition's only record and says what the
/// last kept check of the step said; a check that decides anything comes with the records
/// of that decision and is always kept. A long hold checked every few seconds would
/// otherwise write a record each time: 6 million in a year at 5 s.
#[derive(Default)]
struct Thinning {
    step: usize,
    outcome: Option<fledge_core::judge::Outcome>,
    kept: u32,
    last_at: u64,
}

const ROUTINE_KEPT: u32 = 100;
const ROUTINE_EVERY_MS: u64 = 60_000;

impl Thinning {
    /// Whether to keep `record`, the only record of its transition.
    fn keep(&mut self, record: &Record) -> bool {
        let fledge_core::rollout::RecordKind::Checked { step, verdict, .. } = &record.kind else {
            return true;
        };
        let routine = *step == self.step && Some(verdict.outcome) == self.outcome;
        if routine
            && self.kept >= ROUTINE_KEPT
            && record.at.0 < self.last_at.saturating_add(ROUTINE_EVERY_MS)
        {
            return false;
        }
        if !routine {
            *self = Thinning {
                step: *step,
                outcome: Some(verdict.outcome),
                ..Thinning::default()
            };
        }
        self.kept += 1;
        self.last_at = record.at.0;
        true
    }
}

impl Journal for StoreJournal {
    fn commit<'a>(
        &'a self,
        d: &'a Deployment,
        commands: &'a [Command],
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>> {
        Box::pin(async move {
            let status = d.status();
            let (outcome, reason) = match d.phase() {
                Phase::Done { outcome, reason } => {
                    (Some(outcome.to_string()), Some(reason.clone()))
                }
                Phase::RollingBack { reason, .. } => (None, Some(reason.clone())),
                _ => (None, None),
            };
            let encode = |r: &Record| serde_json::to_string(r).map_err(|e| e.to_string());
            let mut records = Vec::new();
            let mut notifications = Vec::new();
            let alone = commands
                .iter()
                .filter(|c| matches!(c, Command::Record(_)))
                .count()
                == 1;
            for command in commands {
                match command {
                    Command::Record(r)
                        if alone && !self.thinning.lock().expect("thinning lock").keep(r) => {}
                    Command::Record(r) => records.push((r.at.0 as i64, encode(r)?)),
                    Command::Notify(r) => {
                        let body = encode(r)?;
                        for sink in &self.sinks {
                            notifications.push((sink.clone(), body.clone()));
                        }
                    }
                    _ => {}
                }
            }
            let queued = !notifications.is_empty();
            let job = CommitJob {
                id: self.id.clone(),
                state: serde_json::to_string(d).map_err(|e| e.to_string())?,
                phase: phase_name(d.phase()),
                outcome,
                reason,
                step: status.step,
                weight: status.weight,
                paused: status.paused,
                finished: d.is_finished(),
                records,
                notifications,
            };
            self.store
                .ask(|reply| Job::Commit(Box::new(job), reply))
                .await
                .map_err(|e| e.to_string())?;
            if queued {
                self.store.queued.notify_one();
            }
            Ok(())
        })
    }
}

fn writer_loop(mut conn: Connection, jobs: std_mpsc::Receiver<Job>) {
    while let Ok(first) = jobs.recv() {
        let mut batch = vec![first];
        while batch.len() < 512
            && let Ok(more) = jobs.try_recv()
        {
            batch.push(more);
        }
        // Commits share one transaction; if it fails, each is tried alone so that one bad
        // job cannot fail the others.
        let (commits, others): (Vec<_>, Vec<_>) = batch
            .into_iter()
            .partition(|j| matches!(j, Job::Commit(..)));
        if !commits.is_empty() {
            let result = (|| -> Result<(), StoreError> {
                let tx = conn.transaction()?;
                for job in &commits {
                    if let Job::Commit(c, _) = job {
                        apply_commit(&tx, c)?;
                    }
                }
                tx.commit()?;
                Ok(())
            })();
            match result {
                Ok(()) => {
                    for job in commits {
                        if let Job::Commit(_, reply) = job {
                            let _ = reply.send(Ok(()));
                        }
                    }
                }
                Err(_) => {
                    for job in commits {
                        if let Job::Commit(c, reply) = job {
                            let r = (|| {
                                let tx = conn.transaction()?;
                                apply_commit(&tx, &c)?;
                                tx.commit()?;
                                Ok(())
                            })();
                            let _ = reply.send(r);
                        }
                    }
                }
            }
        }
        for job in others {
            match job {
                Job::Create(new, reply) => {
                    let _ = reply.send(create(&mut conn, *new));
                }
                Job::FinishUnstarted {
                    id,
                    outcome,
                    reason,
                    at,
                    record,
                    sinks,
                    reply,
                } => {
                    let r = (|| {
                        let now = now_ms();
                        let tx = conn.transaction()?;
                        tx.execute(
                            "UPDATE deployments SET phase = ?2, outcome = ?2, reason = ?3, updated_at = ?4, finished_at = ?4 WHERE id = ?1",
                            params![id, outcome, reason, now],
                        )?;
                        tx.execute(
                            "INSERT INTO events (deployment_id, at, body) VALUES (?1, ?2, ?3)",
                            params![id, at, record],
                        )?;
                        for sink in &sinks {
                            tx.execute(
                                "INSERT INTO notifications (deployment_id, sink, body, next_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                                params![id, sink, record, now],
                            )?;
                        }
                        tx.commit()?;
                        Ok(())
                    })();
                    let _ = reply.send(r);
                }
                Job::Notified {
                    id,
                    result,
                    retry_at,
                    reply,
                } => {
                    let now = now_ms();
                    let r = match (result, retry_at) {
                        (Ok(()), _) => conn.execute(
                            "UPDATE notifications SET status = 'sent', attempts = attempts + 1, delivered_at = ?2, last_error = NULL WHERE id = ?1",
                            params![id, now],
                        ),
                        (Err(e), Some(at)) => conn.execute(
                            "UPDATE notifications SET attempts = attempts + 1, next_at = ?2, last_error = ?3 WHERE id = ?1",
                            params![id, at, e],
                        ),
                        (Err(e), None) => conn.execute(
                            "UPDATE notifications SET status = 'failed', attempts = attempts + 1, last_error = ?2 WHERE id = ?1",
                            params![id, e],
                        ),
                    }
                    .map(|_| ())
                    .map_err(StoreError::from);
                    let _ = reply.send(r);
                }
                Job::Commit(..) => unreachable!("commits were taken out"),
            }
        }
    }
}

fn apply_commit(tx: &rusqlite::Transaction<'_>, c: &CommitJob) -> Result<(), StoreError> {
    let now = now_ms();
    tx.execute(
        "UPDATE deployments SET state = ?2, phase = ?3, outcome = ?4, reason = ?5, step = ?6, weight = ?7,
         paused = ?8, updated_at = ?9, finished_at = CASE WHEN ?10 THEN ?9 ELSE NULL END WHERE id = ?1",
        params![
            c.id,
            c.state,
            c.phase,
            c.outcome,
            c.reason,
            c.step as i64,
            c.weight,
            c.paused,
            now,
            c.finished
        ],
    )?;
    let mut insert =
        tx.prepare_cached("INSERT INTO events (deployment_id, at, body) VALUES (?1, ?2, ?3)")?;
    for (at, body) in &c.records {
        insert.execute(params![c.id, at, body])?;
    }
    let mut insert = tx.prepare_cached(
        "INSERT INTO notifications (deployment_id, sink, body, next_at, created_at) VALUES (?1, ?2, ?3, ?4, ?4)",
    )?;
    for (sink, body) in &c.notifications {
        insert.execute(params![c.id, sink, body, now])?;
    }
    Ok(())
}

fn row_by_id(conn: &Connection, id: &str) -> rusqlite::Result<DeploymentRow> {
    conn.query_row(
        &format!("SELECT {ROW_COLUMNS} FROM deployments WHERE id = ?1"),
        [id],
        row,
    )
}

/// What stands in the way of creating `new`: a deployment by its name, or an active one on
/// its alias.
fn obstacle(conn: &Connection, new: &NewDeployment) -> Result<Option<Created>, StoreError> {
    let by_id = |id: &str| row_by_id(conn, id);
    if let Some(name) = &new.name {
        let existing: Option<String> = conn
            .query_row("SELECT id FROM deployments WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(id) = existing {
            let existing = by_id(&id)?;
            return Ok(Some(if existing.request == new.request {
                Created::Existing(existing)
            } else {
                Created::NameTaken(existing)
            }));
        }
    }
    let busy: Option<String> = conn
        .query_row(
            "SELECT id FROM deployments WHERE alias_key = ?1 AND finished_at IS NULL LIMIT 1",
            [&new.alias_key()],
            |r| r.get(0),
        )
        .optional()?;
    Ok(match busy {
        Some(id) => Some(Created::AliasBusy(by_id(&id)?)),
        None => None,
    })
}

fn create(conn: &mut Connection, new: NewDeployment) -> Result<Created, StoreError> {
    let tx = conn.transaction()?;
    if let Some(obstacle) = obstacle(&tx, &new)? {
        return Ok(obstacle);
    }
    let key = new.alias_key();
    let next: i64 = tx.query_row(
        "SELECT COALESCE(MAX(rowid), 0) + 1 FROM deployments",
        [],
        |r| r.get(0),
    )?;
    let id = format!("dep-{next:06}");
    let now = now_ms();
    tx.execute(
        "INSERT INTO deployments (id, name, request, function, alias, target, alias_key, endpoint, region,
           spec, checks, sinks, phase, steps, created_at, updated_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, 'pending', ?13, ?14, ?14)",
        params![
            id,
            new.name,
            serde_json::to_string(&new.request)?,
            new.spec.function,
            new.spec.alias.to_string(),
            new.spec.target as i64,
            key,
            new.endpoint,
            new.region,
            serde_json::to_string(&new.spec)?,
            serde_json::to_string(&new.checks)?,
            serde_json::to_string(&new.sinks)?,
            new.spec.schedule.steps().len() as i64,
            now
        ],
    )?;
    let created = row_by_id(&tx, &id)?;
    tx.commit()?;
    Ok(Created::New(created))
}

#[cfg(test)]
mod tests {
    use fledge_core::judge::{Outcome, Verdict};
    use fledge_core::rollout::{Record, RecordKind};
    use fledge_core::time::Timestamp;

    use super::{ROUTINE_KEPT, Thinning};

    fn checked(at_s: u64, step: usize, outcome: Outcome) -> Record {
        Record {
            at: Timestamp(at_s * 1000),
            kind: RecordKind::Checked {
                step,
                weight: 0.1,
                verdict: Verdict::new(outcome, "r", Vec::new()),
            },
        }
    }

    #[test]
    fn routine_checks_are_thinned_to_one_a_minute_after_the_first_hundred() {
        let mut t = Thinning::default();
        // A day of passing checks every 5 s in one step.
        let kept = (0..17_280)
            .filter(|i| t.keep(&checked(i * 5, 1, Outcome::Pass)))
            .count() as u32;
        let minutes_after = (17_280 * 5 - ROUTINE_KEPT as u64 * 5) / 60;
        assert!(
            (ROUTINE_KEPT + minutes_after as u32 - 2..=ROUTINE_KEPT + minutes_after as u32 + 2)
                .contains(&kept),
            "{kept}"
        );
        // A change of outcome, or a new step, is kept at once and starts again.
        assert!(t.keep(&checked(86_400, 1, Outcome::Inconclusive)));
        assert!(t.keep(&checked(86_401, 1, Outcome::Inconclusive)));
        assert!(t.keep(&checked(86_402, 2, Outcome::Inconclusive)));
    }
}
