//! Invoke: resolve the qualifier, route an alias, take or start a process, run, and answer
//! as Lambda does (headers, function errors, timeouts, throttles), leaving metrics behind.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use fledge_core::lambda::{ErrorType, FunctionRef, LambdaError, NameKind, Qualifier, Version};
use serde::Deserialize;

use crate::metrics::{Sample, SeriesKey};
use crate::routing::{RoutingMode, sticky_key};
use crate::sandbox::{Finished, Job, JobResult, SCRATCH, Sandbox, SandboxSpec, StartError};
use crate::scale::{Decision, PoolView, decide, should_reap};
use crate::server::Platform;
use crate::store::FunctionVersion;
use crate::wire::{ApiError, now_ms, uuid};

/// The largest synchronous payload (6 MB).
pub const MAX_SYNC_PAYLOAD: usize = 6 * 1024 * 1024;
/// The largest asynchronous payload (1 MB).
pub const MAX_ASYNC_PAYLOAD: usize = 1024 * 1024;

/// Which processes can serve a version: the same code and configuration.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
struct PoolKey {
    function: String,
    version: Version,
    revision: String,
}

/// Warm processes by version, and invocations in flight by function.
#[derive(Default)]
pub struct Pools {
    idle: Mutex<HashMap<PoolKey, Vec<Arc<Sandbox>>>>,
    in_flight: Mutex<HashMap<String, usize>>,
    /// Processes kept ready for provisioned concurrency, by version (idle or busy).
    provisioned: Mutex<HashMap<PoolKey, Vec<Arc<Sandbox>>>>,
    /// Versions whose provisioned processes could not start, told once each.
    provision_failures: Mutex<std::collections::HashSet<PoolKey>>,
}

/// An invocation's claim on its function's concurrency, released when dropped.
struct Claim<'a> {
    pools: &'a Pools,
    function: String,
}

impl Drop for Claim<'_> {
    fn drop(&mut self) {
        let mut in_flight = self.pools.in_flight.lock().expect("pools lock");
        if let Some(n) = in_flight.get_mut(&self.function) {
            *n = n.saturating_sub(1);
        }
    }
}

enum Acquired<'a> {
    Ready(Arc<Sandbox>, Claim<'a>, usize),
    Cold(Claim<'a>, usize),
    Throttled,
}

impl Pools {
    fn acquire(&self, key: &PoolKey, limit: usize) -> Acquired<'_> {
        let mut idle = self.idle.lock().expect("pools lock");
        let mut in_flight = self.in_flight.lock().expect("pools lock");
        let list = idle.entry(key.clone()).or_default();
        list.retain(|s| s.is_alive());
        let running = in_flight.entry(key.function.clone()).or_default();
        let view = PoolView {
            idle: list.len(),
            in_flight: *running,
            limit,
        };
        let decision = decide(view);
        if decision == Decision::Throttle {
            return Acquired::Throttled;
        }
        *running += 1;
        let concurrency = *running;
        let claim = Claim {
            pools: self,
            function: key.function.clone(),
        };
        match decision {
            Decision::UseIdle => Acquired::Ready(list.pop().expect("idle > 0"), claim, concurrency),
            _ => Acquired::Cold(claim, concurrency),
        }
    }

    fn release(&self, key: PoolKey, sandbox: Arc<Sandbox>) {
        if sandbox.is_alive() {
            sandbox.mark_idle(now_ms());
            self.idle
                .lock()
                .expect("pools lock")
                .entry(key)
                .or_default()
                .push(sandbox);
        }
    }

    /// Stops processes idle for `idle_timeout` or more; answers how many.
    pub fn reap(&self, idle_timeout: Duration) -> usize {
        let now = now_ms();
        let mut idle = self.idle.lock().expect("pools lock");
        let mut stopped = 0;
        for list in idle.values_mut() {
            list.retain(|s| {
                let keep = s.is_alive()
                    && (s.is_provisioned()
                        || !should_reap(
                            Duration::from_millis(now.saturating_sub(s.idle_since_ms())),
                            idle_timeout,
                        ));
                if !keep {
                    s.stop();
                    stopped += 1;
                }
                keep
            });
        }
        idle.retain(|_, l| !l.is_empty());
        stopped
    }

    /// Warm processes right now, for tests and status.
    pub fn idle_count(&self) -> usize {
        self.idle
            .lock()
            .expect("pools lock")
            .values()
            .map(Vec::len)
            .sum()
    }

    /// Provisioned processes of `function`'s `version`: (started, ready for work).
    pub(crate) fn provisioned_of(&self, function: &str, version: Version) -> (usize, usize) {
        let provisioned = self.provisioned.lock().expect("pools lock");
        provisioned
            .iter()
            .filter(|(k, _)| k.function == function && k.version == version)
            .flat_map(|(_, list)| list.iter().filter(|s| s.is_alive()))
            .fold((0, 0), |(started, ready), s| {
                (started + 1, ready + usize::from(s.is_initialized()))
            })
    }

    /// Stops every process.
    pub fn stop_all(&self) {
        self.provisioned.lock().expect("pools lock").clear();
        let mut idle = self.idle.lock().expect("pools lock");
        for s in idle.values().flatten() {
            s.stop();
        }
        idle.clear();
    }
}

