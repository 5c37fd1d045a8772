//! Notifications: every notable record of a deployment goes to its sinks. They are queued in
//! the store in the same transaction as the record, delivered by one task apart from every
//! driver (a slow or failing sink never delays a rollback), retried with backoff, and a
//! delivery that still fails is marked `failed` with its last error for the API and
//! `/metrics` to show.

use std::process::Stdio;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;

use crate::store::{NotificationRow, Store};

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
pub fn message(row: &NotificationRow) -> Value {
    let r = &row.body;
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
        "text": format!("fledge {}: {detail}", row.deployment_id),
        "deployment": row.deployment_id,
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

async fn deliver(
    client: &reqwest::Client,
    sns: &SnsClients,
    row: &NotificationRow,
) -> Result<(), String> {
    let body = message(row);
    match &row.sink {
        Sink::Sns { topic_arn } => {
            let region = topic_arn.split(':').nth(3).unwrap_or_default();
            let aws = sns.client(region).await;
            // SNS subjects are ASCII, at most 100 characters, without control characters.
            let subject: String = format!(
                "fledge {}: {}",
                row.deployment_id,
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
                    .env("FLEDGE_DEPLOYMENT", &row.deployment_id)
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
                let result = deliver(&client, &sns, &row).await;
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
