//! Where health evidence comes from.
//!
//! - **probe**: fledge invokes the alias at a steady rate with a payload, checks each answer,
//!   and counts it for the version that served it (`X-Amz-Executed-Version`): client-side
//!   success and latency per version, in real time.
//! - **metrics**: CloudWatch `AWS/Lambda` Invocations and Errors under
//!   `{FunctionName, Resource=F:A, ExecutedVersion}` for the canary and the baseline.
//! - **alarms**: named CloudWatch alarms; any in ALARM fails (CodeDeploy's rule).
//! - **smoke**: before any traffic shifts, invoke the new version directly N times.
//! - **http** and **command**: external checks that must succeed (a 2xx answer; exit status
//!   0). Like alarms, they can only fail a deployment: their success says nothing about the
//!   canary in particular.
//!
//! Sources are judged separately and then combined: any failure fails; a pass from any
//! source with enough evidence passes; otherwise the check is inconclusive.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use fledge_aws::{Aws, latency_sample};
use fledge_core::judge::{Analysis, Evidence, Outcome, Verdict, VersionSample};
use fledge_core::lambda::Version;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::tally::Tally;

/// What a probe's answer must look like.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Expectation {
    /// Any answer without a function error passes.
    #[default]
    NoError,
    /// The answer is JSON containing this value (objects by subset, the rest by equality).
    JsonSubset(Value),
    /// The value at this JSON pointer equals the given one.
    PathEquals(String, Value),
}

impl Expectation {
    /// Whether an answer meets the expectation, and why not.
    pub fn check(&self, payload: &[u8]) -> Result<(), String> {
        let parsed = || {
            serde_json::from_slice::<Value>(payload)
                .map_err(|e| format!("the answer is not JSON: {e}"))
        };
        match self {
            Expectation::NoError => Ok(()),
            Expectation::JsonSubset(want) => {
                let got = parsed()?;
                if contains(&got, want) {
                    Ok(())
                } else {
                    Err(format!("the answer {got} does not contain {want}"))
                }
            }
            Expectation::PathEquals(path, want) => {
                let got = parsed()?;
                match got.pointer(path) {
                    Some(v) if v == want => Ok(()),
                    Some(v) => Err(format!("{path} is {v}, expected {want}")),
                    None => Err(format!("the answer has no {path}")),
                }
            }
        }
    }
}

fn contains(got: &Value, want: &Value) -> bool {
    match (got, want) {
        (Value::Object(g), Value::Object(w)) => w
            .iter()
            .all(|(k, wv)| g.get(k).is_some_and(|gv| contains(gv, wv))),
        _ => got == want,
    }
}

/// Synthetic traffic that fledge sends itself.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProbeConfig {
    /// Invocations per second.
    pub rate: f64,
    pub payload: Vec<u8>,
    pub expect: Expectation,
}

/// Which evidence a deployment gathers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckConfig {
    pub probe: Option<ProbeConfig>,
    /// Read CloudWatch metrics of the alias.
    pub metrics: bool,
    /// Metric period in seconds: 60 on AWS; 1 on fledge local.
    pub metrics_period: i32,
    /// How far before the deployment the baseline's history counts.
    pub baseline_lookback: Duration,
    /// CloudWatch alarms that fail the deployment when in ALARM.
    pub alarms: Vec<String>,
    /// Invocations of the new version before any traffic shifts (0: none).
    pub smoke_invocations: u32,
    /// External checks run at every evaluation.
    pub external: Vec<ExternalCheck>,
}

/// A check outside the platform.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExternalCheck {
    /// GET this URL; a 2xx answer passes.
    Http { url: String },
    /// Run this with `sh -c`; exit status 0 passes. It sees FLEDGE_FUNCTION, FLEDGE_ALIAS,
    /// FLEDGE_CANARY_VERSION and FLEDGE_BASELINE_VERSION.
    Command { command: String },
}

/// How long an external check may take before it counts as failed.
const EXTERNAL_TIMEOUT: Duration = Duration::from_secs(10);

