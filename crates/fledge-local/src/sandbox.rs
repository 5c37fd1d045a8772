//! Function processes. Each process (a sandbox) gets its own Runtime API endpoint, as a
//! Lambda sandbox does, and handles one invocation at a time: the platform puts the job in
//! the sandbox's slot, the process's `GET …/invocation/next` takes it, and its
//! `POST …/{id}/response` (or `/error`) meets the waiting caller through a oneshot.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use base64::Engine;
use http_body_util::BodyExt;
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::sync::{Notify, mpsc, oneshot};

use crate::runtimes::Launch;

/// The most a response or error body may be (Lambda: 6 MiB + 100 bytes).
pub const MAX_RESPONSE: usize = 6 * 1024 * 1024 + 100;
/// The largest response a function may stream (Lambda's default limit, 20 MB).
pub const MAX_STREAMED_RESPONSE: usize = 20 * 1024 * 1024;
/// The longest output line read for embedded metrics (CloudWatch Logs' event limit).
const MAX_LOG_LINE: usize = 256 * 1024;
/// The folder of the data directory that holds the processes' own `/tmp`s.
pub const SCRATCH: &str = "sandboxes";
/// How often a process's peak memory is compared with its function's memory size.
pub const MEMORY_CHECK: Duration = Duration::from_millis(50);
/// How long a process may take to start and ask for its first invocation.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// What a process is started with.
#[derive(Clone, Debug)]
pub struct SandboxSpec {
    pub function: String,
    pub version: String,
    pub memory_size: u32,
    pub timeout: Duration,
    pub handler: String,
    pub code_dir: PathBuf,
    pub environment: BTreeMap<String, String>,
    pub region: String,
    /// `provided.al2023`, `python3.12`, …
    pub runtime: String,
    pub launch: Launch,
    /// Where metrics the function writes in the embedded metric format go.
    pub metrics: Option<Arc<crate::metrics::Metrics>>,
    /// The folder under which each process gets a `/tmp` of its own (its `TMPDIR`),
    /// removed when the process ends.
    pub scratch: PathBuf,
    /// The version's `LoggingConfig`, which the runtime is told of.
    pub logging: crate::store::Logging,
    /// Started ahead of any invocation, for provisioned concurrency.
    pub provisioned: bool,
}

/// One invocation for a process.
pub struct Job {
    pub request_id: String,
    pub payload: Bytes,
    pub invoked_arn: String,
    pub client_context: Option<String>,
    pub trace_id: String,
    /// The caller asked for the log tail: everything the process wrote before it answered
    /// must be in [`Finished::logs`].
    pub tail: bool,
    /// InvokeWithResponseStream: the response's bytes go here as the process sends them,
    /// and [`JobResult::Response`] is left empty.
    pub stream: Option<mpsc::Sender<Bytes>>,
}

/// How an invocation ended, as the process (or its death) said.
#[derive(Debug)]
pub enum JobResult {
    Response(Bytes),
    FunctionError {
        error_type: Option<String>,
        body: Bytes,
    },
    /// The process exited (or was killed) mid-invocation or before taking it.
    Exited(String),
    /// The process reported an initialisation error.
    InitError(Bytes),
    /// The invocation ran past the function's timeout; the process was stopped.
    TimedOut,
    /// The response was larger than Lambda allows: this many bytes.
    ResponseTooLarge(usize),
    /// The process used more memory than its function's memory size and was killed.
    OutOfMemory,
}

/// A finished invocation with what the REPORT line needs.
pub struct Finished {
    pub result: JobResult,
    pub duration: Duration,
    /// Set on the invocation that paid for the process's start.
    pub init_duration: Option<Duration>,
    pub logs: String,
    /// The process's peak resident memory so far, in MB, when the log tail is asked for
    /// and the process can still be read.
    pub max_memory_mb: Option<u64>,
}

struct Pending {
    job: Job,
    picked: oneshot::Sender<Instant>,
    reply: oneshot::Sender<JobResult>,
}

