//! What the end-to-end tests share: a platform on a free port with its own data directory,
//! SDK clients pointed at it, and packages of the sample function.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::primitives::Blob;
use fledge_local::{Platform, PlatformConfig, RunningPlatform};

pub struct TestPlatform {
    pub running: Option<RunningPlatform>,
    pub dir: PathBuf,
    pub lambda: aws_sdk_lambda::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    pub endpoint: String,
}

pub fn temp_dir(tag: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let dir = std::env::temp_dir().join(format!("fledge-{tag}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A folder of a test's own, removed when dropped (also when the test fails).
pub struct Scratch(PathBuf);

impl Scratch {
    pub fn new(tag: &str) -> Scratch {
        Scratch(temp_dir(tag))
    }
}

impl std::ops::Deref for Scratch {
    type Target = std::path::Path;
    fn deref(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

pub async fn start(tag: &str) -> TestPlatform {
    start_in(temp_dir(tag), |_| {}).await
}

pub async fn start_in(dir: PathBuf, configure: impl FnOnce(&mut PlatformConfig)) -> TestPlatform {
    let mut config = PlatformConfig::new(&dir);
    configure(&mut config);
    let running = Platform::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let endpoint = running.endpoint();
    TestPlatform {
        lambda: lambda_client(&endpoint, true),
        cloudwatch: cloudwatch_client(&endpoint),
        running: Some(running),
        dir,
        endpoint,
    }
}

fn credentials() -> Credentials {
    Credentials::new("fledge", "fledge", None, None, "tests")
}

pub fn lambda_client(endpoint: &str, retries: bool) -> aws_sdk_lambda::Client {
    let mut b = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(credentials());
    if !retries {
        b = b.retry_config(aws_sdk_lambda::config::retry::RetryConfig::disabled());
    }
    aws_sdk_lambda::Client::from_conf(b.build())
}

pub fn cloudwatch_client(endpoint: &str) -> aws_sdk_cloudwatch::Client {
    let conf = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(aws_sdk_cloudwatch::config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
            "fledge", "fledge", None, None, "tests",
        ))
        .build();
    aws_sdk_cloudwatch::Client::from_conf(conf)
}

/// A deployment package: the sample function as `bootstrap`, plus `marker` so that each
/// package (and so each published version) can differ.
pub fn sample_zip(marker: &str) -> Vec<u8> {
    let binary = std::fs::read(env!("CARGO_BIN_EXE_fledge-sample")).unwrap();
    zip_of(&[
        ("bootstrap", 0o755, &binary),
        ("marker.txt", 0o644, marker.as_bytes()),
    ])
}

/// A package of `(name, Unix mode, contents)` files, stored rather than deflated:
/// compressing a 17 MB debug binary in a debug build takes seconds per package, and Lambda
/// takes either.
pub fn zip_of(files: &[(&str, u32, &[u8])]) -> Vec<u8> {
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut out);
    for (name, mode, contents) in files {
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Stored)
            .unix_permissions(*mode);
        w.start_file(*name, options).unwrap();
        w.write_all(contents).unwrap();
    }
    w.finish().unwrap();
    out.into_inner()
}

pub const ROLE: &str = "arn:aws:iam::123456789012:role/fledge-tests";

impl TestPlatform {
    /// CreateFunction for `name` from the sample's package (`provided.al2023`), for a test
    /// to add its options to and send.
    pub fn sample_function(
        &self,
        name: &str,
    ) -> aws_sdk_lambda::operation::create_function::builders::CreateFunctionFluentBuilder {
        self.lambda
            .create_function()
            .function_name(name)
            .runtime(aws_sdk_lambda::types::Runtime::Providedal2023)
            .handler("bootstrap")
            .role(ROLE)
            .code(
                aws_sdk_lambda::types::FunctionCode::builder()
                    .zip_file(Blob::new(sample_zip(name)))
                    .build(),
            )
    }

    /// Creates `name` from the sample with `env`, publishes it as version 1.
    pub async fn create_sample(&self, name: &str, env: &[(&str, &str)], timeout: i32) {
        let vars = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.sample_function(name)
            .timeout(timeout)
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .set_variables(Some(vars))
                    .build(),
            )
            .publish(true)
            .send()
            .await
            .unwrap();
    }

    /// Function `name` from the sample in two versions, behind alias `live`: version 1 with
    /// `weight` of the traffic on version 2. Answers version 2's number.
    pub async fn split_sample(&self, name: &str, timeout: i32, weight: f64) -> String {
        self.create_sample(name, &[], timeout).await;
        let v2 = self
            .publish_with_env(name, &[("SAMPLE_LATENCY_MS", "0")])
            .await;
        self.lambda
            .create_alias()
            .function_name(name)
            .name("live")
            .function_version("1")
            .routing_config(
                aws_sdk_lambda::types::AliasRoutingConfiguration::builder()
                    .additional_version_weights(&v2, weight)
                    .build(),
            )
            .send()
            .await
            .unwrap();
        v2
    }

    /// Sets `$LATEST`'s environment and publishes; answers the new version.
    pub async fn publish_with_env(&self, name: &str, env: &[(&str, &str)]) -> String {
        let vars = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        self.lambda
            .update_function_configuration()
            .function_name(name)
            .environment(
                aws_sdk_lambda::types::Environment::builder()
                    .set_variables(Some(vars))
                    .build(),
            )
            .send()
            .await
            .unwrap();
        self.lambda
            .publish_version()
            .function_name(name)
            .send()
            .await
            .unwrap()
            .version
            .unwrap()
    }

    /// Stops the platform and hands over its data directory, which is kept.
    pub async fn stop(mut self) -> PathBuf {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
        std::mem::take(&mut self.dir)
    }

    /// A raw HTTP request to the platform (for fledge's own admin endpoints).
    pub async fn admin(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let addr = self.endpoint.trim_start_matches("http://");
        let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).await.unwrap();
        let status = response[9..12].parse().unwrap();
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }
}

