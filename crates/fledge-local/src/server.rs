//! The router that puts the platform together, and [`Platform`] to run it.
//!
//! One address answers the Lambda API (`/2015-03-31/…`), the CloudWatch API (`POST /` with
//! `X-Amz-Target`, and `/service/GraniteServiceVersion20100801/operation/…`), and fledge's
//! own admin endpoints under `/_fledge/`:
//! - `GET  /_fledge/health`
//! - `PUT  /_fledge/routing/{function}/{alias}`: `{"mode":"random"}`, `{"mode":"exact"}`,
//!   `{"mode":"sticky","key":{"header":"x-user-id"}}` or `…{"json_pointer":"/user/id"}}`
//! - `POST|GET|DELETE /_fledge/faults`: injected failures (see [`crate::faults`])
//! - `GET  /_fledge/code/{id}.zip`: a stored package (GetFunction's Code.Location)

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use fledge_core::lambda::{DEFAULT_ACCOUNT, DEFAULT_REGION};
use serde_json::json;
use tokio::sync::oneshot;

use crate::cloudwatch::{self, Alarms};
use crate::faults::{Fault, Faults};
use crate::invoke::{self, Pools};
use crate::metrics::Metrics;
use crate::routing::{Router as AliasRouter, RoutingMode};
use crate::runtimes::Runtimes;
use crate::sns::Sns;
use crate::store::Store;
use crate::{control, wire::ApiError};

/// How the platform runs.
#[derive(Clone, Debug)]
pub struct PlatformConfig {
    /// Where functions, code, alarms and state persist.
    pub data_dir: PathBuf,
    pub region: String,
    pub account: String,
    /// Seeds alias routing and fault injection, so a run can be repeated.
    pub seed: u64,
    /// Concurrent invocations per function when it has no reserved concurrency.
    pub concurrency_limit: u32,
    /// Warm processes idle this long are stopped.
    pub idle_timeout: Duration,
    /// How long per-second metrics are kept.
    pub metrics_retention: Duration,
    /// The Python interpreter (with awslambdaric) for `python3.x` functions; by default
    /// `python3.x`, then `python3`, from `PATH`.
    pub python: Option<PathBuf>,
    /// The `node` for `nodejsN.x` functions; by default the one on `PATH`.
    pub node: Option<PathBuf>,
    /// The waits before the retries of an asynchronous event whose function failed
    /// (Lambda's: 1 minute, then 2).
    pub async_retry_delays: Vec<Duration>,
}

impl PlatformConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> PlatformConfig {
        PlatformConfig {
            data_dir: data_dir.into(),
            region: DEFAULT_REGION.into(),
            account: DEFAULT_ACCOUNT.into(),
            seed: 0x5eed,
            concurrency_limit: 64,
            idle_timeout: Duration::from_secs(300),
            metrics_retention: Duration::from_secs(3 * 3600),
            python: None,
            node: None,
            async_retry_delays: vec![Duration::from_secs(60), Duration::from_secs(120)],
        }
    }
}

/// Everything the handlers share.
pub struct Platform {
    pub config: PlatformConfig,
    pub store: Store,
    pub router: AliasRouter,
    pub pools: Pools,
    pub metrics: Arc<Metrics>,
    pub alarms: Alarms,
    pub faults: Faults,
    pub sns: Sns,
    endpoint: OnceLock<String>,
    /// Set when the platform stops: asynchronous events stop being tried (they stay on
    /// disk for the next start).
    pub(crate) stopping: tokio::sync::watch::Sender<bool>,
}