struct Current {
    request_id: String,
    reply: oneshot::Sender<JobResult>,
    stream: Option<mpsc::Sender<Bytes>>,
}

struct Shared {
    spec: Arc<SandboxSpec>,
    pending: Mutex<Option<Pending>>,
    notify: Notify,
    current: Mutex<Option<Current>>,
    logs: Mutex<Vec<u8>>,
    /// One per output pipe: asks its collector to read whatever the pipe holds now.
    drains: Mutex<Vec<mpsc::UnboundedSender<oneshot::Sender<()>>>>,
    spawned: Instant,
    first_next: OnceLock<Instant>,
    dead: AtomicBool,
    /// Set when the process was killed for using more memory than it may.
    out_of_memory: AtomicBool,
}

/// A running function process and its Runtime API.
pub struct Sandbox {
    pub id: u64,
    /// The process's id, while it runs.
    pid: Option<u32>,
    shared: Arc<Shared>,
    kill: Mutex<Option<oneshot::Sender<()>>>,
    server: tokio::task::JoinHandle<()>,
    /// Milliseconds since the platform's epoch when it last finished work.
    idle_since: AtomicU64,
    init_reported: AtomicBool,
    /// Kept ready for provisioned concurrency: never stopped for being idle.
    provisioned: AtomicBool,
}

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Why a process could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// No `bootstrap` in the package.
    #[error("Couldn't find valid bootstrap(s): [/var/task/bootstrap /opt/bootstrap]")]
    NoBootstrap,
    /// The runtime cannot run here (no interpreter with its runtime client).
    #[error("{0}")]
    Runtime(String),
    #[error("could not start the function process: {0}")]
    Io(#[from] std::io::Error),
}

