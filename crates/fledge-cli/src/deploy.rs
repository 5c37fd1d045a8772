//! `fledge deploy`: resolve the flags into a checked plan, then run the engine in the
//! foreground with a live display, Ctrl-C handling and a meaningful exit code.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, anyhow};
use fledge_aws::Aws;
use fledge_core::judge::{Analysis, JudgeConfig};
use fledge_core::lambda::{AliasName, FunctionRef, NameKind};
use fledge_core::rollout::{
    CheckPolicy, DeploymentSpec, Hooks, InconclusivePolicy, OperatorCommand, RetryPolicy,
};
use fledge_core::schedule::{Schedule, SeedInput, Strategy};
use fledge_core::time::parse_duration;
use fledge_engine::notify::{Notifier, Sink};
use fledge_engine::{CheckConfig, Expectation, ExternalCheck, ProbeConfig, Summary};
use tokio::sync::mpsc;

use crate::Failure;
use crate::args::{DeployArgs, ScheduleSource};
use crate::render::Renderer;

/// Which version to release.
#[derive(Clone, Debug, PartialEq)]
pub enum Target {
    Version(u64),
    Publish,
}

/// A deployment, checked and ready to run.
#[derive(Clone, Debug)]
pub struct Plan {
    pub function: String,
    pub alias: AliasName,
    pub target: Target,
    pub schedule: Schedule,
    pub analysis: Analysis,
    pub checks: CheckPolicy,
    pub hooks: Hooks,
    pub evidence: CheckConfig,
    pub endpoint_url: Option<String>,
    pub region: Option<String>,
    pub json: bool,
    /// Notification sinks, as written (`webhook:URL`, `command:CMD`, `sns:TOPIC_ARN`).
    pub notify: Vec<String>,
    /// Tries of each notification (`fledge deploy`; `fledge serve` has its own setting).
    pub notify_attempts: u32,
}

impl Plan {
    /// The core's spec for releasing `target`.
    pub fn spec(&self, target: u64) -> DeploymentSpec {
        DeploymentSpec {
            function: self.function.clone(),
            alias: self.alias.clone(),
            target,
            schedule: self.schedule.clone(),
            analysis: self.analysis.clone(),
            checks: self.checks.clone(),
            hooks: self.hooks.clone(),
            retry: RetryPolicy::default(),
        }
    }
}

fn invalid(message: String) -> Failure {
    Failure::invalid(anyhow!(message))
}

fn duration(flag: &str, text: &str) -> Result<Duration, Failure> {
    parse_duration(text).map_err(|e| invalid(format!("--{flag}: {e}")))
}