impl ExternalCheck {
    fn name(&self) -> String {
        match self {
            ExternalCheck::Http { url } => format!("http check {url}"),
            ExternalCheck::Command { command } => format!("command check `{command}`"),
        }
    }

    /// Runs the check; the error says what it saw.
    pub async fn run(&self, context: &CheckContext<'_>) -> Result<(), String> {
        match self {
            ExternalCheck::Http { url } => {
                let client = reqwest::Client::builder()
                    .timeout(EXTERNAL_TIMEOUT)
                    .build()
                    .map_err(|e| e.to_string())?;
                let answer = client
                    .get(url)
                    .send()
                    .await
                    .map_err(|e| format!("no answer: {e}"))?;
                let status = answer.status();
                if status.is_success() {
                    return Ok(());
                }
                let body = answer.text().await.unwrap_or_default();
                Err(format!(
                    "answered {status}: {}",
                    body.chars().take(200).collect::<String>()
                ))
            }
            ExternalCheck::Command { command } => {
                let run = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .env("FLEDGE_FUNCTION", context.function)
                    .env("FLEDGE_ALIAS", context.alias)
                    .env("FLEDGE_CANARY_VERSION", context.canary.to_string())
                    .env("FLEDGE_BASELINE_VERSION", context.baseline.to_string())
                    .kill_on_drop(true)
                    .output();
                let out = tokio::time::timeout(EXTERNAL_TIMEOUT, run)
                    .await
                    .map_err(|_| format!("still running after {}s", EXTERNAL_TIMEOUT.as_secs()))?
                    .map_err(|e| format!("could not run: {e}"))?;
                if out.status.success() {
                    return Ok(());
                }
                let said = String::from_utf8_lossy(if out.stderr.is_empty() {
                    &out.stdout
                } else {
                    &out.stderr
                })
                .trim()
                .chars()
                .take(200)
                .collect::<String>();
                Err(format!("exited with {}: {said}", out.status))
            }
        }
    }
}

impl Default for CheckConfig {
    fn default() -> Self {
        CheckConfig {
            probe: None,
            metrics: true,
            metrics_period: 60,
            baseline_lookback: Duration::from_secs(600),
            alarms: Vec::new(),
            smoke_invocations: 0,
            external: Vec::new(),
        }
    }
}

/// Runs a probe until the returned handle is aborted; its results go into `tally`.
pub fn start_probe(
    aws: Aws,
    qualified: String,
    probe: ProbeConfig,
    tally: Arc<Mutex<Tally>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let period = Duration::from_secs_f64(1.0 / probe.rate.max(0.01));
        let mut tick = tokio::time::interval(period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
        let in_flight = Arc::new(tokio::sync::Semaphore::new(32));
        loop {
            tick.tick().await;
            let Ok(permit) = in_flight.clone().try_acquire_owned() else {
                continue;
            };
            let (aws, qualified, probe, tally) =
                (aws.clone(), qualified.clone(), probe.clone(), tally.clone());
            tokio::spawn(async move {
                let at = SystemTime::now();
                if let Ok(answer) = aws.invoke(&qualified, &probe.payload).await {
                    let Some(Version::Number(version)) = answer.executed_version else {
                        return;
                    };
                    let failed = answer.function_error.is_some()
                        || probe.expect.check(&answer.payload).is_err();
                    let sample = VersionSample {
                        requests: 1,
                        errors: u64::from(failed),
                        latency: latency_sample(answer.latency),
                        ..VersionSample::default()
                    };
                    tally.lock().expect("tally lock").add(version, at, &sample);
                }
                drop(permit);
            });
        }
    })
}

