//! The CloudWatch-compatible endpoint through the official aws-sdk-cloudwatch (RPC v2 CBOR),
//! over metrics left by real invocations.

mod common;

use std::time::{Duration, SystemTime};

use aws_sdk_cloudwatch::error::ProvideErrorMetadata;
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    ComparisonOperator, Dimension, Metric, MetricDataQuery, MetricStat, StateValue, Statistic,
};
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use common::{invoke, start};

fn dims(pairs: &[(&str, &str)]) -> Vec<Dimension> {
    pairs
        .iter()
        .map(|(n, v)| Dimension::builder().name(*n).value(*v).build())
        .collect()
}

fn query(id: &str, metric: &str, d: &[(&str, &str)], stat: &str) -> MetricDataQuery {
    query_in("AWS/Lambda", id, metric, d, stat)
}

fn query_in(
    namespace: &str,
    id: &str,
    metric: &str,
    d: &[(&str, &str)],
    stat: &str,
) -> MetricDataQuery {
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace(namespace)
                        .metric_name(metric)
                        .set_dimensions(Some(dims(d)))
                        .build(),
                )
                .period(60)
                .stat(stat)
                .build(),
        )
        .build()
}

/// Puts `name:live` on version 1 with `weight` to version 2, then invokes it `n` times;
/// answers how many invocations each version served.
async fn split_and_invoke(p: &common::TestPlatform, name: &str, weight: f64, n: usize) -> [u32; 3] {
    let routing = AliasRoutingConfiguration::builder()
        .additional_version_weights("2", weight)
        .build();
    p.lambda
        .create_alias()
        .function_name(name)
        .name("live")
        .function_version("1")
        .routing_config(routing)
        .send()
        .await
        .unwrap();
    let mut calls = [0u32; 3];
    for _ in 0..n {
        let (v, _, _) = invoke(&p.lambda, &format!("{name}:live"), "{}").await;
        calls[v.parse::<usize>().unwrap()] += 1;
    }
    calls
}

fn window() -> (DateTime, DateTime) {
    let now = SystemTime::now();
    (
        DateTime::from(now - Duration::from_secs(600)),
        DateTime::from(now + Duration::from_secs(60)),
    )
}

