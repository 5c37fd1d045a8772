//! Owns the running deployments: creates them (one active per alias), drives each with the
//! engine's durable loop, relays operator commands, and brings every unfinished deployment
//! back after a restart.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use fledge_aws::Aws;
use fledge_core::rollout::{DeploymentSpec, OperatorCommand, Record, RecordKind};
use fledge_core::time::Timestamp;
use fledge_engine::store::{Created, DeploymentRow, NewDeployment, Store, StoreError};
use fledge_engine::{CheckConfig, RunOptions, Start, Steer, notify::Sink};
use serde::Deserialize;
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};

/// A create request as the API takes it.
#[derive(Clone, Debug, Default, Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields)]
pub struct CreateRequest {
    /// The client's name: creating the same name again with the same request answers the
    /// deployment already made.
    pub name: Option<String>,
    /// A deployment file's content (YAML or JSON), as `fledge deploy --file` reads it.
    pub file: Option<String>,
    /// The original's JSON input (function-name, alias-name, new-version, steps, interval…).
    pub seed: Option<Value>,
}

/// A create request made into what the engine runs.
pub struct Resolved {
    /// The spec; its `target` is replaced by the published version when `publish` is set.
    pub spec: DeploymentSpec,
    pub publish: bool,
    pub checks: CheckConfig,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub sinks: Vec<Sink>,
}

/// Turns a request into a [`Resolved`]; the error names what is wrong and how to fix it.
/// `fledge serve` passes the same resolution `fledge deploy` uses.
pub type Resolver = Arc<dyn Fn(&CreateRequest) -> Result<Resolved, String> + Send + Sync>;

/// Why a request was refused.
#[derive(Debug)]
pub enum Refusal {
    Invalid(String),
    NotFound(String),
    Conflict(String, Option<Box<DeploymentRow>>),
    /// The platform could not be asked (publishing, checking the version).
    Platform(String),
    /// A running deployment did not answer in time.
    Busy(String),
    Store(StoreError),
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        Refusal::Store(e)
    }
}

type ClientKey = (Option<String>, Option<String>);

pub struct Manager {
    pub store: Store,
    resolver: Resolver,
    /// Sinks every deployment notifies, besides its own.
    sinks: Vec<Sink>,
    /// One client per (endpoint, region).
    clients: tokio::sync::Mutex<HashMap<ClientKey, Aws>>,
    running: Mutex<HashMap<String, mpsc::UnboundedSender<Steer>>>,
}

impl Manager {
    pub fn new(store: Store, resolver: Resolver, sinks: Vec<Sink>) -> Arc<Manager> {
        Arc::new(Manager {
            store,
            resolver,
            sinks,
            clients: tokio::sync::Mutex::new(HashMap::new()),
            running: Mutex::new(HashMap::new()),
        })
    }

    async fn client(&self, endpoint: Option<&str>, region: Option<&str>) -> Aws {
        let key = (endpoint.map(str::to_owned), region.map(str::to_owned));
        let mut clients = self.clients.lock().await;
        if let Some(aws) = clients.get(&key) {
            return aws.clone();
        }
        let aws = Aws::connect(endpoint, region).await;
        clients.insert(key, aws.clone());
        aws
    }

    /// How many deployments this process is driving now.
    pub fn running(&self) -> usize {
        self.running.lock().expect("running lock").len()
    }

