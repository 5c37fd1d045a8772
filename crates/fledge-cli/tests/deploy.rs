//! `fledge deploy` as a user runs it, against fledge local with real function processes and
//! steady user traffic on the alias.

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{AliasRoutingConfiguration, FunctionCode, Runtime};
use fledge_local::{Platform, PlatformConfig, RunningPlatform};
use serde_json::Value;
use support::{create_sample, env, lambda_client, package, temp_dir};

struct World {
    platform: Option<RunningPlatform>,
    lambda: aws_sdk_lambda::Client,
    endpoint: String,
    dir: std::path::PathBuf,
}

/// What user traffic saw of one version.
#[derive(Default, Debug, Clone)]
struct Seen {
    ok: u64,
    failed: u64,
    first: Option<Instant>,
    last: Option<Instant>,
}

impl Drop for World {
    fn drop(&mut self) {
        if let Some(p) = self.platform.take() {
            drop(p);
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl World {
    async fn new(tag: &str) -> World {
        let dir = temp_dir(&format!("deploy-{tag}"));
        let platform = Platform::start(PlatformConfig::new(&dir), "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let endpoint = platform.endpoint();
        World {
            platform: Some(platform),
            lambda: lambda_client(&endpoint),
            endpoint,
            dir,
        }
    }

    /// `f` with version 1 (0.1% errors) behind `live`, and version 2 with `v2_env`.
    async fn function(&self, v2_env: &[(&str, &str)]) {
        self.function_with(&[("SAMPLE_ERROR_RATE", "0.001")], v2_env)
            .await;
    }

    /// `f` with version 1 (`v1_env`) behind `live`, and version 2 with `v2_env`.
    async fn function_with(&self, v1_env: &[(&str, &str)], v2_env: &[(&str, &str)]) {
        create_sample(&self.lambda, "f", v1_env).await;
        self.lambda
            .create_alias()
            .function_name("f")
            .name("live")
            .function_version("1")
            .send()
            .await
            .unwrap();
        let mut vars = v2_env.to_vec();
        vars.push(("RELEASE", "2"));
        self.lambda
            .update_function_configuration()
            .function_name("f")
            .environment(env(&vars))
            .send()
            .await
            .unwrap();
        let v = self
            .lambda
            .publish_version()
            .function_name("f")
            .send()
            .await
            .unwrap();
        assert_eq!(v.version(), Some("2"));
    }

    /// User traffic on the alias at `rate` per second, counted by version.
    fn traffic(
        &self,
        rate: f64,
    ) -> (
        tokio::task::JoinHandle<()>,
        Arc<Mutex<HashMap<String, Seen>>>,
    ) {
        let seen: Arc<Mutex<HashMap<String, Seen>>> = Arc::default();
        let (client, counts) = (self.lambda.clone(), seen.clone());
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / rate));
            loop {
                tick.tick().await;
                let (client, counts) = (client.clone(), counts.clone());
                tokio::spawn(async move {
                    let Ok(out) = client
                        .invoke()
                        .function_name("f:live")
                        .payload(Blob::new(b"{}".to_vec()))
                        .send()
                        .await
                    else {
                        return;
                    };
                    let now = Instant::now();
                    let mut counts = counts.lock().unwrap();
                    let s = counts
                        .entry(out.executed_version().unwrap_or_default().to_string())
                        .or_default();
                    s.first.get_or_insert(now);
                    s.last = Some(now);
                    if out.function_error().is_some() {
                        s.failed += 1;
                    } else {
                        s.ok += 1;
                    }
                });
            }
        });
        (task, seen)
    }

    /// Runs `fledge deploy --json` with `args`; answers the exit code and the JSON lines.
    async fn deploy(&self, args: &[&str]) -> (i32, Vec<Value>) {
        let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_fledge"))
            .args([
                "deploy",
                "--endpoint-url",
                &self.endpoint,
                "--function",
                "f",
                "--alias",
                "live",
                "--json",
            ])
            .args(args)
            .output()
            .await
            .unwrap();
        let lines = String::from_utf8(out.stdout)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        if out.status.code() == Some(2) {
            panic!("invalid input: {}", String::from_utf8_lossy(&out.stderr));
        }
        (out.status.code().unwrap_or(-1), lines)
    }

