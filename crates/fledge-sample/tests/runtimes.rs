//! Functions other than the sample, as real processes through the same Runtime API,
//! versions and aliases: Python handlers run by AWS's runtime client for Python
//! (awslambdaric), Node.js handlers run by fledge's runtime client for Node.js, and the
//! shell-script custom runtime of AWS's documentation, which speaks the Runtime API through
//! curl.

mod common;

use aws_sdk_lambda::error::ProvideErrorMetadata;
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::{
    AliasRoutingConfiguration, Environment, FunctionCode, LogType, Runtime,
};
use base64::Engine;
use common::{ROLE, TestPlatform, start, start_in, temp_dir};
use fledge_local::runtimes::Runtimes;

const APP: &str = r#"
import os

print("init of", os.environ["AWS_LAMBDA_FUNCTION_VERSION"])

def handler(event, context):
    if event.get("fail"):
        raise ValueError("asked to fail")
    print("greeting with", os.environ["GREETING"])
    return {
        "greeting": os.environ["GREETING"],
        "version": context.function_version,
        "arn": context.invoked_function_arn,
        "remaining_ms": context.get_remaining_time_in_millis(),
        "request": context.aws_request_id,
        "event": event,
    }
"#;

/// A package of `(name, Unix mode, contents)` text files.
fn package(files: &[(&str, u32, &str)]) -> Vec<u8> {
    let files: Vec<(&str, u32, &[u8])> = files
        .iter()
        .map(|(name, mode, text)| (*name, *mode, text.as_bytes()))
        .collect();
    common::zip_of(&files)
}

fn python_zip() -> Vec<u8> {
    package(&[("app.py", 0o644, APP)])
}

/// The custom runtime from AWS's tutorial ("Building a custom runtime"), as published but
/// for its interpreter line: the tutorial's `#!/bin/sh` is bash on Amazon Linux, and
/// `set -o pipefail` needs bash where /bin/sh is another shell.
const SHELL_BOOTSTRAP: &str = r#"#!/bin/bash
set -euo pipefail

# Initialization - load function handler
source $LAMBDA_TASK_ROOT/"$(echo $_HANDLER | cut -d. -f1).sh"

# Processing
while true
do
  HEADERS="$(mktemp)"
  # Get an event. The HTTP request will block until one is received
  EVENT_DATA=$(curl -sS -LD "$HEADERS" "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/next")

  # Extract request ID by scraping response headers received above
  REQUEST_ID=$(grep -Fi Lambda-Runtime-Aws-Request-Id "$HEADERS" | tr -d '[:space:]' | cut -d: -f2)

  # Run the handler function from the script
  RESPONSE=$($(echo "$_HANDLER" | cut -d. -f2) "$EVENT_DATA")

  # Send the response
  curl "http://${AWS_LAMBDA_RUNTIME_API}/2018-06-01/runtime/invocation/$REQUEST_ID/response"  -d "$RESPONSE"
done
"#;

const SHELL_FUNCTION: &str = r#"function handler () {
  EVENT_DATA=$1
  echo "$EVENT_DATA" 1>&2;
  RESPONSE="Echoing request: '$EVENT_DATA'"

  echo $RESPONSE
}
"#;

/// Whether this machine can run `runtime` functions; in CI it must (`.ci/run` installs
/// awslambdaric and Node.js).
fn runs_here(runtime: &str) -> bool {
    let scratch = common::Scratch::new("probe");
    match Runtimes::new(None, None, scratch.to_path_buf()).launch(runtime) {
        Ok(_) => true,
        Err(why) => {
            assert!(
                std::env::var_os("CI").is_none(),
                "CI must run {runtime} functions: .ci/run installs what they need ({why})"
            );
            eprintln!("skipped: {why}");
            false
        }
    }
}

fn env(greeting: &str) -> Environment {
    Environment::builder()
        .variables("GREETING", greeting)
        .build()
}

fn json(blob: Option<Blob>) -> serde_json::Value {
    serde_json::from_slice(blob.expect("a payload").as_ref()).expect("JSON")
}