impl Sandbox {
    /// Starts a process for `spec`, with its own Runtime API on a free loopback port.
    pub async fn start(spec: Arc<SandboxSpec>) -> Result<Arc<Sandbox>, StartError> {
        let mut command = match &spec.launch {
            Launch::Bootstrap => {
                let bootstrap = spec.code_dir.join("bootstrap");
                if !bootstrap.is_file() {
                    return Err(StartError::NoBootstrap);
                }
                tokio::process::Command::new(bootstrap)
            }
            Launch::Python { interpreter } => {
                let mut command = tokio::process::Command::new(interpreter);
                command.args(["-m", "awslambdaric", &spec.handler]);
                command
            }
            Launch::Node {
                interpreter,
                script,
            } => {
                let mut command = tokio::process::Command::new(interpreter);
                command.arg(script);
                command
            }
        };
        let listener = tokio::net::TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        let addr = listener.local_addr()?;
        let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        // As a Lambda execution environment's /tmp: the process's own, kept from one
        // invocation to the next, gone with the process.
        let tmp = spec.scratch.join(id.to_string());
        let _ = std::fs::remove_dir_all(&tmp);
        std::fs::create_dir_all(&tmp)?;
        let shared = Arc::new(Shared {
            spec: spec.clone(),
            pending: Mutex::new(None),
            notify: Notify::new(),
            current: Mutex::new(None),
            logs: Mutex::new(Vec::new()),
            drains: Mutex::new(Vec::new()),
            spawned: Instant::now(),
            first_next: OnceLock::new(),
            dead: AtomicBool::new(false),
            out_of_memory: AtomicBool::new(false),
        });
        let app = runtime_api(shared.clone());
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener.tap_io(no_delay), app).await;
        });
        command
            .current_dir(&spec.code_dir)
            .env_clear()
            .envs(&spec.environment)
            .envs(runtime_environment(&spec, addr, id, &tmp))
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true);
        let mut child = match command.spawn() {
            Ok(child) => child,
            Err(e) => {
                server.abort();
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e.into());
            }
        };
        let pid = child.id();
        if let Some(out) = child.stdout.take() {
            spawn_collector(out, &shared);
        }
        if let Some(err) = child.stderr.take() {
            spawn_collector(err, &shared);
        }
        let (kill_tx, kill_rx) = oneshot::channel::<()>();
        let watched = shared.clone();
        let limit_mb = u64::from(spec.memory_size);
        tokio::spawn(async move {
            // As Lambda's memory limit: a process whose peak resident memory passes its
            // function's memory size is killed.
            let over_limit = async {
                let Some(pid) = pid else {
                    return std::future::pending().await;
                };
                loop {
                    tokio::time::sleep(MEMORY_CHECK).await;
                    if peak_memory_mb(pid).is_some_and(|mb| mb > limit_mb) {
                        return;
                    }
                }
            };
            let status = tokio::select! {
                status = child.wait() => status.map(|s| describe_exit(&s)).unwrap_or_else(|e| e.to_string()),
                _ = kill_rx => {
                    let _ = child.kill().await;
                    "signal: killed".to_string()
                }
                () = over_limit => {
                    watched.out_of_memory.store(true, Ordering::SeqCst);
                    let _ = child.kill().await;
                    "signal: killed".to_string()
                }
            };
            watched.dead.store(true, Ordering::SeqCst);
            let ended = || {
                if watched.out_of_memory.load(Ordering::SeqCst) {
                    JobResult::OutOfMemory
                } else {
                    JobResult::Exited(status.clone())
                }
            };
            if let Some(p) = watched.pending.lock().expect("sandbox lock").take() {
                let _ = p.reply.send(ended());
            }
            if let Some(c) = watched.current.lock().expect("sandbox lock").take() {
                let _ = c.reply.send(ended());
            }
            let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(tmp)).await;
        });
        Ok(Arc::new(Sandbox {
            id,
            pid,
            shared,
            kill: Mutex::new(Some(kill_tx)),
            server,
            idle_since: AtomicU64::new(0),
            // A provisioned process's start is paid before any invocation: none reports it.
            init_reported: AtomicBool::new(spec.provisioned),
            provisioned: AtomicBool::new(spec.provisioned),
        }))
    }

    /// Kept ready for provisioned concurrency.
    pub fn is_provisioned(&self) -> bool {
        self.provisioned.load(Ordering::Relaxed)
    }

    /// No longer kept for provisioned concurrency: it is stopped when idle, as any other.
    pub fn unprovision(&self) {
        self.provisioned.store(false, Ordering::Relaxed);
    }

    /// Whether its runtime has started and asked for work.
    pub fn is_initialized(&self) -> bool {
        self.shared.first_next.get().is_some()
    }

    pub fn is_alive(&self) -> bool {
        !self.shared.dead.load(Ordering::SeqCst)
    }

    /// Stops the process. It counts as dead from now on, so it is never handed work again.
    pub fn stop(&self) {
        self.shared.dead.store(true, Ordering::SeqCst);
        if let Some(kill) = self.kill.lock().expect("sandbox lock").take() {
            let _ = kill.send(());
        }
    }

    pub fn mark_idle(&self, now_ms: u64) {
        self.idle_since.store(now_ms, Ordering::Relaxed);
    }

    pub fn idle_since_ms(&self) -> u64 {
        self.idle_since.load(Ordering::Relaxed)
    }

    /// Runs one invocation: waits for the process to take it (its start counts against
    /// [`INIT_TIMEOUT`]), then for its answer until the function's timeout. A process that
    /// runs out of time is stopped.
    pub async fn invoke(&self, job: Job) -> Finished {
        let tail = job.tail;
        let (picked_tx, picked_rx) = oneshot::channel();
        let (reply_tx, reply_rx) = oneshot::channel();
        self.shared.logs.lock().expect("sandbox lock").clear();
        *self.shared.pending.lock().expect("sandbox lock") = Some(Pending {
            job,
            picked: picked_tx,
            reply: reply_tx,
        });
        self.shared.notify.notify_one();
        if self.shared.dead.load(Ordering::SeqCst)
            && let Some(p) = self.shared.pending.lock().expect("sandbox lock").take()
        {
            let _ = p
                .reply
                .send(JobResult::Exited("the process had already exited".into()));
        }
        let asked = Instant::now();
        let init_duration = || {
            let first = self.shared.first_next.get()?;
            (!self.init_reported.swap(true, Ordering::Relaxed))
                .then(|| first.duration_since(self.shared.spawned))
        };
        let started = match tokio::time::timeout(INIT_TIMEOUT, picked_rx).await {
            Ok(Ok(at)) => at,
            Ok(Err(_)) => {
                let result = reply_rx
                    .await
                    .unwrap_or(JobResult::Exited("unknown".into()));
                let init = init_duration();
                return self.finish(result, asked.elapsed(), init, tail).await;
            }
            Err(_) => {
                self.stop();
                let init = init_duration();
                return self
                    .finish(JobResult::TimedOut, asked.elapsed(), init, tail)
                    .await;
            }
        };
        let deadline = started + self.shared.spec.timeout;
        let result = match tokio::time::timeout_at(deadline.into(), reply_rx).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => JobResult::Exited("unknown".into()),
            Err(_) => {
                self.shared.current.lock().expect("sandbox lock").take();
                self.stop();
                JobResult::TimedOut
            }
        };
        let init = init_duration();
        self.finish(result, started.elapsed(), init, tail).await
    }

    async fn finish(
        &self,
        result: JobResult,
        duration: Duration,
        init_duration: Option<Duration>,
        tail: bool,
    ) -> Finished {
        if let JobResult::InitError(_) = result {
            // The runtime gave up during its start and exits; Lambda starts the next
            // invocation in a fresh sandbox, so this one is never handed work again.
            self.stop();
        }
        if tail {
            self.drain_logs().await;
        }
        let logs = std::mem::take(&mut *self.shared.logs.lock().expect("sandbox lock"));
        let logs = String::from_utf8_lossy(&logs).into_owned();
        let max_memory_mb = if tail {
            self.pid.and_then(peak_memory_mb)
        } else {
            None
        };
        Finished {
            result,
            duration,
            init_duration,
            logs,
            max_memory_mb,
        }
    }
}