/// Invokes the new version directly `n` times before any traffic shifts; the first failure
/// is the answer.
pub async fn smoke_test(
    aws: &Aws,
    function: &str,
    version: u64,
    n: u32,
    probe: Option<&ProbeConfig>,
) -> Result<(), String> {
    let qualified = format!("{function}:{version}");
    let payload = probe.map_or(b"{}".to_vec(), |p| p.payload.clone());
    let expect = probe.map(|p| p.expect.clone()).unwrap_or_default();
    for i in 1..=n {
        let answer = aws.invoke(&qualified, &payload).await.map_err(|e| {
            format!(
                "smoke invocation {i} of {qualified} could not be made: {}",
                e.message
            )
        })?;
        if let Some(kind) = answer.function_error {
            return Err(format!(
                "smoke invocation {i} of {qualified} failed ({kind}): {}",
                String::from_utf8_lossy(&answer.payload)
                    .chars()
                    .take(300)
                    .collect::<String>()
            ));
        }
        expect
            .check(&answer.payload)
            .map_err(|e| format!("smoke invocation {i} of {qualified}: {e}"))?;
    }
    Ok(())
}

/// Everything one check needs.
pub struct CheckContext<'a> {
    pub aws: &'a Aws,
    pub function: &'a str,
    pub alias: &'a str,
    pub analysis: &'a Analysis,
    pub config: &'a CheckConfig,
    pub probe_tally: Option<&'a Arc<Mutex<Tally>>>,
    pub canary: u64,
    pub baseline: u64,
    pub started: SystemTime,
}

impl CheckContext<'_> {
    /// Gathers evidence from every source and judges it.
    pub async fn evaluate(&self, step_started: SystemTime) -> Verdict {
        let now = SystemTime::now();
        let since = self.started - self.config.baseline_lookback;
        let mut verdicts = Vec::new();
        if let Some(tally) = self.probe_tally {
            let obs = tally.lock().expect("tally lock").observe(
                self.canary,
                self.baseline,
                since,
                step_started,
                now,
            );
            verdicts.push(labelled("probe", self.analysis.judge(&obs)));
        }
        if self.config.metrics {
            let end = now + Duration::from_secs(1);
            match self
                .aws
                .alias_metrics(
                    self.function,
                    self.alias,
                    &[self.canary, self.baseline],
                    since,
                    end,
                    self.config.metrics_period,
                )
                .await
            {
                Ok(series) => {
                    let mut tally = Tally::default();
                    for (version, points) in &series {
                        for (t, s) in points {
                            tally.add(*version, *t, s);
                        }
                    }
                    let obs = tally.observe(self.canary, self.baseline, since, step_started, now);
                    let mut verdict = labelled("metrics", self.analysis.judge(&obs));
                    if obs.canary.requests >= MIN_P99_INVOCATIONS {
                        self.metrics_latency(&mut verdict, since, end).await;
                    }
                    verdicts.push(verdict);
                }
                Err(e) => verdicts.push(Verdict::new(
                    Outcome::Inconclusive,
                    format!("metrics could not be read: {}", e.message),
                    vec![],
                )),
            }
        }
        match self.aws.alarms_firing(&self.config.alarms).await {
            Ok(firing) if !firing.is_empty() => {
                let reason = firing
                    .iter()
                    .map(|(n, r)| format!("alarm {n} is in ALARM ({r})"))
                    .collect::<Vec<_>>()
                    .join("; ");
                let evidence = firing
                    .iter()
                    .map(|(n, _)| Evidence {
                        check: format!("alarm:{n}"),
                        outcome: Outcome::Fail,
                        canary: 1.0,
                        baseline: None,
                        threshold: 0.0,
                        samples: 0,
                        baseline_samples: None,
                        p_value: None,
                    })
                    .collect();
                verdicts.push(Verdict::new(Outcome::Fail, reason, evidence));
            }
            Ok(_) => {}
            Err(e) => verdicts.push(Verdict::new(
                Outcome::Inconclusive,
                format!("alarms could not be read: {}", e.message),
                vec![],
            )),
        }
        for check in &self.config.external {
            if let Err(why) = check.run(self).await {
                let evidence = Evidence {
                    check: check.name(),
                    outcome: Outcome::Fail,
                    canary: 0.0,
                    baseline: None,
                    threshold: 0.0,
                    samples: 0,
                    baseline_samples: None,
                    p_value: None,
                };
                verdicts.push(Verdict::new(
                    Outcome::Fail,
                    format!("{} failed: {why}", check.name()),
                    vec![evidence],
                ));
            }
        }
        combine(verdicts)
    }
}

