//! The local platform through the official aws-sdk-lambda over HTTP, with the sample
//! function running as real processes.

mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use common::{invocations_and_errors, invoke, metric_total, start};

fn weights(pairs: &[(&str, f64)]) -> AliasRoutingConfiguration {
    AliasRoutingConfiguration::builder()
        .set_additional_version_weights(Some(
            pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
        ))
        .build()
}

/// A split alias sends each version its share, says which version ran, and only the bad
/// version's invocations fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_alias_routes_by_weight() {
    let p = start("split").await;
    p.create_sample("orders", &[], 3).await;
    let v2 = p
        .publish_with_env("orders", &[("SAMPLE_ERROR_RATE", "1")])
        .await;
    assert_eq!(v2, "2");
    p.lambda
        .create_alias()
        .function_name("orders")
        .name("live")
        .function_version("1")
        .routing_config(weights(&[("2", 0.3)]))
        .send()
        .await
        .unwrap();

    let mut tasks = Vec::new();
    for worker in 0..8 {
        let client = p.lambda.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen: HashMap<(String, bool), u32> = HashMap::new();
            for i in 0..100 {
                let (version, error, _) = invoke(
                    &client,
                    "orders:live",
                    &format!("{{\"n\":{}}}", worker * 100 + i),
                )
                .await;
                *seen.entry((version, error.is_some())).or_default() += 1;
            }
            seen
        }));
    }
    let mut seen: HashMap<(String, bool), u32> = HashMap::new();
    for t in tasks {
        for (k, n) in t.await.unwrap() {
            *seen.entry(k).or_default() += n;
        }
    }
    let v1_ok = seen.get(&("1".into(), false)).copied().unwrap_or(0);
    let v2_failed = seen.get(&("2".into(), true)).copied().unwrap_or(0);
    assert_eq!(
        v1_ok + v2_failed,
        800,
        "only v1 successes and v2 failures: {seen:?}"
    );
    // 800 draws at 30%: mean 240, sd 13; five sd either side.
    assert!(
        (175..=305).contains(&v2_failed),
        "v2 served {v2_failed} of 800"
    );
}

/// Every alias rule in the reference answers AWS's status, type and message.
#[tokio::test]
async fn alias_validation_answers_as_aws_does() {
    let p = start("validation").await;
    p.create_sample("f", &[], 3).await;
    p.publish_with_env("f", &[("X", "2")]).await;
    p.lambda
        .create_alias()
        .function_name("f")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap();

    let update = |version: Option<&str>, routing: Option<AliasRoutingConfiguration>| {
        p.lambda
            .update_alias()
            .function_name("f")
            .name("live")
            .set_function_version(version.map(String::from))
            .set_routing_config(routing)
            .send()
    };
    let cases: Vec<(_, u16, &str, &str)> = vec![
        (
            update(None, Some(weights(&[("2", 1.5)])))
                .await
                .unwrap_err(),
            400,
            "ValidationException",
            "1 validation error detected: Value '{2=1.5}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0, Member must not be null]",
        ),
        (
            update(None, Some(weights(&[("2", -1.0)])))
                .await
                .unwrap_err(),
            400,
            "ValidationException",
            "1 validation error detected: Value '{2=-1.0}'",
        ),
        (
            update(None, Some(weights(&[("$LATEST", 0.5)])))
                .await
                .unwrap_err(),
            400,
            "ValidationException",
            "Map keys must satisfy constraint",
        ),
        (
            update(None, Some(weights(&[("2", 0.1), ("3", 0.1)])))
                .await
                .unwrap_err(),
            400,
            "InvalidParameterValueException",
            "Number of items in AdditionalVersionWeights cannot be greater than 1",
        ),
        (
            update(Some("$LATEST"), Some(weights(&[("2", 0.1)])))
                .await
                .unwrap_err(),
            400,
            "InvalidParameterValueException",
            "$LATEST is not supported for an alias pointing to more than 1 version",
        ),
        (
            update(Some("1"), Some(weights(&[("1", 0.1)])))
                .await
                .unwrap_err(),
            400,
            "InvalidParameterValueException",
            "Invalid function version 1. Function version 1 is already included in routing configuration.",
        ),
        (
            update(Some("1"), Some(weights(&[("10", 0.1)])))
                .await
                .unwrap_err(),
            404,
            "ResourceNotFoundException",
            "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f:10",
        ),
        (
            update(Some("9"), None).await.unwrap_err(),
            404,
            "ResourceNotFoundException",
            "Function not found: arn:aws:lambda:us-east-1:000000000000:function:f:9",
        ),
    ];
    for (e, status, code, message) in cases {
        let got_status = e.raw_response().map(|r| r.status().as_u16());
        assert_eq!((got_status, e.code()), (Some(status), Some(code)), "{e:?}");
        assert!(
            e.message().unwrap_or_default().contains(message),
            "{:?} vs {message}",
            e.message()
        );
    }

    let e = p
        .lambda
        .create_alias()
        .function_name("f")
        .name("2024")
        .function_version("1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    let e = p
        .lambda
        .create_alias()
        .function_name("f")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Some("ResourceConflictException"),
            Some("Alias already exists: arn:aws:lambda:us-east-1:000000000000:function:f:live")
        )
    );
    let e = p
        .lambda
        .get_alias()
        .function_name("f")
        .name("nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        (e.code(), e.message()),
        (
            Some("ResourceNotFoundException"),
            Some("Cannot find alias arn: arn:aws:lambda:us-east-1:000000000000:function:f:nope")
        )
    );
    let e = p
        .lambda
        .update_alias()
        .function_name("f")
        .name("nope")
        .function_version("1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        Some("Alias not found: arn:aws:lambda:us-east-1:000000000000:function:f:nope")
    );
    p.lambda
        .delete_alias()
        .function_name("f")
        .name("nope")
        .send()
        .await
        .expect("deleting a missing alias succeeds");
    let ok = p
        .lambda
        .create_alias()
        .function_name("f")
        .name("latest")
        .function_version("$LATEST")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.function_version(), Some("$LATEST"));
    let empty = p
        .lambda
        .create_alias()
        .function_name("f")
        .name("empty")
        .function_version("1")
        .routing_config(weights(&[]))
        .send()
        .await
        .unwrap();
    assert!(
        empty.routing_config().is_none(),
        "no routing is omitted, as AWS does"
    );
}