    /// Creates and starts a deployment. `Ok((row, true))` when it is new, `Ok((row, false))`
    /// when the name was already given to the same request.
    pub async fn create(
        self: &Arc<Self>,
        request: CreateRequest,
    ) -> Result<(DeploymentRow, bool), Refusal> {
        if request.file.is_none() && request.seed.is_none() {
            return Err(Refusal::Invalid(
                "give `file` (a deployment file's content) or `seed` (the original's JSON input)"
                    .into(),
            ));
        }
        if let Some(name) = &request.name
            && (name.is_empty()
                || name.len() > 80
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)))
        {
            return Err(Refusal::Invalid(format!(
                "name '{name}' must be 1 to 80 letters, digits, '-', '_' or '.'"
            )));
        }
        let mut resolved = (self.resolver)(&request).map_err(Refusal::Invalid)?;
        let mut sinks = self.sinks.clone();
        for s in std::mem::take(&mut resolved.sinks) {
            if !sinks.contains(&s) {
                sinks.push(s);
            }
        }
        let mut new = NewDeployment {
            name: request.name.clone(),
            request: serde_json::to_value(&request).expect("a request serialises"),
            endpoint: resolved.endpoint_url.clone(),
            region: resolved.region.clone(),
            spec: resolved.spec.clone(),
            checks: resolved.checks.clone(),
            sinks: sinks.clone(),
        };
        // A repeated create, or a busy alias, is answered before anything is published.
        if let Some(obstacle) = self.store.obstacle(&new).await? {
            return self.answer(obstacle, &request);
        }
        let aws = self
            .client(resolved.endpoint_url.as_deref(), resolved.region.as_deref())
            .await;
        let function = resolved.spec.function.clone();
        if resolved.publish {
            new.spec.target = aws.publish_version(&function).await.map_err(|e| {
                Refusal::Platform(format!("could not publish {function}: {}", e.message))
            })?;
        } else {
            let v = resolved.spec.target;
            let exists = aws.version_exists(&function, v).await.map_err(|e| {
                Refusal::Platform(format!(
                    "could not check version {v} of {function}: {}",
                    e.message
                ))
            })?;
            if !exists {
                return Err(Refusal::Invalid(format!(
                    "version {v} of {function} does not exist; publish it first (or set publish: true)"
                )));
            }
        }
        let spec = new.spec.clone();
        match self.store.create(new).await? {
            Created::New(row) => {
                self.drive(
                    aws,
                    Start::New {
                        id: row.id.clone(),
                        spec: Box::new(spec),
                    },
                    resolved.checks,
                    sinks,
                );
                Ok((row, true))
            }
            obstacle => self.answer(obstacle, &request),
        }
    }

    /// The answer to a create that met a deployment already there.
    fn answer(
        &self,
        created: Created,
        request: &CreateRequest,
    ) -> Result<(DeploymentRow, bool), Refusal> {
        match created {
            Created::New(row) | Created::Existing(row) => Ok((row, false)),
            Created::NameTaken(row) => Err(Refusal::Conflict(
                format!(
                    "the name '{}' belongs to deployment {} with a different request; choose another name",
                    request.name.as_deref().unwrap_or_default(),
                    row.id
                ),
                Some(Box::new(row)),
            )),
            Created::AliasBusy(row) => Err(Refusal::Conflict(
                format!(
                    "{}:{} already has an active deployment, {} (version {}, {}); wait for it, or abort it first",
                    row.function, row.alias, row.id, row.target, row.phase
                ),
                Some(Box::new(row)),
            )),
        }
    }

    fn drive(self: &Arc<Self>, aws: Aws, start: Start, checks: CheckConfig, sinks: Vec<Sink>) {
        let id = match &start {
            Start::New { id, .. } => id.clone(),
            Start::Restored(d) => d.id().to_owned(),
        };
        let (control_tx, control_rx) = mpsc::unbounded_channel();
        self.running
            .lock()
            .expect("running lock")
            .insert(id.clone(), control_tx);
        let options = RunOptions {
            journal: Some(self.store.journal(&id, sinks.clone())),
            status_every: None,
        };
        let manager = self.clone();
        tokio::spawn(async move {
            // Progress is in the journal; the channel's other end is not needed.
            let (out, _) = mpsc::unbounded_channel();
            let summary = fledge_engine::drive(aws, start, checks, options, out, control_rx).await;
            if let Ok(None) = manager.store.state(&id).await {
                // It ended before the core started it (the smoke test failed): its end is
                // its journal's one record, and is told like any other.
                let end = Record {
                    at: Timestamp(
                        std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map_or(0, |d| d.as_millis() as u64),
                    ),
                    kind: RecordKind::Finished {
                        outcome: summary.outcome,
                        reason: summary.reason.clone(),
                        alias: None,
                        alias_split: false,
                    },
                };
                if let Err(e) = manager.store.finish_unstarted(&id, &end, &sinks).await {
                    tracing::error!("could not record the end of {id}: {e}");
                }
            }
            tracing::info!("{id} finished: {} ({})", summary.outcome, summary.reason);
            manager.running.lock().expect("running lock").remove(&id);
        });
    }

    /// Drives every unfinished deployment again; returns how many.
    pub async fn recover(self: &Arc<Self>) -> Result<usize, StoreError> {
        let unfinished = self.store.unfinished().await?;
        let n = unfinished.len();
        for u in unfinished {
            let aws = self
                .client(u.row.endpoint.as_deref(), u.row.region.as_deref())
                .await;
            let start = match u.state {
                Some(state) => Start::Restored(Box::new(state)),
                None => Start::New {
                    id: u.row.id.clone(),
                    spec: Box::new(u.spec),
                },
            };
            self.drive(aws, start, u.checks, u.sinks);
        }
        Ok(n)
    }

    /// Passes an operator command to a running deployment and answers the core's decision
    /// once it is committed: `Ok(detail)` when it was taken, a conflict saying why not.
    pub async fn command(&self, id: &str, command: OperatorCommand) -> Result<String, Refusal> {
        let (answer, decided) = oneshot::channel();
        let sent = self
            .running
            .lock()
            .expect("running lock")
            .get(id)
            .map(|tx| {
                tx.send(Steer {
                    command,
                    answer: Some(answer),
                })
                .is_ok()
            });
        if sent == Some(true) {
            match tokio::time::timeout(ANSWER_WAIT, decided).await {
                Ok(Ok(record)) => {
                    if let RecordKind::Operator {
                        accepted, detail, ..
                    } = record.kind
                    {
                        return if accepted {
                            Ok(detail)
                        } else {
                            let row = self.store.get(id).await?.map(Box::new);
                            Err(Refusal::Conflict(
                                format!("{id} did not {}: {detail}", command_name(command)),
                                row,
                            ))
                        };
                    }
                }
                // The deployment ended before it took the command: said below.
                Ok(Err(_)) => {}
                Err(_) => {
                    return Err(Refusal::Busy(format!(
                        "{id} has not answered the {} within {ANSWER_WAIT:?} (its store may be failing); its journal will say whether it was taken",
                        command_name(command)
                    )));
                }
            }
        }
        match self.store.get(id).await? {
            None => Err(Refusal::NotFound(format!("no deployment {id}"))),
            Some(row) => Err(Refusal::Conflict(
                format!(
                    "deployment {id} has ended ({}); there is nothing to {}",
                    row.outcome.as_deref().unwrap_or(&row.phase),
                    command_name(command)
                ),
                Some(Box::new(row)),
            )),
        }
    }
}

/// How long an operator command waits for the deployment's answer.
const ANSWER_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

pub fn command_name(command: OperatorCommand) -> &'static str {
    match command {
        OperatorCommand::Pause => "pause",
        OperatorCommand::Resume => "resume",
        OperatorCommand::Promote => "promote",
        OperatorCommand::PromoteFully => "promote fully",
        OperatorCommand::Abort => "abort",
    }
}