    async fn alias(&self) -> (String, Option<HashMap<String, f64>>) {
        let a = self
            .lambda
            .get_alias()
            .function_name("f")
            .name("live")
            .send()
            .await
            .unwrap();
        (
            a.function_version().unwrap().to_string(),
            a.routing_config()
                .and_then(|r| r.additional_version_weights().cloned()),
        )
    }
}

fn summary(lines: &[Value]) -> &Value {
    lines
        .iter()
        .rev()
        .find(|l| l["kind"] == "summary")
        .expect("a summary line")
}

/// At 100 invocations/s on the alias, a canary that fails every request is rolled back
/// within 2 s of its first traffic, after a handful of failed user requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_canary_is_rolled_back_within_two_seconds() {
    let w = World::new("crash").await;
    w.function(&[("SAMPLE_ERROR_RATE", "1")]).await;
    let (traffic, seen) = w.traffic(100.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, lines) = w
        .deploy(&[
            "--version",
            "2",
            "--strategy",
            "canary:10%/5m",
            "--check-interval",
            "250ms",
        ])
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    traffic.abort();
    assert_eq!(code, 1, "{:?}", summary(&lines));
    assert_eq!(summary(&lines)["outcome"], "rolled_back");
    let v2 = seen.lock().unwrap().get("2").cloned().unwrap_or_default();
    let exposure = v2.last.unwrap().duration_since(v2.first.unwrap());
    eprintln!(
        "crashing canary: served users for {exposure:?}, {} failed requests",
        v2.failed
    );
    assert!(
        exposure <= Duration::from_secs(2),
        "version 2 served users for {exposure:?}"
    );
    assert!(v2.failed <= 10, "{} failed user requests", v2.failed);
    assert_eq!(w.alias().await, ("1".to_string(), None));
    let fail = lines
        .iter()
        .find(|l| l["event"] == "checked" && l["verdict"]["outcome"] == "fail")
        .expect("the failing check is recorded");
    assert!(
        fail["verdict"]["evidence"][0]["p_value"].as_f64().unwrap() < 1e-5,
        "the decision carries its numbers: {fail}"
    );
}

/// A canary with 5% errors is rolled back after fewer than 30 failed user requests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_percent_errors_are_rolled_back_cheaply() {
    let w = World::new("five").await;
    w.function(&[("SAMPLE_ERROR_RATE", "0.05")]).await;
    let (traffic, seen) = w.traffic(100.0);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (code, lines) = w
        .deploy(&[
            "--version",
            "2",
            "--strategy",
            "canary:10%/5m",
            "--check-interval",
            "500ms",
        ])
        .await;
    traffic.abort();
    assert_eq!(code, 1, "{:?}", summary(&lines));
    let v2 = seen.lock().unwrap().get("2").cloned().unwrap_or_default();
    eprintln!(
        "5% canary: {} failed user requests of {}",
        v2.failed,
        v2.ok + v2.failed
    );
    assert!(
        v2.failed < 30,
        "{} failed user requests (of {})",
        v2.failed,
        v2.ok + v2.failed
    );
    assert_eq!(w.alias().await, ("1".to_string(), None));
}

/// A canary with no traffic is never promoted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_without_traffic_is_not_promoted() {
    let w = World::new("silence").await;
    w.function(&[("SAMPLE_ERROR_RATE", "0.001")]).await;
    let (code, lines) = w
        .deploy(&[
            "--version",
            "2",
            "--strategy",
            "canary:10%/2s",
            "--max-extension",
            "3s",
        ])
        .await;
    assert_eq!(code, 1, "{:?}", summary(&lines));
    assert!(
        summary(&lines)["reason"]
            .as_str()
            .unwrap()
            .contains("no conclusive evidence"),
        "{}",
        summary(&lines)
    );
    assert_eq!(w.alias().await, ("1".to_string(), None));
}