#[derive(Deserialize)]
pub struct InvokeQuery {
    #[serde(rename = "Qualifier")]
    pub(crate) qualifier: Option<String>,
}

/// What an invocation resolved to.
#[derive(Clone)]
pub(crate) struct Target {
    pub(crate) function: String,
    pub(crate) version: Arc<FunctionVersion>,
    /// `fn:qualifier` as the caller named it.
    pub(crate) resource: Option<String>,
    /// Set for alias invocations.
    via_alias: bool,
    invoked_arn: String,
    reserved: Option<u32>,
}

/// An Invoke (or InvokeWithResponseStream) request, read, checked and routed.
pub(crate) struct Request {
    pub(crate) invocation_type: String,
    pub(crate) tail: bool,
    pub(crate) payload: Bytes,
    pub(crate) client_context: Option<String>,
    pub(crate) reference: FunctionRef,
    /// What it resolved to (an alias's version picked).
    pub(crate) target: Target,
}

impl Request {
    /// Reads the headers, payload and name of an invocation whose type is one of `types`,
    /// and routes it.
    pub(crate) fn read(
        platform: &Platform,
        name: &str,
        qualifier: Option<&str>,
        headers: &HeaderMap,
        body: Bytes,
        types: &[&str],
    ) -> Result<Request, LambdaError> {
        let header = |h: &str| {
            headers
                .get(h)
                .and_then(|v| v.to_str().ok())
                .map(String::from)
        };
        let invocation_type =
            header("x-amz-invocation-type").unwrap_or_else(|| "RequestResponse".into());
        if !types.contains(&invocation_type.as_str()) {
            return Err(LambdaError::new(
                ErrorType::InvalidRequestContent,
                format!(
                    "1 validation error detected: Value '{invocation_type}' at 'invocationType' failed to satisfy constraint: Member must satisfy enum value set: [{}]",
                    types.join(", ")
                ),
            ));
        }
        let limit = if invocation_type == "Event" {
            MAX_ASYNC_PAYLOAD
        } else {
            MAX_SYNC_PAYLOAD
        };
        if body.len() > limit {
            return Err(LambdaError::new(
                ErrorType::RequestTooLarge,
                format!(
                    "Request must be smaller than {limit} bytes for the InvokeFunction operation"
                ),
            ));
        }
        let payload = if body.is_empty() {
            Bytes::from_static(b"{}")
        } else {
            body
        };
        if let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&payload) {
            return Err(LambdaError::new(
                ErrorType::InvalidRequestContent,
                format!("Could not parse request body into json: {e}"),
            ));
        }
        let client_context = header("x-amz-client-context")
            .map(|c| client_context(&c))
            .transpose()?;
        let reference =
            FunctionRef::parse(name, NameKind::Namespaced)?.with_qualifier_param(qualifier)?;
        reference.check_region(&platform.store.region)?;
        let target = resolve(platform, &reference, sticky_of(headers, &payload))?;
        Ok(Request {
            tail: header("x-amz-log-type").as_deref() == Some("Tail"),
            invocation_type,
            payload,
            client_context,
            reference,
            target,
        })
    }
}

