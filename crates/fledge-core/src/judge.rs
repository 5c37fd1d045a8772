//! The health judge: compares the canary with the baseline and answers `pass`, `fail` or
//! `inconclusive`, with the numbers behind the answer.
//!
//! fledge's analysis (the default):
//! - **error rate**: fail when the canary's errors are too many to be explained by a rate at
//!   or below the baseline's (its Wilson upper bound plus a margin): a one-sided binomial
//!   test at a per-check false-alarm probability (1e-5 by default, small because checks
//!   repeat every few seconds). Three failures in three requests are enough against a
//!   healthy baseline; an equal error rate almost never is.
//! - **absolute limits**: an error-rate ceiling and a p99 latency ceiling, tested the same way.
//! - **latency**: fail when significantly more than 1% of the canary's requests are slower
//!   than the baseline's p99 (plus a tolerance).
//! - **no verdict without evidence**: `pass` needs a minimum number of canary requests in the
//!   current step; fewer is `inconclusive`. Silence never passes and never fails.
//!
//! The `seed` analysis reproduces the original's check: any error of the canary in the last
//! minute fails, and no data at all passes.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::stats::{binomial_upper_tail, wilson_upper};
use crate::time::millis;

/// What a check concluded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    Pass,
    Fail,
    Inconclusive,
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Outcome::Pass => "pass",
            Outcome::Fail => "fail",
            Outcome::Inconclusive => "inconclusive",
        })
    }
}

/// One measured fact behind a verdict.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Evidence {
    /// Which rule: `error_rate`, `error_rate_limit`, `latency_p99`, `latency_limit`,
    /// `sample_size`, `seed_errors`, or a named external check.
    pub check: String,
    pub outcome: Outcome,
    /// The canary's value (a rate, milliseconds, or a count; see `check`).
    pub canary: f64,
    /// The baseline's value, where the rule compares.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub baseline: Option<f64>,
    /// The value the canary was held against.
    pub threshold: f64,
    /// How many canary requests the rule looked at.
    pub samples: u64,
    /// How many baseline requests it compared with, where it compares.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub baseline_samples: Option<u64>,
    /// How likely the canary's numbers are if it were as healthy as the threshold allows.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub p_value: Option<f64>,
}

/// A check's conclusion and everything it rests on.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Verdict {
    pub outcome: Outcome,
    /// One sentence a person can act on.
    pub reason: String,
    pub evidence: Vec<Evidence>,
}

impl Verdict {
    pub fn new(outcome: Outcome, reason: impl Into<String>, evidence: Vec<Evidence>) -> Self {
        Verdict {
            outcome,
            reason: reason.into(),
            evidence,
        }
    }

    /// Several checks' verdicts as one: any fail fails, then any inconclusive, else pass.
    pub fn combine(verdicts: Vec<Verdict>) -> Verdict {
        let worst = [Outcome::Fail, Outcome::Inconclusive, Outcome::Pass]
            .into_iter()
            .find(|o| verdicts.iter().any(|v| v.outcome == *o));
        let Some(outcome) = worst else {
            return Verdict::new(Outcome::Inconclusive, "no check produced evidence", vec![]);
        };
        let reason = verdicts
            .iter()
            .filter(|v| v.outcome == outcome)
            .map(|v| v.reason.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let evidence = verdicts.into_iter().flat_map(|v| v.evidence).collect();
        Verdict {
            outcome,
            reason,
            evidence,
        }
    }
}

/// Latencies in logarithmic buckets 5% wide, from 0.1 ms to about eight hours. Allocates
/// nothing until the first latency is recorded.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct LatencyHistogram {
    counts: Vec<u64>,
    total: u64,
}

const BUCKETS: usize = 380;
const BUCKET_BASE_MS: f64 = 0.1;
const BUCKET_GROWTH: f64 = 1.05;