/// Reads and checks every flag; nothing is called yet.
pub fn resolve(mut a: DeployArgs) -> Result<Plan, Failure> {
    if let Some(path) = a.file.clone() {
        crate::deployment_file::load(&path)?.fill(&mut a)?;
    }
    let seed = match &a.input {
        Some(input) => {
            let text = match input.strip_prefix('@') {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("could not read --input file '{path}'"))
                    .map_err(Failure::invalid)?,
                None => input.clone(),
            };
            Some(SeedInput::parse(&text).map_err(Failure::invalid)?)
        }
        None => None,
    };
    let function = match (&a.function, &seed) {
        (Some(f), Some(s)) if *f != s.function.name => {
            return Err(invalid(format!(
                "--function '{f}' and the input's function-name '{}' differ; give one",
                s.function.name
            )));
        }
        (Some(f), _) => f.clone(),
        (None, Some(s)) => s.function.name.clone(),
        (None, None) => {
            return Err(invalid(
                "--function is required (or give --input with the original's JSON)".into(),
            ));
        }
    };
    let parsed = FunctionRef::parse(&function, NameKind::Function)
        .map_err(|e| invalid(format!("--function '{function}': {}", e.message)))?;
    if parsed.qualifier.is_some() {
        return Err(invalid(format!(
            "--function '{function}' has a qualifier; give the function alone and the alias with --alias"
        )));
    }
    let alias_text = match (&a.alias, &seed) {
        (Some(x), _) => x.clone(),
        (None, Some(s)) => s.alias.to_string(),
        (None, None) => {
            return Err(invalid(
                "--alias is required (the alias whose traffic moves)".into(),
            ));
        }
    };
    let alias = AliasName::parse_field(&alias_text, "alias")
        .map_err(|e| invalid(format!("--alias '{alias_text}': {}", e.message)))?;
    let target = match (&a.version, a.publish, &seed) {
        (Some(v), _, _) => Target::Version(v.parse().ok().filter(|n| *n >= 1).ok_or_else(|| invalid(format!("--version '{v}' is not a published version number; give digits such as 2 (or --publish)")))?),
        (None, true, _) => Target::Publish,
        (None, false, Some(s)) => Target::Version(s.new_version),
        (None, false, None) => return Err(invalid("give --version N (a published version) or --publish (publish $LATEST first)".into())),
    };
    let schedule = match &seed {
        Some(s) => s.schedule().map_err(Failure::invalid)?,
        None => {
            let source = ScheduleSource {
                strategy: a.strategy.clone(),
                preset: a.preset.clone(),
                input: None,
            };
            if source.strategy.is_none() && source.preset.is_none() {
                Strategy::preset("Canary10Percent5Minutes")
                    .expect("a known preset")
                    .schedule()
                    .expect("a valid preset")
            } else {
                crate::plan::resolve(&source, None)?.schedule
            }
        }
    };
    let schedule = match &a.bake {
        Some(b) => schedule.with_bake(duration("bake", b)?),
        None => schedule,
    };
    let judge = JudgeConfig {
        min_requests: a.min_requests.unwrap_or(50),
        max_error_rate: a.max_error_rate,
        max_p99_ms: a.max_p99_ms,
        max_throttle_rate: a.max_throttle_rate,
        ..JudgeConfig::default()
    };
    let analysis = match a.analysis.as_deref().unwrap_or("fledge") {
        "fledge" => Analysis::Fledge(judge),
        "seed" => Analysis::Seed,
        other => {
            return Err(invalid(format!(
                "--analysis '{other}' is not known; use fledge or seed"
            )));
        }
    };
    if a.max_error_rate.is_some_and(|r| !(0.0..=1.0).contains(&r)) {
        return Err(invalid(format!(
            "--max-error-rate {} must be between 0 and 1 (a share, not a percentage)",
            a.max_error_rate.unwrap_or_default()
        )));
    }
    let on_inconclusive = match a.on_inconclusive.as_deref().unwrap_or("rollback") {
        "rollback" => InconclusivePolicy::RollBack,
        "proceed" => InconclusivePolicy::Proceed,
        other => {
            return Err(invalid(format!(
                "--on-inconclusive '{other}' is not known; use rollback or proceed"
            )));
        }
    };
    let checks = CheckPolicy {
        interval: duration(
            "check-interval",
            a.check_interval.as_deref().unwrap_or("1s"),
        )?,
        max_extension: duration("max-extension", a.max_extension.as_deref().unwrap_or("10m"))?,
        on_inconclusive,
    };
    if checks.interval.is_zero() {
        return Err(invalid("--check-interval must be above zero".into()));
    }
    let probe_rate = a.probe_rate.unwrap_or(0.0);
    if !(0.0..=1000.0).contains(&probe_rate) {
        return Err(invalid(format!(
            "--probe-rate {probe_rate} must be between 0 and 1000 invocations a second"
        )));
    }
    let probe = if probe_rate > 0.0 {
        let payload: serde_json::Value =
            serde_json::from_str(a.probe_payload.as_deref().unwrap_or("{}"))
                .map_err(|e| invalid(format!("--probe-payload is not JSON: {e}")))?;
        let expect = match (&a.expect, &a.expect_path) {
            (Some(j), _) => Expectation::JsonSubset(
                serde_json::from_str(j)
                    .map_err(|e| invalid(format!("--expect is not JSON: {e}")))?,
            ),
            (_, Some(p)) => {
                let (pointer, value) = p.split_once('=').ok_or_else(|| {
                    invalid(format!(
                        "--expect-path '{p}': write POINTER=JSON, for example /status=\"ok\""
                    ))
                })?;
                Expectation::PathEquals(
                    pointer.to_string(),
                    serde_json::from_str(value).map_err(|e| {
                        invalid(format!("--expect-path value '{value}' is not JSON: {e}"))
                    })?,
                )
            }
            _ => Expectation::NoError,
        };
        Some(ProbeConfig {
            rate: probe_rate,
            payload: serde_json::to_vec(&payload).expect("JSON"),
            expect,
        })
    } else {
        if a.expect.is_some() || a.expect_path.is_some() {
            return Err(invalid(
                "--expect and --expect-path judge the probe's answers; add --probe-rate N".into(),
            ));
        }
        None
    };
    if a.no_metrics
        && probe.is_none()
        && a.alarms.is_empty()
        && matches!(analysis, Analysis::Fledge(_))
    {
        return Err(invalid(
            "with --no-metrics nothing tells whether the canary is healthy (alarms and external checks can only fail a release); add --probe-rate N"
                .into(),
        ));
    }
    let evidence = CheckConfig {
        probe,
        metrics: !a.no_metrics,
        metrics_period: a
            .metrics_period
            .unwrap_or(if a.endpoint_url.is_some() { 1 } else { 60 }),
        alarms: a.alarms.clone(),
        smoke_invocations: a.smoke.unwrap_or(0),
        external: a
            .http_checks
            .iter()
            .map(|url| ExternalCheck::Http { url: url.clone() })
            .chain(
                a.command_checks
                    .iter()
                    .map(|command| ExternalCheck::Command {
                        command: command.clone(),
                    }),
            )
            .collect(),
        ..CheckConfig::default()
    };
    for text in &a.notify {
        Sink::parse(text).map_err(invalid)?;
    }
    Ok(Plan {
        function,
        alias,
        target,
        schedule,
        analysis,
        checks,
        hooks: Hooks {
            pre_traffic: a.pre_traffic_hook,
            post_traffic: a.post_traffic_hook,
            ..Hooks::default()
        },
        evidence,
        endpoint_url: a.endpoint_url,
        region: a.region,
        json: a.json,
        notify: a.notify,
        notify_attempts: a.notify_retries.saturating_add(1),
    })
}