pub async fn handle(
    State(platform): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(query): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    platform.faults.apply("Invoke").await?;
    let request = Request::read(
        &platform,
        &name,
        query.qualifier.as_deref(),
        &headers,
        body,
        &["Event", "RequestResponse", "DryRun"],
    )?;
    let target = request.target;
    match request.invocation_type.as_str() {
        "DryRun" => Ok(StatusCode::NO_CONTENT.into_response()),
        "Event" => {
            crate::events::accept(
                &platform,
                request.reference,
                request.payload,
                &headers,
                target,
            )?;
            Ok(StatusCode::ACCEPTED.into_response())
        }
        _ => {
            let request_id = uuid();
            let outcome = run_with_id(
                &platform,
                &target,
                request.payload,
                request.client_context,
                request_id.clone(),
                request.tail,
                None,
            )
            .await?;
            Ok(respond(&target, &request_id, outcome, request.tail))
        }
    }
}

/// The key a sticky alias would route this request by (a header or a field of the payload).
pub(crate) fn sticky_of<'a>(
    headers: &'a HeaderMap,
    payload: &'a Bytes,
) -> impl Fn(&RoutingMode) -> Option<String> + 'a {
    move |mode| match mode {
        RoutingMode::Sticky { key } => sticky_key(
            key,
            |h| {
                headers
                    .get(h)
                    .and_then(|v| v.to_str().ok())
                    .map(String::from)
            },
            payload,
        ),
        _ => None,
    }
}

pub(crate) fn resolve(
    platform: &Platform,
    reference: &FunctionRef,
    sticky: impl Fn(&RoutingMode) -> Option<String>,
) -> Result<Target, LambdaError> {
    let store = &platform.store;
    store.read(|functions| {
        let arn = store.function_arn(&reference.name);
        let Some(function) = functions.get(&reference.name) else {
            let q = reference
                .qualifier
                .as_ref()
                .map_or("$LATEST".to_string(), |q| q.to_string());
            return Err(LambdaError::not_found(format!(
                "Function not found: {arn}:{q}"
            )));
        };
        let not_found = |q: &str| LambdaError::not_found(format!("Function not found: {arn}:{q}"));
        let (version, resource, via_alias) = match &reference.qualifier {
            None => (function.latest.clone(), None, false),
            Some(Qualifier::Version(v)) => {
                let found = function
                    .version(*v)
                    .ok_or_else(|| not_found(&v.to_string()))?;
                (found.clone(), Some(format!("{}:{v}", function.name)), false)
            }
            Some(Qualifier::Alias(a)) => {
                let alias = function
                    .aliases
                    .get(a.as_str())
                    .ok_or_else(|| not_found(a.as_str()))?;
                let key = sticky(&alias.mode);
                let picked = platform.router.pick(
                    &function.name,
                    &alias.name,
                    &alias.routing(),
                    &alias.mode,
                    key.as_deref(),
                );
                let found = function
                    .version(picked)
                    .ok_or_else(|| not_found(&picked.to_string()))?;
                (found.clone(), Some(format!("{}:{a}", function.name)), true)
            }
        };
        let invoked_arn = match &reference.qualifier {
            Some(q) => format!("{arn}:{q}"),
            None => arn,
        };
        Ok(Target {
            function: function.name.clone(),
            version,
            resource,
            via_alias,
            invoked_arn,
            reserved: function.reserved_concurrency,
        })
    })
}

/// How an invocation ended, for the caller.
pub(crate) enum Outcome {
    Ran(Finished),
    /// The process could not be started (no bootstrap, or the system refused).
    CouldNotStart(String, String),
}

