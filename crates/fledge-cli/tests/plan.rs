//! `fledge plan` as a user runs it.

use assert_cmd::Command;
use serde_json::Value;

fn fledge() -> Command {
    Command::cargo_bin("fledge").unwrap()
}

fn plan_json(args: &[&str]) -> Value {
    let out = fledge()
        .arg("plan")
        .args(args)
        .arg("--json")
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    serde_json::from_slice(&out).unwrap()
}

fn weights(plan: &Value) -> Vec<f64> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["weight"].as_f64().unwrap())
        .collect()
}

fn holds(plan: &Value) -> Vec<u64> {
    plan["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["hold_secs"].as_u64().unwrap())
        .collect()
}

/// The SAM preset lists weights 0.1 … 1.0.
#[test]
fn linear_preset_lists_ten_weights() {
    let plan = plan_json(&["--preset", "Linear10PercentEvery1Minute"]);
    let expected: Vec<f64> = (1..=10).map(|i| f64::from(i) / 10.0).collect();
    assert_eq!(weights(&plan), expected);
    assert_eq!(plan["total_secs"], 540);
}

/// CodeDeploy's name for the canary preset: 10% held five minutes, then 100%.
#[test]
fn codedeploy_canary_preset() {
    let plan = plan_json(&[
        "--preset",
        "CodeDeployDefault.LambdaCanary10Percent5Minutes",
    ]);
    assert_eq!(weights(&plan), vec![0.1, 1.0]);
    assert_eq!(holds(&plan)[0], 300);
}

/// The original's documented input: ten steps of 120 s.
#[test]
fn seed_input_gives_ten_linear_steps() {
    let plan = plan_json(&[
        "--input",
        r#"{"function-name":"f","alias-name":"live","new-version":"2","steps":10,"interval":120,"type":"linear"}"#,
    ]);
    let expected: Vec<f64> = (1..=10).map(|i| f64::from(i) / 10.0).collect();
    assert_eq!(weights(&plan), expected);
    assert_eq!(holds(&plan), vec![120; 10]);
    assert_eq!(plan["total_secs"], 1200);
}

/// A bake holds 100% longer, and the total says so.
#[test]
fn bake_extends_the_last_hold() {
    let plan = plan_json(&["--strategy", "canary:10%/5m", "--bake", "10m"]);
    assert_eq!(holds(&plan), vec![300, 600]);
    assert_eq!(plan["total_secs"], 900);
}

/// Bad input exits 2 and the message names the bad value.
#[test]
fn bad_input_exits_2_naming_the_value() {
    let seed = |steps: &str| {
        format!(
            r#"{{"function-name":"f","alias-name":"live","new-version":"2","steps":{steps},"interval":120,"type":"linear"}}"#
        )
    };
    let cases: Vec<(Vec<String>, &str)> = vec![
        (vec!["--input".into(), seed("0")], "\"steps\" is 0"),
        (vec!["--input".into(), seed("-3")], "\"steps\" is -3"),
        (
            vec!["--strategy".into(), "weights:5,150@1m".into()],
            "weight 1.5",
        ),
        (vec!["--strategy".into(), "canary:150%/5m".into()], "150"),
        (
            vec!["--preset".into(), "Canary50Percent1Minute".into()],
            "'Canary50Percent1Minute'",
        ),
        (vec!["--strategy".into(), "rolling:5".into()], "'rolling'"),
        (
            vec![
                "--strategy".into(),
                "linear:10x1m".into(),
                "--bake".into(),
                "soon".into(),
            ],
            "'soon'",
        ),
    ];
    for (args, needle) in cases {
        let out = fledge()
            .arg("plan")
            .args(&args)
            .assert()
            .code(2)
            .get_output()
            .stderr
            .clone();
        let stderr = String::from_utf8(out).unwrap();
        assert!(stderr.contains(needle), "{args:?}: {stderr}");
    }
}

/// Two sources at once, or none, is a usage error (exit 2).
#[test]
fn exactly_one_source() {
    fledge()
        .args(["plan", "--preset", "AllAtOnce", "--strategy", "all-at-once"])
        .assert()
        .code(2);
    fledge().args(["plan"]).assert().code(2);
}

/// The table for people shows each step and the totals.
#[test]
fn human_output_shows_steps_and_totals() {
    let out = fledge()
        .args(["plan", "--strategy", "linear:4x30s"])
        .assert()
        .success()
        .get_output()
        .stdout
        .clone();
    let text = String::from_utf8(out).unwrap();
    assert!(text.contains("25%") && text.contains("100%"), "{text}");
    assert!(text.contains("Full promotion after: 2m"), "{text}");
}
