//! A simulated world on virtual time: an alias, traffic at a given rate split by the alias's
//! weights, two versions with their own error rates and latencies, and a deployment driven
//! to its end. Seeded, so a run repeats exactly.
//!
//! Traffic between two moments the deployment cares about (a check, a timer, an answer) is
//! drawn in one go (Poisson arrivals, binomial splits), so a year-long rollout costs what its
//! checks cost, not what its requests cost.

use std::collections::VecDeque;
use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Binomial, Distribution, LogNormal, Poisson};
use serde::{Deserialize, Serialize};

use crate::judge::{Observation, VersionSample};
use crate::lambda::{AliasRouting, Version};
use crate::rollout::RecordKind;
use crate::rollout::{
    Command, Deployment, DeploymentSpec, Event, OperatorCommand, Outcome, Record,
};
use crate::time::{Timestamp, duration_millis};

/// How a version behaves.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct VersionModel {
    /// Share of requests that fail.
    pub error_rate: f64,
    /// Latency distribution, if latency matters to the scenario.
    pub latency: Option<LatencyModel>,
}

impl VersionModel {
    pub fn with_errors(error_rate: f64) -> Self {
        VersionModel {
            error_rate,
            latency: None,
        }
    }
}

/// A log-normal latency given by its median and its 99th percentile.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LatencyModel {
    pub p50_ms: f64,
    pub p99_ms: f64,
}

impl LatencyModel {
    fn distribution(&self) -> LogNormal<f64> {
        let mu = self.p50_ms.max(1e-3).ln();
        let sigma = ((self.p99_ms.max(self.p50_ms) / self.p50_ms.max(1e-3)).ln() / 2.326).max(1e-6);
        LogNormal::new(mu, sigma).expect("sigma is positive")
    }
}

/// An operator command at a moment after the start.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct ScriptedCommand {
    #[serde(with = "crate::time::millis", rename = "at_ms")]
    pub at: Duration,
    pub command: OperatorCommand,
}

/// A scenario.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimConfig {
    pub seed: u64,
    /// Requests per second on the alias.
    pub rate: f64,
    pub baseline_version: u64,
    pub baseline: VersionModel,
    pub canary: VersionModel,
    pub spec: DeploymentSpec,
    /// Whether hook functions report success.
    pub hooks_succeed: bool,
    pub operator: Vec<ScriptedCommand>,
    /// Latency samples drawn per version per stretch of traffic, at most.
    pub latency_samples: u32,
    /// Give up (and report no outcome) after this much virtual time.
    #[serde(with = "crate::time::millis", rename = "max_time_ms")]
    pub max_time: Duration,
}

impl SimConfig {
    /// A scenario with no latency, hooks that pass, no operator, and room to finish.
    pub fn new(
        spec: DeploymentSpec,
        rate: f64,
        baseline: VersionModel,
        canary: VersionModel,
        seed: u64,
    ) -> Self {
        let slack =
            spec.checks.max_extension * (spec.schedule.len() as u32 + 1) + spec.hooks.timeout * 2;
        SimConfig {
            seed,
            rate,
            baseline_version: 1,
            baseline,
            canary,
            max_time: spec.schedule.total() + slack + Duration::from_secs(3600),
            spec,
            hooks_succeed: true,
            operator: Vec::new(),
            latency_samples: 200,
        }
    }
}

/// What happened.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SimReport {
    /// `None` when the deployment had not ended by `max_time`.
    pub outcome: Option<Outcome>,
    pub reason: String,
    /// From the start to the outcome (or to `max_time`).
    #[serde(with = "crate::time::millis", rename = "duration_ms")]
    pub duration: Duration,
    /// From the canary's first traffic to the outcome, if it got any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub canary_exposure_ms: Option<u64>,
    pub canary_requests: u64,
    pub canary_failures: u64,
    pub baseline_requests: u64,
    pub baseline_failures: u64,
    pub final_alias: AliasRouting,
    /// (milliseconds since start, the canary's weight) at each alias change.
    pub weights: Vec<(u64, f64)>,
    /// (milliseconds since start, failed requests the canary has served so far), at each
    /// moment the count grew.
    pub failures: Vec<(u64, u64)>,
    /// The deployment's journal, less the checks that only repeat the previous outcome.
    pub records: Vec<Record>,
}

const START: Timestamp = Timestamp(1_700_000_000_000);
const WINDOW: Duration = Duration::from_secs(60);

struct World {
    config: SimConfig,
    rng: StdRng,
    alias: AliasRouting,
    revision: u64,
    baseline: VersionSample,
    canary: VersionSample,
    canary_in_step: u64,
    recent: VecDeque<(Timestamp, VersionSample)>,
    first_canary_traffic: Option<Timestamp>,
    weights: Vec<(u64, f64)>,
    failures: Vec<(u64, u64)>,
    records: Vec<Record>,
}

