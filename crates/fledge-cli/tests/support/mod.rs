//! What the end-to-end tests and benches share: the sample function's package and clients of
//! fledge local.

#![allow(dead_code)]

use std::io::Write;

use aws_sdk_lambda::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_lambda::types::Environment;

/// A `provided.al2023` package whose `bootstrap` runs the sample function in the `fledge`
/// binary under test.
pub fn package() -> Vec<u8> {
    let script = format!(
        "#!/bin/sh\nexec '{}' sample-function\n",
        env!("CARGO_BIN_EXE_fledge")
    );
    let mut out = std::io::Cursor::new(Vec::new());
    let mut w = zip::ZipWriter::new(&mut out);
    w.start_file(
        "bootstrap",
        zip::write::SimpleFileOptions::default().unix_permissions(0o755),
    )
    .unwrap();
    w.write_all(script.as_bytes()).unwrap();
    w.finish().unwrap();
    out.into_inner()
}

/// Creates SNS topic `name` on fledge local at `endpoint` (the query protocol, as the AWS
/// CLI would) and answers its ARN.
pub async fn create_topic(http: &reqwest::Client, endpoint: &str, name: &str) -> String {
    let created = http
        .post(endpoint)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("Action=CreateTopic&Version=2010-03-31&Name={name}"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    created
        .split("<TopicArn>")
        .nth(1)
        .and_then(|t| t.split("</TopicArn>").next())
        .unwrap_or_else(|| panic!("no TopicArn in {created}"))
        .to_owned()
}

/// A function's environment variables.
pub fn env(pairs: &[(&str, &str)]) -> Environment {
    Environment::builder()
        .set_variables(Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ))
        .build()
}

/// The official Lambda client, pointed at fledge local.
pub fn lambda_client(endpoint: &str) -> aws_sdk_lambda::Client {
    let conf = aws_sdk_lambda::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .endpoint_url(endpoint)
        .region(Region::new("us-east-1"))
        .credentials_provider(Credentials::new("t", "t", None, None, "tests"))
        .build();
    aws_sdk_lambda::Client::from_conf(conf)
}

/// Creates function `name` from the sample package with `vars`, and publishes version 1.
pub async fn create_sample(lambda: &aws_sdk_lambda::Client, name: &str, vars: &[(&str, &str)]) {
    use aws_sdk_lambda::primitives::Blob;
    use aws_sdk_lambda::types::{FunctionCode, Runtime};
    lambda
        .create_function()
        .function_name(name)
        .runtime(Runtime::Providedal2023)
        .handler("bootstrap")
        .role("arn:aws:iam::123456789012:role/t")
        .environment(env(vars))
        .code(
            FunctionCode::builder()
                .zip_file(Blob::new(package()))
                .build(),
        )
        .publish(true)
        .send()
        .await
        .unwrap();
}

/// GET `url`; the body.
pub async fn get_text(http: &reqwest::Client, url: &str) -> String {
    http.get(url).send().await.unwrap().text().await.unwrap()
}

/// A fresh directory under the system's temporary one, named for the test.
pub fn temp_dir(tag: &str) -> std::path::PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    std::env::temp_dir().join(format!("fledge-{tag}-{}-{nanos}", std::process::id()))
}

/// Starts the `fledge` binary with `args` and returns it once a line of its stderr contains
/// `marker`, with what follows the marker on that line. The rest of stderr is drained, so
/// the process never blocks on a full pipe.
pub fn spawn_until(
    args: &[&str],
    env: &[(&str, &str)],
    marker: &str,
) -> (std::process::Child, String) {
    use std::io::{BufRead, BufReader};
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_fledge"))
        .args(args)
        .envs(env.iter().copied())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let rest = loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("fledge {args:?} exited before printing '{marker}'"))
            .unwrap();
        if let Some(i) = line.find(marker) {
            break line[i + marker.len()..].to_owned();
        }
    };
    std::thread::spawn(move || lines.for_each(drop));
    (child, rest)
}

/// A webhook receiver on loopback: answers every POST with 200 and keeps the JSON bodies.
pub struct Webhook {
    pub url: String,
    pub bodies: std::sync::Arc<std::sync::Mutex<Vec<serde_json::Value>>>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let kept = bodies.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let kept = kept.clone();
                tokio::spawn(async move {
                    let mut stream = BufReader::new(stream);
                    // One request after another on a kept-alive connection.
                    loop {
                        let mut length = 0;
                        let mut line = String::new();
                        loop {
                            line.clear();
                            if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let header = line.trim_end().to_ascii_lowercase();
                            if header.is_empty() {
                                break;
                            }
                            if let Some(v) = header.strip_prefix("content-length:") {
                                length = v.trim().parse().unwrap_or(0);
                            }
                        }
                        let mut body = vec![0; length];
                        if stream.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        if let Ok(v) = serde_json::from_slice(&body) {
                            kept.lock().unwrap().push(v);
                        }
                        let answer = b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok";
                        if stream.get_mut().write_all(answer).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        Webhook { url, bodies }
    }

    pub fn received(&self) -> Vec<serde_json::Value> {
        self.bodies.lock().unwrap().clone()
    }
}