impl LatencyHistogram {
    fn bucket(ms: f64) -> usize {
        if ms <= BUCKET_BASE_MS {
            return 0;
        }
        let i = ((ms / BUCKET_BASE_MS).ln() / BUCKET_GROWTH.ln()) as usize + 1;
        i.min(BUCKETS - 1)
    }

    /// The upper edge of bucket `i`.
    fn upper(i: usize) -> f64 {
        BUCKET_BASE_MS * BUCKET_GROWTH.powi(i as i32)
    }

    pub fn record(&mut self, ms: f64) {
        self.record_n(ms, 1);
    }

    pub fn record_n(&mut self, ms: f64, n: u64) {
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        self.counts[Self::bucket(ms)] += n;
        self.total += n;
    }

    pub fn merge(&mut self, other: &LatencyHistogram) {
        if other.total == 0 {
            return;
        }
        if self.counts.is_empty() {
            self.counts = vec![0; BUCKETS];
        }
        for (a, b) in self.counts.iter_mut().zip(&other.counts) {
            *a += b;
        }
        self.total += other.total;
    }

    pub fn len(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The `q` quantile (0..=1), as the upper edge of its bucket (within 5%).
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.total == 0 {
            return None;
        }
        let rank = ((q * self.total as f64).ceil() as u64).clamp(1, self.total);
        let mut seen = 0;
        for (i, c) in self.counts.iter().enumerate() {
            seen += c;
            if seen >= rank {
                return Some(Self::upper(i));
            }
        }
        Some(Self::upper(BUCKETS - 1))
    }

    /// The buckets that hold latencies, as (bucket, count): a compact form to store.
    pub fn buckets(&self) -> impl Iterator<Item = (usize, u64)> + '_ {
        self.counts
            .iter()
            .enumerate()
            .filter(|(_, c)| **c > 0)
            .map(|(i, c)| (i, *c))
    }

    /// The histogram [`LatencyHistogram::buckets`] gave; buckets out of range are left out.
    pub fn from_buckets(buckets: impl IntoIterator<Item = (usize, u64)>) -> LatencyHistogram {
        let mut h = LatencyHistogram::default();
        for (i, n) in buckets {
            if i < BUCKETS && n > 0 {
                if h.counts.is_empty() {
                    h.counts = vec![0; BUCKETS];
                }
                h.counts[i] += n;
                h.total += n;
            }
        }
        h
    }

    /// How many recorded latencies lie above `ms` (bucket-exact: whole buckets above it).
    pub fn count_above(&self, ms: f64) -> u64 {
        let first = Self::bucket(ms) + 1;
        self.counts.iter().skip(first).sum()
    }
}

/// What one version served over some window.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct VersionSample {
    pub requests: u64,
    pub errors: u64,
    /// Invocations refused with 429 (not counted in `requests`).
    #[serde(default)]
    pub throttles: u64,
    #[serde(default)]
    pub latency: LatencyHistogram,
}

impl VersionSample {
    pub fn error_rate(&self) -> f64 {
        if self.requests == 0 {
            0.0
        } else {
            self.errors as f64 / self.requests as f64
        }
    }

    pub fn add(&mut self, other: &VersionSample) {
        self.requests += other.requests;
        self.errors += other.errors;
        self.throttles += other.throttles;
        self.latency.merge(&other.latency);
    }
}

/// The evidence at hand when a check runs.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Observation {
    /// The canary since it first received traffic in this deployment.
    pub canary: VersionSample,
    /// The baseline over the deployment.
    pub baseline: VersionSample,
    /// Canary requests since the current step began.
    pub canary_in_step: u64,
    /// The canary over the last minute (the original's window).
    pub canary_last_minute: VersionSample,
}