/// Creates `greeter` from `zip` on `runtime`: version 1 greets "hello", version 2
/// "bonjour" (its `GREETING`), and `live` splits 50/50 between them.
async fn greeter_behind_live(p: &TestPlatform, runtime: Runtime, handler: &str, zip: Vec<u8>) {
    p.lambda
        .create_function()
        .function_name("greeter")
        .runtime(runtime.clone())
        .handler(handler)
        .role(ROLE)
        .timeout(7)
        .environment(env("hello"))
        .code(FunctionCode::builder().zip_file(Blob::new(zip)).build())
        .publish(true)
        .send()
        .await
        .unwrap();
    p.lambda
        .update_function_configuration()
        .function_name("greeter")
        .environment(env("bonjour"))
        .send()
        .await
        .unwrap();
    let v2 = p
        .lambda
        .publish_version()
        .function_name("greeter")
        .send()
        .await
        .unwrap();
    assert_eq!(v2.version(), Some("2"));
    assert_eq!(v2.runtime(), Some(&runtime));
    p.lambda
        .create_alias()
        .function_name("greeter")
        .name("live")
        .function_version("1")
        .routing_config(
            AliasRoutingConfiguration::builder()
                .additional_version_weights("2", 0.5)
                .build(),
        )
        .send()
        .await
        .unwrap();
}

/// Invokes `greeter:live` `n` times: each answer comes from the version that says it ran,
/// with that version's environment and Lambda's context, and both versions serve.
async fn greets_by_version(p: &TestPlatform, n: i64) {
    let mut served = [0u32; 2];
    for i in 0..n {
        let out = p
            .lambda
            .invoke()
            .function_name("greeter:live")
            .payload(Blob::new(format!("{{\"n\":{i}}}")))
            .send()
            .await
            .unwrap();
        assert_eq!(out.function_error(), None);
        let request_id = {
            use aws_sdk_lambda::operation::RequestId;
            out.request_id().map(String::from)
        };
        let executed = out.executed_version().unwrap().to_string();
        let body = json(out.payload);
        let want = if executed == "1" { "hello" } else { "bonjour" };
        assert_eq!(body["greeting"], want, "version {executed} answered {body}");
        assert_eq!(body["version"], executed.as_str());
        assert_eq!(body["event"]["n"], i);
        assert_eq!(body["request"].as_str(), request_id.as_deref());
        assert!(
            body["arn"]
                .as_str()
                .unwrap()
                .ends_with(":function:greeter:live"),
            "{body}"
        );
        let remaining = body["remaining_ms"].as_i64().unwrap();
        assert!(
            (1..=7000).contains(&remaining),
            "the deadline follows the 7 s timeout: {remaining} ms left"
        );
        served[usize::from(executed == "2")] += 1;
    }
    assert!(
        served[0] > 0 && served[1] > 0,
        "both versions serve a 50/50 alias: {served:?}"
    );
}

/// Invokes `greeter:2` asking it to fail; answers the error body after checking it is a
/// function error of `error_type` saying "asked to fail".
async fn asked_to_fail(p: &TestPlatform, error_type: &str) -> serde_json::Value {
    let failed = p
        .lambda
        .invoke()
        .function_name("greeter:2")
        .payload(Blob::new(r#"{"fail":true}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(failed.function_error(), Some("Unhandled"));
    let error = json(failed.payload);
    assert_eq!(error["errorType"], error_type, "{error}");
    assert_eq!(error["errorMessage"], "asked to fail", "{error}");
    error
}

/// Invokes `greeter:2` with LogType Tail; answers the decoded log and the request id.
async fn log_tail(p: &TestPlatform) -> (String, String) {
    let tailed = p
        .lambda
        .invoke()
        .function_name("greeter:2")
        .log_type(LogType::Tail)
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap();
    let request_id = {
        use aws_sdk_lambda::operation::RequestId;
        tailed.request_id().unwrap().to_string()
    };
    let log = base64::engine::general_purpose::STANDARD
        .decode(tailed.log_result().unwrap())
        .unwrap();
    (String::from_utf8(log).unwrap(), request_id)
}

/// Two versions of a Python function behind a split alias: each invocation runs the version
/// the alias picked (its own environment), failures come back as Lambda reports them, and
/// the log tail carries what the handler printed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_versions_behind_a_split_alias() {
    if !runs_here("python3.12") {
        return;
    }
    let p = start("python").await;
    greeter_behind_live(&p, Runtime::Python312, "app.handler", python_zip()).await;
    greets_by_version(&p, 40).await;

    asked_to_fail(&p, "ValueError").await;
    let (log, _) = log_tail(&p).await;
    assert!(log.contains("greeting with bonjour"), "{log}");
    assert!(log.contains("REPORT RequestId:"), "{log}");
}

/// A handler whose module is not in the package fails its invocations with the error type
/// Lambda's Python runtime gives, and the function still answers the next call the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_handler_module_is_an_import_error() {
    if !runs_here("python3.12") {
        return;
    }
    let p = start("python-missing").await;
    p.lambda
        .create_function()
        .function_name("broken")
        .runtime(Runtime::Python312)
        .handler("missing.handler")
        .role(ROLE)
        .environment(env("x"))
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(python_zip()))
                .build(),
        )
        .send()
        .await
        .unwrap();
    for _ in 0..2 {
        let out = p
            .lambda
            .invoke()
            .function_name("broken")
            .payload(Blob::new("{}"))
            .send()
            .await
            .unwrap();
        assert_eq!(out.function_error(), Some("Unhandled"));
        let error = json(out.payload);
        assert_eq!(error["errorType"], "Runtime.ImportModuleError", "{error}");
        assert!(
            error["errorMessage"].as_str().unwrap().contains("missing"),
            "{error}"
        );
    }
}

