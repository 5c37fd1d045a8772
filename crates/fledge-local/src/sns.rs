//! A small SNS over the AWS query protocol (what the SDKs and the AWS CLI speak to SNS: a
//! form-encoded POST to `/`, answered in XML): topics, Publish, and subscriptions that
//! deliver, so that fledge's SNS notifications, and functions that SNS triggers, can be
//! rehearsed here.
//!
//! - A `lambda` subscription invokes its function (a qualified ARN names a version or an
//!   alias, routed by weight) asynchronously with SNS's event, as SNS does, when the
//!   resource-based policy of what it subscribed lets `sns.amazonaws.com` invoke it
//!   (AddPermission); otherwise the delivery fails and says which permission is missing.
//! - An `http`/`https` subscription is sent SNS's `SubscriptionConfirmation` first, and gets
//!   notifications once it is confirmed (ConfirmSubscription, or a GET of its
//!   `SubscribeURL`). A notification is a POST of SNS's JSON with its `x-amz-sns-*`
//!   headers; a failed one is retried 3 times, 20 s apart (SNS's default HTTP policy).
//! - Message attributes travel with a message. A subscription's `FilterPolicy` (on its
//!   attributes, or on its JSON body with `FilterPolicyScope` `MessageBody`) chooses what
//!   it gets, and `RawMessageDelivery` hands an HTTP endpoint the message itself.
//! - Messages are not signed: `Signature` holds no signature.
//!
//! Topics and subscriptions persist in `sns.json`; published messages are kept in memory
//! (the last 1,000 per topic), with how each delivery went, and listed at
//! `GET /_fledge/sns/messages`.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};

use crate::server::Platform;
use crate::wire::{iso8601, now_ms, uuid, xml_escape as escape};

const NAMESPACE: &str = "http://sns.amazonaws.com/doc/2010-03-31/";
const KEPT: usize = 1000;
/// SNS's default HTTP delivery policy: 3 retries, 20 s apart.
const HTTP_RETRIES: u32 = 3;
const HTTP_RETRY_DELAY: Duration = Duration::from_secs(20);
/// What SNS lists for a subscription not yet confirmed.
const PENDING: &str = "PendingConfirmation";
/// ListSubscriptions' page size.
const PAGE: usize = 100;

/// A message attribute: its data type (`String`, `Number`, `Binary`, `String.Array`, or one
/// of those with a custom suffix) and its value (base64 for `Binary`).
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Attribute {
    pub data_type: String,
    pub value: String,
}

/// Message attributes by name.
pub type Attributes = BTreeMap<String, Attribute>;

/// At most this many attributes per message, as on SNS.
const MAX_ATTRIBUTES: usize = 10;

/// The `MessageAttributes.entry.N.*` members of a Publish request.
fn read_attributes(form: &[(String, String)]) -> Result<Attributes, SnsError> {
    let get = |key: String| form.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
    let mut attributes = Attributes::new();
    for n in 1.. {
        let entry = format!("MessageAttributes.entry.{n}");
        let Some(name) = get(format!("{entry}.Name")) else {
            break;
        };
        let data_type = get(format!("{entry}.Value.DataType")).unwrap_or_default();
        let base = data_type.split('.').next().unwrap_or_default();
        if !matches!(base, "String" | "Number" | "Binary") {
            return Err(invalid(format!(
                "Invalid parameter: MessageAttributes: the attribute {name} has data type '{data_type}'; give String, Number or Binary (optionally with a custom suffix)"
            )));
        }
        let value = if base == "Binary" {
            get(format!("{entry}.Value.BinaryValue"))
        } else {
            get(format!("{entry}.Value.StringValue"))
        }
        .filter(|v| !v.is_empty())
        .ok_or_else(|| {
            invalid(format!(
                "Invalid parameter: MessageAttributes: the attribute {name} must contain a non-empty value of its type {data_type}"
            ))
        })?;
        if name.is_empty() || name.len() > 256 {
            return Err(invalid(
                "Invalid parameter: MessageAttributes: a name has 1 to 256 characters",
            ));
        }
        attributes.insert(name, Attribute { data_type, value });
        if attributes.len() > MAX_ATTRIBUTES {
            return Err(invalid(format!(
                "Invalid parameter: MessageAttributes: a message has at most {MAX_ATTRIBUTES} attributes"
            )));
        }
    }
    Ok(attributes)
}