/// Thresholds of fledge's analysis.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JudgeConfig {
    /// Canary requests a step needs before it can pass.
    pub min_requests: u64,
    /// How much worse than the baseline's error rate (absolute) is tolerated.
    pub error_rate_margin: f64,
    /// An error rate the canary must never exceed, whatever the baseline does.
    pub max_error_rate: Option<f64>,
    /// Tolerated p99 slowdown against the baseline, relative (0.2 = 20%)…
    pub latency_margin: f64,
    /// …and at least this many milliseconds.
    #[serde(with = "millis", rename = "latency_margin_ms")]
    pub latency_margin_abs: Duration,
    /// A p99 latency the canary must never exceed.
    pub max_p99_ms: Option<f64>,
    /// A share of invocations (throttled / attempted) the canary may not see throttled.
    pub max_throttle_rate: Option<f64>,
    /// Probability that one check fails a canary exactly as healthy as allowed.
    pub false_alarm: f64,
    /// Below this p-value (but above `false_alarm`) the evidence is suspicious: the step
    /// may not pass on it and holds for more data, which then fails or clears the canary.
    pub suspicion: f64,
}

impl Default for JudgeConfig {
    fn default() -> Self {
        JudgeConfig {
            min_requests: 50,
            error_rate_margin: 0.001,
            max_error_rate: None,
            latency_margin: 0.2,
            latency_margin_abs: Duration::from_millis(20),
            max_p99_ms: None,
            max_throttle_rate: None,
            false_alarm: 1e-5,
            suspicion: 1e-2,
        }
    }
}

/// How health is judged.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum Analysis {
    /// fledge's comparison of canary and baseline.
    Fledge(JudgeConfig),
    /// The original's check, for comparison: any canary error in the last minute fails; no
    /// data passes.
    Seed,
    /// A CloudWatch alarm as CodeDeploy uses one, for comparison: fails when the canary's
    /// errors over the last minute reach `threshold`; passes otherwise, silence included.
    Alarm { threshold: f64 },
}

impl Default for Analysis {
    fn default() -> Self {
        Analysis::Fledge(JudgeConfig::default())
    }
}

/// The baseline rate we compare against when the baseline has served nothing yet.
const NO_BASELINE_RATE: f64 = 0.01;
/// One-sided 99% for the baseline's upper bound.
const BASELINE_Z: f64 = 2.326;
/// Latency samples the baseline needs before its p99 is a reference.
const MIN_LATENCY_SAMPLES: u64 = 100;

impl Analysis {
    /// Judges one observation.
    pub fn judge(&self, obs: &Observation) -> Verdict {
        match self {
            Analysis::Seed => judge_seed(obs),
            Analysis::Alarm { threshold } => judge_alarm(obs, *threshold),
            Analysis::Fledge(config) => config.judge(obs),
        }
    }

    /// Whether this analysis is meant to run continuously (fledge) or only at the end of a
    /// step's hold (the original).
    pub fn continuous(&self) -> bool {
        matches!(self, Analysis::Fledge(_) | Analysis::Alarm { .. })
    }
}

fn judge_seed(obs: &Observation) -> Verdict {
    let recent = &obs.canary_last_minute;
    let outcome = if recent.errors > 0 {
        Outcome::Fail
    } else {
        Outcome::Pass
    };
    let evidence = Evidence {
        check: "seed_errors".into(),
        outcome,
        canary: recent.errors as f64,
        baseline: None,
        threshold: 0.0,
        samples: recent.requests,
        baseline_samples: None,
        p_value: None,
    };
    let reason = if recent.errors > 0 {
        format!(
            "the canary had {} errors in the last minute (the original fails on any)",
            recent.errors
        )
    } else {
        format!(
            "no canary errors in the last minute ({} requests; the original passes even with none)",
            recent.requests
        )
    };
    Verdict::new(outcome, reason, vec![evidence])
}

fn judge_alarm(obs: &Observation, threshold: f64) -> Verdict {
    let recent = &obs.canary_last_minute;
    let firing = recent.errors as f64 >= threshold;
    let outcome = if firing { Outcome::Fail } else { Outcome::Pass };
    let evidence = Evidence {
        check: "alarm_errors".into(),
        outcome,
        canary: recent.errors as f64,
        baseline: None,
        threshold,
        samples: recent.requests,
        baseline_samples: None,
        p_value: None,
    };
    let reason = format!(
        "the canary had {} errors in the last minute (alarm threshold {threshold})",
        recent.errors
    );
    Verdict::new(outcome, reason, vec![evidence])
}