/// GetMetricData returns per-version Invocations and Errors for a split alias, matching what
/// the callers saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_version_metrics_of_a_split_alias() {
    let p = start("cw-split").await;
    p.create_sample("orders", &[("SAMPLE_LATENCY_MS", "5")], 3)
        .await;
    p.publish_with_env(
        "orders",
        &[("SAMPLE_ERROR_RATE", "0.5"), ("SAMPLE_LATENCY_MS", "40")],
    )
    .await;
    let routing = AliasRoutingConfiguration::builder()
        .additional_version_weights("2", 0.5)
        .build();
    p.lambda
        .create_alias()
        .function_name("orders")
        .name("live")
        .function_version("1")
        .routing_config(routing)
        .send()
        .await
        .unwrap();
    let (mut calls, mut failures) = ([0u32; 3], [0u32; 3]);
    for i in 0..120 {
        let (v, error, _) = invoke(&p.lambda, "orders:live", &format!("{{\"i\":{i}}}")).await;
        let v: usize = v.parse().unwrap();
        calls[v] += 1;
        failures[v] += u32::from(error.is_some());
    }
    assert!(calls[1] > 0 && calls[2] > 0 && failures[1] == 0);

    let (start_time, end_time) = window();
    let base = [("FunctionName", "orders"), ("Resource", "orders:live")];
    let v1 = [base[0], base[1], ("ExecutedVersion", "1")];
    let v2 = [base[0], base[1], ("ExecutedVersion", "2")];
    let out = p
        .cloudwatch
        .get_metric_data()
        .metric_data_queries(query("inv1", "Invocations", &v1, "Sum"))
        .metric_data_queries(query("inv2", "Invocations", &v2, "Sum"))
        .metric_data_queries(query("err1", "Errors", &v1, "Sum"))
        .metric_data_queries(query("err2", "Errors", &v2, "Sum"))
        .metric_data_queries(query("all", "Invocations", &base, "Sum"))
        .metric_data_queries(query("p99v2", "Duration", &v2, "p99"))
        .start_time(start_time)
        .end_time(end_time)
        .send()
        .await
        .unwrap();
    let total = |id: &str| -> f64 {
        let r = out
            .metric_data_results()
            .iter()
            .find(|r| r.id() == Some(id))
            .unwrap();
        assert_eq!(r.timestamps().len(), r.values().len());
        r.values().iter().sum()
    };
    assert_eq!(total("inv1"), f64::from(calls[1]));
    assert_eq!(total("inv2"), f64::from(calls[2]));
    assert_eq!(total("err1"), 0.0);
    assert_eq!(total("err2"), f64::from(failures[2]));
    assert_eq!(total("all"), 120.0);
    let p99 = out
        .metric_data_results()
        .iter()
        .find(|r| r.id() == Some("p99v2"))
        .unwrap()
        .values()[0];
    assert!(
        (40.0..200.0).contains(&p99),
        "version 2 sleeps 40 ms: p99 {p99}"
    );

    let stats = p
        .cloudwatch
        .get_metric_statistics()
        .namespace("AWS/Lambda")
        .metric_name("Errors")
        .set_dimensions(Some(dims(&v2)))
        .start_time(start_time)
        .end_time(end_time)
        .period(60)
        .statistics(Statistic::Sum)
        .statistics(Statistic::SampleCount)
        .send()
        .await
        .unwrap();
    let sum: f64 = stats.datapoints().iter().filter_map(|d| d.sum()).sum();
    let count: f64 = stats
        .datapoints()
        .iter()
        .filter_map(|d| d.sample_count())
        .sum();
    assert_eq!((sum, count), (f64::from(failures[2]), f64::from(calls[2])));

    let e = p
        .cloudwatch
        .get_metric_data()
        .metric_data_queries(query("Bad", "Errors", &v2, "Sum"))
        .start_time(start_time)
        .end_time(end_time)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameterValue"));
}

/// A metric alarm on the new version's errors goes to ALARM once it fails, and can be set by
/// hand and deleted.
#[tokio::test]
async fn alarms_follow_the_metrics() {
    let p = start("cw-alarms").await;
    p.create_sample("f", &[], 3).await;
    p.publish_with_env("f", &[("SAMPLE_ERROR_RATE", "1")]).await;
    let alarm = |name: &str, version: &str| {
        p.cloudwatch
            .put_metric_alarm()
            .alarm_name(name)
            .namespace("AWS/Lambda")
            .metric_name("Errors")
            .set_dimensions(Some(dims(&[
                ("FunctionName", "f"),
                ("Resource", "f:live"),
                ("ExecutedVersion", version),
            ])))
            .statistic(Statistic::Sum)
            .period(10)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
            .treat_missing_data("notBreaching")
            .send()
    };
    alarm("v2-errors", "2").await.unwrap();
    alarm("v1-errors", "1").await.unwrap();
    let routing = AliasRoutingConfiguration::builder()
        .additional_version_weights("2", 0.5)
        .build();
    p.lambda
        .create_alias()
        .function_name("f")
        .name("live")
        .function_version("1")
        .routing_config(routing)
        .send()
        .await
        .unwrap();
    for _ in 0..20 {
        invoke(&p.lambda, "f:live", "{}").await;
    }
    let state = |name: &'static str| {
        let cw = p.cloudwatch.clone();
        async move {
            let out = cw.describe_alarms().alarm_names(name).send().await.unwrap();
            out.metric_alarms()[0].state_value().cloned().unwrap()
        }
    };
    assert_eq!(state("v2-errors").await, StateValue::Alarm);
    assert_eq!(state("v1-errors").await, StateValue::Ok);
    p.cloudwatch
        .set_alarm_state()
        .alarm_name("v1-errors")
        .state_value(StateValue::Alarm)
        .state_reason("testing")
        .send()
        .await
        .unwrap();
    assert_eq!(state("v1-errors").await, StateValue::Alarm);
    let in_alarm = p
        .cloudwatch
        .describe_alarms()
        .state_value(StateValue::Alarm)
        .send()
        .await
        .unwrap();
    assert_eq!(in_alarm.metric_alarms().len(), 2);
    p.cloudwatch
        .delete_alarms()
        .alarm_names("v1-errors")
        .alarm_names("v2-errors")
        .send()
        .await
        .unwrap();
    assert!(
        p.cloudwatch
            .describe_alarms()
            .send()
            .await
            .unwrap()
            .metric_alarms()
            .is_empty()
    );
    let e = p
        .cloudwatch
        .delete_alarms()
        .alarm_names("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFound"));
}