impl Sandbox {
    /// Waits until the collectors have read what the process's pipes hold now: what it
    /// wrote before answering is in them, though it may not have been read yet.
    async fn drain_logs(&self) {
        let asked: Vec<_> = self
            .shared
            .drains
            .lock()
            .expect("sandbox lock")
            .iter()
            .filter_map(|drain| {
                let (done, read) = oneshot::channel();
                drain.send(done).ok().map(|()| read)
            })
            .collect();
        let all = async {
            for read in asked {
                let _ = read.await;
            }
        };
        let _ = tokio::time::timeout(Duration::from_millis(200), all).await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        self.stop();
        self.server.abort();
    }
}

/// Every answer is one whole message written at once, so Nagle's algorithm could only
/// hold it back waiting for an acknowledgement.
pub(crate) fn no_delay(stream: &mut tokio::net::TcpStream) {
    let _ = stream.set_nodelay(true);
}

/// A process's peak resident memory in MB (`VmHWM`, rounded up), as Lambda's REPORT line
/// gives "Max Memory Used".
fn peak_memory_mb(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb.div_ceil(1024))
}

fn describe_exit(status: &std::process::ExitStatus) -> String {
    #[cfg(unix)]
    {
        use std::os::unix::process::ExitStatusExt;
        if let Some(signal) = status.signal() {
            return match signal {
                9 => "signal: killed".into(),
                11 => "signal: segmentation fault".into(),
                15 => "signal: terminated".into(),
                6 => "signal: aborted".into(),
                n => format!("signal: {n}"),
            };
        }
    }
    format!("exit status {}", status.code().unwrap_or(-1))
}