/// RevisionId changes on every mutation, and a stale one is refused with 412.
#[tokio::test]
async fn revision_ids_guard_alias_writes() {
    let p = start("revisions").await;
    p.create_sample("f", &[], 3).await;
    p.publish_with_env("f", &[("X", "2")]).await;
    let created = p
        .lambda
        .create_alias()
        .function_name("f")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap();
    let r1 = created.revision_id().unwrap().to_string();
    let updated = p
        .lambda
        .update_alias()
        .function_name("f")
        .name("live")
        .revision_id(&r1)
        .routing_config(weights(&[("2", 0.05)]))
        .send()
        .await
        .unwrap();
    let r2 = updated.revision_id().unwrap().to_string();
    assert_ne!(r1, r2);
    let stale = p
        .lambda
        .update_alias()
        .function_name("f")
        .name("live")
        .revision_id(&r1)
        .function_version("2")
        .routing_config(weights(&[]))
        .send()
        .await
        .unwrap_err();
    assert_eq!(stale.raw_response().map(|r| r.status().as_u16()), Some(412));
    assert_eq!(stale.code(), Some("PreconditionFailedException"));
    let got = p
        .lambda
        .get_alias()
        .function_name("f")
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.revision_id(),
        Some(r2.as_str()),
        "the refused write changed nothing"
    );
    assert_eq!(
        got.routing_config()
            .and_then(|r| r.additional_version_weights())
            .and_then(|w| w.get("2")),
        Some(&0.05)
    );
    let again = p
        .lambda
        .update_alias()
        .function_name("f")
        .name("live")
        .description("same routing")
        .send()
        .await
        .unwrap();
    assert_ne!(again.revision_id(), Some(r2.as_str()));
    assert!(
        again.routing_config().is_some(),
        "an update without RoutingConfig keeps the routing"
    );
}

/// A function that hangs past its timeout, one that exits mid-invocation, and a package
/// without a bootstrap are answered as Lambda answers them, and the platform keeps serving.
#[tokio::test]
async fn crashes_hangs_and_exits() {
    let p = start("crashes").await;
    p.create_sample("f", &[], 1).await;

    let (_, error, body) = invoke(&p.lambda, "f:1", r#"{"sleep_ms": 3000}"#).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errorType"], "Sandbox.Timedout");
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Error: Task timed out after 1.00 seconds"),
        "{v}"
    );

    let (version, error, _) = invoke(&p.lambda, "f:1", "{}").await;
    assert_eq!(
        (version.as_str(), error),
        ("1", None),
        "served after the timeout"
    );

    let (_, error, body) = invoke(&p.lambda, "f:1", r#"{"exit": 3}"#).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errorType"], "Runtime.ExitError");
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Runtime exited with error: exit status 3"),
        "{v}"
    );
    assert_eq!(
        invoke(&p.lambda, "f:1", "{}").await.1,
        None,
        "served after the exit"
    );

    let (_, error, body) = invoke(&p.lambda, "f:1", r#"{"fail": true}"#).await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert!(body.contains("sample failure in version 1"), "{body}");

    let mut empty = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut empty);
    w.start_file("README", zip::write::SimpleFileOptions::default())
        .unwrap();
    w.finish().unwrap();
    p.lambda
        .update_function_code()
        .function_name("f")
        .zip_file(Blob::new(empty.into_inner()))
        .send()
        .await
        .unwrap();
    let (_, error, body) = invoke(&p.lambda, "f", "{}").await;
    assert_eq!(error.as_deref(), Some("Unhandled"));
    assert!(body.contains("Runtime.InvalidEntrypoint"), "{body}");
    assert_eq!(invoke(&p.lambda, "f:1", "{}").await.1, None);
}

