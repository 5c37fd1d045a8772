//! Scenario tests: whole deployments in the simulator, on virtual time.

use std::time::Duration;

use fledge_core::judge::Analysis;
use fledge_core::rollout::{
    CheckPolicy, Deployment, DeploymentSpec, Hooks, Outcome, RecordKind, RetryPolicy,
};
use fledge_core::schedule::{SeedInput, Strategy};
use fledge_core::sim::{self, Sim, SimConfig, VersionModel};

fn spec(strategy: &str) -> DeploymentSpec {
    DeploymentSpec {
        function: "orders".into(),
        alias: "live".parse().unwrap(),
        target: 2,
        schedule: strategy.parse::<Strategy>().unwrap().schedule().unwrap(),
        analysis: Analysis::default(),
        checks: CheckPolicy::default(),
        hooks: Hooks::default(),
        retry: RetryPolicy::default(),
    }
}

fn scenario(
    strategy: &str,
    rate: f64,
    baseline_errors: f64,
    canary_errors: f64,
    seed: u64,
) -> SimConfig {
    SimConfig::new(
        spec(strategy),
        rate,
        VersionModel::with_errors(baseline_errors),
        VersionModel::with_errors(canary_errors),
        seed,
    )
}

/// A healthy canary walks the whole schedule and is promoted when it ends.
#[test]
fn a_healthy_canary_is_promoted_after_its_schedule() {
    let report = sim::run(scenario("linear:10x1m", 100.0, 0.001, 0.001, 7));
    assert_eq!(report.outcome, Some(Outcome::Promoted), "{}", report.reason);
    assert!(
        report.duration >= Duration::from_secs(600),
        "{:?}",
        report.duration
    );
    assert!(report.final_alias.is_single());
    let applied = report
        .records
        .iter()
        .filter(|r| matches!(r.kind, RecordKind::StepApplied { .. }))
        .count();
    assert_eq!(applied, 10);
    let weights: Vec<f64> = report.weights.iter().map(|(_, w)| *w).collect();
    assert!(weights.windows(2).all(|w| w[0] < w[1]), "{weights:?}");
}

/// A canary that fails every request is rolled back at the first check that sees it, long
/// before its first step ends, after a handful of failed requests.
#[test]
fn a_crashing_canary_is_rolled_back_at_the_first_failing_check() {
    let mut config = scenario("linear:10x2m", 100.0, 0.001, 1.0, 3);
    config.spec.checks.interval = Duration::from_secs(1);
    let report = sim::run(config);
    assert_eq!(
        report.outcome,
        Some(Outcome::RolledBack),
        "{}",
        report.reason
    );
    let checks: Vec<_> = report
        .records
        .iter()
        .filter_map(|r| match &r.kind {
            RecordKind::Checked { verdict, .. } => Some(verdict.outcome),
            _ => None,
        })
        .collect();
    let first_fail = checks
        .iter()
        .position(|o| *o == fledge_core::judge::Outcome::Fail)
        .unwrap();
    assert_eq!(
        first_fail,
        checks.len() - 1,
        "the rollback follows the first failing check: {checks:?}"
    );
    assert!(
        report.canary_exposure_ms.unwrap() <= 2_000,
        "{:?}",
        report.canary_exposure_ms
    );
    assert!(
        report.canary_failures <= 30,
        "{} failed requests",
        report.canary_failures
    );
    assert_eq!(report.final_alias.primary.to_string(), "1");
    assert!(report.final_alias.is_single());
}

/// With no traffic there is no evidence, and nothing is promoted without evidence.
#[test]
fn no_traffic_never_promotes() {
    for seed in 0..5 {
        let report = sim::run(scenario("canary:10%/5m", 0.0, 0.0, 0.0, seed));
        assert_eq!(
            report.outcome,
            Some(Outcome::RolledBack),
            "{}",
            report.reason
        );
        assert!(
            report.reason.contains("no conclusive evidence"),
            "{}",
            report.reason
        );
        assert_eq!(report.final_alias.primary.to_string(), "1");
    }
    let seed_mode = {
        let mut c = scenario("canary:10%/5m", 0.0, 0.0, 0.0, 1);
        c.spec.analysis = Analysis::Seed;
        sim::run(c)
    };
    assert_eq!(
        seed_mode.outcome,
        Some(Outcome::Promoted),
        "the original passes on silence"
    );
}

/// At the original's default (10 × 120 s) a healthy canary whose error rate equals the
/// baseline's is promoted by fledge in at least 99 of 100 runs; the original's check rolls
/// it back almost always.
#[test]
fn a_healthy_canary_is_promoted_by_fledge_and_rolled_back_by_the_original() {
    let seed_input = SeedInput::parse(
        r#"{"function-name":"orders","alias-name":"live","new-version":"2","steps":10,"interval":120,"type":"linear"}"#,
    )
    .unwrap();
    let mut fledge_promoted = 0;
    let mut seed_rolled_back = 0;
    for seed in 0..100 {
        let mut config = scenario("linear:10x2m", 100.0, 0.001, 0.001, seed);
        config.spec.schedule = seed_input.schedule().unwrap();
        if sim::run(config.clone()).outcome == Some(Outcome::Promoted) {
            fledge_promoted += 1;
        }
        config.spec.analysis = Analysis::Seed;
        if sim::run(config).outcome == Some(Outcome::RolledBack) {
            seed_rolled_back += 1;
        }
    }
    assert!(
        fledge_promoted >= 99,
        "fledge promoted {fledge_promoted} of 100"
    );
    assert!(
        seed_rolled_back >= 95,
        "the original rolled back {seed_rolled_back} of 100"
    );
}