impl Platform {
    /// Opens the data directory and builds the platform (not yet listening).
    pub fn open(config: PlatformConfig) -> std::io::Result<Platform> {
        let mut store = Store::open(&config.data_dir, &config.region, &config.account)?;
        store.runtimes = Runtimes::new(
            config.python.clone(),
            config.node.clone(),
            config.data_dir.join("runtimes"),
        );
        let alarms = Alarms::open(&config.data_dir, &config.region, &config.account)?;
        let sns = Sns::open(&config.data_dir, &config.region, &config.account)?;
        // The /tmp folders of processes of an earlier run that did not stop cleanly.
        remove_scratch(&config.data_dir);
        Ok(Platform {
            sns,
            router: AliasRouter::new(config.seed),
            faults: Faults::new(config.seed ^ 0xfa17),
            metrics: Arc::new(Metrics::open(
                &config.data_dir,
                config.metrics_retention.as_secs() as i64,
            )?),
            pools: Pools::default(),
            store,
            alarms,
            endpoint: OnceLock::new(),
            stopping: tokio::sync::watch::channel(false).0,
            config,
        })
    }

    /// `http://host:port`, once listening.
    pub fn endpoint(&self) -> &str {
        self.endpoint
            .get()
            .map_or("http://127.0.0.1", String::as_str)
    }

    /// Listens on `addr` (port 0 picks a free one) and serves until stopped.
    pub async fn start(
        config: PlatformConfig,
        addr: SocketAddr,
    ) -> std::io::Result<RunningPlatform> {
        let platform = Arc::new(Platform::open(config)?);
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let _ = platform.endpoint.set(format!("http://{addr}"));
        crate::events::resume(&platform);
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let app = router(platform.clone());
        let reaper = {
            let platform = platform.clone();
            tokio::spawn(async move {
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                let mut warned = false;
                loop {
                    tick.tick().await;
                    platform.pools.reap(platform.config.idle_timeout);
                    crate::invoke::provision(&platform).await;
                    let p = platform.clone();
                    let flushed = tokio::task::spawn_blocking(move || p.metrics.flush()).await;
                    if let Ok(Err(e)) = flushed
                        && !std::mem::replace(&mut warned, true)
                    {
                        tracing::warn!(
                            "fledge local could not keep its metrics under {}: {e}; they will not outlive a restart",
                            platform.config.data_dir.display()
                        );
                    }
                }
            })
        };
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener.tap_io(crate::sandbox::no_delay), app)
                .with_graceful_shutdown(async {
                    let _ = stop_rx.await;
                })
                .await;
            reaper.abort();
        });
        Ok(RunningPlatform {
            addr,
            platform,
            stop: Some(stop_tx),
            task,
        })
    }
}

/// A platform serving in the background.
pub struct RunningPlatform {
    pub addr: SocketAddr,
    pub platform: Arc<Platform>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningPlatform {
    /// `http://127.0.0.1:port`, for `--endpoint-url` and SDK clients.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops serving and stops every function process.
    pub async fn stop(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.platform.stopping.send_replace(true);
        self.platform.pools.stop_all();
        let _ = (&mut self.task).await;
        if let Err(e) = self.platform.metrics.flush() {
            tracing::warn!("fledge local could not keep its last metrics: {e}");
        }
        remove_scratch(&self.platform.config.data_dir);
    }
}

/// Removes every process's `/tmp` under `data_dir`.
fn remove_scratch(data_dir: &std::path::Path) {
    let scratch = data_dir.join(crate::sandbox::SCRATCH);
    if let Err(e) = std::fs::remove_dir_all(&scratch)
        && e.kind() != std::io::ErrorKind::NotFound
    {
        tracing::warn!("fledge local could not remove {}: {e}", scratch.display());
    }
}

impl Drop for RunningPlatform {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.platform.stopping.send_replace(true);
        self.platform.pools.stop_all();
        let _ = self.platform.metrics.flush();
    }
}