/// The most `X-Amz-Client-Context` may be, in bytes of base64.
pub const MAX_CLIENT_CONTEXT: usize = 3583;

/// Invoke's `X-Amz-Client-Context` (base64 of a JSON object) as the Runtime API passes it on
/// to the function: the JSON itself. (The messages are fledge's; AWS's are unverified.)
fn client_context(base64: &str) -> Result<String, LambdaError> {
    if base64.len() > MAX_CLIENT_CONTEXT {
        return Err(LambdaError::new(
            ErrorType::InvalidRequestContent,
            format!(
                "Client context must be at most {MAX_CLIENT_CONTEXT} bytes of base64; it is {}",
                base64.len()
            ),
        ));
    }
    base64::engine::general_purpose::STANDARD
        .decode(base64.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .filter(|json| serde_json::from_str::<serde_json::Value>(json).is_ok_and(|v| v.is_object()))
        .ok_or_else(|| {
            LambdaError::new(
                ErrorType::InvalidRequestContent,
                "Client context must be a valid Base64-encoded JSON object.",
            )
        })
}

pub(crate) async fn run_with_id(
    platform: &Platform,
    target: &Target,
    payload: Bytes,
    client_context: Option<String>,
    request_id: String,
    tail: bool,
    stream: Option<tokio::sync::mpsc::Sender<Bytes>>,
) -> Result<Outcome, LambdaError> {
    let key = PoolKey {
        function: target.function.clone(),
        version: target.version.version,
        revision: target.version.revision_id.clone(),
    };
    let limit = target.reserved.unwrap_or(platform.config.concurrency_limit) as usize;
    let series = SeriesKey {
        function: target.function.as_str().into(),
        resource: target.resource.as_deref().map(Into::into),
        executed: target
            .via_alias
            .then(|| target.version.version.to_string().into()),
    };
    let started_ms = now_ms();
    let (sandbox, claim, concurrency) = match platform.pools.acquire(&key, limit) {
        Acquired::Throttled => {
            platform.metrics.record(
                series,
                Sample {
                    at_ms: started_ms,
                    ran: false,
                    error: false,
                    duration_ms: 0.0,
                    concurrency: 0,
                },
            );
            let reason = if target.reserved.is_some() {
                "ReservedFunctionConcurrentInvocationLimitExceeded"
            } else {
                "ConcurrentInvocationLimitExceeded"
            };
            return Err(LambdaError::new(
                ErrorType::TooManyRequests,
                format!(
                    "Rate Exceeded. ({reason}: {limit} concurrent invocations of {})",
                    target.function
                ),
            )
            .with_reason(reason));
        }
        Acquired::Ready(sandbox, claim, concurrency) => (sandbox, claim, concurrency),
        Acquired::Cold(claim, concurrency) => {
            let started = match sandbox_spec(platform, target) {
                Ok(spec) => Sandbox::start(Arc::new(spec)).await,
                Err(e) => Err(e),
            };
            match started {
                Ok(sandbox) => (sandbox, claim, concurrency),
                Err(e) => {
                    drop(claim);
                    let (kind, message) = match e {
                        StartError::NoBootstrap => (
                            "Runtime.InvalidEntrypoint",
                            format!("RequestId: {request_id} Error: {e}"),
                        ),
                        other => (
                            "Runtime.Unknown",
                            format!("RequestId: {request_id} Error: {other}"),
                        ),
                    };
                    platform.metrics.record(
                        series,
                        Sample {
                            at_ms: started_ms,
                            ran: true,
                            error: true,
                            duration_ms: 0.0,
                            concurrency: concurrency as u64,
                        },
                    );
                    return Ok(Outcome::CouldNotStart(kind.into(), message));
                }
            }
        }
    };
    let job = Job {
        request_id: request_id.clone(),
        payload,
        invoked_arn: target.invoked_arn.clone(),
        client_context,
        trace_id: format!(
            "Root=1-{:08x}-{}",
            started_ms / 1000,
            &uuid().replace('-', "")[..24]
        ),
        tail,
        stream,
    };
    let finished = sandbox.invoke(job).await;
    drop(claim);
    let error = !matches!(finished.result, JobResult::Response(_));
    platform.metrics.record(
        series,
        Sample {
            at_ms: started_ms,
            ran: true,
            error,
            duration_ms: finished.duration.as_secs_f64() * 1000.0,
            concurrency: concurrency as u64,
        },
    );
    platform.pools.release(key, sandbox);
    Ok(Outcome::Ran(finished))
}

fn sandbox_spec(platform: &Platform, target: &Target) -> Result<SandboxSpec, StartError> {
    spec_of(platform, &target.function, &target.version, false)
}

/// How to start a process of `function`'s version `v`.
fn spec_of(
    platform: &Platform,
    function: &str,
    v: &FunctionVersion,
    provisioned: bool,
) -> Result<SandboxSpec, StartError> {
    let launch = platform
        .store
        .runtimes
        .launch(&v.runtime)
        .map_err(StartError::Runtime)?;
    Ok(SandboxSpec {
        function: function.to_owned(),
        version: v.version.to_string(),
        memory_size: v.memory_size,
        timeout: Duration::from_secs(u64::from(v.timeout)),
        handler: v.handler.clone(),
        code_dir: platform.store.code_dir(&v.code_id),
        environment: v.environment.clone(),
        region: platform.store.region.clone(),
        runtime: v.runtime.clone(),
        launch,
        metrics: Some(platform.metrics.clone()),
        scratch: platform.config.data_dir.join(SCRATCH),
        logging: v.logging.clone(),
        provisioned,
    })
}

/// How many processes each version should keep ready for provisioned concurrency: a
/// version qualifier's count goes to that version; an alias's is split by its weights.
fn provisioned_wanted(platform: &Platform) -> HashMap<PoolKey, (Arc<FunctionVersion>, usize)> {
    platform.store.read(|functions| {
        let mut wanted: HashMap<PoolKey, (Arc<FunctionVersion>, usize)> = HashMap::new();
        for f in functions.values() {
            for (qualifier, config) in &f.provisioned {
                let n = config.requested as usize;
                let shares: Vec<(Version, usize)> = match f.aliases.get(qualifier) {
                    Some(alias) => match alias.additional {
                        Some(extra) => {
                            let to_extra = (n as f64 * extra.weight).round() as usize;
                            vec![
                                (alias.function_version, n - to_extra.min(n)),
                                (Version::Number(extra.version), to_extra.min(n)),
                            ]
                        }
                        None => vec![(alias.function_version, n)],
                    },
                    None => qualifier
                        .parse::<u64>()
                        .map(|v| vec![(Version::Number(v), n)])
                        .unwrap_or_default(),
                };
                for (version, count) in shares {
                    let Some(v) = f.version(version) else {
                        continue;
                    };
                    let key = PoolKey {
                        function: f.name.clone(),
                        version,
                        revision: v.revision_id.clone(),
                    };
                    wanted.entry(key).or_insert_with(|| (v.clone(), 0)).1 += count;
                }
            }
        }
        wanted
    })
}

/// Brings the processes kept for provisioned concurrency to what is asked for: starts the
/// missing ones (ready for work before any invocation), and lets extra ones go back to
/// being ordinary warm processes.
pub(crate) async fn provision(platform: &Platform) {
    let wanted = provisioned_wanted(platform);
    let mut to_start: Vec<(PoolKey, Arc<FunctionVersion>, usize)> = Vec::new();
    {
        let mut provisioned = platform.pools.provisioned.lock().expect("pools lock");
        provisioned.retain(|key, list| {
            list.retain(|s| s.is_alive());
            let keep = wanted.get(key).map_or(0, |(_, n)| *n);
            while list.len() > keep {
                if let Some(extra) = list.pop() {
                    extra.unprovision();
                }
            }
            !list.is_empty()
        });
        for (key, (version, n)) in &wanted {
            let have = provisioned.get(key).map_or(0, Vec::len);
            if have < *n {
                to_start.push((key.clone(), version.clone(), n - have));
            }
        }
    }
    for (key, version, missing) in to_start {
        for _ in 0..missing {
            let started = match spec_of(platform, &key.function, &version, true) {
                Ok(spec) => Sandbox::start(Arc::new(spec)).await,
                Err(e) => Err(e),
            };
            match started {
                Ok(sandbox) => {
                    platform
                        .pools
                        .provisioned
                        .lock()
                        .expect("pools lock")
                        .entry(key.clone())
                        .or_default()
                        .push(sandbox.clone());
                    platform.pools.release(key.clone(), sandbox);
                }
                Err(e) => {
                    let first = platform
                        .pools
                        .provision_failures
                        .lock()
                        .expect("pools lock")
                        .insert(key.clone());
                    if first {
                        tracing::warn!(
                            "fledge local could not start a provisioned process of {}:{} (tried again every second): {e}",
                            key.function,
                            key.version
                        );
                    }
                    break;
                }
            }
        }
    }
}

fn error_body(error_type: &str, message: &str) -> Bytes {
    Bytes::from(serde_json::json!({"errorType": error_type, "errorMessage": message}).to_string())
}

/// An invocation's end as the caller sees it: the answer's body (the function's error in
/// Lambda's shape when it failed), and what its log tail needs.
pub(crate) struct Settled {
    pub(crate) body: Bytes,
    pub(crate) failed: bool,
    logs: String,
    duration: Duration,
    init: Option<Duration>,
    /// How the invocation ended, as a `platform.report` record says it.
    status: &'static str,
    max_memory_mb: Option<u64>,
}

impl Settled {
    /// The base64 log tail Lambda gives with `LogType: Tail`: its last 4 KB.
    pub(crate) fn tail_log(&self, request_id: &str, target: &Target) -> String {
        let text = platform_log(request_id, &target.version, self);
        let bytes = text.as_bytes();
        let start = bytes.len().saturating_sub(4096);
        base64::engine::general_purpose::STANDARD.encode(&bytes[start..])
    }
}

pub(crate) fn settle(target: &Target, request_id: &str, outcome: Outcome) -> Settled {
    let timeout = target.version.timeout;
    let memory_size = target.version.memory_size;
    let (body, failed, logs, duration, init, status, max_memory_mb) = match outcome {
        Outcome::CouldNotStart(kind, message) => (
            error_body(&kind, &message),
            true,
            String::new(),
            Duration::ZERO,
            None,
            "failure",
            None,
        ),
        Outcome::Ran(f) => {
            let out_of_memory = matches!(f.result, JobResult::OutOfMemory);
            let status = match f.result {
                JobResult::Response(_) => "success",
                JobResult::FunctionError { .. } => "error",
                JobResult::TimedOut => "timeout",
                _ => "failure",
            };
            let (body, failed) = match f.result {
                JobResult::Response(b) => (b, false),
                JobResult::FunctionError { body, error_type } => {
                    let body = if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
                        body
                    } else {
                        error_body(
                            error_type.as_deref().unwrap_or("Unhandled"),
                            &String::from_utf8_lossy(&body),
                        )
                    };
                    (body, true)
                }
                JobResult::Exited(status) => (
                    error_body(
                        "Runtime.ExitError",
                        &format!(
                            "RequestId: {request_id} Error: Runtime exited with error: {status}"
                        ),
                    ),
                    true,
                ),
                JobResult::InitError(body) => {
                    let body = if serde_json::from_slice::<serde_json::Value>(&body).is_ok() {
                        body
                    } else {
                        error_body("Runtime.InitError", &String::from_utf8_lossy(&body))
                    };
                    (body, true)
                }
                JobResult::TimedOut => (
                    error_body(
                        "Sandbox.Timedout",
                        &format!(
                            "RequestId: {request_id} Error: Task timed out after {timeout}.00 seconds"
                        ),
                    ),
                    true,
                ),
                JobResult::OutOfMemory => (
                    error_body(
                        "Runtime.OutOfMemory",
                        &format!(
                            "RequestId: {request_id} Error: Runtime exited with error: signal: killed"
                        ),
                    ),
                    true,
                ),
                JobResult::ResponseTooLarge(limit) => (
                    error_body(
                        "Function.ResponseSizeTooLarge",
                        &format!(
                            "Response payload size exceeded maximum allowed payload size ({limit} bytes)."
                        ),
                    ),
                    true,
                ),
            };
            // Killed for its memory: it used all it had.
            let max_memory_mb = if out_of_memory {
                Some(u64::from(memory_size))
            } else {
                f.max_memory_mb
            };
            (
                body,
                failed,
                f.logs,
                f.duration,
                f.init_duration,
                status,
                max_memory_mb,
            )
        }
    };
    Settled {
        body,
        failed,
        logs,
        duration,
        init,
        status,
        max_memory_mb,
    }
}