impl Drop for TestPlatform {
    fn drop(&mut self) {
        if !self.dir.as_os_str().is_empty() {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// Invokes and answers (executed version, function error?, payload).
pub async fn invoke(
    client: &aws_sdk_lambda::Client,
    function: &str,
    payload: &str,
) -> (String, Option<String>, String) {
    let out = client
        .invoke()
        .function_name(function)
        .payload(Blob::new(payload.as_bytes().to_vec()))
        .send()
        .await
        .unwrap();
    let body = out
        .payload
        .map(|p| String::from_utf8(p.into_inner()).unwrap())
        .unwrap_or_default();
    (
        out.executed_version.unwrap_or_default(),
        out.function_error,
        body,
    )
}

/// The AWS CLI as installed (`aws`), or through Python (`python3 -m awscli`).
pub fn aws_cli() -> Option<Vec<String>> {
    let candidates = [
        vec!["aws".to_string()],
        vec![
            "python3".to_string(),
            "-m".to_string(),
            "awscli".to_string(),
        ],
    ];
    candidates.into_iter().find(|c| {
        Command::new(&c[0])
            .args(&c[1..])
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// The AWS CLI for a test that needs it. Without one, the test says it skipped, except under
/// CI, which must have it.
pub fn aws_cli_or_skip() -> Option<Vec<String>> {
    let cli = aws_cli();
    if cli.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have the AWS CLI: .ci/run installs it with pip"
        );
        eprintln!("skipped: no AWS CLI here (pip install awscli); CI runs this test");
    }
    cli
}

/// Runs the AWS CLI against `endpoint` and answers its JSON output; fails on an error.
pub fn aws(cli: &[String], endpoint: &str, cwd: &Path, args: &[&str]) -> serde_json::Value {
    aws_with(cli, endpoint, cwd, &[], args).expect("the AWS CLI succeeds")
}

/// Runs the AWS CLI with `env` added; answers its JSON output, or its stderr on an error.
pub fn aws_with(
    cli: &[String],
    endpoint: &str,
    cwd: &Path,
    env: &[(&str, &str)],
    args: &[&str],
) -> Result<serde_json::Value, String> {
    let out = Command::new(&cli[0])
        .args(&cli[1..])
        .args(args)
        .args(["--endpoint-url", endpoint, "--output", "json"])
        .current_dir(cwd)
        .env("AWS_ACCESS_KEY_ID", "fledge")
        .env("AWS_SECRET_ACCESS_KEY", "fledge")
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_MAX_ATTEMPTS", "1")
        .env_remove("AWS_PROFILE")
        .envs(env.iter().copied())
        .output()
        .expect("the AWS CLI runs");
    if !out.status.success() {
        return Err(format!(
            "aws {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let text = String::from_utf8(out.stdout).unwrap();
    Ok(if text.trim().is_empty() {
        serde_json::Value::Null
    } else {
        serde_json::from_str(&text).unwrap()
    })
}

/// Every payload chunk of an InvokeWithResponseStream answer, and its closing event.
pub async fn read_stream(
    mut out: aws_sdk_lambda::operation::invoke_with_response_stream::InvokeWithResponseStreamOutput,
) -> (
    Vec<Vec<u8>>,
    aws_sdk_lambda::types::InvokeWithResponseStreamCompleteEvent,
) {
    use aws_sdk_lambda::types::InvokeWithResponseStreamResponseEvent as StreamEvent;
    let mut chunks = Vec::new();
    loop {
        match out
            .event_stream
            .recv()
            .await
            .expect("a well-formed event stream")
        {
            Some(StreamEvent::PayloadChunk(chunk)) => {
                chunks.push(
                    chunk
                        .payload()
                        .map(|p| p.as_ref().to_vec())
                        .unwrap_or_default(),
                );
            }
            Some(StreamEvent::InvokeComplete(complete)) => {
                assert!(
                    out.event_stream.recv().await.unwrap().is_none(),
                    "nothing follows InvokeComplete"
                );
                return (chunks, complete);
            }
            Some(other) => panic!("unexpected event {other:?}"),
            None => panic!("the stream ended without InvokeComplete"),
        }
    }
}

/// The `statistic` of `metric` for function `name` over the last 10 minutes, from the
/// CloudWatch API.
pub async fn metric_total(
    p: &TestPlatform,
    name: &str,
    metric: &str,
    statistic: aws_sdk_cloudwatch::types::Statistic,
) -> f64 {
    use aws_sdk_cloudwatch::primitives::DateTime;
    use aws_sdk_cloudwatch::types::Dimension;
    let now = std::time::SystemTime::now();
    let stats = p
        .cloudwatch
        .get_metric_statistics()
        .namespace("AWS/Lambda")
        .metric_name(metric)
        .dimensions(
            Dimension::builder()
                .name("FunctionName")
                .value(name)
                .build(),
        )
        .start_time(DateTime::from(now - std::time::Duration::from_secs(600)))
        .end_time(DateTime::from(now + std::time::Duration::from_secs(60)))
        .period(60)
        .statistics(statistic.clone())
        .send()
        .await
        .unwrap();
    stats
        .datapoints()
        .iter()
        .filter_map(|d| match statistic {
            aws_sdk_cloudwatch::types::Statistic::SampleCount => d.sample_count(),
            _ => d.sum(),
        })
        .sum()
}

/// `(Invocations, Errors)` of function `name` so far.
pub async fn invocations_and_errors(p: &TestPlatform, name: &str) -> (f64, f64) {
    use aws_sdk_cloudwatch::types::Statistic::Sum;
    (
        metric_total(p, name, "Invocations", Sum).await,
        metric_total(p, name, "Errors", Sum).await,
    )
}

/// `(Invocations, Errors)` of function `name` once its invocations reach `want`, or as they
/// stand after 10 s.
pub async fn invocations_reach(p: &TestPlatform, name: &str, want: f64) -> (f64, f64) {
    let mut seen = (0.0, 0.0);
    for _ in 0..200 {
        seen = invocations_and_errors(p, name).await;
        if seen.0 >= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    seen
}