/// Without an interpreter that has awslambdaric, a Python function is refused when it is
/// created, with what to install.
#[tokio::test]
async fn python_without_its_runtime_client_is_refused_clearly() {
    let p = start_in(temp_dir("python-none"), |c| {
        c.python = Some("/nonexistent/python3".into());
    })
    .await;
    let err = p
        .lambda
        .create_function()
        .function_name("greeter")
        .runtime(Runtime::Python312)
        .handler("app.handler")
        .role(ROLE)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(python_zip()))
                .build(),
        )
        .send()
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InvalidParameterValueException"));
    let message = err.message().unwrap();
    assert!(
        message.contains("/nonexistent/python3") && message.contains("pip install awslambdaric"),
        "{message}"
    );
    let listed = p.lambda.list_functions().send().await.unwrap();
    assert!(listed.functions().is_empty(), "nothing was created");
}

/// AWS's shell-script custom runtime: curl takes each event and posts the answer (as a
/// form, and with `Expect: 100-continue` when the body is large), the answer comes back as
/// the function wrote it, and what the handler wrote to stderr is in the log tail.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_shell_runtime_runs() {
    let tools = ["bash", "curl"].map(|tool| {
        std::process::Command::new(tool)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    if tools.contains(&false) {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI machines have bash and curl"
        );
        eprintln!("skipped: this test needs bash and curl");
        return;
    }
    let p = start("shell").await;
    p.lambda
        .create_function()
        .function_name("bash-runtime")
        .runtime(Runtime::Providedal2023)
        .handler("function.handler")
        .role(ROLE)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(package(&[
                    ("bootstrap", 0o755, SHELL_BOOTSTRAP),
                    ("function.sh", 0o755, SHELL_FUNCTION),
                ])))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let out = p
        .lambda
        .invoke()
        .function_name("bash-runtime")
        .log_type(LogType::Tail)
        .payload(Blob::new(r#"{"text":"Hello"}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), None);
    assert_eq!(out.executed_version(), Some("$LATEST"));
    let log = base64::engine::general_purpose::STANDARD
        .decode(out.log_result().unwrap())
        .unwrap();
    let body = String::from_utf8(out.payload.unwrap().into_inner()).unwrap();
    assert_eq!(body, r#"Echoing request: '{"text":"Hello"}'"#);
    let log = String::from_utf8(log).unwrap();
    assert!(log.contains("{\"text\":\"Hello\"}\n"), "{log}");

    // 60 KB: curl before 8.0 (Debian 12 has 7.88) asks `Expect: 100-continue` before a body
    // over 1 KB; a shell argument cannot be much larger.
    let text = "x".repeat(60_000);
    let out = p
        .lambda
        .invoke()
        .function_name("bash-runtime")
        .payload(Blob::new(format!(r#"{{"text":"{text}"}}"#)))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), None);
    let body = String::from_utf8(out.payload.unwrap().into_inner()).unwrap();
    assert_eq!(body, format!(r#"Echoing request: '{{"text":"{text}"}}'"#));
}

const NODE_INDEX: &str = r#"
exports.handler = async (event, context) => {
  if (event.fail) {
    throw new TypeError("asked to fail");
  }
  console.log("greeting with", process.env.GREETING);
  return {
    greeting: process.env.GREETING,
    version: context.functionVersion,
    arn: context.invokedFunctionArn,
    remaining_ms: context.getRemainingTimeInMillis(),
    request: context.awsRequestId,
    event,
  };
};
"#;

const NODE_LOGGER: &str = r#"
exports.handler = async () => {
  console.debug("too fine");
  console.info("kept", 1);
  console.warn("careful");
  return { group: process.env.AWS_LAMBDA_LOG_GROUP_NAME, format: process.env.AWS_LAMBDA_LOG_FORMAT };
};
"#;

const NODE_CONTEXT: &str = r#"
exports.handler = async (event, context) => ({ clientContext: context.clientContext ?? null });
"#;

const NODE_CALLBACK: &str = r#"
export function handler(event, context, callback) {
  setTimeout(() => callback(null, { callback: true, n: event.n }), 5);
}
"#;

const NODE_STREAMING: &str = r#"
export const handler = awslambda.streamifyResponse(async (event, responseStream, context) => {
  if (event.http) {
    responseStream = awslambda.HttpResponseStream.from(responseStream, {
      statusCode: 201,
      headers: { "x-version": context.functionVersion },
    });
  } else {
    responseStream.setContentType("text/plain");
  }
  for (const word of event.words) {
    responseStream.write(word);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (event.fail) {
    throw new RangeError("broke off midway");
  }
  responseStream.end();
});
"#;

/// A Node.js handler wrapped in `awslambda.streamifyResponse`, through
/// InvokeWithResponseStream: its writes arrive in order, an HTTP prelude comes first when
/// it asks for one, and an error thrown midway closes the stream with that error.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_functions_stream_their_responses() {
    if !runs_here("nodejs20.x") {
        return;
    }
    let p = start("node-stream").await;
    p.lambda
        .create_function()
        .function_name("streamer")
        .runtime(Runtime::Nodejs20x)
        .handler("stream.handler")
        .role(ROLE)
        .timeout(7)
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(package(&[("stream.mjs", 0o644, NODE_STREAMING)])))
                .build(),
        )
        .send()
        .await
        .unwrap();
    let stream = async |payload: &str| {
        let out = p
            .lambda
            .invoke_with_response_stream()
            .function_name("streamer")
            .payload(Blob::new(payload.to_owned()))
            .send()
            .await
            .unwrap();
        common::read_stream(out).await
    };
    let (chunks, done) = stream(r#"{"words": ["one ", "two ", "three"]}"#).await;
    assert!(done.error_code().is_none(), "{done:?}");
    assert_eq!(chunks.concat(), b"one two three");

    let (chunks, _) = stream(r#"{"words": ["<p>hi</p>"], "http": true}"#).await;
    let all = chunks.concat();
    let cut = all
        .windows(8)
        .position(|w| w == [0; 8])
        .expect("the prelude's delimiter");
    let prelude: serde_json::Value = serde_json::from_slice(&all[..cut]).unwrap();
    assert_eq!(prelude["statusCode"], 201);
    assert_eq!(prelude["headers"]["x-version"], "$LATEST");
    assert_eq!(&all[cut + 8..], b"<p>hi</p>");

    let (chunks, done) = stream(r#"{"words": ["partial"], "fail": true}"#).await;
    assert_eq!(chunks.concat(), b"partial");
    assert_eq!(done.error_code(), Some("RangeError"), "{done:?}");
    assert_eq!(done.error_details(), Some("broke off midway"));
}

/// Node.js handlers: two versions behind a split alias, each with its own environment and
/// Lambda's context; a thrown error in Lambda's shape; console output with Lambda's prefix in
/// the log tail; an ES module answering through a callback; and the init errors of a
/// missing module or export.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_functions_run_as_lambda_runs_them() {
    if !runs_here("nodejs20.x") {
        return;
    }
    let p = start("node").await;
    let zip = package(&[
        ("index.js", 0o644, NODE_INDEX),
        ("callback.mjs", 0o644, NODE_CALLBACK),
        ("context.js", 0o644, NODE_CONTEXT),
    ]);
    greeter_behind_live(&p, Runtime::Nodejs20x, "index.handler", zip).await;
    greets_by_version(&p, 30).await;

    let error = asked_to_fail(&p, "TypeError").await;
    assert!(
        error["trace"][0]
            .as_str()
            .is_some_and(|t| t.starts_with("TypeError: asked to fail")),
        "{error}"
    );
    let (log, request_id) = log_tail(&p).await;
    assert!(
        log.contains(&format!("\t{request_id}\tINFO\tgreeting with bonjour\n")),
        "{log}"
    );

    // The client context reaches the handler as the JSON object the caller encoded.
    p.lambda
        .update_function_configuration()
        .function_name("greeter")
        .handler("context.handler")
        .send()
        .await
        .unwrap();
    let context = serde_json::json!({"custom": {"tenant": "blue"}, "env": {"locale": "fr"}});
    let out = p
        .lambda
        .invoke()
        .function_name("greeter")
        .client_context(base64::engine::general_purpose::STANDARD.encode(context.to_string()))
        .payload(Blob::new("{}"))
        .send()
        .await
        .unwrap();
    assert_eq!(out.function_error(), None);
    assert_eq!(json(out.payload)["clientContext"], context);
    let bad = p
        .lambda
        .invoke()
        .function_name("greeter")
        .client_context("not base64 at all!")
        .send()
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Some("InvalidRequestContentException"));

    // An ES module answering through a callback, then the handlers that cannot load.
    for (handler, want) in [
        ("callback.handler", None),
        ("missing.handler", Some("Runtime.ImportModuleError")),
        ("index.nothere", Some("Runtime.HandlerNotFound")),
    ] {
        p.lambda
            .update_function_configuration()
            .function_name("greeter")
            .handler(handler)
            .send()
            .await
            .unwrap();
        let out = p
            .lambda
            .invoke()
            .function_name("greeter")
            .payload(Blob::new(r#"{"n":7}"#))
            .send()
            .await
            .unwrap();
        let body = json(out.payload.clone());
        match want {
            None => {
                assert_eq!(out.function_error(), None, "{body}");
                assert_eq!(body, serde_json::json!({"callback": true, "n": 7}));
            }
            Some(kind) => {
                assert_eq!(out.function_error(), Some("Unhandled"), "{body}");
                assert_eq!(body["errorType"], kind, "{handler}: {body}");
            }
        }
    }
}

/// With LoggingConfig's JSON format, a Node.js function's console lines are JSON records,
/// filtered by ApplicationLogLevel, and the platform's records by SystemLogLevel.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_logs_in_json_when_asked() {
    use aws_sdk_lambda::types::{ApplicationLogLevel, LogFormat, LoggingConfig, SystemLogLevel};
    if !runs_here("nodejs20.x") {
        return;
    }
    let p = start("node-json-logs").await;
    p.lambda
        .create_function()
        .function_name("logger")
        .runtime(Runtime::Nodejs20x)
        .handler("index.handler")
        .role(ROLE)
        .code(
            aws_sdk_lambda::types::FunctionCode::builder()
                .zip_file(Blob::new(package(&[("index.js", 0o644, NODE_LOGGER)])))
                .build(),
        )
        .logging_config(
            LoggingConfig::builder()
                .log_format(LogFormat::Json)
                .log_group("/custom/logger")
                .build(),
        )
        .send()
        .await
        .unwrap();
    let tail = async || {
        let out = p
            .lambda
            .invoke()
            .function_name("logger")
            .log_type(LogType::Tail)
            .send()
            .await
            .unwrap();
        let log = base64::engine::general_purpose::STANDARD
            .decode(out.log_result().unwrap())
            .unwrap();
        let records: Vec<serde_json::Value> = String::from_utf8(log)
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        (json(out.payload), records)
    };
    let (body, records) = tail().await;
    assert_eq!(
        body,
        serde_json::json!({"group": "/custom/logger", "format": "JSON"})
    );
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().or(r["level"].as_str()).unwrap())
        .collect();
    assert_eq!(kinds, ["platform.start", "INFO", "WARN", "platform.report"]);
    assert_eq!(records[1]["message"], "kept 1");
    assert_eq!(records[1]["requestId"], records[0]["record"]["requestId"]);

    let levels = |application, system| {
        p.lambda
            .update_function_configuration()
            .function_name("logger")
            .logging_config(
                LoggingConfig::builder()
                    .application_log_level(application)
                    .system_log_level(system)
                    .build(),
            )
            .send()
    };
    levels(ApplicationLogLevel::Warn, SystemLogLevel::Warn)
        .await
        .unwrap();
    let (_, records) = tail().await;
    let kinds: Vec<&str> = records
        .iter()
        .map(|r| r["type"].as_str().or(r["level"].as_str()).unwrap())
        .collect();
    assert_eq!(kinds, ["WARN"], "{records:?}");
}
