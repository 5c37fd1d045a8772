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
    MetricDataQuery::builder()
        .id(id)
        .metric_stat(
            MetricStat::builder()
                .metric(
                    Metric::builder()
                        .namespace("AWS/Lambda")
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
