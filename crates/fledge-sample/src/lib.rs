//! fledge's sample function: one code that makes a good version or a bad one, built on the
//! official `lambda_runtime` crate.
//!
//! Environment (set per version with UpdateFunctionConfiguration, then PublishVersion):
//! - `SAMPLE_ERROR_RATE`: share of invocations that fail (0..1, default 0);
//! - `SAMPLE_LATENCY_MS`: how long each invocation takes (default 0);
//! - `SAMPLE_JITTER_MS`: up to this much more, at random (default 0);
//! - `SAMPLE_RESPONSE`: a JSON value to answer with (default: the version and the event);
//! - `SAMPLE_LEAK_KB`: memory each invocation takes and never gives back (default 0), so
//!   that a version leaks until it runs out of memory;
//! - `SAMPLE_METRICS_NAMESPACE`: publish business metrics in CloudWatch's embedded metric
//!   format under this namespace: `Orders` (1 per invocation) and `OrdersFailed` (1 when it
//!   fails), by `Version`.
//!
//! The event can also steer one invocation: `{"fail": true}` fails it, `{"sleep_ms": N}`
//! makes it take N ms, `{"allocate_mb": N}` makes it hold N MB while it runs, `{"exit": CODE}` ends the process mid-invocation, and
//! `{"stream": N}` answers with a response stream of N lines (`{"stream_gap_ms": M}` apart),
//! as a function invoked through InvokeWithResponseStream does, and `{"scratch": NAME}` adds
//! a line to the file NAME in the process's temporary folder (`/tmp` on Lambda) and answers
//! `{"version", "scratch": {"path", "lines"}}` with the lines it now has.
//!
//! Invoked by an SNS subscription, it takes the message (`Records[0].Sns.Message`), when
//! that is a JSON object, as its event: a message can steer it as an event can.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

pub use lambda_runtime::Error;
use lambda_runtime::streaming::{Body, Response};
use lambda_runtime::{FunctionResponse, LambdaEvent, service_fn};
use serde_json::{Value, json};

struct Settings {
    error_rate: f64,
    latency: Duration,
    jitter_ms: u64,
    response: Option<Value>,
    version: String,
    metrics_namespace: Option<String>,
    leak_kb: u64,
}

fn env_number(name: &str) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn settings() -> Settings {
    Settings {
        error_rate: env_number("SAMPLE_ERROR_RATE").clamp(0.0, 1.0),
        latency: Duration::from_millis(env_number("SAMPLE_LATENCY_MS").max(0.0) as u64),
        jitter_ms: env_number("SAMPLE_JITTER_MS").max(0.0) as u64,
        response: std::env::var("SAMPLE_RESPONSE")
            .ok()
            .and_then(|r| serde_json::from_str(&r).ok()),
        version: std::env::var("AWS_LAMBDA_FUNCTION_VERSION").unwrap_or_else(|_| "$LATEST".into()),
        metrics_namespace: std::env::var("SAMPLE_METRICS_NAMESPACE")
            .ok()
            .filter(|n| !n.is_empty()),
        leak_kb: env_number("SAMPLE_LEAK_KB").max(0.0) as u64,
    }
}

/// A small generator seeded from the process id and the clock: the sample needs spread,
/// not reproducibility.
fn uniform() -> f64 {
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut s = STATE.load(Ordering::Relaxed);
    if s == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        s = nanos ^ (u64::from(std::process::id()) << 17) | 1;
    }
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    STATE.store(s, Ordering::Relaxed);
    (s >> 11) as f64 / (1u64 << 53) as f64
}

/// The error the sample fails with; its type name becomes the invocation's `errorType`.
#[derive(Debug)]
struct SampleFailure(String);

impl std::fmt::Display for SampleFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for SampleFailure {}

/// The message of an SNS event, when it is a JSON object; any other event as it is.
fn from_sns(event: Value) -> Value {
    event
        .pointer("/Records/0/Sns/Message")
        .and_then(Value::as_str)
        .and_then(|m| serde_json::from_str::<Value>(m).ok())
        .filter(Value::is_object)
        .unwrap_or(event)
}