pub fn run(args: DeployArgs) -> Result<ExitCode, Failure> {
    let plan = resolve(args)?;
    let runtime = tokio::runtime::Runtime::new().map_err(|e| Failure {
        code: 3,
        error: e.into(),
    })?;
    runtime.block_on(async move {
        let aws = Aws::connect(plan.endpoint_url.as_deref(), plan.region.as_deref()).await;
        let mut renderer = Renderer::new(plan.json);
        let summary = execute(&aws, plan, &mut renderer, true).await?;
        Ok(ExitCode::from(renderer.finish(&summary)))
    })
}

/// Runs a plan to its end, rendering as it goes. With `handle_ctrl_c`, the first Ctrl-C
/// aborts (the original version comes back) and a second exits at once, saying what state
/// the alias was last seen in.
pub async fn execute(
    aws: &Aws,
    plan: Plan,
    renderer: &mut Renderer,
    handle_ctrl_c: bool,
) -> Result<Summary, Failure> {
    let target = match plan.target {
        Target::Version(v) => {
            let exists = aws
                .version_exists(&plan.function, v)
                .await
                .map_err(|e| Failure {
                    code: 3,
                    error: anyhow!(
                        "could not check version {v} of {}: {}",
                        plan.function,
                        e.message
                    ),
                })?;
            if !exists {
                return Err(invalid(format!(
                    "version {v} of {} does not exist; publish it first (or use --publish)",
                    plan.function
                )));
            }
            v
        }
        Target::Publish => aws
            .publish_version(&plan.function)
            .await
            .map_err(|e| Failure {
                code: 3,
                error: anyhow!("could not publish {}: {}", plan.function, e.message),
            })?,
    };
    let spec = plan.spec(target);
    let id = format!(
        "{}-{}-v{target}-{}",
        plan.function,
        plan.alias,
        std::process::id()
    );
    let sinks = plan
        .notify
        .iter()
        .map(|t| Sink::parse(t))
        .collect::<Result<Vec<_>, _>>()
        .map_err(invalid)?;
    let notifier = Notifier::new(&id, sinks, plan.notify_attempts, plan.endpoint_url.clone());
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let (control_tx, control_rx) = mpsc::unbounded_channel();
    let engine = tokio::spawn(fledge_engine::run(
        aws.clone(),
        id,
        spec,
        plan.evidence,
        out_tx,
        control_rx,
    ));
    let mut interrupts = 0;
    let mut last_alias: Option<String> = None;
    let mut engine = std::pin::pin!(engine);
    loop {
        tokio::select! {
            Some(p) = out_rx.recv() => {
                if let fledge_engine::Progress::Record(r) = &p {
                    if r.kind.is_notable() {
                        notifier.send(r);
                    }
                    match &r.kind {
                        fledge_core::rollout::RecordKind::StepApplied { routing, .. } | fledge_core::rollout::RecordKind::AliasRecorded { routing, .. } => {
                            last_alias = Some(routing.to_string())
                        }
                        _ => {}
                    }
                }
                renderer.show(&p);
            }
            summary = &mut engine => {
                while let Ok(p) = out_rx.try_recv() {
                    if let fledge_engine::Progress::Record(r) = &p && r.kind.is_notable() {
                        notifier.send(r);
                    }
                    renderer.show(&p);
                }
                if !notifier.is_empty() {
                    let finishing = notifier.finish();
                    tokio::pin!(finishing);
                    let undelivered = tokio::select! {
                        undelivered = &mut finishing => undelivered,
                        () = tokio::time::sleep(Duration::from_secs(1)) => {
                            renderer.show(&fledge_engine::Progress::Note {
                                message: "waiting for notifications to be delivered (or to use their tries)".into(),
                            });
                            finishing.await
                        }
                    };
                    renderer.undelivered(&undelivered);
                }
                return summary.map_err(|e| Failure { code: 3, error: anyhow!("the engine stopped unexpectedly: {e}") });
            }
            _ = tokio::signal::ctrl_c(), if handle_ctrl_c => {
                interrupts += 1;
                if interrupts == 1 {
                    eprintln!("\nCtrl-C: rolling back to the original version; press Ctrl-C again to exit at once");
                    let _ = control_tx.send(OperatorCommand::Abort.into());
                } else {
                    let state = last_alias.unwrap_or_else(|| "unknown (nothing was changed yet)".into());
                    eprintln!("\nexiting without waiting for the rollback. The alias was last seen at: {state}. Check it with: aws lambda get-alias --function-name {} --name {}", plan.function, plan.alias);
                    std::process::exit(3);
                }
            }
        }
    }
}
