//! Runs one deployment: the core decides, this loop carries out its commands concurrently,
//! feeds back their results with the wall-clock time, and wakes the core at its deadlines.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fledge_aws::Aws;
use fledge_core::judge::Verdict;
use fledge_core::lambda::AliasRouting;
use fledge_core::rollout::{
    Command, Deployment, DeploymentSpec, Event, OperatorCommand, Outcome, Phase, Record, RecordKind,
};
use fledge_core::time::Timestamp;
use serde::Serialize;
use tokio::sync::{mpsc, oneshot};

use crate::checks::{CheckConfig, CheckContext, smoke_test, start_probe};
use crate::tally::Tally;

/// What the engine reports as it runs.
#[derive(Clone, Debug, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Progress {
    /// A record of the deployment's journal.
    Record(Record),
    /// A status line, about once a second.
    Status(StatusLine),
    /// A message from the engine itself (smoke test, connection).
    Note { message: String },
}

/// The state at a glance.
#[derive(Clone, Debug, Serialize)]
pub struct StatusLine {
    pub phase: String,
    pub step: usize,
    pub steps: usize,
    pub weight: f64,
    pub paused: bool,
    /// Seconds left in the current hold.
    pub hold_left_secs: Option<f64>,
    /// The last verdict's outcome and reason.
    pub last_check: Option<String>,
    pub canary_error_rate: Option<f64>,
    pub canary_requests: Option<u64>,
    pub baseline_error_rate: Option<f64>,
    pub baseline_requests: Option<u64>,
    /// p99 latency (ms) of the canary and the baseline, where latencies are measured (probe).
    pub canary_p99_ms: Option<f64>,
    pub baseline_p99_ms: Option<f64>,
}

/// How a deployment ended.
#[derive(Clone, Debug, Serialize)]
pub struct Summary {
    pub id: String,
    pub outcome: Outcome,
    pub reason: String,
    /// The alias as fledge last knew it.
    pub alias: Option<AliasRouting>,
    pub alias_split: bool,
    pub duration_secs: f64,
}

fn now() -> Timestamp {
    Timestamp(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as u64),
    )
}

fn system_time(t: Timestamp) -> SystemTime {
    UNIX_EPOCH + Duration::from_millis(t.0)
}

/// Persists a deployment as it runs (`fledge serve`'s store). The driver carries out no
/// effect of a transition before its commit has returned.
pub trait Journal: Send + Sync {
    /// Commits `deployment` as it is now and the `commands` its last transition produced
    /// (records and notifications among them). An error is retried until it succeeds.
    fn commit<'a>(
        &'a self,
        deployment: &'a Deployment,
        commands: &'a [Command],
    ) -> Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;
}

/// An operator command for a running deployment. With `answer`, the driver replies with
/// the core's [`RecordKind::Operator`] record (taken or refused, and why) once that record
/// is committed.
pub struct Steer {
    pub command: OperatorCommand,
    pub answer: Option<oneshot::Sender<Record>>,
}

impl From<OperatorCommand> for Steer {
    fn from(command: OperatorCommand) -> Steer {
        Steer {
            command,
            answer: None,
        }
    }
}

/// Where a run begins.
pub enum Start {
    /// A new deployment: the smoke test runs (if configured), then the core starts it.
    New {
        id: String,
        spec: Box<DeploymentSpec>,
    },
    /// A deployment restored from its stored form after a restart; what was in flight is
    /// settled first.
    Restored(Box<Deployment>),
}

/// How a run persists itself and what it reports.
#[derive(Clone, Default)]
pub struct RunOptions {
    pub journal: Option<Arc<dyn Journal>>,
    /// How often a [`Progress::Status`] goes out; `None` for never.
    pub status_every: Option<Duration>,
}