fn runtime_environment(
    spec: &SandboxSpec,
    addr: SocketAddr,
    id: u64,
    tmp: &std::path::Path,
) -> Vec<(String, String)> {
    let code = spec.code_dir.display().to_string();
    let pairs = [
        ("AWS_LAMBDA_RUNTIME_API", addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", spec.function.clone()),
        ("AWS_LAMBDA_FUNCTION_VERSION", spec.version.clone()),
        (
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
            spec.memory_size.to_string(),
        ),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            spec.logging.log_group(&spec.function),
        ),
        ("AWS_LAMBDA_LOG_FORMAT", spec.logging.format().into()),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("[{}]{id:032x}", spec.version),
        ),
        (
            "AWS_LAMBDA_INITIALIZATION_TYPE",
            if spec.provisioned {
                "provisioned-concurrency"
            } else {
                "on-demand"
            }
            .into(),
        ),
        ("_HANDLER", spec.handler.clone()),
        ("LAMBDA_TASK_ROOT", code.clone()),
        ("LAMBDA_RUNTIME_DIR", code.clone()),
        ("AWS_REGION", spec.region.clone()),
        ("AWS_DEFAULT_REGION", spec.region.clone()),
        ("AWS_ACCESS_KEY_ID", "fledge-local".into()),
        ("AWS_SECRET_ACCESS_KEY", "fledge-local".into()),
        ("AWS_SESSION_TOKEN", "fledge-local".into()),
        ("TZ", "UTC".into()),
        ("LANG", "en_US.UTF-8".into()),
        ("PATH", "/usr/local/bin:/usr/bin:/bin:/opt/bin".into()),
        (
            "LD_LIBRARY_PATH",
            format!("{code}/lib:/usr/local/lib:/usr/lib:/lib"),
        ),
    ];
    let mut env: Vec<(String, String)> =
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    if spec.logging.json {
        env.push((
            "AWS_LAMBDA_LOG_LEVEL".into(),
            spec.logging.application_level().into(),
        ));
    }
    // Programs that ask where temporary files go (mktemp, Python's tempfile, Node's
    // os.tmpdir(), Rust's env::temp_dir()) find the process's own /tmp, unless the
    // function sets TMPDIR itself.
    if !spec.environment.contains_key("TMPDIR") {
        env.push(("TMPDIR".into(), tmp.display().to_string()));
    }
    // As Lambda's language runtimes: the package's modules can be found, and the runtime
    // is named.
    match spec.launch {
        Launch::Bootstrap => {}
        Launch::Python { .. } => env.push(("PYTHONPATH".into(), code.clone())),
        Launch::Node { .. } => {
            env.push(("NODE_PATH".into(), format!("{code}/node_modules:{code}")))
        }
    }
    if spec.launch != Launch::Bootstrap {
        env.push((
            "AWS_EXECUTION_ENV".into(),
            format!("AWS_Lambda_{}", spec.runtime),
        ));
    }
    env
}

/// Starts the task that keeps what the process writes to `pipe` for its invocation's log.
fn spawn_collector<P>(pipe: P, shared: &Arc<Shared>)
where
    P: AsyncRead + Unpin + Send + 'static + std::os::fd::AsFd,
{
    // A second handle on the same pipe, to read what it holds right now without waiting
    // for the reactor to report it. tokio makes its end of a child's pipe non-blocking,
    // and the handles share that, so such a read never waits.
    let now = pipe
        .as_fd()
        .try_clone_to_owned()
        .ok()
        .map(std::fs::File::from);
    let (drain, drains) = mpsc::unbounded_channel();
    shared.drains.lock().expect("sandbox lock").push(drain);
    tokio::spawn(collect_logs(pipe, now, shared.clone(), drains));
}

