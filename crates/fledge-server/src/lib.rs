//! `fledge serve`: many deployments driven durably in the background, over the same engine
//! as `fledge deploy`.
//!
//! # Layout
//! - [`manager`]: creates deployments (one active per alias, idempotent by name), drives each
//!   with the engine's durable loop, relays operator commands, recovers after a restart.
//! - [`api`]: the HTTP API under `/v1` (`openapi.json` describes it), `/metrics`, and the
//!   dashboard (`dashboard.html`).
//! - [`metrics`]: the Prometheus text.
//!
//! Every transition is committed to the store before its effects are carried out (see
//! [`fledge_engine::Journal`]), so the process may be killed at any moment: on the next
//! start every unfinished deployment is driven again from its last committed state, and a
//! write that was in flight is settled by reading the alias.

pub mod api;
pub mod manager;
pub mod metrics;

use std::net::SocketAddr;
use std::path::PathBuf;

use fledge_engine::notify::Sink;
use fledge_engine::store::Store;

pub use manager::{CreateRequest, Manager, Resolved, Resolver};

/// What `fledge serve` is started with.
pub struct ServerConfig {
    pub addr: SocketAddr,
    pub db: PathBuf,
    /// Every `/v1` request must carry `Authorization: Bearer <token>`.
    pub token: String,
    /// Sinks every deployment notifies.
    pub sinks: Vec<Sink>,
    /// How often a notification is tried before it is recorded as failed.
    pub notify_attempts: u32,
    /// Where SNS notifications are published (fledge local's endpoint; `None` for AWS).
    pub sns_endpoint: Option<String>,
    pub resolver: Resolver,
}

/// A server that is listening.
pub struct RunningServer {
    pub addr: SocketAddr,
    /// How many unfinished deployments were picked up from the store.
    pub recovered: usize,
    pub manager: std::sync::Arc<Manager>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// Serves until the listener fails.
    pub async fn wait(self) -> std::io::Result<()> {
        self.task
            .await
            .unwrap_or_else(|e| Err(std::io::Error::other(e)))
    }
}

/// Opens the store, resumes its unfinished deployments, and starts listening.
pub async fn start(config: ServerConfig) -> Result<RunningServer, String> {
    let store = Store::open(&config.db).map_err(|e| e.to_string())?;
    let manager = Manager::new(store.clone(), config.resolver, config.sinks);
    let recovered = manager.recover().await.map_err(|e| e.to_string())?;
    tokio::spawn(fledge_engine::notify::run(
        store,
        config.notify_attempts,
        fledge_engine::notify::SnsClients::new(config.sns_endpoint),
    ));
    let listener = tokio::net::TcpListener::bind(config.addr)
        .await
        .map_err(|e| format!("could not listen on {}: {e}", config.addr))?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    let app = api::router(api::AppState {
        manager: manager.clone(),
        token: config.token.into(),
    });
    let task = tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(RunningServer {
        addr,
        recovered,
        manager,
        task,
    })
}