/// Runs one deployment in the simulated world until it ends or `max_time` passes.
pub fn run(config: SimConfig) -> SimReport {
    let mut sim = Sim::new(config);
    sim.run_until(None);
    sim.report()
}

/// A simulation that can be driven in parts: run to a moment, look at (or replace) the
/// deployment, go on.
pub struct Sim {
    world: World,
    deployment: Deployment,
    script: VecDeque<ScriptedCommand>,
    now: Timestamp,
    deadline: Timestamp,
}

impl Sim {
    pub fn new(config: SimConfig) -> Sim {
        let spec = config.spec.clone();
        let mut world = World {
            rng: StdRng::seed_from_u64(config.seed),
            alias: AliasRouting::single(Version::Number(config.baseline_version)),
            revision: 1,
            baseline: VersionSample::default(),
            canary: VersionSample::default(),
            canary_in_step: 0,
            recent: VecDeque::new(),
            first_canary_traffic: None,
            weights: vec![(0, 0.0)],
            failures: vec![(0, 0)],
            records: Vec::new(),
            config,
        };
        let deadline = START.plus(world.config.max_time);
        let script = world.config.operator.clone().into();
        let (mut deployment, commands) =
            Deployment::new(format!("sim-{}", world.config.seed), spec, START);
        world.execute(START, &mut deployment, commands);
        Sim {
            world,
            deployment,
            script,
            now: START,
            deadline,
        }
    }

    /// Virtual time since the start.
    pub fn elapsed(&self) -> Duration {
        self.now.since(START)
    }

    pub fn deployment(&self) -> &Deployment {
        &self.deployment
    }

    /// Puts another deployment in place of the running one (as a driver restored from its
    /// stored form would) and lets it settle what was in flight.
    pub fn replace_deployment(&mut self, deployment: Deployment) {
        self.deployment = deployment;
        let out = self.deployment.resume_after_restart(self.now);
        self.world.execute(self.now, &mut self.deployment, out);
    }

    /// Runs until the deployment ends, `max_time` passes, or (if given) `until` after the start.
    pub fn run_until(&mut self, until: Option<Duration>) {
        let stop = until.map_or(self.deadline, |u| START.plus(u).min(self.deadline));
        while !self.deployment.is_finished() {
            let next_script = self.script.front().map(|s| START.plus(s.at));
            let next = [self.deployment.poll_deadline(), next_script]
                .into_iter()
                .flatten()
                .min();
            let Some(next) = next.filter(|t| *t <= stop) else {
                self.world.traffic(self.now, stop);
                self.now = stop;
                return;
            };
            let next = next.max(self.now);
            self.world.traffic(self.now, next);
            self.now = next;
            while self
                .script
                .front()
                .is_some_and(|s| START.plus(s.at) <= self.now)
            {
                let command = self.script.pop_front().expect("checked").command;
                let out = self
                    .deployment
                    .handle_event(self.now, Event::Operator { command });
                self.world.execute(self.now, &mut self.deployment, out);
            }
            let out = self.deployment.handle_timeout(self.now);
            self.world.execute(self.now, &mut self.deployment, out);
        }
    }

    pub fn report(self) -> SimReport {
        let world = self.world;
        let reason = match self.deployment.phase() {
            crate::rollout::Phase::Done { reason, .. } => reason.clone(),
            phase => format!(
                "did not finish within {:?} of virtual time (still {phase:?})",
                world.config.max_time
            ),
        };
        SimReport {
            outcome: self.deployment.outcome(),
            reason,
            duration: self.now.since(START),
            canary_exposure_ms: world
                .first_canary_traffic
                .map(|t| duration_millis(self.now.since(t))),
            canary_requests: world.canary.requests,
            canary_failures: world.canary.errors,
            baseline_requests: world.baseline.requests,
            baseline_failures: world.baseline.errors,
            final_alias: world.alias,
            weights: world.weights,
            failures: world.failures,
            records: world.records,
        }
    }
}

impl World {
    fn canary_version(&self) -> Version {
        Version::Number(self.config.spec.target)
    }