/// Attributes as SNS shows them in a notification: `{name: {Type, Value}}`.
fn attributes_json(attributes: &Attributes) -> serde_json::Value {
    attributes
        .iter()
        .map(|(name, a)| {
            (
                name.clone(),
                serde_json::json!({"Type": a.data_type, "Value": a.value}),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// A message as published, and how its deliveries went.
#[derive(Clone, Debug, Serialize)]
pub struct Published {
    pub message_id: String,
    pub topic_arn: String,
    pub subject: Option<String>,
    pub message: String,
    pub at: i64,
    pub attributes: Attributes,
    pub deliveries: Vec<Delivery>,
}

/// One subscription's delivery of a message.
#[derive(Clone, Debug, Serialize)]
pub struct Delivery {
    pub subscription_arn: String,
    pub protocol: String,
    pub endpoint: String,
    /// `sending`, `retrying`, `delivered` (an HTTP endpoint answered 2xx; a function's event
    /// was accepted) or `failed`.
    pub status: String,
    pub attempts: u32,
    /// What went wrong on the last attempt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Delivery {
    fn starting(s: &Subscription) -> Delivery {
        Delivery {
            subscription_arn: s.arn.clone(),
            protocol: s.protocol.clone(),
            endpoint: s.endpoint.clone(),
            status: "sending".into(),
            attempts: 0,
            error: None,
        }
    }
}

/// A subscription as kept.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Subscription {
    pub arn: String,
    pub topic_arn: String,
    /// `lambda`, `http` or `https`.
    pub protocol: String,
    pub endpoint: String,
    /// Set until an HTTP endpoint confirms: the token it must give back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// `FilterPolicy`: which messages it receives.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_policy: Option<serde_json::Value>,
    /// `FilterPolicyScope` is `MessageBody` (not `MessageAttributes`).
    #[serde(default)]
    pub filter_on_body: bool,
    /// `RawMessageDelivery`: an HTTP endpoint gets the message itself, not SNS's JSON.
    #[serde(default)]
    pub raw: bool,
}

impl Subscription {
    /// Sets one of the subscription's attributes, as Subscribe and SetSubscriptionAttributes
    /// do.
    fn set_attribute(&mut self, name: &str, value: &str) -> Result<(), SnsError> {
        match name {
            "FilterPolicy" if value.is_empty() => self.filter_policy = None,
            "FilterPolicy" => {
                let policy: serde_json::Value = serde_json::from_str(value).map_err(|e| {
                    invalid(format!("Invalid parameter: FilterPolicy: not JSON: {e}"))
                })?;
                crate::sns_filter::check(&policy)
                    .map_err(|why| invalid(format!("Invalid parameter: FilterPolicy: {why}")))?;
                self.filter_policy = Some(policy);
            }
            "FilterPolicyScope" => {
                self.filter_on_body = match value {
                    "MessageAttributes" => false,
                    "MessageBody" => true,
                    other => {
                        return Err(invalid(format!(
                            "Invalid parameter: FilterPolicyScope: '{other}' is neither MessageAttributes nor MessageBody"
                        )));
                    }
                }
            }
            "RawMessageDelivery" => {
                self.raw = match value.to_ascii_lowercase().as_str() {
                    "true" => true,
                    "false" => false,
                    _ => {
                        return Err(invalid(format!(
                            "Invalid parameter: RawMessageDelivery: '{value}' is neither true nor false"
                        )));
                    }
                }
            }
            other => {
                return Err(invalid(format!(
                    "Invalid parameter: AttributeName: fledge local applies FilterPolicy, FilterPolicyScope and RawMessageDelivery, not {other}"
                )));
            }
        }
        Ok(())
    }

    /// Whether a message with this body and these attributes passes the filter policy.
    fn wants(&self, message: &str, attributes: &Attributes) -> bool {
        let Some(serde_json::Value::Object(policy)) = &self.filter_policy else {
            return true;
        };
        let document = if self.filter_on_body {
            match serde_json::from_str(message) {
                Ok(body) => body,
                Err(_) => return false,
            }
        } else {
            attributes
                .iter()
                .filter_map(|(name, a)| {
                    let value = match a.data_type.split('.').next() {
                        Some("Number") => serde_json::json!(a.value.parse::<f64>().ok()?),
                        Some("String") if a.data_type == "String.Array" => {
                            serde_json::from_str(&a.value).ok()?
                        }
                        Some("String") => serde_json::json!(a.value),
                        _ => return None,
                    };
                    Some((name.clone(), value))
                })
                .collect::<serde_json::Map<_, _>>()
                .into()
        };
        crate::sns_filter::matches(policy, &document)
    }

    fn listed_arn(&self) -> &str {
        if self.token.is_some() {
            PENDING
        } else {
            &self.arn
        }
    }
}

/// Something to send to a subscriber after the request that caused it is answered.
#[derive(Clone, Debug)]
pub struct Outgoing {
    pub subscription: Subscription,
    pub message_id: String,
    pub kind: OutgoingKind,
}

#[derive(Clone, Debug)]
pub enum OutgoingKind {
    /// An HTTP endpoint's `SubscriptionConfirmation`, with the URL that confirms it.
    Confirmation { subscribe_url: String },
    /// A published message.
    Notification {
        subject: Option<String>,
        message: String,
        at_ms: u64,
        attributes: Attributes,
    },
}

#[derive(Default, Serialize, Deserialize)]
struct Topics {
    /// name → ARN
    topics: BTreeMap<String, String>,
    /// ARN → subscription
    #[serde(default)]
    subscriptions: BTreeMap<String, Subscription>,
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

fn not_found(message: &str) -> SnsError {
    SnsError {
        status: StatusCode::NOT_FOUND,
        code: "NotFound",
        message: message.into(),
    }
}

/// The `NAME.entry.N.key`/`.value` members of a query-protocol map.
fn entries(form: &[(String, String)], name: &str) -> Vec<(String, String)> {
    let get = |key: String| form.iter().find(|(k, _)| *k == key).map(|(_, v)| v.clone());
    (1..)
        .map_while(|n| {
            let key = get(format!("{name}.entry.{n}.key"))?;
            Some((
                key,
                get(format!("{name}.entry.{n}.value")).unwrap_or_default(),
            ))
        })
        .collect()
}

fn form_encode(value: &str) -> String {
    serde_urlencoded::to_string([("", value)])
        .map(|s| s[1..].to_owned())
        .unwrap_or_default()
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

    /// Answers one query-protocol request (the decoded form of a POST to `/`), and says
    /// what to send to subscribers because of it. `endpoint` is fledge local's own URL,
    /// for the links in what is sent.
    pub fn handle(&self, form: &[(String, String)], endpoint: &str) -> (Response, Vec<Outgoing>) {
        let get = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let action = get("Action").unwrap_or_default();
        let mut outgoing = Vec::new();
        let result = match action {
            "CreateTopic" => self.create_topic(get("Name")),
            "DeleteTopic" => self.delete_topic(get("TopicArn")),
            "ListTopics" => Ok(self.list_topics()),
            "Publish" => read_attributes(form).and_then(|attributes| {
                self.publish(
                    get("TopicArn").or(get("TargetArn")),
                    get("Subject"),
                    get("Message"),
                    attributes,
                    &mut outgoing,
                )
            }),
            "Subscribe" => self.subscribe(form, endpoint, &mut outgoing),
            "SetSubscriptionAttributes" => self.set_subscription_attribute(
                get("SubscriptionArn"),
                get("AttributeName"),
                get("AttributeValue").unwrap_or_default(),
            ),
            "GetSubscriptionAttributes" => self.subscription_attributes(get("SubscriptionArn")),
            "ConfirmSubscription" => self.confirm(get("TopicArn"), get("Token")),
            "Unsubscribe" => self.unsubscribe(get("SubscriptionArn")),
            "ListSubscriptions" => self.list_subscriptions(None, get("NextToken")),
            "ListSubscriptionsByTopic" => match get("TopicArn") {
                Some(topic) => self.list_subscriptions(Some(topic), get("NextToken")),
                None => Err(invalid("Invalid parameter: TopicArn")),
            },
            other => Err(SnsError {
                status: StatusCode::BAD_REQUEST,
                code: "InvalidAction",
                message: format!(
                    "The action {other} is not valid for this web service. fledge local's SNS answers CreateTopic, DeleteTopic, ListTopics, Publish, Subscribe, ConfirmSubscription, Unsubscribe, ListSubscriptions, ListSubscriptionsByTopic, SetSubscriptionAttributes and GetSubscriptionAttributes."
                ),
            }),
        };
        match result {
            Ok(inner) => (answer(action, &inner), outgoing),
            Err(e) => (e.into_response(), Vec::new()),
        }
    }

    fn topic_exists(&self, arn: &str) -> bool {
        self.topics
            .lock()
            .expect("topics lock")
            .topics
            .values()
            .any(|a| a == arn)
    }

    /// Subscribe: `TopicArn`, `Protocol`, `Endpoint`, `Attributes` and
    /// `ReturnSubscriptionArn` from the request's `form`.
    fn subscribe(
        &self,
        form: &[(String, String)],
        own_endpoint: &str,
        outgoing: &mut Vec<Outgoing>,
    ) -> Result<String, SnsError> {
        let get = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
        let topic = get("TopicArn").ok_or_else(|| invalid("Invalid parameter: TopicArn"))?;
        let protocol = get("Protocol").ok_or_else(|| invalid("Invalid parameter: Protocol"))?;
        let endpoint = get("Endpoint").unwrap_or_default();
        let attributes = entries(form, "Attributes");
        let return_arn = get("ReturnSubscriptionArn") == Some("true");
        match protocol {
            "lambda" => {
                let valid = endpoint.starts_with("arn:aws:lambda:")
                    && endpoint.split(':').nth(5) == Some("function")
                    && endpoint.split(':').count() <= 8;
                if !valid {
                    return Err(invalid(
                        "Invalid parameter: Lambda endpoint ARN: give a function ARN, arn:aws:lambda:REGION:ACCOUNT:function:NAME[:QUALIFIER]",
                    ));
                }
            }
            "http" | "https" => {
                if !endpoint.starts_with(&format!("{protocol}://")) {
                    return Err(invalid(format!(
                        "Invalid parameter: Endpoint must match the specified protocol: an {protocol} subscription's endpoint starts with {protocol}://"
                    )));
                }
            }
            other => {
                return Err(invalid(format!(
                    "Invalid parameter: Protocol: fledge local delivers to lambda, http and https subscriptions, not {other}"
                )));
            }
        }
        if !self.topic_exists(topic) {
            return Err(not_found("Topic does not exist"));
        }
        let mut topics = self.topics.lock().expect("topics lock");
        let same = topics
            .subscriptions
            .values()
            .find(|s| s.topic_arn == topic && s.protocol == protocol && s.endpoint == endpoint);
        let subscription = match same {
            // Subscribing again is no change, as on SNS; a pending one is asked again.
            Some(s) => s.clone(),
            None => {
                let mut s = Subscription {
                    arn: format!("{topic}:{}", uuid()),
                    topic_arn: topic.to_owned(),
                    protocol: protocol.to_owned(),
                    endpoint: endpoint.to_owned(),
                    token: (protocol != "lambda").then(|| uuid().replace('-', "")),
                    filter_policy: None,
                    filter_on_body: false,
                    raw: false,
                };
                for (name, value) in &attributes {
                    s.set_attribute(name, value)?;
                }
                topics.subscriptions.insert(s.arn.clone(), s.clone());
                self.save(&topics)?;
                s
            }
        };
        drop(topics);
        if let Some(token) = &subscription.token {
            let subscribe_url = format!(
                "{own_endpoint}/?Action=ConfirmSubscription&TopicArn={}&Token={token}",
                form_encode(topic)
            );
            outgoing.push(Outgoing {
                subscription: subscription.clone(),
                message_id: uuid(),
                kind: OutgoingKind::Confirmation { subscribe_url },
            });
        }
        let shown = if return_arn {
            subscription.arn.as_str()
        } else if subscription.token.is_some() {
            "pending confirmation"
        } else {
            subscription.arn.as_str()
        };
        Ok(format!(
            "<SubscriptionArn>{}</SubscriptionArn>",
            escape(shown)
        ))
    }

    fn confirm(&self, topic: Option<&str>, token: Option<&str>) -> Result<String, SnsError> {
        let topic = topic.ok_or_else(|| invalid("Invalid parameter: TopicArn"))?;
        let token = token.ok_or_else(|| invalid("Invalid parameter: Token"))?;
        if !self.topic_exists(topic) {
            return Err(not_found("Topic does not exist"));
        }
        let mut topics = self.topics.lock().expect("topics lock");
        let Some(s) = topics
            .subscriptions
            .values_mut()
            .find(|s| s.topic_arn == topic && s.token.as_deref() == Some(token))
        else {
            return Err(invalid("Invalid token"));
        };
        s.token = None;
        let arn = s.arn.clone();
        self.save(&topics)?;
        Ok(format!(
            "<SubscriptionArn>{}</SubscriptionArn>",
            escape(&arn)
        ))
    }

    fn set_subscription_attribute(
        &self,
        arn: Option<&str>,
        name: Option<&str>,
        value: &str,
    ) -> Result<String, SnsError> {
        let arn = arn.ok_or_else(|| invalid("Invalid parameter: SubscriptionArn"))?;
        let name = name.ok_or_else(|| invalid("Invalid parameter: AttributeName"))?;
        let mut topics = self.topics.lock().expect("topics lock");
        let subscription = topics
            .subscriptions
            .get_mut(arn)
            .ok_or_else(|| not_found("Subscription does not exist"))?;
        subscription.set_attribute(name, value)?;
        self.save(&topics)?;
        Ok(String::new())
    }

    fn subscription_attributes(&self, arn: Option<&str>) -> Result<String, SnsError> {
        let arn = arn.ok_or_else(|| invalid("Invalid parameter: SubscriptionArn"))?;
        let topics = self.topics.lock().expect("topics lock");
        let s = topics
            .subscriptions
            .get(arn)
            .ok_or_else(|| not_found("Subscription does not exist"))?;
        let mut attributes = vec![
            ("SubscriptionArn", s.arn.clone()),
            ("TopicArn", s.topic_arn.clone()),
            ("Protocol", s.protocol.clone()),
            ("Endpoint", s.endpoint.clone()),
            ("Owner", self.account.clone()),
            ("PendingConfirmation", s.token.is_some().to_string()),
            ("ConfirmationWasAuthenticated", "false".to_owned()),
            ("RawMessageDelivery", s.raw.to_string()),
        ];
        if let Some(policy) = &s.filter_policy {
            attributes.push(("FilterPolicy", policy.to_string()));
            let scope = if s.filter_on_body {
                "MessageBody"
            } else {
                "MessageAttributes"
            };
            attributes.push(("FilterPolicyScope", scope.to_owned()));
        }
        let entries: String = attributes
            .iter()
            .map(|(k, v)| format!("<entry><key>{k}</key><value>{}</value></entry>", escape(v)))
            .collect();
        Ok(format!("<Attributes>{entries}</Attributes>"))
    }

    fn unsubscribe(&self, arn: Option<&str>) -> Result<String, SnsError> {
        let arn = arn.ok_or_else(|| invalid("Invalid parameter: SubscriptionArn"))?;
        let mut topics = self.topics.lock().expect("topics lock");
        if topics.subscriptions.remove(arn).is_none() {
            return Err(not_found("Subscription does not exist"));
        }
        self.save(&topics)?;
        Ok(String::new())
    }

    fn list_subscriptions(
        &self,
        topic: Option<&str>,
        next: Option<&str>,
    ) -> Result<String, SnsError> {
        if let Some(topic) = topic
            && !self.topic_exists(topic)
        {
            return Err(not_found("Topic does not exist"));
        }
        let start: usize = match next {
            None | Some("") => 0,
            Some(n) => n
                .parse()
                .map_err(|_| invalid("Invalid parameter: NextToken"))?,
        };
        let topics = self.topics.lock().expect("topics lock");
        let all: Vec<&Subscription> = topics
            .subscriptions
            .values()
            .filter(|s| topic.is_none_or(|t| s.topic_arn == t))
            .collect();
        let members: String = all
            .iter()
            .skip(start)
            .take(PAGE)
            .map(|s| {
                format!(
                    "<member><TopicArn>{}</TopicArn><Protocol>{}</Protocol><SubscriptionArn>{}</SubscriptionArn><Owner>{}</Owner><Endpoint>{}</Endpoint></member>",
                    escape(&s.topic_arn),
                    escape(&s.protocol),
                    escape(s.listed_arn()),
                    escape(&self.account),
                    escape(&s.endpoint)
                )
            })
            .collect();
        let next = if start + PAGE < all.len() {
            format!("<NextToken>{}</NextToken>", start + PAGE)
        } else {
            String::new()
        };
        Ok(format!("<Subscriptions>{members}</Subscriptions>{next}"))
    }

    /// Notes how a message's delivery to one subscription went.
    fn record(&self, topic: &str, message_id: &str, delivery: Delivery) {
        let mut messages = self.messages.lock().expect("messages lock");
        let Some(m) = messages
            .get_mut(topic)
            .and_then(|kept| kept.iter_mut().rev().find(|m| m.message_id == message_id))
        else {
            return;
        };
        match m
            .deliveries
            .iter_mut()
            .find(|d| d.subscription_arn == delivery.subscription_arn)
        {
            Some(d) => *d = delivery,
            None => m.deliveries.push(delivery),
        }
    }

    /// Whether a subscription still exists and is confirmed (a retry stops otherwise).
    fn is_active(&self, arn: &str) -> bool {
        self.topics
            .lock()
            .expect("topics lock")
            .subscriptions
            .get(arn)
            .is_some_and(|s| s.token.is_none())
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
        topics.subscriptions.retain(|_, s| s.topic_arn != arn);
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
        attributes: Attributes,
        outgoing: &mut Vec<Outgoing>,
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
        if !self.topic_exists(arn) {
            return Err(not_found("Topic does not exist"));
        }
        let message_id = uuid();
        let at_ms = now_ms();
        let subscribers: Vec<Subscription> = self
            .topics
            .lock()
            .expect("topics lock")
            .subscriptions
            .values()
            .filter(|s| s.topic_arn == arn && s.token.is_none())
            .filter(|s| s.wants(message, &attributes))
            .cloned()
            .collect();
        let deliveries = subscribers.iter().map(Delivery::starting).collect();
        outgoing.extend(subscribers.into_iter().map(|subscription| Outgoing {
            subscription,
            message_id: message_id.clone(),
            kind: OutgoingKind::Notification {
                subject: subject.map(str::to_owned),
                message: message.to_owned(),
                at_ms,
                attributes: attributes.clone(),
            },
        }));
        let mut messages = self.messages.lock().expect("messages lock");
        let kept = messages.entry(arn.to_owned()).or_default();
        kept.push_back(Published {
            message_id: message_id.clone(),
            topic_arn: arn.to_owned(),
            subject: subject.map(str::to_owned),
            message: message.to_owned(),
            at: at_ms as i64,
            attributes,
            deliveries,
        });
        while kept.len() > KEPT {
            kept.pop_front();
        }
        Ok(format!("<MessageId>{message_id}</MessageId>"))
    }

    /// Publishes `message` to topic `arn` on behalf of another service here (a function's
    /// destination), and sends it on to the topic's subscribers.
    pub fn publish_from(
        &self,
        platform: &Arc<Platform>,
        arn: &str,
        message: &str,
        attributes: Attributes,
    ) -> Result<(), String> {
        let mut outgoing = Vec::new();
        self.publish(Some(arn), None, Some(message), attributes, &mut outgoing)
            .map_err(|e| e.message)?;
        for out in outgoing {
            tokio::spawn(deliver(platform.clone(), out));
        }
        Ok(())
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

/// Sends what a request to SNS caused: a function's event, or a POST to an HTTP endpoint
/// (retried as SNS's default HTTP policy retries).
pub async fn deliver(platform: Arc<Platform>, out: Outgoing) {
    let s = &out.subscription;
    let mut delivery = Delivery::starting(s);
    let result = if s.protocol == "lambda" {
        delivery.attempts = 1;
        invoke_function(&platform, &out).map_err(|e| e.message)
    } else {
        post_until_delivered(&platform, &out, &mut delivery).await
    };
    if let OutgoingKind::Notification { .. } = out.kind {
        match result {
            Ok(()) => {
                delivery.status = "delivered".into();
                delivery.error = None;
            }
            Err(e) => {
                tracing::warn!(
                    "fledge local's SNS could not deliver message {} to {} ({}): {e}",
                    out.message_id,
                    s.endpoint,
                    s.arn
                );
                delivery.status = "failed".into();
                delivery.error = Some(e);
            }
        }
        platform.sns.record(&s.topic_arn, &out.message_id, delivery);
    } else if let Err(e) = result {
        tracing::warn!(
            "fledge local's SNS could not ask {} to confirm its subscription to {}: {e}",
            s.endpoint,
            s.topic_arn
        );
    }
}

/// SNS's event for a function, one record.
fn lambda_event(platform: &Platform, out: &Outgoing) -> serde_json::Value {
    let OutgoingKind::Notification {
        subject,
        message,
        at_ms,
        attributes,
    } = &out.kind
    else {
        return serde_json::Value::Null;
    };
    let s = &out.subscription;
    serde_json::json!({"Records": [{
        "EventSource": "aws:sns",
        "EventVersion": "1.0",
        "EventSubscriptionArn": s.arn,
        "Sns": {
            "Type": "Notification",
            "MessageId": out.message_id,
            "TopicArn": s.topic_arn,
            "Subject": subject,
            "Message": message,
            "Timestamp": iso8601(*at_ms),
            "SignatureVersion": "1",
            "Signature": UNSIGNED,
            "SigningCertUrl": "",
            "UnsubscribeUrl": unsubscribe_url(platform, s),
            "MessageAttributes": attributes_json(attributes),
        },
    }]})
}

/// The principal SNS invokes functions as.
const SNS_PRINCIPAL: &str = "sns.amazonaws.com";

/// What stands in the `Signature` of every message: fledge local signs nothing.
const UNSIGNED: &str = "fledge-local-unsigned";

fn unsubscribe_url(platform: &Platform, s: &Subscription) -> String {
    format!(
        "{}/?Action=Unsubscribe&SubscriptionArn={}",
        platform.endpoint(),
        form_encode(&s.arn)
    )
}

/// Queues the function's asynchronous invocation, as SNS invokes a subscribed function.
fn invoke_function(
    platform: &Arc<Platform>,
    out: &Outgoing,
) -> Result<(), fledge_core::lambda::LambdaError> {
    use fledge_core::lambda::{FunctionRef, NameKind};
    let reference = FunctionRef::parse(&out.subscription.endpoint, NameKind::Namespaced)?;
    reference.check_region(&platform.store.region)?;
    let qualifier = reference.qualifier.as_ref().map(|q| q.to_string());
    let topic = &out.subscription.topic_arn;
    let allowed = platform.store.read(|functions| {
        functions
            .get(&reference.name)
            .and_then(|f| f.policies.get(qualifier.as_deref().unwrap_or_default()))
            .is_some_and(|p| {
                p.statements
                    .iter()
                    .any(|s| s.lets_service_invoke(SNS_PRINCIPAL, topic, &platform.store.account))
            })
    });
    if !allowed {
        let with_qualifier = qualifier
            .as_deref()
            .map(|q| format!(" --qualifier {q}"))
            .unwrap_or_default();
        return Err(fledge_core::lambda::LambdaError::new(
            fledge_core::lambda::ErrorType::InvalidParameterValue,
            format!(
                "the resource-based policy of {} does not let {SNS_PRINCIPAL} invoke it from {topic}; grant it as on AWS: aws lambda add-permission --function-name {}{with_qualifier} --statement-id sns --action lambda:InvokeFunction --principal {SNS_PRINCIPAL} --source-arn {topic}",
                out.subscription.endpoint, reference.name
            ),
        ));
    }
    let payload = axum::body::Bytes::from(lambda_event(platform, out).to_string());
    crate::events::invoke_async(platform, &out.subscription.endpoint, payload)
}

/// The body and headers of a POST to an HTTP subscriber.
fn http_message(platform: &Platform, out: &Outgoing) -> (serde_json::Value, &'static str) {
    let s = &out.subscription;
    match &out.kind {
        OutgoingKind::Confirmation { subscribe_url } => (
            serde_json::json!({
                "Type": "SubscriptionConfirmation",
                "MessageId": out.message_id,
                "Token": s.token,
                "TopicArn": s.topic_arn,
                "Message": format!("You have chosen to subscribe to the topic {}.\nTo confirm the subscription, visit the SubscribeURL included in this message.", s.topic_arn),
                "SubscribeURL": subscribe_url,
                "Timestamp": iso8601(now_ms()),
                "SignatureVersion": "1",
                "Signature": UNSIGNED,
                "SigningCertURL": "",
            }),
            "SubscriptionConfirmation",
        ),
        OutgoingKind::Notification {
            subject,
            message,
            at_ms,
            attributes,
        } => {
            let mut body = serde_json::json!({
                "Type": "Notification",
                "MessageId": out.message_id,
                "TopicArn": s.topic_arn,
                "Message": message,
                "Timestamp": iso8601(*at_ms),
                "SignatureVersion": "1",
                "Signature": UNSIGNED,
                "SigningCertURL": "",
                "UnsubscribeURL": unsubscribe_url(platform, s),
            });
            if let Some(subject) = subject {
                body["Subject"] = serde_json::json!(subject);
            }
            if !attributes.is_empty() {
                body["MessageAttributes"] = attributes_json(attributes);
            }
            (body, "Notification")
        }
    }
}

async fn post_until_delivered(
    platform: &Arc<Platform>,
    out: &Outgoing,
    delivery: &mut Delivery,
) -> Result<(), String> {
    let s = &out.subscription;
    let (body, kind) = http_message(platform, out);
    let notification = kind == "Notification";
    // With RawMessageDelivery, an endpoint gets the message itself.
    let body = match (&out.kind, s.raw) {
        (OutgoingKind::Notification { message, .. }, true) => message.clone(),
        _ => body.to_string(),
    };
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(15))
        .build()
        .map_err(|e| e.to_string())?;
    let mut last = String::new();
    for attempt in 0..=HTTP_RETRIES {
        if attempt > 0 {
            delivery.status = "retrying".into();
            delivery.error = Some(last.clone());
            platform
                .sns
                .record(&s.topic_arn, &out.message_id, delivery.clone());
            tokio::time::sleep(HTTP_RETRY_DELAY).await;
            if notification && !platform.sns.is_active(&s.arn) {
                return Err(format!("{last}; unsubscribed before the next retry"));
            }
        }
        delivery.attempts = attempt + 1;
        let mut request = client
            .post(&s.endpoint)
            .header("content-type", "text/plain; charset=UTF-8")
            .header("user-agent", "Amazon Simple Notification Service Agent")
            .header("x-amz-sns-message-type", kind)
            .header("x-amz-sns-message-id", &out.message_id)
            .header("x-amz-sns-topic-arn", &s.topic_arn)
            .body(body.clone());
        if notification {
            request = request.header("x-amz-sns-subscription-arn", &s.arn);
        }
        match request.send().await {
            Ok(r) if r.status().is_success() => return Ok(()),
            Ok(r) => last = format!("the endpoint answered {}", r.status()),
            Err(e) => last = format!("could not reach the endpoint: {e}"),
        }
        if !notification {
            // SNS asks for a confirmation once; Subscribe again to be asked again.
            break;
        }
    }
    Err(last)
}