/// Writes under `dir` a copy of the installed botocore's CloudWatch model that names only
/// the query protocol; with `AWS_DATA_PATH=dir` the AWS CLI then speaks CloudWatch as every
/// CLI and SDK released before December 2025 does (a form-encoded POST, answered in XML),
/// through botocore's own query serializer and XML parser. Answers why not when this
/// machine's Python has no botocore.
fn query_protocol_models(dir: &std::path::Path) -> Result<(), String> {
    const SCRIPT: &str = r#"
import gzip, json, os, sys
import botocore
root = os.path.join(os.path.dirname(botocore.__file__), "data", "cloudwatch")
version = sorted(os.listdir(root))[-1]
path = os.path.join(root, version, "service-2.json")
model = json.load(gzip.open(path + ".gz") if os.path.exists(path + ".gz") else open(path))
model["metadata"]["protocol"] = "query"
model["metadata"]["protocols"] = ["query"]
out = os.path.join(sys.argv[1], "cloudwatch", version)
os.makedirs(out, exist_ok=True)
json.dump(model, open(os.path.join(out, "service-2.json"), "w"))
"#;
    let out = std::process::Command::new("python3")
        .args(["-c", SCRIPT])
        .arg(dir)
        .output()
        .map_err(|e| format!("python3: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// The same metrics and alarms over CloudWatch's query protocol as over AWS JSON 1.0, with
/// the AWS CLI speaking each.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn older_clients_get_the_same_answers_over_the_query_protocol() {
    let Some(cli) = common::aws_cli_or_skip() else {
        return;
    };
    let models = common::Scratch::new("cw-query-models");
    if let Err(why) = query_protocol_models(&models) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs the AWS CLI with pip, so python3 has botocore: {why}"
        );
        eprintln!("skipped: python3 has no botocore to take CloudWatch's model from: {why}");
        return;
    }
    let p = start("cw-query").await;
    p.create_sample("q", &[], 3).await;
    p.publish_with_env("q", &[("SAMPLE_ERROR_RATE", "1")]).await;
    let calls = split_and_invoke(&p, "q", 0.3, 40).await;
    assert!(calls[2] > 0, "version 2 served none of 40");

    let models_path = models.to_str().unwrap();
    let query: &[(&str, &str)] = &[("AWS_DATA_PATH", models_path)];
    let cw = |env: &[(&str, &str)], args: &[&str]| {
        let mut all = vec!["cloudwatch"];
        all.extend_from_slice(args);
        common::aws_with(&cli, &p.endpoint, &models, env, &all)
    };

    // The CLI really speaks the query protocol with the model given.
    let debug = std::process::Command::new(&cli[0])
        .args(&cli[1..])
        .args(["cloudwatch", "describe-alarms", "--debug"])
        .args(["--endpoint-url", &p.endpoint])
        .env("AWS_ACCESS_KEY_ID", "fledge")
        .env("AWS_SECRET_ACCESS_KEY", "fledge")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_DATA_PATH", models_path)
        .output()
        .unwrap();
    let debug = String::from_utf8_lossy(&debug.stderr);
    assert!(
        debug.contains("x-www-form-urlencoded") && debug.contains("<DescribeAlarmsResponse"),
        "the CLI did not speak the query protocol: {debug}"
    );

    let dims_v2 =
        "Name=FunctionName,Value=q Name=Resource,Value=q:live Name=ExecutedVersion,Value=2";
    let queries = serde_json::json!([1, 2].map(|v| serde_json::json!({
        "Id": format!("v{v}"),
        "MetricStat": {
            "Metric": {
                "Namespace": "AWS/Lambda",
                "MetricName": "Invocations",
                "Dimensions": [
                    {"Name": "FunctionName", "Value": "q"},
                    {"Name": "Resource", "Value": "q:live"},
                    {"Name": "ExecutedVersion", "Value": v.to_string()},
                ],
            },
            "Period": 60,
            "Stat": "Sum",
        },
    })))
    .to_string();
    for (protocol, env) in [("JSON 1.0", &[][..]), ("query", query)] {
        let mut args = vec![
            "get-metric-statistics",
            "--namespace",
            "AWS/Lambda",
            "--metric-name",
            "Errors",
            "--start-time",
            "2000-01-01T00:00:00Z",
            "--end-time",
            "2100-01-01T00:00:00Z",
            "--period",
            "86400",
            "--statistics",
            "Sum",
            "SampleCount",
            "--dimensions",
        ];
        args.extend(dims_v2.split(' '));
        let stats = cw(env, &args).unwrap();
        let points = stats["Datapoints"].as_array().unwrap();
        assert_eq!(points.len(), 1, "{protocol}: {stats}");
        assert_eq!(points[0]["Sum"], f64::from(calls[2]), "{protocol}: {stats}");
        assert_eq!(points[0]["SampleCount"], f64::from(calls[2]), "{protocol}");
        // AWS CLI v1 prints a timestamp as the wire had it: epoch seconds from JSON 1.0,
        // ISO 8601 text from the query protocol's XML (v2 prints ISO 8601 for both).
        let timestamp = &points[0]["Timestamp"];
        assert!(
            timestamp.as_str().is_some_and(|t| t.contains("T00:00:00"))
                || (protocol != "query" && timestamp.is_number()),
            "{protocol}: {stats}"
        );

        let data = cw(
            env,
            &[
                "get-metric-data",
                "--metric-data-queries",
                &queries,
                "--start-time",
                "2000-01-01T00:00:00Z",
                "--end-time",
                "2100-01-01T00:00:00Z",
            ],
        )
        .unwrap();
        for (v, called) in [("v1", calls[1]), ("v2", calls[2])] {
            let r = data["MetricDataResults"]
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["Id"] == v)
                .unwrap();
            let values: f64 = r["Values"]
                .as_array()
                .unwrap()
                .iter()
                .map(|x| x.as_f64().unwrap())
                .sum();
            assert_eq!(values, f64::from(called), "{protocol} {v}: {data}");
            assert_eq!(
                r["Timestamps"].as_array().unwrap().len(),
                r["Values"].as_array().unwrap().len()
            );
        }
    }

    // An alarm made, read, set and deleted over the query protocol; read back over JSON.
    let mut put = vec![
        "put-metric-alarm",
        "--alarm-name",
        "q-v2-errors",
        "--namespace",
        "AWS/Lambda",
        "--metric-name",
        "Errors",
        "--statistic",
        "Sum",
        "--period",
        "60",
        "--evaluation-periods",
        "1",
        "--threshold",
        "0.5",
        "--comparison-operator",
        "GreaterThanThreshold",
        "--dimensions",
    ];
    put.extend(dims_v2.split(' '));
    cw(query, &put).unwrap();
    for env in [query, &[][..]] {
        let alarms = cw(env, &["describe-alarms", "--alarm-names", "q-v2-errors"]).unwrap();
        let alarm = &alarms["MetricAlarms"][0];
        assert_eq!(alarm["StateValue"], "ALARM", "{alarms}");
        assert_eq!(alarm["Threshold"], 0.5);
        assert_eq!(alarm["Period"], 60);
        assert_eq!(alarm["Dimensions"].as_array().unwrap().len(), 3);
    }
    cw(
        query,
        &[
            "set-alarm-state",
            "--alarm-name",
            "q-v2-errors",
            "--state-value",
            "OK",
            "--state-reason",
            "checked by hand & <quoted>",
        ],
    )
    .unwrap();
    let alarms = cw(query, &["describe-alarms", "--state-value", "OK"]).unwrap();
    assert_eq!(
        alarms["MetricAlarms"][0]["StateReason"], "checked by hand & <quoted>",
        "{alarms}"
    );
    cw(query, &["delete-alarms", "--alarm-names", "q-v2-errors"]).unwrap();
    let alarms = cw(query, &["describe-alarms"]).unwrap();
    assert_eq!(alarms["MetricAlarms"].as_array().unwrap().len(), 0);

    // A metric of the caller's, published over the query protocol, read over JSON 1.0.
    cw(
        query,
        &[
            "put-metric-data",
            "--namespace",
            "Shop",
            "--metric-name",
            "Baskets",
            "--value",
            "2.5",
            "--dimensions",
            "Service=cart",
        ],
    )
    .unwrap();
    let baskets = cw(
        &[],
        &[
            "get-metric-statistics",
            "--namespace",
            "Shop",
            "--metric-name",
            "Baskets",
            "--dimensions",
            "Name=Service,Value=cart",
            "--start-time",
            "2000-01-01T00:00:00Z",
            "--end-time",
            "2100-01-01T00:00:00Z",
            "--period",
            "86400",
            "--statistics",
            "Sum",
        ],
    )
    .unwrap();
    assert_eq!(baskets["Datapoints"][0]["Sum"], 2.5, "{baskets}");

    // Errors carry their code and message in the query protocol's XML.
    let e = cw(query, &["delete-alarms", "--alarm-names", "q-v2-errors"]).unwrap_err();
    assert!(
        e.contains("(ResourceNotFound)") && e.contains("q-v2-errors"),
        "{e}"
    );
    let e = cw(query, &["describe-alarm-history"]).unwrap_err();
    assert!(
        e.contains("(InvalidAction)") && e.contains("DescribeAlarmHistory"),
        "{e}"
    );
}

