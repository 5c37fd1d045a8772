//! A small SNS: topics and Publish over the AWS query protocol (what the SDKs and the AWS CLI
//! speak to SNS: a form-encoded POST to `/`, answered in XML), so that `fledge serve`'s SNS
//! notifications can be rehearsed here. Topics persist in `sns.json`; published messages
//! are kept in memory (the last 1,000 per topic) and listed at `GET /_fledge/sns/messages`
//! — nothing is delivered onward, as no subscriptions exist here.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::wire::{now_ms, uuid, xml_escape as escape};

const NAMESPACE: &str = "http://sns.amazonaws.com/doc/2010-03-31/";
const KEPT: usize = 1000;

/// A message as published.
#[derive(Clone, Debug, Serialize)]
pub struct Published {
    pub message_id: String,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub message: String,
    pub at: i64,
}

#[derive(Default, Serialize, Deserialize)]
struct Topics {
    /// name → ARN
    topics: BTreeMap<String, String>,
}

pub struct Sns {
    path: PathBuf,
    region: String,
    account: String,
    topics: Mutex<Topics>,
    messages: Mutex<BTreeMap<String, VecDeque<Published>>>,
}

/// An error as SNS answers it.
struct SnsError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

fn answer(action: &str, result: &str) -> Response {
    let body = format!(
        "<{action}Response xmlns=\"{NAMESPACE}\"><{action}Result>{result}</{action}Result><ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
        uuid()
    );
    (StatusCode::OK, [("content-type", "text/xml")], body).into_response()
}

impl IntoResponse for SnsError {
    fn into_response(self) -> Response {
        let body = format!(
            "<ErrorResponse xmlns=\"{NAMESPACE}\"><Error><Type>Sender</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
            self.code,
            escape(&self.message),
            uuid()
        );
        (self.status, [("content-type", "text/xml")], body).into_response()
    }
}

fn invalid(message: impl Into<String>) -> SnsError {
    SnsError {
        status: StatusCode::BAD_REQUEST,
        code: "InvalidParameter",
        message: message.into(),
    }
}

impl Sns {
    pub fn open(dir: &Path, region: &str, account: &str) -> std::io::Result<Sns> {
        let path = dir.join("sns.json");
        let topics = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| {
                std::io::Error::other(format!(
                    "{} is not fledge local's topics: {e}",
                    path.display()
                ))
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Topics::default(),
            Err(e) => return Err(e),
        };
        Ok(Sns {
            path,
            region: region.into(),
            account: account.into(),
            topics: Mutex::new(topics),
            messages: Mutex::new(BTreeMap::new()),
        })
    }

    fn save(&self, topics: &Topics) -> Result<(), SnsError> {
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(&tmp, serde_json::to_vec(topics).expect("topics serialise"))
            .and_then(|()| std::fs::rename(&tmp, &self.path))
            .map_err(|e| SnsError {
                status: StatusCode::INTERNAL_SERVER_ERROR,
                code: "InternalError",
                message: format!("fledge local could not save its topics: {e}"),
            })
    }

    /// Answers one query-protocol request (the decoded form of a POST to `/`).
    pub fn handle(&self, form: &[(String, String)]) -> Response {
        let get = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let action = get("Action").unwrap_or_default();
        let result = match action {
            "CreateTopic" => self.create_topic(get("Name")),
            "DeleteTopic" => self.delete_topic(get("TopicArn")),
            "ListTopics" => Ok(self.list_topics()),
            "Publish" => self.publish(
                get("TopicArn").or(get("TargetArn")),
                get("Subject"),
                get("Message"),
            ),
            other => Err(SnsError {
                status: StatusCode::BAD_REQUEST,
                code: "InvalidAction",
                message: format!(
                    "The action {other} is not valid for this web service. fledge local's SNS answers CreateTopic, DeleteTopic, ListTopics and Publish."
                ),
            }),
        };
        match result {
            Ok(inner) => answer(action, &inner),
            Err(e) => e.into_response(),
        }
    }

    fn create_topic(&self, name: Option<&str>) -> Result<String, SnsError> {
        let name = name.ok_or_else(|| invalid("Invalid parameter: Name"))?;
        let valid = !name.is_empty()
            && name.len() <= 256
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        if !valid {
            return Err(invalid(
                "Invalid parameter: Topic Name: must be 1 to 256 letters, digits, hyphens or underscores",
            ));
        }
        let arn = format!("arn:aws:sns:{}:{}:{name}", self.region, self.account);
        let mut topics = self.topics.lock().expect("topics lock");
        if !topics.topics.contains_key(name) {
            topics.topics.insert(name.to_owned(), arn.clone());
            self.save(&topics)?;
        }
        Ok(format!("<TopicArn>{}</TopicArn>", escape(&arn)))
    }

    fn delete_topic(&self, arn: Option<&str>) -> Result<String, SnsError> {
        let arn = arn.ok_or_else(|| invalid("Invalid parameter: TopicArn"))?;
        let mut topics = self.topics.lock().expect("topics lock");
        topics.topics.retain(|_, a| a != arn);
        self.save(&topics)?;
        self.messages.lock().expect("messages lock").remove(arn);
        Ok(String::new())
    }

    fn list_topics(&self) -> String {
        let topics = self.topics.lock().expect("topics lock");
        let members: String = topics
            .topics
            .values()
            .map(|a| format!("<member><TopicArn>{}</TopicArn></member>", escape(a)))
            .collect();
        format!("<Topics>{members}</Topics>")
    }

    fn publish(
        &self,
        arn: Option<&str>,
        subject: Option<&str>,
        message: Option<&str>,
    ) -> Result<String, SnsError> {
        let arn = arn.ok_or_else(|| {
            invalid(
                "Invalid parameter: TopicArn or TargetArn Reason: no value for required parameter",
            )
        })?;
        let message = message.ok_or_else(|| {
            invalid("Invalid parameter: Message Reason: no value for required parameter")
        })?;
        if message.len() > 256 * 1024 {
            return Err(invalid("Invalid parameter: Message too long"));
        }
        if let Some(s) = subject
            && (s.is_empty()
                || s.len() > 100
                || s.chars().any(|c| !c.is_ascii() || c.is_ascii_control()))
        {
            return Err(invalid(
                "Subject must be ASCII text that begins with a letter, number, or punctuation mark; must not include line breaks or control characters; and must be less than 100 characters long.",
            ));
        }
        let known = self
            .topics
            .lock()
            .expect("topics lock")
            .topics
            .values()
            .any(|a| a == arn);
        if !known {
            return Err(SnsError {
                status: StatusCode::NOT_FOUND,
                code: "NotFound",
                message: "Topic does not exist".into(),
            });
        }
        let message_id = uuid();
        let mut messages = self.messages.lock().expect("messages lock");
        let kept = messages.entry(arn.to_owned()).or_default();
        kept.push_back(Published {
            message_id: message_id.clone(),
            topic_arn: arn.to_owned(),
            subject: subject.map(str::to_owned),
            message: message.to_owned(),
            at: now_ms() as i64,
        });
        while kept.len() > KEPT {
            kept.pop_front();
        }
        Ok(format!("<MessageId>{message_id}</MessageId>"))
    }

    /// Messages published to `topic` (a name or an ARN), or to every topic.
    pub fn messages(&self, topic: Option<&str>) -> Vec<Published> {
        let messages = self.messages.lock().expect("messages lock");
        messages
            .iter()
            .filter(|(arn, _)| {
                topic.is_none_or(|t| arn.as_str() == t || arn.rsplit(':').next() == Some(t))
            })
            .flat_map(|(_, m)| m.iter().cloned())
            .collect()
    }
}