/// Reserved concurrency is enforced with 429 TooManyRequestsException.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reserved_concurrency_throttles() {
    let p = start("throttle").await;
    p.create_sample("f", &[], 5).await;
    p.lambda
        .put_function_concurrency()
        .function_name("f")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    let client = common::lambda_client(&p.endpoint, false);
    let slow = {
        let c = client.clone();
        tokio::spawn(async move { invoke(&c, "f:1", r#"{"sleep_ms": 1500}"#).await })
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let e = client
        .invoke()
        .function_name("f:1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("TooManyRequestsException"));
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(429));
    match e.into_service_error() {
        aws_sdk_lambda::operation::invoke::InvokeError::TooManyRequestsException(t) => {
            assert_eq!(
                t.reason(),
                Some(
                    &aws_sdk_lambda::types::ThrottleReason::ReservedFunctionConcurrentInvocationLimitExceeded
                )
            );
        }
        other => panic!("not a throttle: {other:?}"),
    }
    assert_eq!(slow.await.unwrap().1, None);
    let got = p
        .lambda
        .get_function()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(
        got.concurrency()
            .and_then(|c| c.reserved_concurrent_executions()),
        Some(1)
    );
}

/// A client context reaches a function on lambda_runtime as the JSON it parses (the Runtime
/// API passes JSON; Invoke takes base64).
#[tokio::test]
async fn a_client_context_reaches_the_function() {
    use base64::Engine;
    let p = start("client-context").await;
    p.create_sample("f", &[], 3).await;
    let context = r#"{"custom":{"tenant":"blue"}}"#;
    let out = p
        .lambda
        .invoke()
        .function_name("f:1")
        .client_context(base64::engine::general_purpose::STANDARD.encode(context))
        .payload(Blob::new(r#"{"n":1}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), None);
    let too_long = "A".repeat(3584);
    let e = p
        .lambda
        .invoke()
        .function_name("f:1")
        .client_context(too_long)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidRequestContentException"));
    assert!(e.message().unwrap().contains("3583"), "{e:?}");
}

/// Tail logs carry Lambda's START, END and REPORT lines and the function's own output.
#[tokio::test]
async fn tail_logs() {
    let p = start("tail").await;
    p.create_sample("f", &[], 3).await;
    let out = p
        .lambda
        .invoke()
        .function_name("f:1")
        .log_type(aws_sdk_lambda::types::LogType::Tail)
        .payload(Blob::new(br#"{"fail":true}"#.to_vec()))
        .send()
        .await
        .unwrap();
    use base64::Engine;
    let log = String::from_utf8(
        base64::engine::general_purpose::STANDARD
            .decode(out.log_result().unwrap())
            .unwrap(),
    )
    .unwrap();
    assert!(
        log.starts_with("START RequestId: ") && log.contains(" Version: 1\n"),
        "{log}"
    );
    assert!(log.contains("version 1 failing request"), "{log}");
    assert!(
        log.contains("\nEND RequestId: ")
            && log.contains("REPORT RequestId: ")
            && log.contains("Init Duration: "),
        "{log}"
    );
}

/// Functions, versions and aliases survive a restart of the platform.
#[tokio::test]
async fn state_survives_a_restart() {
    let p = start("restart").await;
    p.create_sample("f", &[], 3).await;
    p.publish_with_env("f", &[("X", "2")]).await;
    p.lambda
        .create_alias()
        .function_name("f")
        .name("live")
        .function_version("1")
        .routing_config(weights(&[("2", 0.25)]))
        .send()
        .await
        .unwrap();
    let dir = p.stop().await;
    let p = common::start_in(dir, |_| {}).await;
    let alias = p
        .lambda
        .get_alias()
        .function_name("f")
        .name("live")
        .send()
        .await
        .unwrap();
    assert_eq!(
        alias
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .and_then(|w| w.get("2")),
        Some(&0.25)
    );
    let versions = p
        .lambda
        .list_versions_by_function()
        .function_name("f")
        .send()
        .await
        .unwrap();
    let names: Vec<&str> = versions
        .versions()
        .iter()
        .filter_map(|v| v.version())
        .collect();
    assert_eq!(names, vec!["$LATEST", "1", "2"]);
    assert_eq!(invoke(&p.lambda, "f:2", "{}").await.0, "2");
}

/// Event invocations answer 202 and run; DryRun answers 204 and runs nothing.
#[tokio::test]
async fn event_and_dry_run() {
    let p = start("async").await;
    p.create_sample("f", &[], 3).await;
    let out = p
        .lambda
        .invoke()
        .function_name("f:1")
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);
    let out = p
        .lambda
        .invoke()
        .function_name("f:1")
        .invocation_type(aws_sdk_lambda::types::InvocationType::DryRun)
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 204);
    let e = p
        .lambda
        .invoke()
        .function_name("f:nope")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        Some("Function not found: arn:aws:lambda:us-east-1:000000000000:function:f:nope")
    );
    let e = p
        .lambda
        .invoke()
        .function_name("missing")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        Some("Function not found: arn:aws:lambda:us-east-1:000000000000:function:missing:$LATEST")
    );
    let big = vec![b' '; 6 * 1024 * 1024 + 1];
    let e = p
        .lambda
        .invoke()
        .function_name("f:1")
        .payload(Blob::new(big))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("RequestTooLargeException"));
}

/// Asynchronous events are not lost: ones throttled by the function's concurrency wait
/// their turn, and one whose function fails is tried twice more (Lambda's default), then
/// no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asynchronous_events_are_queued_and_retried() {
    let p = common::start_in(common::temp_dir("async-retry"), |c| {
        c.async_retry_delays = vec![Duration::from_millis(200), Duration::from_millis(400)];
    })
    .await;
    p.create_sample("slow", &[("SAMPLE_LATENCY_MS", "300")], 3)
        .await;
    p.lambda
        .put_function_concurrency()
        .function_name("slow")
        .reserved_concurrent_executions(1)
        .send()
        .await
        .unwrap();
    p.create_sample("bad", &[("SAMPLE_ERROR_RATE", "1")], 3)
        .await;
    let event = |name: &'static str| {
        p.lambda
            .invoke()
            .function_name(name)
            .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
            .payload(Blob::new("{}"))
            .send()
    };
    for _ in 0..3 {
        assert_eq!(event("slow:1").await.unwrap().status_code(), 202);
    }
    assert_eq!(event("bad:1").await.unwrap().status_code(), 202);

    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let slow = invocations_and_errors(&p, "slow").await;
        let bad = invocations_and_errors(&p, "bad").await;
        if slow == (3.0, 0.0) && bad == (3.0, 3.0) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "after 30 s: slow {slow:?} (want 3 invocations), bad {bad:?} (want 3 failed)"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // Two retries, then the event is dropped: nothing more runs.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(invocations_and_errors(&p, "bad").await, (3.0, 3.0));

    // With no retries asked for (PutFunctionEventInvokeConfig), an event runs once.
    p.lambda
        .put_function_event_invoke_config()
        .function_name("bad")
        .qualifier("1")
        .maximum_retry_attempts(0)
        .send()
        .await
        .unwrap();
    assert_eq!(event("bad:1").await.unwrap().status_code(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while invocations_and_errors(&p, "bad").await != (4.0, 4.0) {
        assert!(std::time::Instant::now() < deadline, "the event never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(invocations_and_errors(&p, "bad").await, (4.0, 4.0));

    // Lambda's asynchronous metrics: two events taken, four tries, both given up on.
    use aws_sdk_cloudwatch::types::Statistic::{SampleCount, Sum};
    for (function, metric, statistic, want) in [
        ("bad", "AsyncEventsReceived", Sum, 2.0),
        ("bad", "AsyncEventAge", SampleCount, 4.0),
        ("bad", "AsyncEventsDropped", Sum, 2.0),
        ("slow", "AsyncEventsReceived", Sum, 3.0),
        ("slow", "AsyncEventsDropped", Sum, 0.0),
    ] {
        let got = metric_total(&p, function, metric, statistic).await;
        assert_eq!(got, want, "{metric} of {function}");
    }
}

/// An asynchronous event waiting for its retry outlives a restart of the platform: the new
/// one resumes it where it was (one failed try already counted), retries it no sooner than
/// its retry delay after the failed try, then drops it after the retries Lambda allows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asynchronous_events_survive_a_restart() {
    let dir = common::temp_dir("async-restart");
    let p = common::start_in(dir.clone(), |c| {
        c.async_retry_delays = vec![Duration::from_secs(3600); 2];
    })
    .await;
    p.create_sample("bad", &[("SAMPLE_ERROR_RATE", "1")], 3)
        .await;
    let out = p
        .lambda
        .invoke()
        .function_name("bad:1")
        .invocation_type(aws_sdk_lambda::types::InvocationType::Event)
        .payload(Blob::new(r#"{"n":1}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(out.status_code(), 202);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while invocations_and_errors(&p, "bad").await != (1.0, 1.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "the first try never ran"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Now it waits an hour for its first retry; stop the platform under it.
    let mut p = p;
    if let Some(r) = p.running.take() {
        r.stop().await;
    }
    let events = dir.join("events");
    let kept: Vec<_> = std::fs::read_dir(&events).unwrap().flatten().collect();
    assert_eq!(kept.len(), 1, "the event is kept");
    let text = std::fs::read_to_string(kept[0].path()).unwrap();
    assert!(
        !text.contains("AWS4-HMAC-SHA256"),
        "the caller's signature is not kept: {text}"
    );

    // The restarted platform's delays apply, counted from the failed try: 3 s to the first
    // retry, then 100 ms.
    let again = common::start_in(dir.clone(), |c| {
        c.async_retry_delays = vec![Duration::from_secs(3), Duration::from_millis(100)];
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        invocations_and_errors(&again, "bad").await,
        (1.0, 1.0),
        "the metrics kept the first try, and the retry waits for its delay after a restart too"
    );
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    while std::fs::read_dir(&events).unwrap().count() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "the event was never finished"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // Two more tries here (three in all, as Lambda allows), then it was dropped.
    assert_eq!(invocations_and_errors(&again, "bad").await, (3.0, 3.0));
    assert_eq!(
        metric_total(
            &again,
            "bad",
            "AsyncEventsDropped",
            aws_sdk_cloudwatch::types::Statistic::Sum
        )
        .await,
        1.0
    );
    drop(p);
}

/// The asynchronous-invocation options per qualifier: shapes, Lambda's ranges, replace
/// against update, and the answers for a qualifier without options.
#[tokio::test]
async fn event_invoke_config_answers_as_lambda_does() {
    let p = start("event-invoke").await;
    p.create_sample("f", &[], 3).await;
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:f";
    let put = p
        .lambda
        .put_function_event_invoke_config()
        .function_name("f")
        .qualifier("1")
        .maximum_retry_attempts(1)
        .maximum_event_age_in_seconds(600)
        .send()
        .await
        .unwrap();
    assert_eq!(put.function_arn(), Some(format!("{arn}:1").as_str()));
    assert_eq!(put.maximum_retry_attempts(), Some(1));
    assert_eq!(put.maximum_event_age_in_seconds(), Some(600));
    assert!(put.last_modified().is_some());

    // Update keeps what it does not name; Put replaces everything.
    let updated = p
        .lambda
        .update_function_event_invoke_config()
        .function_name("f")
        .qualifier("1")
        .maximum_retry_attempts(0)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            updated.maximum_retry_attempts(),
            updated.maximum_event_age_in_seconds()
        ),
        (Some(0), Some(600))
    );
    let replaced = p
        .lambda
        .put_function_event_invoke_config()
        .function_name("f")
        .qualifier("1")
        .maximum_event_age_in_seconds(120)
        .send()
        .await
        .unwrap();
    assert_eq!(
        (
            replaced.maximum_retry_attempts(),
            replaced.maximum_event_age_in_seconds()
        ),
        (None, Some(120))
    );
    let got = p
        .lambda
        .get_function_event_invoke_config()
        .function_name("f")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    assert_eq!(got.maximum_event_age_in_seconds(), Some(120));

    let rejected = |retries: i32, age: i32| {
        p.lambda
            .put_function_event_invoke_config()
            .function_name("f")
            .maximum_retry_attempts(retries)
            .maximum_event_age_in_seconds(age)
            .send()
    };
    let e = rejected(3, 600).await.unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert_eq!(
        e.message(),
        Some(
            "1 validation error detected: Value '3' at 'maximumRetryAttempts' failed to satisfy constraint: Member must have value less than or equal to 2"
        )
    );
    let e = rejected(1, 30).await.unwrap_err();
    assert_eq!(
        e.message(),
        Some(
            "1 validation error detected: Value '30' at 'maximumEventAgeInSeconds' failed to satisfy constraint: Member must have value greater than or equal to 60"
        )
    );
    let e = p
        .lambda
        .put_function_event_invoke_config()
        .function_name("f")
        .destination_config(
            aws_sdk_lambda::types::DestinationConfig::builder()
                .on_failure(
                    aws_sdk_lambda::types::OnFailure::builder()
                        .destination("arn:aws:sqs:us-east-1:000000000000:dlq")
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameterValueException"));
    assert!(
        e.message()
            .unwrap()
            .contains("arn:aws:sqs:us-east-1:000000000000:dlq")
    );

    let e = p
        .lambda
        .get_function_event_invoke_config()
        .function_name("f")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
    assert_eq!(
        e.message(),
        Some(format!("The function {arn}:$LATEST doesn't have an EventInvokeConfig").as_str())
    );
    let e = p
        .lambda
        .get_function_event_invoke_config()
        .function_name("f")
        .qualifier("9")
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        Some(format!("Function not found: {arn}:9").as_str())
    );

    let listed = p
        .lambda
        .list_function_event_invoke_configs()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(listed.function_event_invoke_configs().len(), 1);
    p.lambda
        .delete_function_event_invoke_config()
        .function_name("f")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    let e = p
        .lambda
        .get_function_event_invoke_config()
        .function_name("f")
        .qualifier("1")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
}

/// Injected faults reach SDK callers with Lambda's error types, then stop.
#[tokio::test]
async fn injected_faults() {
    let p = start("faults").await;
    p.create_sample("f", &[], 3).await;
    p.lambda
        .create_alias()
        .function_name("f")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap();
    let (status, _) = p
        .admin(
            "POST",
            "/_fledge/faults",
            r#"{"operation":"UpdateAlias","status":429,"count":2}"#,
        )
        .await;
    assert_eq!(status, 201);
    let client = common::lambda_client(&p.endpoint, false);
    for _ in 0..2 {
        let e = client
            .update_alias()
            .function_name("f")
            .name("live")
            .description("x")
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some("TooManyRequestsException"));
    }
    client
        .update_alias()
        .function_name("f")
        .name("live")
        .description("x")
        .send()
        .await
        .expect("the fault was spent");
    let (status, _) = p
        .admin(
            "POST",
            "/_fledge/faults",
            r#"{"operation":"GetAlias","status":500}"#,
        )
        .await;
    assert_eq!(status, 201);
    let e = client
        .get_alias()
        .function_name("f")
        .name("live")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ServiceException"));
    assert_eq!(p.admin("DELETE", "/_fledge/faults", "").await.0, 204);
    client
        .get_alias()
        .function_name("f")
        .name("live")
        .send()
        .await
        .unwrap();
    let (status, body) = p
        .admin(
            "POST",
            "/_fledge/faults",
            r#"{"operation":"*","status":404}"#,
        )
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("429, 500"), "{body}");
}

/// The local routing extensions: exact split and sticky keys.
#[tokio::test]
async fn exact_and_sticky_routing() {
    let p = start("modes").await;
    p.create_sample("f", &[], 3).await;
    p.publish_with_env("f", &[("X", "2")]).await;
    p.lambda
        .create_alias()
        .function_name("f")
        .name("live")
        .function_version("1")
        .routing_config(weights(&[("2", 0.1)]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        p.admin("PUT", "/_fledge/routing/f/live", r#"{"mode":"exact"}"#)
            .await
            .0,
        200
    );
    let mut on_v2 = 0;
    for n in 1..=50 {
        if invoke(&p.lambda, "f:live", "{}").await.0 == "2" {
            on_v2 += 1;
        }
        assert!(
            (on_v2 as f64 - 0.1 * n as f64).abs() < 1.0,
            "after {n}: {on_v2}"
        );
    }
    assert_eq!(
        p.admin(
            "PUT",
            "/_fledge/routing/f/live",
            r#"{"mode":"sticky","key":{"json_pointer":"/user"}}"#
        )
        .await
        .0,
        200
    );
    let mut first = HashMap::new();
    for round in 0..3 {
        for user in 0..20 {
            let (v, _, _) = invoke(&p.lambda, "f:live", &format!("{{\"user\":\"u{user}\"}}")).await;
            let seen = first.entry(user).or_insert_with(|| v.clone());
            assert_eq!(*seen, v, "user {user} moved in round {round}");
        }
    }
    let (status, body) = p
        .admin("PUT", "/_fledge/routing/f/live", r#"{"mode":"sometimes"}"#)
        .await;
    assert_eq!(status, 400);
    assert!(body.contains("sticky"), "{body}");
}

/// An operation fledge local does not implement is answered at once, clearly.
#[tokio::test]
async fn unsupported_operations_say_so() {
    let p = start("unsupported").await;
    let e = common::lambda_client(&p.endpoint, false)
        .list_layers()
        .send()
        .await
        .unwrap_err();
    assert!(
        e.message()
            .unwrap_or_default()
            .contains("fledge local does not implement GET /2018-10-31/layers"),
        "{e:?}"
    );
    assert_eq!(e.raw_response().map(|r| r.status().as_u16()), Some(400));
}

/// Tags as Lambda keeps them: given at CreateFunction, shown by GetFunction, changed with
/// TagResource and UntagResource, kept across a restart; on the function's ARN only.
#[tokio::test]
async fn tags_belong_to_the_function() {
    let dir = common::temp_dir("tags");
    let p = common::start_in(dir.clone(), |_| {}).await;
    p.sample_function("t")
        .tags("team", "payments")
        .tags("tier", "1")
        .publish(true)
        .send()
        .await
        .unwrap();
    let arn = "arn:aws:lambda:us-east-1:000000000000:function:t";
    let tags_of = |got: Option<&HashMap<String, String>>| {
        let mut pairs: Vec<(String, String)> = got
            .into_iter()
            .flatten()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        pairs.sort();
        pairs
    };
    let pair = |k: &str, v: &str| (k.to_string(), v.to_string());
    let got = p
        .lambda
        .get_function()
        .function_name("t")
        .send()
        .await
        .unwrap();
    assert_eq!(
        tags_of(got.tags()),
        [pair("team", "payments"), pair("tier", "1")]
    );

    p.lambda
        .tag_resource()
        .resource(arn)
        .tags("owner", "ana")
        .tags("tier", "2")
        .send()
        .await
        .unwrap();
    p.lambda
        .untag_resource()
        .resource(arn)
        .tag_keys("team")
        .tag_keys("not-there")
        .send()
        .await
        .unwrap();
    let listed = p.lambda.list_tags().resource(arn).send().await.unwrap();
    let want = [pair("owner", "ana"), pair("tier", "2")];
    assert_eq!(tags_of(listed.tags()), want);

    // Versions and aliases have no tags of their own; other resources are not functions.
    for (resource, code, says) in [
        (
            format!("{arn}:1"),
            "InvalidParameterValueException",
            "Tags on function aliases and versions are not supported. Please specify a function ARN.",
        ),
        (
            "arn:aws:lambda:us-east-1:000000000000:function:nope".into(),
            "ResourceNotFoundException",
            "Function not found: arn:aws:lambda:us-east-1:000000000000:function:nope",
        ),
        (
            "t".into(),
            "ValidationException",
            "1 validation error detected: Value 't' at 'resource' failed to satisfy constraint",
        ),
    ] {
        let e = p
            .lambda
            .list_tags()
            .resource(&resource)
            .send()
            .await
            .unwrap_err();
        assert_eq!(e.code(), Some(code), "{resource}");
        assert!(e.message().unwrap_or_default().starts_with(says), "{e:?}");
    }
    let e = p
        .lambda
        .tag_resource()
        .resource(arn)
        .tags("aws:owner", "x")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameterValueException"));
    assert!(e.message().unwrap_or_default().contains("'aws:owner'"));
    let mut many = p.lambda.tag_resource().resource(arn);
    for i in 0..49 {
        many = many.tags(format!("k{i}"), "v");
    }
    let e = many.send().await.unwrap_err();
    assert!(
        e.message()
            .unwrap_or_default()
            .contains("at most 50 tags; these would make 51"),
        "{e:?}"
    );

    let p = common::start_in(p.stop().await, |_| {}).await;
    let listed = p.lambda.list_tags().resource(arn).send().await.unwrap();
    assert_eq!(tags_of(listed.tags()), want, "after a restart");
    let _ = std::fs::remove_dir_all(dir);
}

/// Configuration that needs services fledge local does not have is refused with what to do,
/// not accepted and left out.
#[tokio::test]
async fn unavailable_configuration_is_refused() {
    let p = start("unavailable").await;
    let e = p
        .sample_function("layered")
        .layers("arn:aws:lambda:us-east-1:123456789012:layer:deps:3")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameterValueException"));
    assert!(
        e.message().unwrap_or_default().contains("no layers"),
        "{e:?}"
    );
    let functions = p.lambda.list_functions().send().await.unwrap();
    assert!(functions.functions().is_empty(), "nothing was created");

    p.create_sample("f", &[], 3).await;
    let dlq = |arn: &str| {
        p.lambda
            .update_function_configuration()
            .function_name("f")
            .dead_letter_config(
                aws_sdk_lambda::types::DeadLetterConfig::builder()
                    .target_arn(arn)
                    .build(),
            )
            .send()
    };
    let e = dlq("arn:aws:sqs:us-east-1:123456789012:dead")
        .await
        .unwrap_err();
    assert!(
        e.message().unwrap_or_default().contains("DeadLetterConfig"),
        "{e:?}"
    );
    // An empty target is how a dead-letter queue is removed: nothing to refuse.
    dlq("").await.unwrap();
}

/// ListFunctions names each function once, or with `FunctionVersion=ALL` every published
/// version after its `$LATEST`, in pages the SDK's paginator follows.
#[tokio::test]
async fn list_functions_with_every_version() {
    let p = start("list-all").await;
    p.create_sample("a", &[], 3).await;
    p.publish_with_env("a", &[("SAMPLE_LATENCY_MS", "1")]).await;
    p.create_sample("b", &[], 3).await;
    let list = async |all: bool| {
        let mut pages = p
            .lambda
            .list_functions()
            .set_function_version(all.then_some(aws_sdk_lambda::types::FunctionVersion::All))
            .max_items(2)
            .into_paginator()
            .send();
        let mut listed = Vec::new();
        while let Some(page) = pages.next().await {
            for f in page.unwrap().functions() {
                listed.push(format!(
                    "{}:{}",
                    f.function_name().unwrap(),
                    f.version().unwrap()
                ));
            }
        }
        listed
    };
    assert_eq!(list(false).await, ["a:$LATEST", "b:$LATEST"]);
    assert_eq!(
        list(true).await,
        ["a:$LATEST", "a:1", "a:2", "b:$LATEST", "b:1"]
    );
    let (status, body) = p
        .admin("GET", "/2015-03-31/functions/?FunctionVersion=SOME", "")
        .await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("enum value set: [ALL]"), "{body}");
}

/// Each process has a `/tmp` of its own, as each Lambda execution environment does: what
/// one invocation writes there the next invocation of the same process finds, another
/// process does not, and it is gone when the process stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_process_has_its_own_tmp() {
    let p = start("scratch").await;
    p.create_sample("f", &[], 10).await;
    let scratch = async |payload: &str| scratch_of(&p, payload).await;

    let (first, lines) = scratch(r#"{"scratch": "notes"}"#).await;
    assert_eq!(lines, 1);
    assert!(
        first.starts_with(&p.dir),
        "the process's /tmp is under the data directory, not the machine's: {}",
        first.display()
    );
    let (again, lines) = scratch(r#"{"scratch": "notes"}"#).await;
    assert_eq!(
        (again.as_path(), lines),
        (first.as_path(), 2),
        "the same warm process"
    );

    // Two at once: the warm process takes one, a new process the other.
    let (a, b) = tokio::join!(
        scratch(r#"{"scratch": "notes", "sleep_ms": 300}"#),
        scratch(r#"{"scratch": "notes", "sleep_ms": 300}"#)
    );
    let mut seen = [a.1, b.1];
    seen.sort();
    assert_eq!(seen, [1, 3], "a new process starts with an empty /tmp");
    assert_ne!(a.0.parent(), b.0.parent());
    assert!(a.0.exists() && b.0.exists());

    // Idle processes stopped: their /tmp goes with them.
    let platform = &p.running.as_ref().unwrap().platform;
    assert_eq!(platform.pools.reap(Duration::ZERO), 2);
    let gone = async {
        while a.0.exists() || b.0.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), gone)
        .await
        .expect("a stopped process's /tmp is removed");

    // What a process that was never stopped cleanly left behind goes at the next start.
    let (left, _) = scratch(r#"{"scratch": "notes"}"#).await;
    let stale = left.parent().unwrap().with_file_name("999999");
    std::fs::create_dir_all(&stale).unwrap();
    let dir = p.stop().await;
    assert!(!left.exists(), "stopping the platform removes every /tmp");
    std::fs::create_dir_all(&stale).unwrap();
    let p = common::start_in(dir, |_| {}).await;
    assert!(!stale.exists(), "a stale /tmp is removed at start");
    let (_, lines) = scratch_of(&p, r#"{"scratch": "notes"}"#).await;
    assert_eq!(lines, 1, "nothing from before the restart");
}

/// Invokes the sample's `scratch` with `payload`: the file's path, and its lines.
async fn scratch_of(p: &common::TestPlatform, payload: &str) -> (PathBuf, u64) {
    let (_, error, body) = invoke(&p.lambda, "f:1", payload).await;
    assert_eq!(error, None, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    let path = PathBuf::from(v["scratch"]["path"].as_str().unwrap());
    (path, v["scratch"]["lines"].as_u64().unwrap())
}

/// EphemeralStorage and TracingConfig are validated, kept per version and shown back.
#[tokio::test]
async fn ephemeral_storage_and_tracing_are_kept() {
    use aws_sdk_lambda::types::{EphemeralStorage, TracingConfig, TracingMode};
    let p = start("kept-config").await;
    let storage = |size| EphemeralStorage::builder().size(size).build().unwrap();
    let e = p
        .sample_function("small")
        .ephemeral_storage(storage(256))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ValidationException"));
    assert_eq!(
        e.message(),
        Some(
            "1 validation error detected: Value '256' at 'ephemeralStorage.size' failed to satisfy constraint: Member must have value greater than or equal to 512"
        )
    );

    let created = p
        .sample_function("f")
        .ephemeral_storage(storage(1024))
        .tracing_config(TracingConfig::builder().mode(TracingMode::Active).build())
        .publish(true)
        .send()
        .await
        .unwrap();
    assert_eq!(created.ephemeral_storage().unwrap().size(), 1024);
    assert_eq!(
        created.tracing_config().unwrap().mode(),
        Some(&TracingMode::Active)
    );

    let e = p
        .lambda
        .update_function_configuration()
        .function_name("f")
        .ephemeral_storage(storage(10241))
        .send()
        .await
        .unwrap_err();
    assert!(
        e.message()
            .unwrap_or_default()
            .contains("Member must have value less than or equal to 10240"),
        "{e:?}"
    );
    let e = p
        .lambda
        .update_function_configuration()
        .function_name("f")
        .tracing_config(
            TracingConfig::builder()
                .mode(TracingMode::from("Sometimes"))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        Some(
            "1 validation error detected: Value 'Sometimes' at 'tracingConfig.mode' failed to satisfy constraint: Member must satisfy enum value set: [Active, PassThrough]"
        )
    );

    p.lambda
        .update_function_configuration()
        .function_name("f")
        .ephemeral_storage(storage(2048))
        .send()
        .await
        .unwrap();
    let published = p
        .lambda
        .publish_version()
        .function_name("f")
        .send()
        .await
        .unwrap();
    assert_eq!(
        published.version(),
        Some("2"),
        "a new size is a change to publish"
    );
    let size = async |qualifier: &str| {
        p.lambda
            .get_function_configuration()
            .function_name("f")
            .qualifier(qualifier)
            .send()
            .await
            .unwrap()
            .ephemeral_storage()
            .unwrap()
            .size()
    };
    assert_eq!((size("1").await, size("2").await), (1024, 2048));
    let dir = p.stop().await;
    let p = common::start_in(dir, |_| {}).await;
    let config = p
        .lambda
        .get_function_configuration()
        .function_name("f")
        .qualifier("1")
        .send()
        .await
        .unwrap();
    assert_eq!(config.ephemeral_storage().unwrap().size(), 1024);
    assert_eq!(
        config.tracing_config().unwrap().mode(),
        Some(&TracingMode::Active),
        "kept across a restart"
    );
}

/// AddPermission, GetPolicy and RemovePermission keep a policy per function, version and
/// alias, in Lambda's document shape, with its guards and messages.
#[tokio::test]
async fn resource_policies_are_kept_per_qualifier() {
    let p = start("policies").await;
    p.create_sample("f", &[], 3).await;
    p.lambda
        .create_alias()
        .function_name("f")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap();
    let topic = "arn:aws:sns:us-east-1:000000000000:orders";
    let policy = async |qualifier: Option<&str>| {
        p.lambda
            .get_policy()
            .function_name("f")
            .set_qualifier(qualifier.map(String::from))
            .send()
            .await
    };
    let e = policy(None).await.unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
    assert_eq!(
        e.message(),
        Some("The resource you requested does not exist.")
    );

    let grant = |sid: &str, action: &str| {
        p.lambda
            .add_permission()
            .function_name("f")
            .qualifier("live")
            .statement_id(sid)
            .action(action)
            .principal("sns.amazonaws.com")
            .source_arn(topic)
    };
    let e = grant("sns", "invoke").send().await.unwrap_err();
    assert_eq!(
        e.message(),
        Some(
            "1 validation error detected: Value 'invoke' at 'action' failed to satisfy constraint: Member must satisfy regular expression pattern: (lambda:[*]|lambda:[a-zA-Z]+|[*])"
        )
    );
    let added = grant("sns", "lambda:InvokeFunction").send().await.unwrap();
    let statement: serde_json::Value = serde_json::from_str(added.statement().unwrap()).unwrap();
    assert_eq!(statement["Sid"], "sns");
    assert_eq!(statement["Effect"], "Allow");
    assert_eq!(statement["Principal"]["Service"], "sns.amazonaws.com");
    assert_eq!(statement["Condition"]["ArnLike"]["AWS:SourceArn"], topic);
    assert!(
        statement["Resource"]
            .as_str()
            .unwrap()
            .ends_with(":function:f:live"),
        "{statement}"
    );
    let e = grant("sns", "lambda:InvokeFunction")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceConflictException"));
    assert_eq!(
        e.message(),
        Some(
            "The statement id (sns) provided already exists. Please provide a new statement id, or remove the existing statement."
        )
    );

    let live = policy(Some("live")).await.unwrap();
    let document: serde_json::Value = serde_json::from_str(live.policy().unwrap()).unwrap();
    assert_eq!(document["Version"], "2012-10-17");
    assert_eq!(document["Statement"].as_array().unwrap().len(), 1);
    assert_eq!(
        policy(None).await.unwrap_err().code(),
        Some("ResourceNotFoundException"),
        "the alias's policy is its own"
    );

    p.lambda
        .add_permission()
        .function_name("f")
        .statement_id("account")
        .action("lambda:GetFunction")
        .principal("123456789012")
        .send()
        .await
        .unwrap();
    let remove = |sid: &str, revision: &str| {
        p.lambda
            .remove_permission()
            .function_name("f")
            .qualifier("live")
            .statement_id(sid)
            .revision_id(revision)
    };
    let e = remove("sns", "stale").send().await.unwrap_err();
    assert_eq!(e.code(), Some("PreconditionFailedException"));
    let e = remove("nope", live.revision_id().unwrap())
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        Some("Statement nope is not found in resource policy.")
    );
    remove("sns", live.revision_id().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(
        policy(Some("live")).await.unwrap_err().code(),
        Some("ResourceNotFoundException")
    );

    // Kept across a restart; gone with the alias it was on.
    grant("again", "lambda:InvokeFunction")
        .send()
        .await
        .unwrap();
    let dir = p.stop().await;
    let p = common::start_in(dir, |_| {}).await;
    let kept = p
        .lambda
        .get_policy()
        .function_name("f")
        .send()
        .await
        .unwrap();
    let document: serde_json::Value = serde_json::from_str(kept.policy().unwrap()).unwrap();
    assert_eq!(
        document["Statement"][0]["Principal"]["AWS"],
        "arn:aws:iam::123456789012:root"
    );
    p.lambda
        .delete_alias()
        .function_name("f")
        .name("live")
        .send()
        .await
        .unwrap();
    p.lambda
        .create_alias()
        .function_name("f")
        .name("live")
        .function_version("1")
        .send()
        .await
        .unwrap();
    let e = p
        .lambda
        .get_policy()
        .function_name("f")
        .qualifier("live")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("ResourceNotFoundException"));
}

/// LoggingConfig is validated and kept; JSON turns the platform's lines into
/// `platform.start` and `platform.report` records, whose numbers (and the text REPORT's)
/// include the process's measured peak memory.
#[tokio::test]
async fn logging_config_shapes_the_log_tail() {
    use aws_sdk_lambda::types::{ApplicationLogLevel, LogFormat, LoggingConfig, SystemLogLevel};
    let p = start("logging").await;
    let e = p
        .sample_function("f")
        .logging_config(
            LoggingConfig::builder()
                .log_format(LogFormat::Text)
                .application_log_level(ApplicationLogLevel::Debug)
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameterValueException"));
    assert!(e.message().unwrap_or_default().contains("JSON"), "{e:?}");

    let created = p
        .sample_function("f")
        .memory_size(256)
        .logging_config(
            LoggingConfig::builder()
                .log_format(LogFormat::Json)
                .log_group("/custom/orders")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let logging = created.logging_config().unwrap();
    assert_eq!(logging.log_format(), Some(&LogFormat::Json));
    assert_eq!(logging.log_group(), Some("/custom/orders"));
    assert_eq!(
        logging.application_log_level(),
        Some(&ApplicationLogLevel::Info)
    );
    assert_eq!(logging.system_log_level(), Some(&SystemLogLevel::Info));

    let tail = async |payload: &str| {
        use base64::Engine;
        let out = p
            .lambda
            .invoke()
            .function_name("f")
            .log_type(aws_sdk_lambda::types::LogType::Tail)
            .payload(Blob::new(payload.as_bytes().to_vec()))
            .send()
            .await
            .unwrap();
        let log = base64::engine::general_purpose::STANDARD
            .decode(out.log_result().unwrap())
            .unwrap();
        String::from_utf8(log).unwrap()
    };
    let log = tail(r#"{"fail": true}"#).await;
    let lines: Vec<&str> = log.lines().collect();
    let start: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
    assert_eq!(start["type"], "platform.start", "{log}");
    assert_eq!(start["record"]["version"], "$LATEST");
    assert!(log.contains("failing request"), "{log}");
    let report: serde_json::Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(report["type"], "platform.report", "{log}");
    assert_eq!(report["record"]["status"], "error");
    assert_eq!(report["record"]["requestId"], start["record"]["requestId"]);
    let metrics = &report["record"]["metrics"];
    assert_eq!(metrics["memorySizeMB"], 256);
    let used = metrics["maxMemoryUsedMB"].as_u64().unwrap();
    assert!(
        (1..256).contains(&used),
        "the process's measured peak, not the configured size: {log}"
    );
    assert!(metrics["initDurationMs"].as_f64().unwrap() > 0.0, "{log}");

    // Back to text: the levels go, the REPORT line keeps the measured memory.
    let updated = p
        .lambda
        .update_function_configuration()
        .function_name("f")
        .logging_config(LoggingConfig::builder().log_format(LogFormat::Text).build())
        .send()
        .await
        .unwrap();
    let logging = updated.logging_config().unwrap();
    assert_eq!(logging.log_format(), Some(&LogFormat::Text));
    assert_eq!(logging.log_group(), Some("/custom/orders"), "kept");
    assert_eq!(logging.application_log_level(), None);
    let log = tail("{}").await;
    assert!(log.starts_with("START RequestId: "), "{log}");
    let used: u64 = log
        .split("Max Memory Used: ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{log}"));
    assert!((1..256).contains(&used), "{log}");

    let e = p
        .lambda
        .update_function_configuration()
        .function_name("f")
        .logging_config(
            LoggingConfig::builder()
                .log_format(LogFormat::from("XML"))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(
        e.message(),
        Some(
            "1 validation error detected: Value 'XML' at 'loggingConfig.logFormat' failed to satisfy constraint: Member must satisfy enum value set: [JSON, Text]"
        )
    );
}

/// A process that uses more memory than its function's memory size is killed, as Lambda
/// kills it: the invocation fails with Runtime.OutOfMemory, and the platform goes on
/// serving from a new process. A version that leaks runs out after a while.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_process_over_its_memory_size_is_killed() {
    let p = start("memory").await;
    p.create_sample("f", &[], 5).await;
    let (_, error, body) = invoke(
        &p.lambda,
        "f:1",
        r#"{"allocate_mb": 200, "sleep_ms": 1000}"#,
    )
    .await;
    assert_eq!(error.as_deref(), Some("Unhandled"), "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["errorType"], "Runtime.OutOfMemory", "{v}");
    assert!(
        v["errorMessage"]
            .as_str()
            .unwrap()
            .ends_with("Error: Runtime exited with error: signal: killed"),
        "{v}"
    );
    let (_, error, body) =
        invoke(&p.lambda, "f:1", r#"{"allocate_mb": 40, "sleep_ms": 200}"#).await;
    assert_eq!(error, None, "within 128 MB: {body}");

    // 16 MB more for every invocation, never given back.
    let leaking = p
        .publish_with_env("f", &[("SAMPLE_LEAK_KB", "16384")])
        .await;
    let mut served = 0;
    let mut out_of_memory = false;
    for _ in 0..60 {
        let (_, error, body) = invoke(&p.lambda, &format!("f:{leaking}"), "{}").await;
        if error.is_some() {
            assert!(body.contains("Runtime.OutOfMemory"), "{body}");
            out_of_memory = true;
            break;
        }
        served += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(out_of_memory, "a leaking version runs out of memory");
    assert!(served >= 4, "it served a while first: {served}");
    let (_, error, _) = invoke(&p.lambda, &format!("f:{leaking}"), "{}").await;
    assert_eq!(error, None, "a new process serves the next invocation");
}

/// Provisioned concurrency keeps processes started before any invocation: an alias's are
/// split between its versions by weight and follow the weights, they are never stopped for
/// being idle, and their invocations report no Init Duration.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn provisioned_concurrency_keeps_processes_ready() {
    let p = start("provisioned").await;
    p.split_sample("f", 3, 0.5).await;
    let put = |qualifier: &str, n: i32| {
        p.lambda
            .put_provisioned_concurrency_config()
            .function_name("f")
            .qualifier(qualifier)
            .provisioned_concurrent_executions(n)
            .send()
    };
    let get = async || {
        p.lambda
            .get_provisioned_concurrency_config()
            .function_name("f")
            .qualifier("live")
            .send()
            .await
    };
    let e = get().await.unwrap_err();
    assert_eq!(
        e.code(),
        Some("ProvisionedConcurrencyConfigNotFoundException")
    );
    let e = put("$LATEST", 1).await.unwrap_err();
    assert_eq!(
        e.message(),
        Some("Provisioned Concurrency Configs cannot be applied to unpublished function versions.")
    );
    let e = put("live", 100).await.unwrap_err();
    assert_eq!(e.code(), Some("InvalidParameterValueException"));

    let asked = put("live", 4).await.unwrap();
    assert_eq!(asked.requested_provisioned_concurrent_executions(), Some(4));
    assert_eq!(
        asked.status(),
        Some(&aws_sdk_lambda::types::ProvisionedConcurrencyStatusEnum::InProgress)
    );
    let platform = p.running.as_ref().unwrap().platform.clone();
    assert_eq!(
        platform.pools.idle_count(),
        4,
        "started before any invocation"
    );
    let mut ready = None;
    for _ in 0..100 {
        let shown = get().await.unwrap();
        if shown.available_provisioned_concurrent_executions() == Some(4) {
            ready = shown.status().cloned();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        ready,
        Some(aws_sdk_lambda::types::ProvisionedConcurrencyStatusEnum::Ready)
    );
    let listed = p
        .lambda
        .list_provisioned_concurrency_configs()
        .function_name("f")
        .send()
        .await
        .unwrap();
    let arns: Vec<&str> = listed
        .provisioned_concurrency_configs()
        .iter()
        .filter_map(|c| c.function_arn())
        .collect();
    assert!(
        arns.len() == 1 && arns[0].ends_with(":function:f:live"),
        "{arns:?}"
    );

    for _ in 0..8 {
        use base64::Engine;
        let out = p
            .lambda
            .invoke()
            .function_name("f:live")
            .log_type(aws_sdk_lambda::types::LogType::Tail)
            .send()
            .await
            .unwrap();
        let log = base64::engine::general_purpose::STANDARD
            .decode(out.log_result().unwrap())
            .unwrap();
        let log = String::from_utf8(log).unwrap();
        assert!(!log.contains("Init Duration"), "no cold start: {log}");
    }
    assert_eq!(platform.pools.reap(Duration::ZERO), 0, "never idle-stopped");

    // All the weight back on version 1: its share grows to 4, version 2's go back to being
    // ordinary warm processes, stopped when idle.
    p.lambda
        .update_alias()
        .function_name("f")
        .name("live")
        .routing_config(weights(&[]))
        .send()
        .await
        .unwrap();
    let mut stopped = 0;
    for _ in 0..100 {
        stopped += platform.pools.reap(Duration::ZERO);
        if stopped >= 2 && platform.pools.idle_count() == 4 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!((stopped, platform.pools.idle_count()), (2, 4));

    p.lambda
        .delete_provisioned_concurrency_config()
        .function_name("f")
        .qualifier("live")
        .send()
        .await
        .unwrap();
    assert_eq!(
        get().await.unwrap_err().code(),
        Some("ProvisionedConcurrencyConfigNotFoundException")
    );
    assert_eq!(platform.pools.reap(Duration::ZERO), 4, "ordinary again");
}