/// A healthy canary with steady traffic is promoted; the alias ends on it with no routing.
/// The function is named by its ARN, as scripts often do.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_healthy_canary_is_promoted() {
    let w = World::new("healthy").await;
    w.function(&[("SAMPLE_ERROR_RATE", "0.001"), ("V", "2")])
        .await;
    let (traffic, _) = w.traffic(100.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, lines) = w
        .deploy(&[
            "--version",
            "2",
            "--strategy",
            "linear:3x2s",
            "--min-requests",
            "20",
        ])
        .await;
    traffic.abort();
    assert_eq!(code, 0, "{:?}", summary(&lines));
    assert_eq!(w.alias().await, ("2".to_string(), None));
    let applied = lines
        .iter()
        .filter(|l| l["event"] == "step_applied")
        .count();
    assert_eq!(applied, 3);
}

/// An alias changed by hand mid-deployment stops it with exit code 3, and the hand-made
/// change stays.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alias_changed_by_hand_stops_the_deployment() {
    let w = World::new("hand").await;
    w.function(&[("SAMPLE_ERROR_RATE", "0.001")]).await;
    let (traffic, _) = w.traffic(50.0);
    let lambda = w.lambda.clone();
    let meddler = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(2_500)).await;
        let routing = AliasRoutingConfiguration::builder()
            .set_additional_version_weights(Some(HashMap::new()))
            .build();
        lambda
            .update_alias()
            .function_name("f")
            .name("live")
            .function_version("1")
            .routing_config(routing)
            .description("by hand")
            .send()
            .await
            .unwrap();
    });
    let (code, lines) = w
        .deploy(&[
            "--version",
            "2",
            "--strategy",
            "linear:4x2s",
            "--min-requests",
            "5",
        ])
        .await;
    traffic.abort();
    meddler.await.unwrap();
    assert_eq!(code, 3, "{:?}", summary(&lines));
    assert!(
        summary(&lines)["reason"]
            .as_str()
            .unwrap()
            .contains("changed by someone else"),
        "{}",
        summary(&lines)
    );
    let alias = w
        .lambda
        .get_alias()
        .function_name("f")
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(alias.description(), Some("by hand"));
    assert_eq!(
        (alias.function_version(), alias.routing_config().is_none()),
        (Some("1"), true)
    );
}

/// Injected API failures: a deployment whose shifts keep failing rolls back once the
/// platform answers again, and never leaves the alias split without saying so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn injected_faults_end_in_a_known_alias_state() {
    let w = World::new("faults").await;
    w.function(&[("SAMPLE_ERROR_RATE", "0.001")]).await;
    let (traffic, _) = w.traffic(50.0);
    let endpoint = w.endpoint.clone();
    let injector = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(1_500)).await;
        let body = r#"{"operation":"UpdateAlias","status":500,"count":10}"#;
        let addr = endpoint.trim_start_matches("http://").to_string();
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let req = format!(
            "POST /_fledge/faults HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        s.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.1 201"), "{out}");
    });
    let (code, lines) = w
        .deploy(&[
            "--version",
            "2",
            "--strategy",
            "linear:4x3s",
            "--min-requests",
            "5",
        ])
        .await;
    traffic.abort();
    injector.await.unwrap();
    let s = summary(&lines);
    let (version, routing) = w.alias().await;
    assert_eq!(
        s["alias_split"],
        routing.is_some(),
        "the summary says whether the alias is split: {s}"
    );
    assert_eq!(code, 3, "{s}");
    assert_eq!(s["outcome"], "failed");
    assert_eq!(
        (version.as_str(), routing),
        ("1", None),
        "rolled back once UpdateAlias answered again"
    );
    let retries = lines.iter().filter(|l| l["event"] == "api_error").count();
    assert!(retries >= 8, "every failed call is recorded: {retries}");
}

/// A pre-traffic hook that reports failure stops the deployment before any traffic moves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_pre_traffic_hook_shifts_nothing() {
    let w = World::new("hook").await;
    w.function(&[("SAMPLE_ERROR_RATE", "0")]).await;
    w.lambda
        .create_function()
        .function_name("check")
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role("arn:aws:iam::123456789012:role/t")
        .environment(env(&[(
            "SAMPLE_RESPONSE",
            r#"{"status":"Failed","why":"smoke test found a bug"}"#,
        )]))
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(package()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (code, lines) = w
        .deploy(&["--version", "2", "--pre-traffic-hook", "check"])
        .await;
    assert_eq!(code, 1, "{:?}", summary(&lines));
    assert!(
        summary(&lines)["reason"]
            .as_str()
            .unwrap()
            .contains("pre-traffic hook check failed"),
        "{}",
        summary(&lines)
    );
    assert!(!lines.iter().any(|l| l["event"] == "step_applied"));
    assert_eq!(w.alias().await, ("1".to_string(), None));
}

