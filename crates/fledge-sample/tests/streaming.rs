//! InvokeWithResponseStream through the official aws-sdk-lambda: a function's response
//! reaches the caller as it is written. The functions are real processes: the sample (on
//! `lambda_runtime`'s streaming responses, and answering all at once), and runtime-echo,
//! whose streams can end in Lambda's error trailers.

mod common;

use std::time::Duration;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::InvokeWithResponseStreamResponseEvent as Event;
use aws_sdk_lambda::types::LogType;
use base64::Engine;
use common::{ROLE, start};

/// The sample streams lines through lambda_runtime; the caller gets them byte for byte
/// after the metadata prelude lambda_runtime writes first, as Lambda passes it on. (How the
/// bytes fall into chunks depends on timing; that they arrive while the function runs is
/// the next test's.) Answered all at once, the sample's response is one chunk; failed, it is an
/// InvokeComplete with the error; with LogType Tail, the log comes with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sample_streams_and_answers_through_the_sdk() {
    let p = start("stream-sample").await;
    p.create_sample("s", &[], 5).await;
    let invoke = |payload: &str| {
        p.lambda
            .invoke_with_response_stream()
            .function_name("s")
            .qualifier("1")
            .payload(Blob::new(payload.to_owned()))
    };

    let out = invoke(r#"{"stream": 3, "stream_gap_ms": 50}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(out.executed_version(), Some("1"));
    let (chunks, complete) = common::read_stream(out).await;
    assert!(complete.error_code().is_none(), "{complete:?}");
    let all: Vec<u8> = chunks.concat();
    let text = String::from_utf8_lossy(&all);
    let lines = "line 0 from version 1\nline 1 from version 1\nline 2 from version 1\n";
    assert!(text.ends_with(lines), "{text:?}");
    let prelude_end = text
        .find("\0\0\0\0\0\0\0\0")
        .expect("the prelude's delimiter");
    let prelude: serde_json::Value = serde_json::from_str(&text[..prelude_end]).unwrap();
    assert_eq!(prelude["statusCode"], 200, "{prelude}");

    let (chunks, complete) = common::read_stream(invoke(r#"{"n": 7}"#).send().await.unwrap()).await;
    assert!(complete.error_code().is_none());
    assert_eq!(chunks.len(), 1);
    let answer: serde_json::Value = serde_json::from_slice(&chunks[0]).unwrap();
    assert_eq!(answer["event"]["n"], 7);
    assert_eq!(answer["version"], "1");

    let out = invoke(r#"{"fail": true}"#)
        .log_type(LogType::Tail)
        .send()
        .await
        .unwrap();
    let (chunks, complete) = common::read_stream(out).await;
    assert!(chunks.is_empty(), "{chunks:?}");
    assert!(complete.error_code().is_some_and(|c| !c.is_empty()));
    assert_eq!(
        complete.error_details(),
        Some("sample failure in version 1"),
        "{complete:?}"
    );
    let log = base64::engine::general_purpose::STANDARD
        .decode(complete.log_result().expect("the log tail"))
        .unwrap();
    let log = String::from_utf8(log).unwrap();
    assert!(
        log.contains("START RequestId")
            && log.contains("failing request")
            && log.contains("REPORT"),
        "{log}"
    );

    // A refusal before the first byte is still an HTTP error.
    p.lambda
        .put_function_concurrency()
        .function_name("s")
        .reserved_concurrent_executions(0)
        .send()
        .await
        .unwrap();
    let e = invoke("{}").send().await.unwrap_err();
    assert_eq!(e.code(), Some("TooManyRequestsException"), "{e:?}");
}

/// The caller has the first piece while the function is still running: the function
/// writes its second piece only once the test, having read the first, says so. A stream
/// that ends in Lambda's error trailers closes with their error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunks_arrive_while_the_function_runs() {
    let p = start("stream-echo").await;
    let echo = std::fs::read(env!("CARGO_BIN_EXE_runtime-echo")).unwrap();
    p.lambda
        .create_function()
        .function_name("echo")
        .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
        .handler("bootstrap")
        .role(ROLE)
        .timeout(20)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(common::zip_of(&[("bootstrap", 0o755, &echo)])))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let gates = common::Scratch::new("stream-gate");
    let gate = gates.join("go");
    let stream_echo = async |payload: String| {
        p.lambda
            .invoke_with_response_stream()
            .function_name("echo")
            .payload(Blob::new(payload))
            .send()
            .await
            .unwrap()
    };
    let payload = serde_json::json!({"stream": "first|second|third", "gate": gate}).to_string();
    let mut out = stream_echo(payload).await;
    let first = tokio::time::timeout(Duration::from_secs(10), out.event_stream.recv())
        .await
        .expect("the first piece arrives while the function waits for the test")
        .unwrap();
    match first {
        Some(Event::PayloadChunk(chunk)) => {
            assert_eq!(chunk.payload().unwrap().as_ref(), b"first");
        }
        other => panic!("expected the first piece, got {other:?}"),
    }
    std::fs::write(&gate, b"").unwrap();
    let (rest, complete) = common::read_stream(out).await;
    assert_eq!(rest.concat(), b"secondthird");
    assert!(complete.error_code().is_none(), "{complete:?}");

    let payload = r#"{"stream": "partial|answer", "error": "Stream.Broken"}"#;
    let (chunks, complete) = common::read_stream(stream_echo(payload.into()).await).await;
    assert_eq!(chunks.concat(), b"partialanswer");
    assert_eq!(complete.error_code(), Some("Stream.Broken"));
    assert_eq!(
        complete.error_details(),
        Some("the stream broke off after its last piece")
    );
    // The same function through Invoke: the stream is buffered, and its error reported.
    let out = p
        .lambda
        .invoke()
        .function_name("echo")
        .payload(Blob::new(payload))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), Some("Unhandled"));
}