impl JudgeConfig {
    pub fn judge(&self, obs: &Observation) -> Verdict {
        let mut evidence = vec![self.error_rate(obs)];
        if let Some(limit) = self.max_error_rate {
            evidence.push(self.error_rate_limit(obs, limit));
        }
        evidence.extend(self.latency(obs));
        if let Some(limit) = self.max_throttle_rate {
            evidence.push(self.throttle_limit(obs, limit));
        }
        if let Some(limit) = self.max_p99_ms {
            evidence.extend(self.latency_limit(obs, limit));
        }
        let failed: Vec<&Evidence> = evidence
            .iter()
            .filter(|e| e.outcome == Outcome::Fail)
            .collect();
        if !failed.is_empty() {
            let reason = failed
                .iter()
                .map(|e| describe_failure(e))
                .collect::<Vec<_>>()
                .join("; ");
            return Verdict::new(Outcome::Fail, reason, evidence);
        }
        let suspicious: Vec<&Evidence> = evidence
            .iter()
            .filter(|e| e.p_value.is_some_and(|p| p < self.suspicion))
            .collect();
        if let Some(worst) = suspicious.iter().min_by(|a, b| {
            a.p_value
                .partial_cmp(&b.p_value)
                .expect("p-values are numbers")
        }) {
            let reason = format!(
                "not yet conclusive, but suspicious: {} (p = {:.1e}, fails below {:.0e}); holding for more evidence",
                worst.check,
                worst.p_value.unwrap_or(1.0),
                self.false_alarm
            );
            for e in evidence
                .iter_mut()
                .filter(|e| e.p_value.is_some_and(|p| p < self.suspicion))
            {
                e.outcome = Outcome::Inconclusive;
            }
            return Verdict::new(Outcome::Inconclusive, reason, evidence);
        }
        let enough = obs.canary_in_step >= self.min_requests;
        evidence.push(Evidence {
            check: "sample_size".into(),
            outcome: if enough {
                Outcome::Pass
            } else {
                Outcome::Inconclusive
            },
            canary: obs.canary_in_step as f64,
            baseline: None,
            threshold: self.min_requests as f64,
            samples: obs.canary_in_step,
            baseline_samples: None,
            p_value: None,
        });
        if !enough {
            let reason = format!(
                "the canary served {} requests in this step; {} are needed before it can pass",
                obs.canary_in_step, self.min_requests
            );
            return Verdict::new(Outcome::Inconclusive, reason, evidence);
        }
        let reason = format!(
            "canary error rate {:.3}% over {} requests, baseline {:.3}% over {}: no significant difference",
            obs.canary.error_rate() * 100.0,
            obs.canary.requests,
            obs.baseline.error_rate() * 100.0,
            obs.baseline.requests
        );
        Verdict::new(Outcome::Pass, reason, evidence)
    }

    /// The rate the canary may have without failing: the baseline's plausible worst plus the
    /// margin. A baseline that has shown no error is never taken as worse than
    /// [`NO_BASELINE_RATE`]: the plausible worst of a few clean requests is large (0.85 for
    /// one), and leniency is only owed to errors the baseline really has.
    fn reference_error_rate(&self, baseline: &VersionSample) -> f64 {
        let base = if baseline.requests == 0 {
            NO_BASELINE_RATE
        } else {
            let upper = wilson_upper(baseline.errors, baseline.requests, BASELINE_Z);
            if baseline.errors == 0 {
                upper.min(NO_BASELINE_RATE)
            } else {
                upper
            }
        };
        (base + self.error_rate_margin).min(1.0)
    }