/// A failing external check rolls back a release whose metrics look fine, and says why.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_command_check_rolls_back() {
    let w = World::new("command").await;
    w.function(&[("SAMPLE_ERROR_RATE", "0.001")]).await;
    let (traffic, _) = w.traffic(50.0);
    let check = r#"test "$FLEDGE_CANARY_VERSION" = 2 && echo "orders queue depth 9000 > 1000" >&2 && exit 1"#;
    let (code, lines) = w
        .deploy(&[
            "--version",
            "2",
            "--strategy",
            "linear:3x5s",
            "--command-check",
            check,
        ])
        .await;
    traffic.abort();
    assert_eq!(code, 1, "{:?}", summary(&lines));
    let reason = summary(&lines)["reason"].as_str().unwrap();
    assert!(
        reason.contains("command check") && reason.contains("queue depth 9000"),
        "{reason}"
    );
    assert_eq!(w.alias().await, ("1".to_string(), None));
}

/// A canary slower than the p99 limit is rolled back on CloudWatch's Duration alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_canary_is_rolled_back_on_metrics() {
    let w = World::new("slow").await;
    w.function(&[("SAMPLE_ERROR_RATE", "0"), ("SAMPLE_LATENCY_MS", "150")])
        .await;
    let (traffic, _) = w.traffic(100.0);
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (code, lines) = w
        .deploy(&[
            "--version",
            "2",
            "--strategy",
            "canary:10%/1m",
            "--max-p99-ms",
            "100",
        ])
        .await;
    traffic.abort();
    assert_eq!(code, 1, "{:?}", summary(&lines));
    let reason = summary(&lines)["reason"].as_str().unwrap();
    assert!(
        reason.contains("p99 Duration") && reason.contains("above the limit 100 ms"),
        "{reason}"
    );
    assert_eq!(w.alias().await, ("1".to_string(), None));
}

/// Bad input exits 2 and names the value.
#[test]
fn bad_input_exits_2() {
    for (args, named) in [
        (
            ["--alias", "2024", "--version", "2"].as_slice(),
            "--alias '2024'",
        ),
        (&["--alias", "live", "--version", "two"], "--version 'two'"),
        (
            &[
                "--alias",
                "live",
                "--version",
                "2",
                "--notify",
                "smtp:ops@example.com",
            ],
            "'smtp:ops@example.com'",
        ),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_fledge"))
            .args(["deploy", "--function", "f"])
            .args(args)
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(named), "{args:?}: {stderr}");
    }
}