/// Canary invocations a window needs before its p99 from CloudWatch counts.
const MIN_P99_INVOCATIONS: u64 = 100;

impl CheckContext<'_> {
    /// Adds CloudWatch's p99 Duration of canary and baseline over the window as evidence, and
    /// fails the verdict when the canary's is above the configured absolute limit. A relative
    /// test needs every latency, which only the probe has.
    async fn metrics_latency(&self, verdict: &mut Verdict, since: SystemTime, end: SystemTime) {
        let Ok(p99) = self
            .aws
            .alias_p99(
                self.function,
                self.alias,
                &[self.canary, self.baseline],
                since,
                end,
                self.config.metrics_period,
            )
            .await
        else {
            return;
        };
        let Some(canary) = p99.get(&self.canary).copied() else {
            return;
        };
        let limit = match self.analysis {
            Analysis::Fledge(config) => config.max_p99_ms,
            _ => None,
        };
        let failed = limit.is_some_and(|l| canary > l);
        verdict.evidence.push(Evidence {
            check: "metrics_p99".into(),
            outcome: if failed { Outcome::Fail } else { Outcome::Pass },
            canary,
            baseline: p99.get(&self.baseline).copied(),
            threshold: limit.unwrap_or(f64::INFINITY),
            samples: 0,
            baseline_samples: None,
            p_value: None,
        });
        if failed {
            verdict.outcome = Outcome::Fail;
            verdict.reason = format!(
                "metrics: canary p99 Duration {canary:.0} ms is above the limit {:.0} ms",
                limit.unwrap_or_default()
            );
        }
    }
}

fn labelled(source: &str, mut v: Verdict) -> Verdict {
    v.reason = format!("{source}: {}", v.reason);
    v
}

/// Any failure fails; otherwise a pass from any source passes; otherwise inconclusive.
pub fn combine(verdicts: Vec<Verdict>) -> Verdict {
    if verdicts.iter().any(|v| v.outcome == Outcome::Fail)
        || !verdicts.iter().any(|v| v.outcome == Outcome::Pass)
    {
        return Verdict::combine(verdicts);
    }
    let reason = verdicts
        .iter()
        .filter(|v| v.outcome == Outcome::Pass)
        .map(|v| v.reason.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    let evidence = verdicts.into_iter().flat_map(|v| v.evidence).collect();
    Verdict {
        outcome: Outcome::Pass,
        reason,
        evidence,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn expectations() {
        let body = br#"{"status":"ok","data":{"n":3,"extra":true}}"#;
        assert!(
            Expectation::JsonSubset(json!({"data": {"n": 3}}))
                .check(body)
                .is_ok()
        );
        assert!(
            Expectation::JsonSubset(json!({"status": "down"}))
                .check(body)
                .is_err()
        );
        assert!(
            Expectation::PathEquals("/data/n".into(), json!(3))
                .check(body)
                .is_ok()
        );
        let e = Expectation::PathEquals("/data/n".into(), json!(4))
            .check(body)
            .unwrap_err();
        assert!(e.contains("/data/n is 3"), "{e}");
        assert!(
            Expectation::JsonSubset(json!({}))
                .check(b"not json")
                .is_err()
        );
    }

    #[test]
    fn combining_sources() {
        let pass = Verdict::new(Outcome::Pass, "probe ok", vec![]);
        let silent = Verdict::new(Outcome::Inconclusive, "metrics: too few", vec![]);
        let fail = Verdict::new(Outcome::Fail, "alarm", vec![]);
        assert_eq!(
            combine(vec![pass.clone(), silent.clone()]).outcome,
            Outcome::Pass
        );
        assert_eq!(
            combine(vec![pass, silent.clone(), fail]).outcome,
            Outcome::Fail
        );
        assert_eq!(combine(vec![silent]).outcome, Outcome::Inconclusive);
        assert_eq!(combine(vec![]).outcome, Outcome::Inconclusive);
    }
}