/// Runs `spec` to its end in the foreground (`fledge deploy`). Operator commands (pause,
/// resume, promote, abort) arrive on `control`; progress goes to `out`.
pub async fn run(
    aws: Aws,
    id: String,
    spec: DeploymentSpec,
    checks: CheckConfig,
    out: mpsc::UnboundedSender<Progress>,
    control: mpsc::UnboundedReceiver<Steer>,
) -> Summary {
    let options = RunOptions {
        journal: None,
        status_every: Some(Duration::from_secs(1)),
    };
    let spec = Box::new(spec);
    drive(aws, Start::New { id, spec }, checks, options, out, control).await
}

/// Runs a deployment to its end, new or restored; the one loop behind `fledge deploy` and
/// `fledge serve`.
pub async fn drive(
    aws: Aws,
    start: Start,
    checks: CheckConfig,
    options: RunOptions,
    out: mpsc::UnboundedSender<Progress>,
    mut control: mpsc::UnboundedReceiver<Steer>,
) -> Summary {
    let (id, spec, started) = match &start {
        Start::New { id, spec } => (id.clone(), (**spec).clone(), SystemTime::now()),
        Start::Restored(d) => (
            d.id().to_owned(),
            d.spec().clone(),
            system_time(d.started_at()),
        ),
    };
    let function = spec.function.clone();
    let alias = spec.alias.to_string();
    if matches!(start, Start::New { .. }) && checks.smoke_invocations > 0 {
        let _ = out.send(Progress::Note {
            message: format!(
                "smoke test: {} invocations of {function}:{} before any traffic shifts",
                checks.smoke_invocations, spec.target
            ),
        });
        if let Err(reason) = smoke_test(
            &aws,
            &function,
            spec.target,
            checks.smoke_invocations,
            checks.probe.as_ref(),
        )
        .await
        {
            let reason = format!("the smoke test failed, so no traffic was shifted: {reason}");
            return Summary {
                id,
                outcome: Outcome::RolledBack,
                reason,
                alias: None,
                alias_split: false,
                duration_secs: started.elapsed().unwrap_or_default().as_secs_f64(),
            };
        }
    }
    let probe_tally = checks
        .probe
        .as_ref()
        .map(|_| Arc::new(Mutex::new(Tally::default())));
    let probe = match (&checks.probe, &probe_tally) {
        (Some(p), Some(t)) => Some(start_probe(
            aws.clone(),
            format!("{function}:{alias}"),
            p.clone(),
            t.clone(),
        )),
        _ => None,
    };
    let (events_tx, mut events_rx) = mpsc::unbounded_channel::<Event>();
    let shared = Arc::new(Shared {
        aws,
        checks,
        out: out.clone(),
        probe_tally,
        started,
        function,
        alias,
        last: Mutex::new(None),
    });
    let (mut deployment, commands) = match start {
        Start::New { id, spec } => Deployment::new(id, *spec, now()),
        Start::Restored(mut d) => {
            let commands = d.resume_after_restart(now());
            (*d, commands)
        }
    };
    *shared.last.lock().expect("status lock") = deployment.last_verdict().cloned();
    let journal = options.journal.as_deref();
    let mut baseline = None;
    commit(journal, &deployment, &commands, &out).await;
    execute(&shared, &deployment, &mut baseline, commands, &events_tx);
    let mut status_tick = options.status_every.map(tokio::time::interval);
    let mut control_open = true;
    while !deployment.is_finished() {
        let deadline = deployment.poll_deadline().map(|t| {
            let wait = system_time(t)
                .duration_since(SystemTime::now())
                .unwrap_or_default();
            tokio::time::Instant::now() + wait
        });
        let mut answer = None;
        let commands = tokio::select! {
            Some(event) = events_rx.recv() => deployment.handle_event(now(), event),
            steer = control.recv(), if control_open => match steer {
                Some(Steer { command, answer: a }) => {
                    answer = a;
                    deployment.handle_event(now(), Event::Operator { command })
                }
                None => { control_open = false; Vec::new() }
            },
            () = sleep_until(deadline) => deployment.handle_timeout(now()),
            () = tick(status_tick.as_mut()) => {
                let _ = out.send(Progress::Status(status_line(&deployment, &shared)));
                continue;
            }
        };
        commit(journal, &deployment, &commands, &out).await;
        if let Some(answer) = answer {
            let decided = commands.iter().find_map(|c| match c {
                Command::Record(r) if matches!(r.kind, RecordKind::Operator { .. }) => {
                    Some(r.clone())
                }
                _ => None,
            });
            if let Some(record) = decided {
                let _ = answer.send(record);
            }
        }
        execute(&shared, &deployment, &mut baseline, commands, &events_tx);
    }
    if let Some(p) = probe {
        p.abort();
    }
    let (outcome, reason) = match deployment.phase() {
        Phase::Done { outcome, reason } => (*outcome, reason.clone()),
        _ => unreachable!("the loop ends when the deployment does"),
    };
    let alias = deployment.alias().cloned();
    Summary {
        id,
        outcome,
        reason,
        alias_split: alias.as_ref().is_some_and(|a| !a.is_single()),
        alias,
        duration_secs: started.elapsed().unwrap_or_default().as_secs_f64(),
    }
}