    /// Carries out commands; answers go straight back in, and their commands too.
    fn execute(&mut self, now: Timestamp, deployment: &mut Deployment, commands: Vec<Command>) {
        let mut queue: VecDeque<Command> = commands.into();
        while let Some(command) = queue.pop_front() {
            let event = match command {
                Command::Record(record) => {
                    self.keep(record);
                    None
                }
                Command::Notify(_) => None,
                Command::ReadAlias { op } => Some(Event::AliasRead {
                    op,
                    routing: self.alias.clone(),
                    revision_id: self.revision.to_string(),
                }),
                Command::WriteAlias {
                    op,
                    routing,
                    revision_id,
                    ..
                } => Some(self.write(now, op, routing, &revision_id)),
                Command::Evaluate { op, .. } => {
                    let observation = self.observe(now);
                    let verdict = self.config.spec.analysis.judge(&observation);
                    Some(Event::Verdict { op, verdict })
                }
                Command::InvokeHook { op, .. } => Some(Event::HookFinished {
                    op,
                    succeeded: self.config.hooks_succeed,
                    detail: if self.config.hooks_succeed {
                        "Succeeded".into()
                    } else {
                        "status Failed".into()
                    },
                }),
            };
            if let Some(event) = event {
                queue.extend(deployment.handle_event(now, event));
            }
        }
    }

    /// Keeps a record for the report. A check whose outcome repeats the previous check's adds
    /// nothing a reader needs, and a year of them would fill memory; every other record stays.
    fn keep(&mut self, record: Record) {
        if let RecordKind::Checked { verdict, .. } = &record.kind {
            let previous = self.records.iter().rev().find_map(|r| match &r.kind {
                RecordKind::Checked { verdict, .. } => Some(verdict.outcome),
                RecordKind::StepApplied { .. } => Some(crate::judge::Outcome::Inconclusive),
                _ => None,
            });
            if previous == Some(verdict.outcome) && verdict.outcome != crate::judge::Outcome::Fail {
                return;
            }
        }
        self.records.push(record);
    }

    fn write(
        &mut self,
        now: Timestamp,
        op: u64,
        routing: AliasRouting,
        revision_id: &str,
    ) -> Event {
        if revision_id != self.revision.to_string() {
            let failure = crate::rollout::ApiFailure::new(
                crate::rollout::FailureKind::RevisionMismatch,
                crate::lambda::LambdaError::revision_mismatch().message,
            );
            return Event::ApiFailed { op, failure };
        }
        self.alias = routing;
        self.revision += 1;
        self.canary_in_step = 0;
        let weight = self.alias.weight_of(self.canary_version());
        self.weights
            .push((duration_millis(now.since(START)), weight));
        Event::AliasWritten {
            op,
            revision_id: self.revision.to_string(),
        }
    }

    fn observe(&self, now: Timestamp) -> Observation {
        let mut last_minute = VersionSample::default();
        for (_, s) in self.recent.iter().filter(|(end, _)| end.plus(WINDOW) > now) {
            last_minute.add(s);
        }
        Observation {
            canary: self.canary.clone(),
            baseline: self.baseline.clone(),
            canary_in_step: self.canary_in_step,
            canary_last_minute: last_minute,
        }
    }

    /// Draws the traffic of `[from, to)`, split so that the last minute before `to` stands
    /// apart (the original's check looks at exactly that window).
    fn traffic(&mut self, from: Timestamp, to: Timestamp) {
        if to <= from {
            return;
        }
        let window_start = Timestamp(to.0.saturating_sub(duration_millis(WINDOW)));
        if window_start > from {
            self.stretch(from, window_start);
            self.stretch(window_start, to);
        } else {
            self.stretch(from, to);
        }
        while self
            .recent
            .front()
            .is_some_and(|(end, _)| end.plus(WINDOW) <= to)
        {
            self.recent.pop_front();
        }
    }

    fn stretch(&mut self, from: Timestamp, to: Timestamp) {
        let seconds = to.since(from).as_secs_f64();
        let mean = self.config.rate * seconds;
        let total = if mean > 0.0 {
            Poisson::new(mean)
                .expect("mean is positive")
                .sample(&mut self.rng) as u64
        } else {
            0
        };
        let weight = self.alias.weight_of(self.canary_version());
        let to_canary = draw_binomial(&mut self.rng, total, weight);
        let to_baseline = total - to_canary;
        let canary_model = self.config.canary.clone();
        let baseline_model = self.config.baseline.clone();
        let canary = self.serve(to_canary, &canary_model);
        let baseline = self.serve(to_baseline, &baseline_model);
        if to_canary > 0 && self.first_canary_traffic.is_none() {
            self.first_canary_traffic = Some(from);
        }
        self.canary_in_step += canary.requests;
        if canary.errors > 0 {
            self.failures.push((
                duration_millis(to.since(START)),
                self.canary.errors + canary.errors,
            ));
        }
        self.canary.add(&canary);
        self.baseline.add(&baseline);
        self.recent.push_back((to, canary));
    }

    fn serve(&mut self, requests: u64, model: &VersionModel) -> VersionSample {
        let mut sample = VersionSample {
            requests,
            errors: draw_binomial(&mut self.rng, requests, model.error_rate),
            ..VersionSample::default()
        };
        if let Some(latency) = model.latency {
            let dist = latency.distribution();
            for _ in 0..requests.min(u64::from(self.config.latency_samples)) {
                sample.latency.record(dist.sample(&mut self.rng));
            }
        }
        sample
    }
}