fn respond(target: &Target, request_id: &str, outcome: Outcome, tail: bool) -> Response {
    let settled = settle(target, request_id, outcome);
    let mut headers = HeaderMap::new();
    headers.insert("content-type", HeaderValue::from_static("application/json"));
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_str(request_id).expect("ascii"),
    );
    headers.insert(
        "x-amz-executed-version",
        HeaderValue::from_str(&target.version.version.to_string()).expect("ascii"),
    );
    if settled.failed {
        headers.insert(
            "x-amz-function-error",
            HeaderValue::from_static("Unhandled"),
        );
    }
    if tail {
        let log = settled.tail_log(request_id, target);
        headers.insert(
            "x-amz-log-result",
            HeaderValue::from_str(&log).expect("base64"),
        );
    }
    (StatusCode::OK, headers, settled.body).into_response()
}

/// The invocation's log as Lambda writes it: the platform's records around the function's
/// output, as text lines (START, END, REPORT) or, with `LoggingConfig.LogFormat` JSON, as
/// `platform.start` and `platform.report` records, which a `SystemLogLevel` of WARN leaves
/// out.
fn platform_log(request_id: &str, version: &FunctionVersion, settled: &Settled) -> String {
    let ms = settled.duration.as_secs_f64() * 1000.0;
    let billed = ms.ceil() as u64;
    // Unknown when the process could no longer be read (it was stopped, say).
    let used = settled
        .max_memory_mb
        .unwrap_or(u64::from(version.memory_size));
    let logs = &settled.logs;
    if version.logging.json {
        if version.logging.system_level() == "WARN" {
            return logs.clone();
        }
        let now = now_ms();
        let started = now.saturating_sub(settled.duration.as_millis() as u64);
        let mut metrics = serde_json::json!({
            "durationMs": (ms * 1000.0).round() / 1000.0,
            "billedDurationMs": billed,
            "memorySizeMB": version.memory_size,
            "maxMemoryUsedMB": used,
        });
        if let Some(init) = settled.init {
            metrics["initDurationMs"] =
                serde_json::json!((init.as_secs_f64() * 1e6).round() / 1000.0);
        }
        let start = serde_json::json!({
            "time": crate::wire::iso8601(started),
            "type": "platform.start",
            "record": {"requestId": request_id, "version": version.version.to_string()},
        });
        let report = serde_json::json!({
            "time": crate::wire::iso8601(now),
            "type": "platform.report",
            "record": {"requestId": request_id, "metrics": metrics, "status": settled.status},
        });
        return format!("{start}\n{logs}{report}\n");
    }
    let init = settled
        .init
        .map(|d| format!("\tInit Duration: {:.2} ms", d.as_secs_f64() * 1000.0))
        .unwrap_or_default();
    format!(
        "START RequestId: {request_id} Version: {}\n{logs}END RequestId: {request_id}\nREPORT RequestId: {request_id}\tDuration: {ms:.2} ms\tBilled Duration: {billed} ms\tMemory Size: {} MB\tMax Memory Used: {used} MB{init}\t\n",
        version.version, version.memory_size,
    )
}