/// Appends what the process writes to its log until the pipe closes. A drain request reads
/// whatever the pipe holds at once, in the same task, so the order is kept.
async fn collect_logs(
    mut pipe: impl AsyncRead + Unpin,
    mut now: Option<std::fs::File>,
    shared: Arc<Shared>,
    mut drains: mpsc::UnboundedReceiver<oneshot::Sender<()>>,
) {
    // The line being read, for the embedded metric format: a line may span reads.
    let mut partial: Vec<u8> = Vec::new();
    let mut keep = |bytes: &[u8]| {
        for line in String::from_utf8_lossy(bytes).lines() {
            tracing::debug!(target: "fledge_local::function", function = %shared.spec.function, version = %shared.spec.version, "{line}");
        }
        if let Some(metrics) = &shared.spec.metrics {
            partial.extend_from_slice(bytes);
            while let Some(end) = partial.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = partial.drain(..=end).collect();
                crate::emf::publish_line(
                    metrics,
                    &String::from_utf8_lossy(&line),
                    crate::wire::now_ms(),
                );
            }
            if partial.len() > MAX_LOG_LINE {
                partial.clear();
            }
        }
        shared
            .logs
            .lock()
            .expect("sandbox lock")
            .extend_from_slice(bytes);
    };
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        tokio::select! {
            biased;
            Some(done) = drains.recv() => {
                if let Some(file) = now.as_mut() {
                    use std::io::Read;
                    while let Ok(n @ 1..) = file.read(&mut buf) {
                        keep(&buf[..n]);
                    }
                }
                let _ = done.send(());
            }
            read = pipe.read(&mut buf) => match read {
                Ok(0) | Err(_) => return,
                Ok(n) => keep(&buf[..n]),
            },
        }
    }
}

// ---- the Runtime API ----

fn runtime_api(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/2018-06-01/runtime/invocation/next", get(next))
        .route(
            "/2018-06-01/runtime/invocation/{id}/response",
            post(response),
        )
        .route("/2018-06-01/runtime/invocation/{id}/error", post(error))
        .route("/2018-06-01/runtime/init/error", post(init_error))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_RESPONSE * 2))
        .with_state(shared)
}

fn runtime_error(status: StatusCode, error_type: &str, message: &str) -> Response {
    (
        status,
        axum::Json(serde_json::json!({"errorMessage": message, "errorType": error_type})),
    )
        .into_response()
}

fn accepted() -> Response {
    (
        StatusCode::ACCEPTED,
        axum::Json(serde_json::json!({"status": "OK"})),
    )
        .into_response()
}

async fn next(State(shared): State<Arc<Shared>>) -> Response {
    loop {
        let taken = shared.pending.lock().expect("sandbox lock").take();
        if let Some(p) = taken {
            let now = Instant::now();
            shared.first_next.get_or_init(|| now);
            let deadline_ms = crate::wire::now_ms() + shared.spec.timeout.as_millis() as u64;
            *shared.current.lock().expect("sandbox lock") = Some(Current {
                request_id: p.job.request_id.clone(),
                reply: p.reply,
                stream: p.job.stream,
            });
            let _ = p.picked.send(now);
            let mut headers = HeaderMap::new();
            let mut set = |name: &'static str, value: &str| {
                if let Ok(v) = HeaderValue::from_str(value) {
                    headers.insert(name, v);
                }
            };
            set("lambda-runtime-aws-request-id", &p.job.request_id);
            set("lambda-runtime-deadline-ms", &deadline_ms.to_string());
            set("lambda-runtime-invoked-function-arn", &p.job.invoked_arn);
            set("lambda-runtime-trace-id", &p.job.trace_id);
            set("content-type", "application/json");
            if let Some(ctx) = &p.job.client_context {
                set("lambda-runtime-client-context", ctx);
            }
            return (StatusCode::OK, headers, p.job.payload).into_response();
        }
        if shared.dead.load(Ordering::SeqCst) {
            return runtime_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "InternalServerError",
                "the sandbox is shutting down",
            );
        }
        shared.first_next.get_or_init(Instant::now);
        shared.notify.notified().await;
    }
}

