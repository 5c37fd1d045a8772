//! Notifications: every notable record of a deployment goes to its sinks.
//!
//! - `fledge serve` ([`run`]): they are queued in the store in the same transaction as the
//!   record, delivered by one task apart from every driver (a slow or failing sink never
//!   delays a rollback), retried with backoff, and a delivery that still fails is marked
//!   `failed` with its last error for the API and `/metrics` to show.
//! - `fledge deploy` ([`Notifier`]): straight from the process, one task per sink taking the
//!   records in order with the same retries; what still failed is answered at the end.

use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::store::Store;

/// Where notifications go.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Sink {
    /// POST the notification as JSON; its `text` field makes it a Slack incoming webhook
    /// message as it is. A 2xx answer is a delivery.
    Webhook { url: String },
    /// Run with `sh -c`, the notification as JSON on stdin; exit status 0 is a delivery.
    Command { command: String },
    /// Publish to an SNS topic through the SDK: the `text` as the subject's source, the JSON
    /// as the message.
    Sns { topic_arn: String },
}

impl std::fmt::Display for Sink {
    /// As it is written on the command line: `webhook:URL`, `command:CMD`, `sns:TOPIC_ARN`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Sink::Webhook { url } => write!(f, "webhook:{url}"),
            Sink::Command { command } => write!(f, "command:{command}"),
            Sink::Sns { topic_arn } => write!(f, "sns:{topic_arn}"),
        }
    }
}

impl Sink {
    /// Reads `webhook:URL`, `command:CMD` or `sns:TOPIC_ARN`; a bare `http(s)://` URL is a
    /// webhook and a bare `arn:…:sns:…` a topic.
    pub fn parse(text: &str) -> Result<Sink, String> {
        if let Some(arn) = text.strip_prefix("sns:").or(text
            .starts_with("arn:")
            .then_some(text)
            .filter(|t| t.split(':').nth(2) == Some("sns")))
        {
            let parts: Vec<&str> = arn.split(':').collect();
            if parts.len() != 6 || parts[0] != "arn" || parts[2] != "sns" || parts[5].is_empty() {
                return Err(format!(
                    "notification sink '{text}': '{arn}' is not an SNS topic ARN (arn:aws:sns:REGION:ACCOUNT:TOPIC)"
                ));
            }
            return Ok(Sink::Sns {
                topic_arn: arn.into(),
            });
        }
        if let Some(url) = text.strip_prefix("webhook:") {
            return Ok(Sink::Webhook { url: url.into() });
        }
        if let Some(command) = text.strip_prefix("command:") {
            return Ok(Sink::Command {
                command: command.into(),
            });
        }
        if text.starts_with("http://") || text.starts_with("https://") {
            return Ok(Sink::Webhook { url: text.into() });
        }
        Err(format!(
            "notification sink '{text}' is not understood; give webhook:URL (or a bare http(s) URL), command:CMD or sns:TOPIC_ARN"
        ))
    }
}

/// How often a notification is tried before it is marked failed, by default.
pub const DEFAULT_ATTEMPTS: u32 = 5;
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The wait before attempt `attempt + 1` (1 s, 2 s, 4 s, …).
pub fn retry_delay(attempt: u32) -> Duration {
    Duration::from_secs(1 << attempt.min(6).saturating_sub(1))
}