/// The original lets a crashing canary serve until the end of its first hold: about
/// 0.1 × 100 × 120 ≈ 1,200 failed requests at 100 requests/s.
#[test]
fn the_originals_check_lets_a_crashing_canary_serve_a_whole_hold() {
    let mut config = scenario("linear:10x2m", 100.0, 0.001, 1.0, 11);
    config.spec.analysis = Analysis::Seed;
    let report = sim::run(config);
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    assert!(
        (1_000..1_400).contains(&report.canary_failures),
        "{}",
        report.canary_failures
    );
}

/// A deployment serialised mid-hold and restored finishes exactly as one left alone.
#[test]
fn a_deployment_restored_mid_hold_finishes_the_same_way() {
    for (canary_errors, seed, stop_at) in [(0.001, 5, 90), (0.03, 6, 8)] {
        let config = scenario("linear:5x1m", 50.0, 0.001, canary_errors, seed);
        // The same world, paused at the same moment, with and without the round trip.
        let straight = {
            let mut sim = Sim::new(config.clone());
            sim.run_until(Some(Duration::from_secs(stop_at)));
            sim.run_until(None);
            sim.report()
        };

        let mut sim = Sim::new(config);
        sim.run_until(Some(Duration::from_secs(stop_at)));
        assert!(!sim.deployment().is_finished(), "stopped mid-hold");
        let stored = serde_json::to_string(sim.deployment()).unwrap();
        let restored: Deployment = serde_json::from_str(&stored).unwrap();
        sim.replace_deployment(restored);
        sim.run_until(None);
        let resumed = sim.report();

        assert!(straight.outcome.is_some());
        assert_eq!(resumed.outcome, straight.outcome);
        assert_eq!(resumed.duration, straight.duration);
        assert_eq!(resumed.canary_failures, straight.canary_failures);
        let strip = |r: &sim::SimReport| {
            r.records
                .iter()
                .filter(|r| !matches!(r.kind, RecordKind::Restarted { .. }))
                .cloned()
                .collect::<Vec<_>>()
        };
        let (a, b) = (strip(&resumed), strip(&straight));
        let first_difference = a.iter().zip(&b).position(|(x, y)| x != y);
        assert_eq!(
            first_difference,
            None,
            "resumed {:?}\nstraight {:?}",
            first_difference.map(|i| &a[i]),
            first_difference.map(|i| &b[i])
        );
        assert_eq!(a.len(), b.len());
    }
}

/// A rollout whose schedule lasts a year runs on virtual time in a moment.
#[test]
fn a_one_year_schedule_simulates_to_promotion() {
    let mut year = spec("linear:12x30d");
    year.schedule = year.schedule.with_bake(Duration::from_secs(5 * 86_400));
    year.checks.interval = Duration::from_secs(60);
    let healthy = VersionModel::with_errors(0.001);
    let config = SimConfig::new(year, 1.0, healthy.clone(), healthy, 9);
    let started = std::time::Instant::now();
    let report = sim::run(config);
    eprintln!(
        "one simulated year took {:?} of wall-clock time",
        started.elapsed()
    );
    assert_eq!(report.outcome, Some(Outcome::Promoted), "{}", report.reason);
    assert!(
        report.duration >= Duration::from_secs(365 * 86_400),
        "{:?}",
        report.duration
    );
    assert!(report.canary_requests > 10_000_000);
}

/// A pre-traffic hook that fails stops the deployment before any traffic moves.
#[test]
fn a_failing_pre_traffic_hook_shifts_nothing() {
    let mut config = scenario("canary:10%/5m", 100.0, 0.001, 0.001, 2);
    config.spec.hooks.pre_traffic = Some("smoke-test".into());
    config.hooks_succeed = false;
    let report = sim::run(config);
    assert_eq!(report.outcome, Some(Outcome::RolledBack));
    assert!(
        report.reason.contains("pre-traffic hook smoke-test failed"),
        "{}",
        report.reason
    );
    assert_eq!(report.canary_requests, 0);
    assert_eq!(report.weights.len(), 1, "no alias write at all");
}

/// A canary 200 ms slower at p99 is rolled back on latency alone.
#[test]
fn a_slower_canary_is_rolled_back_on_latency() {
    let mut config = scenario("linear:10x1m", 100.0, 0.001, 0.001, 4);
    config.baseline.latency = Some(fledge_core::sim::LatencyModel {
        p50_ms: 20.0,
        p99_ms: 60.0,
    });
    config.canary.latency = Some(fledge_core::sim::LatencyModel {
        p50_ms: 25.0,
        p99_ms: 260.0,
    });
    let report = sim::run(config);
    assert_eq!(
        report.outcome,
        Some(Outcome::RolledBack),
        "{}",
        report.reason
    );
    assert!(report.reason.contains("p99"), "{}", report.reason);
}