fn take_current(shared: &Shared, id: &str) -> Option<Current> {
    let mut current = shared.current.lock().expect("sandbox lock");
    if current.as_ref().is_some_and(|c| c.request_id == id) {
        current.take()
    } else {
        None
    }
}

fn invalid_request_id() -> Response {
    runtime_error(
        StatusCode::BAD_REQUEST,
        "InvalidRequestID",
        "Invalid request ID",
    )
}

/// `POST …/{id}/response`: the whole answer, or (`Lambda-Runtime-Function-Response-Mode:
/// streaming`, chunked) a stream of it, which goes on to a streaming caller as it comes. A
/// streamed response that fails midway says so in the trailers
/// `Lambda-Runtime-Function-Error-Type` and `…-Error-Body` (base64).
async fn response(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: axum::body::Body,
) -> Response {
    let Some(current) = take_current(&shared, &id) else {
        return invalid_request_id();
    };
    let streamed = headers
        .get("lambda-runtime-function-response-mode")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"streaming"));
    // A stream may be larger when its caller reads it as a stream; Invoke gathers it into
    // one answer, which has the usual limit.
    let limit = if streamed && current.stream.is_some() {
        MAX_STREAMED_RESPONSE
    } else {
        MAX_RESPONSE
    };
    let mut body = body;
    let (mut chunks, mut total, mut failure) = (Vec::<Bytes>::new(), 0usize, None);
    while let Some(frame) = body.frame().await {
        let frame = match frame {
            Ok(frame) => frame,
            Err(e) => {
                failure = Some(JobResult::FunctionError {
                    error_type: Some("Runtime.StreamError".into()),
                    body: Bytes::from(format!("the response stream broke off: {e}")),
                });
                break;
            }
        };
        match frame.into_data() {
            Ok(data) => {
                total += data.len();
                if total > limit {
                    let _ = current.reply.send(JobResult::ResponseTooLarge(limit));
                    return runtime_error(
                        StatusCode::PAYLOAD_TOO_LARGE,
                        "RequestEntityTooLarge",
                        &format!("Exceeded maximum allowed payload size ({limit} bytes)."),
                    );
                }
                match &current.stream {
                    // A caller that went away stops nothing: the function still finishes.
                    Some(to_caller) => {
                        let _ = to_caller.send(data).await;
                    }
                    None => chunks.push(data),
                }
            }
            Err(frame) => {
                if let Ok(trailers) = frame.into_trailers()
                    && let Some(error_type) = trailers
                        .get("lambda-runtime-function-error-type")
                        .and_then(|v| v.to_str().ok())
                {
                    let body = trailers
                        .get("lambda-runtime-function-error-body")
                        .and_then(|v| {
                            base64::engine::general_purpose::STANDARD
                                .decode(v.as_bytes())
                                .ok()
                        })
                        .unwrap_or_default();
                    failure = Some(JobResult::FunctionError {
                        error_type: Some(error_type.to_owned()),
                        body: Bytes::from(body),
                    });
                }
            }
        }
    }
    let result = failure.unwrap_or_else(|| {
        JobResult::Response(match chunks.len() {
            0 => Bytes::new(),
            1 => chunks.pop().expect("one chunk"),
            _ => Bytes::from(chunks.concat()),
        })
    });
    let _ = current.reply.send(result);
    accepted()
}

async fn error(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(Current { reply, .. }) = take_current(&shared, &id) else {
        return invalid_request_id();
    };
    let error_type = headers
        .get("lambda-runtime-function-error-type")
        .and_then(|v| v.to_str().ok())
        .map(String::from);
    let _ = reply.send(JobResult::FunctionError { error_type, body });
    accepted()
}

async fn init_error(State(shared): State<Arc<Shared>>, body: Bytes) -> Response {
    if let Some(p) = shared.pending.lock().expect("sandbox lock").take() {
        let _ = p.reply.send(JobResult::InitError(body));
    }
    accepted()
}