/// The JSON a sink receives: the record, the deployment it belongs to, and a one-line `text`.
pub fn message(deployment_id: &str, record: &Value) -> Value {
    let r = record;
    let s = |k: &str| {
        r.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let pct = |k: &str| r.get(k).and_then(Value::as_f64).unwrap_or(0.0) * 100.0;
    let event = s("event");
    let detail = match event.as_str() {
        "started" => format!(
            "started: {}:{} → version {}",
            s("function"),
            s("alias"),
            r.get("target").cloned().unwrap_or_default()
        ),
        "step_applied" => format!(
            "step {}/{}: {:.4}% of traffic on the new version",
            r["step"],
            r["steps"],
            pct("weight")
        ),
        "rollback_started" => format!("rolling back: {}", s("reason")),
        "finished" => format!("finished {}: {}", s("outcome"), s("reason")),
        "operator" => format!("operator {}: {}", s("command"), s("detail")),
        "hook_finished" => format!("hook {} failed: {}", s("function"), s("detail")),
        "alias_changed_externally" => {
            "the alias was changed by someone else; fledge stopped and left it alone".into()
        }
        other => other.replace('_', " "),
    };
    json!({
        "text": format!("fledge {deployment_id}: {detail}"),
        "deployment": deployment_id,
        "event": event,
        "record": r,
    })
}

/// SNS clients, one per region named in topic ARNs, against one endpoint (fledge local's,
/// or AWS when none).
pub struct SnsClients {
    endpoint: Option<String>,
    clients: tokio::sync::Mutex<std::collections::HashMap<String, fledge_aws::Aws>>,
}

impl SnsClients {
    pub fn new(endpoint: Option<String>) -> SnsClients {
        SnsClients {
            endpoint,
            clients: tokio::sync::Mutex::new(std::collections::HashMap::new()),
        }
    }

    async fn client(&self, region: &str) -> fledge_aws::Aws {
        let mut clients = self.clients.lock().await;
        if let Some(c) = clients.get(region) {
            return c.clone();
        }
        let aws = fledge_aws::Aws::connect(self.endpoint.as_deref(), Some(region)).await;
        clients.insert(region.to_owned(), aws.clone());
        aws
    }
}

/// One delivery attempt of `record` of deployment `deployment_id` to `sink`.
async fn deliver(
    client: &reqwest::Client,
    sns: &SnsClients,
    deployment_id: &str,
    sink: &Sink,
    record: &Value,
) -> Result<(), String> {
    let body = message(deployment_id, record);
    match sink {
        Sink::Sns { topic_arn } => {
            let region = topic_arn.split(':').nth(3).unwrap_or_default();
            let aws = sns.client(region).await;
            // SNS subjects are ASCII, at most 100 characters, without control characters.
            let subject: String = format!(
                "fledge {deployment_id}: {}",
                body["event"].as_str().unwrap_or_default()
            )
            .chars()
            .filter(|c| c.is_ascii() && !c.is_ascii_control())
            .take(100)
            .collect();
            let text = body.to_string();
            let publish = aws.publish(topic_arn, &subject, &text);
            match tokio::time::timeout(DELIVERY_TIMEOUT, publish).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(format!("SNS Publish to {topic_arn}: {}", e.message)),
                Err(_) => Err(format!(
                    "SNS Publish to {topic_arn} took longer than {DELIVERY_TIMEOUT:?}"
                )),
            }
        }
        Sink::Webhook { url } => {
            let answer = client
                .post(url)
                .header("content-type", "application/json")
                .body(body.to_string())
                .timeout(DELIVERY_TIMEOUT)
                .send()
                .await
                .map_err(|e| format!("POST {url}: {e}"))?;
            if answer.status().is_success() {
                Ok(())
            } else {
                Err(format!("POST {url} answered {}", answer.status()))
            }
        }
        Sink::Command { command } => {
            let run = async {
                let mut child = tokio::process::Command::new("sh")
                    .arg("-c")
                    .arg(command)
                    .env("FLEDGE_DEPLOYMENT", deployment_id)
                    .env("FLEDGE_EVENT", body["event"].as_str().unwrap_or_default())
                    .stdin(Stdio::piped())
                    .stdout(Stdio::null())
                    .stderr(Stdio::piped())
                    .kill_on_drop(true)
                    .spawn()
                    .map_err(|e| format!("could not start `{command}`: {e}"))?;
                if let Some(mut stdin) = child.stdin.take() {
                    let _ = stdin.write_all(body.to_string().as_bytes()).await;
                }
                let out = child
                    .wait_with_output()
                    .await
                    .map_err(|e| format!("`{command}`: {e}"))?;
                if out.status.success() {
                    Ok(())
                } else {
                    let stderr = String::from_utf8_lossy(&out.stderr);
                    Err(format!(
                        "`{command}` exited with {}: {}",
                        out.status,
                        stderr.trim()
                    ))
                }
            };
            tokio::time::timeout(DELIVERY_TIMEOUT, run)
                .await
                .unwrap_or_else(|_| {
                    Err(format!("`{command}` took longer than {DELIVERY_TIMEOUT:?}"))
                })
        }
    }
}