    fn error_rate(&self, obs: &Observation) -> Evidence {
        let reference = self.reference_error_rate(&obs.baseline);
        let c = &obs.canary;
        let p = binomial_upper_tail(c.errors, c.requests, reference);
        Evidence {
            check: "error_rate".into(),
            outcome: if p < self.false_alarm {
                Outcome::Fail
            } else {
                Outcome::Pass
            },
            canary: c.error_rate(),
            baseline: Some(obs.baseline.error_rate()),
            threshold: reference,
            samples: c.requests,
            baseline_samples: Some(obs.baseline.requests),
            p_value: Some(p),
        }
    }

    fn error_rate_limit(&self, obs: &Observation, limit: f64) -> Evidence {
        let c = &obs.canary;
        let p = binomial_upper_tail(c.errors, c.requests, limit);
        Evidence {
            check: "error_rate_limit".into(),
            outcome: if p < self.false_alarm {
                Outcome::Fail
            } else {
                Outcome::Pass
            },
            canary: c.error_rate(),
            baseline: None,
            threshold: limit,
            samples: c.requests,
            baseline_samples: None,
            p_value: Some(p),
        }
    }

    fn throttle_limit(&self, obs: &Observation, limit: f64) -> Evidence {
        let c = &obs.canary;
        let attempted = c.requests + c.throttles;
        let p = binomial_upper_tail(c.throttles, attempted, limit);
        Evidence {
            check: "throttle_rate_limit".into(),
            outcome: if p < self.false_alarm {
                Outcome::Fail
            } else {
                Outcome::Pass
            },
            canary: if attempted == 0 {
                0.0
            } else {
                c.throttles as f64 / attempted as f64
            },
            baseline: None,
            threshold: limit,
            samples: attempted,
            baseline_samples: None,
            p_value: Some(p),
        }
    }

    /// Fails when significantly more than 1% of the canary's requests are slower than the
    /// baseline's p99 plus the tolerance.
    fn latency(&self, obs: &Observation) -> Option<Evidence> {
        if obs.baseline.latency.len() < MIN_LATENCY_SAMPLES || obs.canary.latency.is_empty() {
            return None;
        }
        let base_p99 = obs.baseline.latency.quantile(0.99)?;
        let margin_ms = self.latency_margin_abs.as_secs_f64() * 1000.0;
        let threshold = (base_p99 * (1.0 + self.latency_margin)).max(base_p99 + margin_ms);
        Some(self.slow_share_test(
            "latency_p99",
            &obs.canary.latency,
            threshold,
            Some((base_p99, obs.baseline.latency.len())),
        ))
    }

    fn latency_limit(&self, obs: &Observation, limit: f64) -> Option<Evidence> {
        if obs.canary.latency.is_empty() {
            return None;
        }
        Some(self.slow_share_test("latency_limit", &obs.canary.latency, limit, None))
    }

    fn slow_share_test(
        &self,
        check: &str,
        canary: &LatencyHistogram,
        threshold: f64,
        baseline: Option<(f64, u64)>,
    ) -> Evidence {
        let slow = canary.count_above(threshold);
        let p = binomial_upper_tail(slow, canary.len(), 0.01);
        Evidence {
            check: check.into(),
            outcome: if p < self.false_alarm {
                Outcome::Fail
            } else {
                Outcome::Pass
            },
            canary: canary.quantile(0.99).unwrap_or(0.0),
            baseline: baseline.map(|b| b.0),
            baseline_samples: baseline.map(|b| b.1),
            threshold,
            samples: canary.len(),
            p_value: Some(p),
        }
    }
}