/// `fledge deploy --notify` tells each sink the deployment's notable events in order; a
/// sink that keeps failing is reported (a `notification_failed` event) and changes
/// nothing about the release or its exit code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_notifies_its_sinks() {
    let w = World::new("notify").await;
    w.function(&[("SAMPLE_ERROR_RATE", "0.001")]).await;
    let notes = w.dir.join("notes.jsonl");
    let command = format!(
        "command:cat >> '{}'; echo >> '{}'",
        notes.display(),
        notes.display()
    );
    let webhook = support::Webhook::start().await;
    let http = reqwest::Client::new();
    let topic = support::create_topic(&http, &w.endpoint, "releases").await;
    let sns = format!("sns:{topic}");
    let broken = "command:echo 'no route to pager' >&2; exit 7";
    let (traffic, _) = w.traffic(50.0);
    let (code, lines) = w
        .deploy(&[
            "--version",
            "2",
            "--strategy",
            "linear:2x1s",
            "--min-requests",
            "5",
            "--notify",
            &command,
            "--notify",
            &webhook.url,
            "--notify",
            &sns,
            "--notify",
            broken,
            "--notify-retries",
            "1",
        ])
        .await;
    traffic.abort();
    assert_eq!(code, 0, "{:?}", summary(&lines));
    let want = ["started", "step_applied", "step_applied", "finished"];

    let noted: Vec<Value> = std::fs::read_to_string(&notes)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let events: Vec<&str> = noted.iter().map(|n| n["event"].as_str().unwrap()).collect();
    assert_eq!(events, want, "{noted:?}");
    assert_eq!(noted[3]["record"]["outcome"], "promoted");
    let id = noted[0]["deployment"].as_str().unwrap();
    assert!(id.starts_with("f-live-v2-"), "{id}");

    let hooked = webhook.received();
    let events: Vec<&str> = hooked
        .iter()
        .map(|n| n["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, want, "{hooked:?}");
    assert_eq!(
        hooked[3]["text"],
        format!("fledge {id}: finished promoted: all traffic is on version 2")
    );

    let published: Value = serde_json::from_str(
        &support::get_text(
            &http,
            &format!("{}/_fledge/sns/messages?topic=releases", w.endpoint),
        )
        .await,
    )
    .unwrap();
    let subjects: Vec<String> = published["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["subject"].as_str().unwrap().to_owned())
        .collect();
    let expected: Vec<String> = want.iter().map(|e| format!("fledge {id}: {e}")).collect();
    assert_eq!(subjects, expected);

    // The broken sink: every notification tried twice, each reported with its error.
    let failed: Vec<&Value> = lines
        .iter()
        .filter(|l| l["kind"] == "notification_failed")
        .collect();
    assert_eq!(failed.len(), want.len(), "{failed:?}");
    for (f, event) in failed.iter().zip(want) {
        assert_eq!(f["sink"], broken);
        assert_eq!(f["event"], event);
        assert_eq!(f["attempts"], 2);
        assert!(
            f["error"].as_str().unwrap().contains("no route to pager"),
            "{f}"
        );
    }
    assert_eq!(lines.last().unwrap()["kind"], "summary");
}

/// A canary judged on a business metric alone: the function publishes `OrdersFailed` in the
/// embedded metric format, an alarm watches version 2's, and with CloudWatch's Lambda
/// metrics left out (`--no-metrics`) that alarm rolls the deployment back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alarm_on_a_business_metric_rolls_back() {
    let w = World::new("business").await;
    w.function_with(
        &[
            ("SAMPLE_ERROR_RATE", "0"),
            ("SAMPLE_METRICS_NAMESPACE", "Shop"),
        ],
        &[
            ("SAMPLE_ERROR_RATE", "0.3"),
            ("SAMPLE_METRICS_NAMESPACE", "Shop"),
        ],
    )
    .await;
    let alarm = serde_json::json!({
        "AlarmName": "orders-failed-v2",
        "Namespace": "Shop",
        "MetricName": "OrdersFailed",
        "Dimensions": [{"Name": "Version", "Value": "2"}],
        "Statistic": "Sum",
        "Period": 60,
        "EvaluationPeriods": 1,
        "Threshold": 1,
        "ComparisonOperator": "GreaterThanOrEqualToThreshold",
        "TreatMissingData": "notBreaching",
    });
    let put = reqwest::Client::new()
        .post(format!("{}/", w.endpoint))
        .header(
            "x-amz-target",
            "GraniteServiceVersion20100801.PutMetricAlarm",
        )
        .header("content-type", "application/x-amz-json-1.0")
        .body(alarm.to_string())
        .send()
        .await
        .unwrap();
    assert!(put.status().is_success(), "{:?}", put.text().await);
    let (traffic, seen) = w.traffic(50.0);
    let (code, lines) = w
        .deploy(&[
            "--version",
            "2",
            "--strategy",
            "linear:3x10s",
            "--no-metrics",
            "--alarm",
            "orders-failed-v2",
        ])
        .await;
    traffic.abort();
    assert_eq!(code, 1, "{:?}", summary(&lines));
    let reason = summary(&lines)["reason"].as_str().unwrap();
    assert!(reason.contains("orders-failed-v2"), "{reason}");
    assert_eq!(w.alias().await, ("1".to_string(), None));
    let seen = seen.lock().unwrap();
    assert!(
        seen.get("2").is_some_and(|s| s.failed >= 1),
        "the alarm saw what users saw: {seen:?}"
    );
}