/// CloudWatch's numbers outlive a restart of fledge local, as CloudWatch's outlive anything:
/// the counts and the Duration percentiles of a split alias read the same after it, and new
/// invocations add to them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_survive_a_restart() {
    let dir = common::temp_dir("cw-restart");
    let p = common::start_in(dir.clone(), |_| {}).await;
    p.create_sample("kept", &[("SAMPLE_LATENCY_MS", "20")], 3)
        .await;
    p.publish_with_env("kept", &[("SAMPLE_ERROR_RATE", "1")])
        .await;
    let calls = split_and_invoke(&p, "kept", 0.5, 30).await;
    let base = [("FunctionName", "kept"), ("Resource", "kept:live")];
    let v1 = [base[0], base[1], ("ExecutedVersion", "1")];
    let v2 = [base[0], base[1], ("ExecutedVersion", "2")];
    let read = async |cw: &aws_sdk_cloudwatch::Client| {
        let (start_time, end_time) = window();
        let out = cw
            .get_metric_data()
            .metric_data_queries(query("inv1", "Invocations", &v1, "Sum"))
            .metric_data_queries(query("err2", "Errors", &v2, "Sum"))
            .metric_data_queries(query("all", "Invocations", &base, "Sum"))
            .metric_data_queries(query("p50v1", "Duration", &v1, "p50"))
            .start_time(start_time)
            .end_time(end_time)
            .send()
            .await
            .unwrap();
        let mut totals: Vec<(String, f64)> = out
            .metric_data_results()
            .iter()
            .map(|r| (r.id().unwrap().to_string(), r.values().iter().sum()))
            .collect();
        totals.sort_by(|a, b| a.0.cmp(&b.0));
        totals
    };
    let before = read(&p.cloudwatch).await;
    let total = |t: &[(String, f64)], id: &str| t.iter().find(|(i, _)| i == id).unwrap().1;
    assert_eq!(total(&before, "all"), 30.0);
    assert_eq!(total(&before, "inv1"), f64::from(calls[1]));
    assert_eq!(total(&before, "err2"), f64::from(calls[2]));
    assert!(total(&before, "p50v1") >= 20.0, "{before:?}");

    let p = common::start_in(p.stop().await, |_| {}).await;
    assert_eq!(
        read(&p.cloudwatch).await,
        before,
        "the same numbers after a restart"
    );
    for _ in 0..5 {
        invoke(&p.lambda, "kept:1", "{}").await;
        invoke(&p.lambda, "kept:live", "{}").await;
    }
    let after = read(&p.cloudwatch).await;
    assert_eq!(total(&after, "all"), 35.0, "{after:?}");
    let _ = std::fs::remove_dir_all(dir);
}