/// Adds a line to `name` in the temporary folder and tells how many lines it holds: what
/// an earlier invocation of the same process left there counts.
fn scratch(version: &str, name: &str) -> Result<Value, Error> {
    use std::io::Write;
    if name.is_empty() || name.contains(['/', '\\']) || name.starts_with('.') {
        return Err(format!("scratch file name {name:?} must be a plain file name").into());
    }
    let path = std::env::temp_dir().join(name);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?
        .write_all(format!("written by version {version}\n").as_bytes())?;
    let lines = std::fs::read_to_string(&path)?.lines().count();
    Ok(json!({
        "version": version,
        "scratch": {"path": path.display().to_string(), "lines": lines},
    }))
}

/// Runs the sample function against the Runtime API named by `AWS_LAMBDA_RUNTIME_API`.
pub async fn run() -> Result<(), Error> {
    let settings: &'static Settings = Box::leak(Box::new(settings()));
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Value>| {
        handle(settings, event)
    }))
    .await
}

async fn handle(
    s: &Settings,
    event: LambdaEvent<Value>,
) -> Result<FunctionResponse<Value, Body>, Error> {
    let payload = from_sns(event.payload);
    if let Some(code) = payload.get("exit").and_then(Value::as_i64) {
        std::process::exit(code as i32);
    }
    // Memory really used: every byte written, so that it is resident.
    let held = payload
        .get("allocate_mb")
        .and_then(Value::as_u64)
        .map(|mb| vec![1u8; (mb as usize) << 20]);
    if s.leak_kb > 0 {
        static LEAKED: std::sync::Mutex<Vec<Vec<u8>>> = std::sync::Mutex::new(Vec::new());
        let leak = vec![1u8; (s.leak_kb as usize) << 10];
        LEAKED.lock().unwrap_or_else(|e| e.into_inner()).push(leak);
    }
    let extra = if s.jitter_ms > 0 {
        (uniform() * s.jitter_ms as f64) as u64
    } else {
        0
    };
    let sleep = payload.get("sleep_ms").and_then(Value::as_u64).map_or(
        s.latency + Duration::from_millis(extra),
        Duration::from_millis,
    );
    if !sleep.is_zero() {
        tokio::time::sleep(sleep).await;
    }
    drop(held);
    let fail = payload
        .get("fail")
        .and_then(Value::as_bool)
        .unwrap_or(false)
        || (s.error_rate > 0.0 && uniform() < s.error_rate);
    if let Some(namespace) = &s.metrics_namespace {
        // One line in the embedded metric format; the platform (CloudWatch Logs on AWS)
        // turns it into metrics.
        let line = json!({
            "_aws": {
                "Timestamp": std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0, |d| d.as_millis() as u64),
                "CloudWatchMetrics": [{
                    "Namespace": namespace,
                    "Dimensions": [["Version"]],
                    "Metrics": [{"Name": "Orders", "Unit": "Count"}, {"Name": "OrdersFailed", "Unit": "Count"}],
                }],
            },
            "Version": s.version,
            "Orders": 1,
            "OrdersFailed": u8::from(fail),
        });
        println!("{line}");
    }
    if fail {
        println!(
            "version {} failing request {}",
            s.version, event.context.request_id
        );
        return Err(Box::new(SampleFailure(format!(
            "sample failure in version {}",
            s.version
        ))));
    }
    if let Some(name) = payload.get("scratch").and_then(Value::as_str) {
        return scratch(&s.version, name).map(FunctionResponse::BufferedResponse);
    }
    if let Some(lines) = payload.get("stream").and_then(Value::as_u64) {
        let gap = Duration::from_millis(
            payload
                .get("stream_gap_ms")
                .and_then(Value::as_u64)
                .unwrap_or(0),
        );
        let (mut sender, body) = lambda_runtime::streaming::channel();
        let version = s.version.clone();
        tokio::spawn(async move {
            for line in 0..lines {
                if line > 0 && !gap.is_zero() {
                    tokio::time::sleep(gap).await;
                }
                let text = format!("line {line} from version {version}\n");
                if sender.send_data(text.into()).await.is_err() {
                    return;
                }
            }
        });
        return Ok(FunctionResponse::StreamingResponse(Response::from(body)));
    }
    Ok(FunctionResponse::BufferedResponse(
        s.response
            .clone()
            .unwrap_or_else(|| json!({"version": s.version, "event": payload})),
    ))
}