/// Delivers the store's outbox until the process ends, trying each notification up to
/// `attempts` times.
pub async fn run(store: Store, attempts: u32, sns: SnsClients) {
    let attempts = attempts.max(1);
    let sns = std::sync::Arc::new(sns);
    let wake = store.queued();
    let client = reqwest::Client::new();
    loop {
        let due = match store.due_notifications(256).await {
            Ok(due) => due,
            Err(e) => {
                tracing::error!("could not read the notification outbox: {e}");
                Vec::new()
            }
        };
        let mut tasks = tokio::task::JoinSet::new();
        for row in due {
            let (client, store, sns) = (client.clone(), store.clone(), sns.clone());
            tasks.spawn(async move {
                let result = deliver(&client, &sns, &row.deployment_id, &row.sink, &row.body).await;
                let attempt = row.attempts + 1;
                let retry_at = match &result {
                    Err(e) if attempt < attempts => {
                        tracing::warn!("notification {} (attempt {attempt}): {e}", row.id);
                        Some(now_ms() + retry_delay(attempt).as_millis() as i64)
                    }
                    Err(e) => {
                        tracing::error!(
                            "notification {} of {} failed {attempt} times; giving up: {e}",
                            row.id,
                            row.deployment_id
                        );
                        None
                    }
                    Ok(()) => None,
                };
                if let Err(e) = store.notified(row.id, result, retry_at).await {
                    tracing::error!("could not record notification {}: {e}", row.id);
                }
            });
        }
        let had_work = !tasks.is_empty();
        tasks.join_all().await;
        if had_work {
            continue;
        }
        let wait = match store.next_notification_at().await {
            Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(0, 1000) as u64),
            _ => Duration::from_secs(1),
        };
        tokio::select! {
            () = wake.notified() => {}
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// A notification `fledge deploy` could not deliver.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Undelivered {
    /// As written: `webhook:URL`, `command:CMD` or `sns:TOPIC_ARN`.
    pub sink: String,
    /// The record's event (`started`, `finished`, …).
    pub event: String,
    pub attempts: u32,
    pub error: String,
}

/// Notifications straight from this process, for `fledge deploy`: one task per sink takes
/// the records in the order they were sent and delivers each, retried 1 s, 2 s, 4 s… apart,
/// without ever holding the rollout back.
pub struct Notifier {
    queues: Vec<tokio::sync::mpsc::UnboundedSender<Value>>,
    tasks: tokio::task::JoinSet<Vec<Undelivered>>,
}

impl Notifier {
    /// `endpoint` is where SNS is (fledge local's), or AWS when `None`.
    pub fn new(
        deployment_id: &str,
        sinks: Vec<Sink>,
        attempts: u32,
        endpoint: Option<String>,
    ) -> Notifier {
        let attempts = attempts.max(1);
        let sns = std::sync::Arc::new(SnsClients::new(endpoint));
        let client = reqwest::Client::new();
        let mut queues = Vec::new();
        let mut tasks = tokio::task::JoinSet::new();
        for sink in sinks {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Value>();
            queues.push(tx);
            let (client, sns, id) = (client.clone(), sns.clone(), deployment_id.to_owned());
            tasks.spawn(async move {
                let mut undelivered = Vec::new();
                while let Some(record) = rx.recv().await {
                    let mut attempt = 1;
                    while let Err(error) = deliver(&client, &sns, &id, &sink, &record).await {
                        if attempt >= attempts {
                            undelivered.push(Undelivered {
                                sink: sink.to_string(),
                                event: record["event"].as_str().unwrap_or_default().into(),
                                attempts: attempt,
                                error,
                            });
                            break;
                        }
                        tokio::time::sleep(retry_delay(attempt)).await;
                        attempt += 1;
                    }
                }
                undelivered
            });
        }
        Notifier { queues, tasks }
    }

    /// Queues `record` for every sink.
    pub fn send(&self, record: &fledge_core::rollout::Record) {
        let Ok(value) = serde_json::to_value(record) else {
            return;
        };
        for queue in &self.queues {
            let _ = queue.send(value.clone());
        }
    }

    /// Whether there is any sink at all.
    pub fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// Waits until every queued notification is delivered or has used its attempts;
    /// answers the ones that were not delivered.
    pub async fn finish(self) -> Vec<Undelivered> {
        drop(self.queues);
        let mut undelivered: Vec<Undelivered> =
            self.tasks.join_all().await.into_iter().flatten().collect();
        undelivered.sort_by(|a, b| a.sink.cmp(&b.sink));
        undelivered
    }
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sinks_parse_and_bad_ones_are_named() {
        assert_eq!(
            Sink::parse("https://hooks.example/x").unwrap(),
            Sink::Webhook {
                url: "https://hooks.example/x".into()
            }
        );
        assert_eq!(
            Sink::parse("command:cat > /tmp/x").unwrap(),
            Sink::Command {
                command: "cat > /tmp/x".into()
            }
        );
        assert_eq!(
            Sink::parse("arn:aws:sns:eu-west-1:123456789012:releases").unwrap(),
            Sink::Sns {
                topic_arn: "arn:aws:sns:eu-west-1:123456789012:releases".into()
            }
        );
        let e = Sink::parse("sns:releases").unwrap_err();
        assert!(e.contains("not an SNS topic ARN"), "{e}");
        for text in [
            "webhook:http://h/x",
            "command:cat > /tmp/x",
            "sns:arn:aws:sns:eu-west-1:123456789012:releases",
        ] {
            assert_eq!(Sink::parse(text).unwrap().to_string(), text);
        }
        let e = Sink::parse("smtp:ops@example").unwrap_err();
        assert!(
            e.contains("smtp:ops@example") && e.contains("webhook:URL"),
            "{e}"
        );
    }

    #[test]
    fn retries_back_off() {
        assert_eq!(retry_delay(1), Duration::from_secs(1));
        assert_eq!(retry_delay(2), Duration::from_secs(2));
        assert_eq!(retry_delay(4), Duration::from_secs(8));
    }
}
