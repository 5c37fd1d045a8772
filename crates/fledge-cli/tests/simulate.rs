//! `fledge simulate` reproduces the original's known behaviour and reports fledge's.

use serde_json::Value;

fn simulate(args: &[&str]) -> Value {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fledge"))
        .arg("simulate")
        .args(args)
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// At the original's default (10 × 120 s, 100 requests/s) its check lets a crashing canary
/// serve about 1,200 failed requests, and rolls back a healthy canary in nearly every run.
#[test]
fn the_originals_default_behaves_as_known() {
    let crash = simulate(&["--analysis", "seed", "--canary-errors", "1"]);
    let mean = crash["report"]["canary_failures"]["mean"].as_f64().unwrap();
    assert!((1_100.0..1_300.0).contains(&mean), "{mean}");
    let healthy = simulate(&["--analysis", "seed"]);
    assert!(
        healthy["report"]["rolled_back"]["probability"]
            .as_f64()
            .unwrap()
            >= 0.95,
        "{healthy}"
    );
}

/// fledge's analysis promotes the healthy canary and stops the crashing one within seconds.
#[test]
fn fledge_promotes_the_healthy_and_stops_the_crash() {
    let healthy = simulate(&[]);
    assert!(
        healthy["report"]["promoted"]["probability"]
            .as_f64()
            .unwrap()
            >= 0.99,
        "{healthy}"
    );
    let ci = &healthy["report"]["promoted"]["ci95"];
    assert!(
        ci[0].as_f64().unwrap() > 0.9 && ci[1].as_f64().unwrap() <= 1.0,
        "{ci}"
    );
    let crash = simulate(&["--canary-errors", "1"]);
    assert!(
        crash["report"]["canary_failures"]["max"].as_f64().unwrap() < 50.0,
        "{crash}"
    );
    assert!(
        crash["report"]["time_to_rollback_secs"]["max"]
            .as_f64()
            .unwrap()
            <= 5.0,
        "{crash}"
    );
}

/// Bad input exits 2 naming the value.
#[test]
fn bad_input_is_named() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fledge"))
        .args(["simulate", "--canary-errors", "5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--canary-errors 5"));
}

/// --svg draws the typical run and the distributions.
#[test]
fn svg_draws_a_typical_run_and_the_distributions() {
    let path = std::env::temp_dir().join(format!("fledge-sim-{}.svg", std::process::id()));
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_fledge"))
        .args([
            "simulate",
            "--canary-errors",
            "0.05",
            "--runs",
            "20",
            "--svg",
        ])
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let svg = std::fs::read_to_string(&path).unwrap();
    std::fs::remove_file(&path).unwrap();
    assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
    assert_eq!(
        svg.matches("<polyline").count(),
        2,
        "weight and failures of the typical run"
    );
    assert!(svg.contains("a typical run (rolled_back"), "{svg}");
    assert!(svg.contains("failed requests served by the canary, all runs"));
    assert!(svg.contains("time to the outcome (s), all runs"));
}