fn router(platform: Arc<Platform>) -> Router {
    let f = "/2015-03-31/functions";
    Router::new()
        .route(
            f,
            post(control::create_function).get(control::list_functions),
        )
        .route(&format!("{f}/"), get(control::list_functions))
        .route(
            &format!("{f}/{{name}}"),
            get(control::get_function).delete(control::delete_function),
        )
        .route(
            &format!("{f}/{{name}}/configuration"),
            get(control::get_configuration).put(control::update_configuration),
        )
        .route(
            &format!("{f}/{{name}}/code"),
            axum::routing::put(control::update_code),
        )
        .route(
            &format!("{f}/{{name}}/versions"),
            post(control::publish_version).get(control::list_versions),
        )
        .route(
            &format!("{f}/{{name}}/aliases"),
            post(control::create_alias).get(control::list_aliases),
        )
        .route(
            &format!("{f}/{{name}}/aliases/{{alias}}"),
            get(control::get_alias)
                .put(control::update_alias)
                .delete(control::delete_alias),
        )
        .route(&format!("{f}/{{name}}/invocations"), post(invoke::handle))
        .route(
            "/2021-11-15/functions/{name}/response-streaming-invocations",
            post(crate::streaming::handle),
        )
        .route(
            "/2017-10-31/functions/{name}/concurrency",
            axum::routing::put(control::put_concurrency).delete(control::delete_concurrency),
        )
        .route(
            "/2019-09-30/functions/{name}/concurrency",
            get(control::get_concurrency),
        )
        .route(
            &format!("{f}/{{name}}/policy"),
            post(crate::policy::add_permission).get(crate::policy::get_policy),
        )
        .route(
            &format!("{f}/{{name}}/policy/{{statement}}"),
            axum::routing::delete(crate::policy::remove_permission),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config",
            axum::routing::put(control::put_event_invoke)
                .post(control::update_event_invoke)
                .get(control::get_event_invoke)
                .delete(control::delete_event_invoke),
        )
        .route(
            "/2019-09-25/functions/{name}/event-invoke-config/list",
            get(control::list_event_invokes),
        )
        .route(
            "/service/GraniteServiceVersion20100801/operation/{op}",
            post(cloudwatch::cbor),
        )
        .route(
            "/2017-03-31/tags/{arn}",
            get(control::list_tags)
                .post(control::tag_resource)
                .delete(control::untag_resource),
        )
        .route("/", post(root).get(root_get))
        .route("/_fledge/sns/messages", get(sns_messages))
        .route(
            "/_fledge/health",
            get(|| async { Json(json!({"status": "ok"})) }),
        )
        .route(
            "/_fledge/routing/{name}/{alias}",
            axum::routing::put(set_routing),
        )
        .route(
            "/_fledge/faults",
            post(add_fault).get(list_faults).delete(clear_faults),
        )
        .route("/_fledge/code/{file}", get(code_zip))
        .route(
            "/2021-10-31/functions/{name}/url",
            post(crate::urls::create)
                .get(crate::urls::get)
                .put(crate::urls::update)
                .delete(crate::urls::delete),
        )
        .route("/2021-10-31/functions/{name}/urls", get(crate::urls::list))
        .route(
            "/2019-09-30/functions/{name}/provisioned-concurrency",
            axum::routing::put(crate::provisioned::put)
                .get(crate::provisioned::get)
                .delete(crate::provisioned::delete),
        )
        .route("/_fledge/url/{id}", any(crate::urls::serve_root))
        .route("/_fledge/url/{id}/", any(crate::urls::serve_root))
        .route("/_fledge/url/{id}/{*path}", any(crate::urls::serve))
        .route("/{*rest}", any(control::unsupported))
        .layer(axum::extract::DefaultBodyLimit::max(70 * 1024 * 1024))
        .with_state(platform)
}

/// `POST /` carries CloudWatch's AWS JSON 1.0 (with X-Amz-Target), and the query protocol
/// (a form-encoded body) of SNS and of CloudWatch (older SDKs and CLIs), told apart by the
/// form's API `Version`.
async fn root(
    State(p): State<Arc<Platform>>,
    headers: axum::http::HeaderMap,
    body: Bytes,
) -> Response {
    let form = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
    if !form || headers.contains_key("x-amz-target") {
        return cloudwatch::json_rpc(State(p), headers, body).await;
    }
    let body = match cloudwatch::decoded(&headers, body) {
        Ok(body) => body,
        Err(e) => return (StatusCode::BAD_REQUEST, e.message).into_response(),
    };
    let form: Vec<(String, String)> = match serde_urlencoded::from_bytes(&body) {
        Ok(form) => form,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                format!("fledge local could not read the form-encoded body: {e}"),
            )
                .into_response();
        }
    };
    if cloudwatch::is_query_request(&form) {
        cloudwatch::query(&p, form).await
    } else {
        sns(&p, &form)
    }
}