/// Commits a transition, retrying until the store takes it: no effect may run before its
/// commit, so a failing store holds the deployment where it is and says so.
async fn commit(
    journal: Option<&dyn Journal>,
    deployment: &Deployment,
    commands: &[Command],
    out: &mpsc::UnboundedSender<Progress>,
) {
    let Some(journal) = journal else { return };
    let mut wait = Duration::from_millis(100);
    while let Err(e) = journal.commit(deployment, commands).await {
        let message = format!(
            "could not persist deployment {}: {e}; holding the alias as it is ({}) and retrying in {:?}",
            deployment.id(),
            deployment
                .alias()
                .map_or_else(|| "not yet read".to_owned(), |a| a.to_string()),
            wait
        );
        tracing::error!("{message}");
        let _ = out.send(Progress::Note { message });
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

async fn tick(interval: Option<&mut tokio::time::Interval>) {
    match interval {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

async fn sleep_until(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}

struct Shared {
    aws: Aws,
    checks: CheckConfig,
    out: mpsc::UnboundedSender<Progress>,
    probe_tally: Option<Arc<Mutex<Tally>>>,
    started: SystemTime,
    function: String,
    alias: String,
    /// The last verdict, for the status line.
    last: Mutex<Option<Verdict>>,
}

/// Carries out commands: records go out at once; calls run concurrently and answer as events.
fn execute(
    shared: &Arc<Shared>,
    deployment: &Deployment,
    baseline: &mut Option<u64>,
    commands: Vec<Command>,
    events: &mpsc::UnboundedSender<Event>,
) {
    if baseline.is_none() {
        *baseline = deployment.original().and_then(|o| o.primary.number());
    }
    for command in commands {
        let (shared, events) = (shared.clone(), events.clone());
        match command {
            Command::Record(record) => {
                if let RecordKind::Checked { verdict, .. } = &record.kind {
                    *shared.last.lock().expect("status lock") = Some(verdict.clone());
                }
                let _ = shared.out.send(Progress::Record(record));
            }
            Command::Notify(_) => {}
            Command::ReadAlias { op } => {
                tokio::spawn(async move {
                    let event = match shared.aws.get_alias(&shared.function, &shared.alias).await {
                        Ok((routing, revision_id)) => Event::AliasRead {
                            op,
                            routing,
                            revision_id,
                        },
                        Err(failure) => Event::ApiFailed { op, failure },
                    };
                    let _ = events.send(event);
                });
            }
            Command::WriteAlias {
                op,
                routing,
                revision_id,
                ..
            } => {
                tokio::spawn(async move {
                    let event = match shared
                        .aws
                        .update_alias(&shared.function, &shared.alias, &routing, &revision_id)
                        .await
                    {
                        Ok(revision_id) => Event::AliasWritten { op, revision_id },
                        Err(failure) => Event::ApiFailed { op, failure },
                    };
                    let _ = events.send(event);
                });
            }
            Command::Evaluate {
                op, step_started, ..
            } => {
                let spec = deployment.spec().clone();
                let base = baseline.unwrap_or(0);
                tokio::spawn(async move {
                    let context = CheckContext {
                        aws: &shared.aws,
                        function: &shared.function,
                        alias: &shared.alias,
                        analysis: &spec.analysis,
                        config: &shared.checks,
                        probe_tally: shared.probe_tally.as_ref(),
                        canary: spec.target,
                        baseline: base,
                        started: shared.started,
                    };
                    let verdict = context.evaluate(system_time(step_started)).await;
                    let _ = events.send(Event::Verdict { op, verdict });
                });
            }
            Command::InvokeHook {
                op,
                function,
                payload,
                ..
            } => {
                tokio::spawn(async move {
                    let body = serde_json::to_vec(&payload).expect("payload serialises");
                    let event = match shared.aws.invoke(&function, &body).await {
                        Ok(answer) => {
                            let text = String::from_utf8_lossy(&answer.payload)
                                .chars()
                                .take(500)
                                .collect::<String>();
                            let reported_failed =
                                serde_json::from_slice::<serde_json::Value>(&answer.payload)
                                    .ok()
                                    .and_then(|v| {
                                        v.get("status")
                                            .and_then(|s| s.as_str())
                                            .map(|s| s.eq_ignore_ascii_case("failed"))
                                    })
                                    .unwrap_or(false);
                            match (answer.function_error, reported_failed) {
                                (Some(kind), _) => Event::HookFinished {
                                    op,
                                    succeeded: false,
                                    detail: format!("function error {kind}: {text}"),
                                },
                                (None, true) => Event::HookFinished {
                                    op,
                                    succeeded: false,
                                    detail: format!("reported {text}"),
                                },
                                (None, false) => Event::HookFinished {
                                    op,
                                    succeeded: true,
                                    detail: text,
                                },
                            }
                        }
                        Err(failure) => Event::ApiFailed { op, failure },
                    };
                    let _ = events.send(event);
                });
            }
        }
    }
}

fn status_line(d: &Deployment, shared: &Shared) -> StatusLine {
    let status = d.status();
    let last = shared.last.lock().expect("status lock").clone();
    let error_evidence = last
        .as_ref()
        .and_then(|v| v.evidence.iter().find(|e| e.check == "error_rate").cloned());
    let latency_evidence = last.as_ref().and_then(|v| {
        v.evidence
            .iter()
            .find(|e| e.check == "latency_p99")
            .cloned()
    });
    StatusLine {
        phase: match &status.phase {
            Phase::Recording => "recording".into(),
            Phase::PreTrafficHook => "pre-traffic hook".into(),
            Phase::Shifting => "shifting".into(),
            Phase::PostTrafficHook => "post-traffic hook".into(),
            Phase::RollingBack { .. } => "rolling back".into(),
            Phase::Done { outcome, .. } => outcome.to_string(),
        },
        step: status.step,
        steps: status.steps,
        weight: status.weight,
        paused: status.paused,
        hold_left_secs: status.hold_ends.map(|t| {
            system_time(t)
                .duration_since(SystemTime::now())
                .unwrap_or_default()
                .as_secs_f64()
        }),
        last_check: last
            .as_ref()
            .map(|v| format!("{}: {}", v.outcome, v.reason)),
        canary_error_rate: error_evidence.as_ref().map(|e| e.canary),
        canary_requests: error_evidence.as_ref().map(|e| e.samples),
        baseline_error_rate: error_evidence.as_ref().and_then(|e| e.baseline),
        baseline_requests: error_evidence.as_ref().and_then(|e| e.baseline_samples),
        canary_p99_ms: latency_evidence.as_ref().map(|e| e.canary),
        baseline_p99_ms: latency_evidence.as_ref().and_then(|e| e.baseline),
    }
}