fn describe_failure(e: &Evidence) -> String {
    let p = e
        .p_value
        .map(|p| format!(", p = {p:.1e}"))
        .unwrap_or_default();
    match e.check.as_str() {
        "error_rate" => format!(
            "canary error rate {:.2}% over {} requests is significantly above the baseline's {:.3}% (allowed up to {:.3}%{p})",
            e.canary * 100.0,
            e.samples,
            e.baseline.unwrap_or(0.0) * 100.0,
            e.threshold * 100.0
        ),
        "error_rate_limit" => format!(
            "canary error rate {:.2}% over {} requests is significantly above the limit {:.2}%{p}",
            e.canary * 100.0,
            e.samples,
            e.threshold * 100.0
        ),
        "latency_p99" => format!(
            "canary p99 {:.0} ms over {} requests: too many requests slower than {:.0} ms (baseline p99 {:.0} ms{p})",
            e.canary,
            e.samples,
            e.threshold,
            e.baseline.unwrap_or(0.0)
        ),
        "throttle_rate_limit" => format!(
            "canary throttled {:.2}% of {} invocations, significantly above the limit {:.2}%{p}",
            e.canary * 100.0,
            e.samples,
            e.threshold * 100.0
        ),
        "latency_limit" => format!(
            "canary p99 {:.0} ms over {} requests is above the limit {:.0} ms{p}",
            e.canary, e.samples, e.threshold
        ),
        other => format!("{other} failed"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_histogram_survives_its_compact_form() {
        let mut h = LatencyHistogram::default();
        for ms in [0.05, 1.0, 1.0, 12.5, 400.0, 9e9] {
            h.record(ms);
        }
        let stored: Vec<(usize, u64)> = h.buckets().collect();
        assert_eq!(stored.len(), 5, "{stored:?}");
        assert_eq!(LatencyHistogram::from_buckets(stored), h);
        assert!(LatencyHistogram::from_buckets([(9999, 3)]).is_empty());
    }

    fn sample(requests: u64, errors: u64) -> VersionSample {
        VersionSample {
            requests,
            errors,
            ..VersionSample::default()
        }
    }

    fn obs(canary: (u64, u64), baseline: (u64, u64)) -> Observation {
        Observation {
            canary: sample(canary.0, canary.1),
            baseline: sample(baseline.0, baseline.1),
            canary_in_step: canary.0,
            canary_last_minute: sample(canary.0, canary.1),
        }
    }

    #[test]
    fn three_failures_in_three_requests_fail_against_a_healthy_baseline() {
        let v = Analysis::default().judge(&obs((3, 3), (2_000, 2)));
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
        assert!(v.reason.contains("100.00%"), "{}", v.reason);
        let e = &v.evidence[0];
        assert_eq!((e.check.as_str(), e.samples), ("error_rate", 3));
        assert!(e.p_value.unwrap() < 1e-5);
    }

    /// Seen on `fledge serve` after a restart: the probe's baseline had served one clean
    /// request, and a canary failing every request passed against it.
    #[test]
    fn a_few_clean_baseline_requests_do_not_excuse_a_failing_canary() {
        for baseline in [1, 2, 5, 20] {
            let v = Analysis::default().judge(&obs((5, 5), (baseline, 0)));
            assert_eq!(
                v.outcome,
                Outcome::Fail,
                "baseline {baseline}: {}",
                v.reason
            );
        }
        // A healthy canary is not held to more than the clean baseline's allowance.
        let v = Analysis::default().judge(&obs((100, 0), (1, 0)));
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
        // A baseline that really fails earns the canary the same leniency.
        let v = Analysis::default().judge(&obs((5, 2), (10, 4)));
        assert_ne!(v.outcome, Outcome::Fail, "{}", v.reason);
    }

    #[test]
    fn an_equal_error_rate_passes_once_the_sample_is_large_enough() {
        let v = Analysis::default().judge(&obs((5_000, 5), (45_000, 45)));
        assert_eq!(v.outcome, Outcome::Pass, "{}", v.reason);
    }

    #[test]
    fn suspicious_evidence_holds_instead_of_passing() {
        // 6 errors in 200 (3%) against a 0.1% baseline: not yet a failure, not a pass.
        let v = Analysis::default().judge(&obs((200, 6), (5_000, 5)));
        assert_eq!(v.outcome, Outcome::Inconclusive, "{}", v.reason);
        assert!(v.reason.contains("suspicious"), "{}", v.reason);
    }

    #[test]
    fn silence_is_inconclusive() {
        let v = Analysis::default().judge(&obs((0, 0), (10_000, 10)));
        assert_eq!(v.outcome, Outcome::Inconclusive);
        assert!(v.reason.contains("served 0 requests"), "{}", v.reason);
        let small = Analysis::default().judge(&obs((20, 0), (10_000, 10)));
        assert_eq!(small.outcome, Outcome::Inconclusive);
    }

    #[test]
    fn five_percent_errors_fail_within_a_few_hundred_requests() {
        let v = Analysis::default().judge(&obs((200, 10), (20_000, 20)));
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
    }

    #[test]
    fn the_absolute_limit_applies_without_a_baseline() {
        let config = JudgeConfig {
            max_error_rate: Some(0.01),
            ..JudgeConfig::default()
        };
        let v = Analysis::Fledge(config).judge(&obs((1_000, 40), (0, 0)));
        assert_eq!(v.outcome, Outcome::Fail);
        assert!(
            v.evidence
                .iter()
                .any(|e| e.check == "error_rate_limit" && e.outcome == Outcome::Fail)
        );
    }

    #[test]
    fn a_slower_canary_fails_on_latency() {
        let mut o = obs((1_000, 0), (10_000, 0));
        for i in 0..10_000 {
            o.baseline.latency.record(20.0 + (i % 100) as f64 * 0.3);
        }
        for i in 0..1_000 {
            o.canary
                .latency
                .record(if i % 10 == 0 { 250.0 } else { 25.0 });
        }
        let v = Analysis::default().judge(&o);
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
        assert!(v.reason.contains("p99"), "{}", v.reason);
    }

    #[test]
    fn throttling_above_the_limit_fails() {
        let config = JudgeConfig {
            max_throttle_rate: Some(0.01),
            ..JudgeConfig::default()
        };
        let mut o = obs((900, 0), (10_000, 10));
        o.canary.throttles = 100;
        let v = Analysis::Fledge(config.clone()).judge(&o);
        assert_eq!(v.outcome, Outcome::Fail, "{}", v.reason);
        assert!(
            v.reason.contains("throttled 10.00% of 1000"),
            "{}",
            v.reason
        );
        o.canary.throttles = 5;
        assert_eq!(Analysis::Fledge(config).judge(&o).outcome, Outcome::Pass);
    }

    #[test]
    fn an_alarm_fires_at_its_threshold() {
        let alarm = Analysis::Alarm { threshold: 1.0 };
        assert_eq!(alarm.judge(&obs((100, 1), (0, 0))).outcome, Outcome::Fail);
        assert_eq!(alarm.judge(&obs((0, 0), (0, 0))).outcome, Outcome::Pass);
        assert!(alarm.continuous());
    }

    #[test]
    fn seed_mode_fails_on_any_error_and_passes_on_silence() {
        assert_eq!(
            Analysis::Seed.judge(&obs((10_000, 1), (0, 0))).outcome,
            Outcome::Fail
        );
        assert_eq!(
            Analysis::Seed.judge(&obs((0, 0), (0, 0))).outcome,
            Outcome::Pass
        );
    }

    #[test]
    fn histogram_quantiles_are_within_a_bucket() {
        let mut h = LatencyHistogram::default();
        for ms in 1..=1000 {
            h.record(ms as f64);
        }
        let p99 = h.quantile(0.99).unwrap();
        assert!((990.0..=1040.0).contains(&p99), "{p99}");
        assert!(h.count_above(500.0) <= 500 && h.count_above(500.0) >= 470);
    }

    #[test]
    fn combine_lets_any_fail_win() {
        let pass = Verdict::new(Outcome::Pass, "ok", vec![]);
        let fail = Verdict::new(Outcome::Fail, "alarm HighErrors is in ALARM", vec![]);
        let v = Verdict::combine(vec![pass.clone(), fail]);
        assert_eq!(
            (v.outcome, v.reason.as_str()),
            (Outcome::Fail, "alarm HighErrors is in ALARM")
        );
        assert_eq!(Verdict::combine(vec![pass]).outcome, Outcome::Pass);
        assert_eq!(Verdict::combine(vec![]).outcome, Outcome::Inconclusive);
    }
}