/// An SNS request; what it sends to subscribers goes out after it is answered.
fn sns(p: &Arc<Platform>, form: &[(String, String)]) -> Response {
    let (response, outgoing) = p.sns.handle(form, p.endpoint());
    for out in outgoing {
        tokio::spawn(crate::sns::deliver(p.clone(), out));
    }
    response
}

/// A GET of `/` with SNS's query string: the `SubscribeURL` an HTTP subscriber visits to
/// confirm, and the `UnsubscribeURL` in each notification.
async fn root_get(
    State(p): State<Arc<Platform>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Response {
    let form: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or_default()).unwrap_or_default();
    let action = form
        .iter()
        .find(|(k, _)| k == "Action")
        .map(|(_, v)| v.as_str());
    match action {
        Some("ConfirmSubscription" | "Unsubscribe") => sns(&p, &form),
        _ => (
            StatusCode::NOT_FOUND,
            "fledge local: a GET of / answers SNS's ConfirmSubscription and Unsubscribe links only",
        )
            .into_response(),
    }
}

#[derive(serde::Deserialize)]
struct TopicQuery {
    topic: Option<String>,
}

/// What was published to SNS topics here (`?topic=NAME|ARN` for one).
async fn sns_messages(
    State(p): State<Arc<Platform>>,
    axum::extract::Query(q): axum::extract::Query<TopicQuery>,
) -> Json<serde_json::Value> {
    Json(json!({ "messages": p.sns.messages(q.topic.as_deref()) }))
}

async fn set_routing(
    State(p): State<Arc<Platform>>,
    Path((name, alias)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let mode: RoutingMode = serde_json::from_slice(&body).map_err(|e| {
        fledge_core::lambda::LambdaError::invalid_parameter(format!(
            "{e}; send {{\"mode\":\"random\"}}, {{\"mode\":\"exact\"}} or {{\"mode\":\"sticky\",\"key\":{{\"header\":\"x-user-id\"}}}} (or \"json_pointer\":\"/user/id\")"
        ))
    })?;
    let alias = p.store.set_routing_mode(&name, &alias, mode)?;
    Ok(Json(json!({"Name": alias.name, "RoutingMode": alias.mode})).into_response())
}

async fn add_fault(State(p): State<Arc<Platform>>, body: Bytes) -> Response {
    let fault: Fault = match serde_json::from_slice(&body) {
        Ok(f) => f,
        Err(e) => {
            return (
                StatusCode::BAD_REQUEST,
                Json(json!({"message": format!("not a fault: {e}")})),
            )
                .into_response();
        }
    };
    match p.faults.add(fault) {
        Ok(()) => (
            StatusCode::CREATED,
            Json(json!({"faults": p.faults.list()})),
        )
            .into_response(),
        Err(message) => {
            (StatusCode::BAD_REQUEST, Json(json!({"message": message}))).into_response()
        }
    }
}

async fn list_faults(State(p): State<Arc<Platform>>) -> Json<serde_json::Value> {
    Json(json!({"faults": p.faults.list()}))
}

async fn clear_faults(State(p): State<Arc<Platform>>) -> StatusCode {
    p.faults.clear();
    StatusCode::NO_CONTENT
}

async fn code_zip(State(p): State<Arc<Platform>>, Path(file): Path<String>) -> Response {
    let id = file.trim_end_matches(".zip");
    if !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return StatusCode::NOT_FOUND.into_response();
    }
    match std::fs::read(p.store.code_zip(id)) {
        Ok(bytes) => ([("content-type", "application/zip")], bytes).into_response(),
        Err(_) => StatusCode::NOT_FOUND.into_response(),
    }
}