fn draw_binomial(rng: &mut StdRng, n: u64, p: f64) -> u64 {
    if n == 0 || p <= 0.0 {
        return 0;
    }
    if p >= 1.0 {
        return n;
    }
    Binomial::new(n, p).expect("p is in (0, 1)").sample(rng)
}

/// Many runs of one scenario, seeds `config.seed`, `config.seed + 1`, …
#[derive(Clone, Debug, Serialize)]
pub struct Batch {
    pub runs: u64,
    pub promoted: Share,
    pub rolled_back: Share,
    /// Runs that ended otherwise (aborted, failed, or unfinished).
    pub other: u64,
    /// Time to the outcome, over runs that were promoted.
    pub time_to_promote_secs: Option<Spread>,
    /// Time to the outcome, over runs that were rolled back.
    pub time_to_rollback_secs: Option<Spread>,
    /// Failed requests the canary served, over all runs.
    pub canary_failures: Spread,
    /// Requests the canary served, over all runs.
    pub canary_requests: Spread,
    /// Failed requests the canary served, run by run.
    pub failures_by_run: Vec<u64>,
    /// Time to the outcome in seconds, run by run.
    pub seconds_by_run: Vec<f64>,
    /// The run whose failed requests are the median: a typical run, in full.
    #[serde(skip)]
    pub typical: Option<SimReport>,
}

/// How many runs had an outcome, and the 95% Wilson interval of its probability.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Share {
    pub count: u64,
    pub probability: f64,
    pub ci95: (f64, f64),
}

/// A summary of values over runs.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Spread {
    pub mean: f64,
    /// The 95% normal interval of the mean.
    pub mean_ci95: (f64, f64),
    pub p50: f64,
    pub p95: f64,
    pub max: f64,
}

impl Spread {
    /// The spread of no values.
    pub const ZERO: Spread = Spread {
        mean: 0.0,
        mean_ci95: (0.0, 0.0),
        p50: 0.0,
        p95: 0.0,
        max: 0.0,
    };

    pub fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len() as f64;
        let mean = sorted.iter().sum::<f64>() / n;
        let variance = if sorted.len() > 1 {
            sorted.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)
        } else {
            0.0
        };
        let half = 1.96 * (variance / n).sqrt();
        let pick = |q: f64| sorted[(((n - 1.0) * q).round() as usize).min(sorted.len() - 1)];
        Some(Spread {
            mean,
            mean_ci95: (mean - half, mean + half),
            p50: pick(0.5),
            p95: pick(0.95),
            max: sorted[sorted.len() - 1],
        })
    }
}

fn share(count: u64, runs: u64) -> Share {
    Share {
        count,
        probability: if runs == 0 {
            0.0
        } else {
            count as f64 / runs as f64
        },
        ci95: crate::stats::wilson_interval(count, runs, 1.96),
    }
}

/// Runs the scenario `runs` times with consecutive seeds and summarises.
pub fn batch(config: &SimConfig, runs: u64) -> Batch {
    let mut promoted = Vec::new();
    let mut rolled_back = Vec::new();
    let mut failures = Vec::new();
    let mut requests = Vec::new();
    let mut other = 0;
    let mut reports = Vec::new();
    for i in 0..runs {
        let mut c = config.clone();
        c.seed = config.seed.wrapping_add(i);
        let report = run(c);
        let secs = report.duration.as_secs_f64();
        match report.outcome {
            Some(Outcome::Promoted) => promoted.push(secs),
            Some(Outcome::RolledBack) => rolled_back.push(secs),
            _ => other += 1,
        }
        failures.push(report.canary_failures as f64);
        requests.push(report.canary_requests as f64);
        reports.push(report);
    }
    let seconds_by_run = reports.iter().map(|r| r.duration.as_secs_f64()).collect();
    let failures_by_run: Vec<u64> = reports.iter().map(|r| r.canary_failures).collect();
    let mut order: Vec<usize> = (0..reports.len()).collect();
    order.sort_by_key(|i| failures_by_run[*i]);
    let typical = order.get(order.len() / 2).map(|i| reports.swap_remove(*i));
    Batch {
        runs,
        promoted: share(promoted.len() as u64, runs),
        rolled_back: share(rolled_back.len() as u64, runs),
        other,
        time_to_promote_secs: Spread::of(&promoted),
        time_to_rollback_secs: Spread::of(&rolled_back),
        canary_failures: Spread::of(&failures).unwrap_or(Spread::ZERO),
        canary_requests: Spread::of(&requests).unwrap_or(Spread::ZERO),
        failures_by_run,
        seconds_by_run,
        typical,
    }
}