/// Metrics of the caller's own: published with PutMetricData, or by a function in the
/// embedded metric format (the sample's business metrics), read back with
/// GetMetricStatistics and GetMetricData, listed, and watched by an alarm; a refused
/// request keeps nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_metrics_are_read_listed_and_alarmed_on() {
    use aws_sdk_cloudwatch::types::{MetricDatum, StandardUnit, StatisticSet};
    let p = start("cw-custom").await;
    let datum = |name: &str| {
        MetricDatum::builder()
            .metric_name(name)
            .dimensions(Dimension::builder().name("Service").value("cart").build())
    };
    p.cloudwatch
        .put_metric_data()
        .namespace("Shop")
        .metric_data(
            datum("Latency")
                .value(10.0)
                .unit(StandardUnit::Milliseconds)
                .build(),
        )
        .metric_data(
            datum("Latency")
                .values(20.0)
                .values(40.0)
                .counts(1.0)
                .counts(2.0)
                .build(),
        )
        .metric_data(
            datum("Checkouts")
                .statistic_values(
                    StatisticSet::builder()
                        .sample_count(4.0)
                        .sum(6.0)
                        .minimum(0.0)
                        .maximum(3.0)
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let (start_time, end_time) = window();
    let stats = |name: &'static str| {
        p.cloudwatch
            .get_metric_statistics()
            .namespace("Shop")
            .metric_name(name)
            .set_dimensions(Some(dims(&[("Service", "cart")])))
            .start_time(start_time)
            .end_time(end_time)
            .period(600)
            .statistics(Statistic::Sum)
            .statistics(Statistic::SampleCount)
            .statistics(Statistic::Maximum)
            .send()
    };
    let latency = stats("Latency").await.unwrap();
    let point = &latency.datapoints()[0];
    assert_eq!(
        (point.sum(), point.sample_count(), point.maximum()),
        (Some(110.0), Some(4.0), Some(40.0))
    );
    assert_eq!(point.unit(), Some(&StandardUnit::Milliseconds));
    let checkouts = stats("Checkouts").await.unwrap();
    assert_eq!(checkouts.datapoints()[0].sum(), Some(6.0));
    // Dimensions match exactly, as in CloudWatch.
    let none = p
        .cloudwatch
        .get_metric_statistics()
        .namespace("Shop")
        .metric_name("Latency")
        .start_time(start_time)
        .end_time(end_time)
        .period(600)
        .statistics(Statistic::Sum)
        .send()
        .await
        .unwrap();
    assert!(none.datapoints().is_empty());

    for (request, code) in [
        (
            p.cloudwatch
                .put_metric_data()
                .namespace("AWS/Lambda")
                .metric_data(datum("Latency").value(1.0).build()),
            "InvalidParameterValue",
        ),
        (
            p.cloudwatch
                .put_metric_data()
                .namespace("Shop")
                .metric_data(datum("Latency").value(1.0).build())
                .metric_data(
                    datum("Latency")
                        .value(1.0)
                        .statistic_values(
                            StatisticSet::builder()
                                .sample_count(1.0)
                                .sum(1.0)
                                .minimum(1.0)
                                .maximum(1.0)
                                .build(),
                        )
                        .build(),
                ),
            "InvalidParameterCombination",
        ),
    ] {
        let e = request.send().await.unwrap_err();
        assert_eq!(e.code(), Some(code), "{e:?}");
    }
    let latency = stats("Latency").await.unwrap();
    assert_eq!(
        latency.datapoints()[0].sample_count(),
        Some(4.0),
        "a refused request keeps nothing"
    );

    // The sample's business metrics, in the embedded metric format: version 2 fails.
    p.create_sample("shop", &[("SAMPLE_METRICS_NAMESPACE", "Shop")], 3)
        .await;
    p.publish_with_env(
        "shop",
        &[
            ("SAMPLE_METRICS_NAMESPACE", "Shop"),
            ("SAMPLE_ERROR_RATE", "1"),
        ],
    )
    .await;
    for _ in 0..3 {
        invoke(&p.lambda, "shop:1", "{}").await;
        invoke(&p.lambda, "shop:2", "{}").await;
    }
    let orders = async |version: &str| {
        let out = p
            .cloudwatch
            .get_metric_data()
            .metric_data_queries(query_in(
                "Shop",
                "o",
                "Orders",
                &[("Version", version)],
                "Sum",
            ))
            .metric_data_queries(query_in(
                "Shop",
                "f",
                "OrdersFailed",
                &[("Version", version)],
                "Sum",
            ))
            .start_time(start_time)
            .end_time(end_time)
            .send()
            .await
            .unwrap();
        let total = |id: &str| -> f64 {
            out.metric_data_results()
                .iter()
                .find(|r| r.id() == Some(id))
                .unwrap()
                .values()
                .iter()
                .sum()
        };
        (total("o"), total("f"))
    };
    assert_eq!(orders("1").await, (3.0, 0.0));
    assert_eq!(orders("2").await, (3.0, 3.0));
    for version in ["1", "2"] {
        p.cloudwatch
            .put_metric_alarm()
            .alarm_name(format!("orders-failed-v{version}"))
            .namespace("Shop")
            .metric_name("OrdersFailed")
            .set_dimensions(Some(dims(&[("Version", version)])))
            .statistic(Statistic::Sum)
            .period(60)
            .evaluation_periods(1)
            .threshold(1.0)
            .comparison_operator(ComparisonOperator::GreaterThanOrEqualToThreshold)
            .send()
            .await
            .unwrap();
    }
    let alarms = p.cloudwatch.describe_alarms().send().await.unwrap();
    let states: Vec<(String, StateValue)> = alarms
        .metric_alarms()
        .iter()
        .map(|a| {
            (
                a.alarm_name().unwrap().into(),
                a.state_value().unwrap().clone(),
            )
        })
        .collect();
    assert_eq!(
        states,
        [
            ("orders-failed-v1".into(), StateValue::Ok),
            ("orders-failed-v2".into(), StateValue::Alarm),
        ]
    );
    let listed = p
        .cloudwatch
        .list_metrics()
        .namespace("Shop")
        .send()
        .await
        .unwrap();
    let mut names: Vec<String> = listed
        .metrics()
        .iter()
        .map(|m| {
            let dims: Vec<String> = m
                .dimensions()
                .iter()
                .map(|d| format!("{}={}", d.name().unwrap(), d.value().unwrap()))
                .collect();
            format!("{}[{}]", m.metric_name().unwrap(), dims.join(","))
        })
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "Checkouts[Service=cart]",
            "Latency[Service=cart]",
            "OrdersFailed[Version=1]",
            "OrdersFailed[Version=2]",
            "Orders[Version=1]",
            "Orders[Version=2]",
        ]
    );
}
