//! Asynchronous invocations (`Event`), kept as Lambda keeps them: an accepted event is
//! written under the data directory before the caller gets its 202, tried until it runs or
//! is given up on, and resumed when the platform starts again.
//!
//! - A try throttled by the function's concurrency is tried again with backoff (1 s, 2 s, …
//!   up to 5 minutes) rather than lost.
//! - A function error is retried (by default [`ASYNC_RETRIES`] times) after the platform's
//!   retry delays (Lambda's: 1, then 2 minutes), with the same request id.
//! - An event older than its maximum age (by default [`ASYNC_MAX_AGE`]) is dropped.
//! - The invoked qualifier's PutFunctionEventInvokeConfig options set both; each try routes
//!   an alias afresh.
//! - When an event has run, or is given up on, its invocation record goes to the
//!   qualifier's `OnSuccess` or `OnFailure` destination (an SNS topic or a function), and
//!   a given-up event's payload to its version's dead-letter topic.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, HeaderName, HeaderValue};
use base64::Engine;
use fledge_core::lambda::{ErrorType, FunctionRef, LambdaError, NameKind};
use serde::{Deserialize, Serialize};

use crate::invoke::{Target, resolve, run_with_id, settle, sticky_of};
use crate::metrics::{AsyncSample, SeriesKey};
use crate::server::Platform;
use crate::wire::{now_ms, uuid};

/// How long Lambda keeps an asynchronous event by default (MaximumEventAgeInSeconds).
pub const ASYNC_MAX_AGE: Duration = Duration::from_secs(6 * 3600);
/// How many times Lambda retries an asynchronous event whose function failed, by default.
pub const ASYNC_RETRIES: usize = 2;
/// The longest wait between tries of a throttled asynchronous event.
const THROTTLE_BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Request headers never written to disk with an event: signatures and tokens.
const SECRET_HEADERS: [&str; 3] = ["authorization", "x-amz-security-token", "cookie"];

/// An accepted event, as it is kept on disk until it is done with.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct Event {
    /// `name` or `name:qualifier`, as invoked.
    function: String,
    /// The payload, base64.
    payload: String,
    /// The request's headers but its credentials, for sticky routing by a header.
    headers: Vec<(String, String)>,
    /// Kept across retries, as Lambda does.
    request_id: String,
    received_ms: u64,
    /// Tries that ended in a function error so far.
    failures: usize,
    /// When the last of them ended: its retry is due the retry delay after it, also when
    /// the platform restarted in between.
    #[serde(default)]
    last_failure_ms: u64,
}

impl Event {
    fn reference(&self) -> Result<FunctionRef, LambdaError> {
        FunctionRef::parse(&self.function, NameKind::Namespaced)
    }

    fn payload(&self) -> Bytes {
        base64::engine::general_purpose::STANDARD
            .decode(&self.payload)
            .map(Bytes::from)
            .unwrap_or_else(|_| Bytes::from_static(b"{}"))
    }

    fn headers(&self) -> HeaderMap {
        self.headers
            .iter()
            .filter_map(|(k, v)| {
                Some((
                    HeaderName::try_from(k.as_str()).ok()?,
                    HeaderValue::try_from(v.as_str()).ok()?,
                ))
            })
            .collect()
    }

    fn age(&self) -> Duration {
        Duration::from_millis(now_ms().saturating_sub(self.received_ms))
    }
}

fn folder(platform: &Platform) -> PathBuf {
    platform.config.data_dir.join("events")
}

fn file(folder: &Path, request_id: &str) -> PathBuf {
    folder.join(format!("{request_id}.json"))
}

fn save(folder: &Path, event: &Event) -> std::io::Result<()> {
    std::fs::create_dir_all(folder)?;
    let path = file(folder, &event.request_id);
    let tmp = path.with_extension("json.tmp");
    std::fs::write(
        &tmp,
        serde_json::to_vec(event).expect("an event serialises"),
    )?;
    std::fs::rename(tmp, path)
}

/// Keeps an accepted event and starts trying it. Lambda gives the client context to
/// synchronous invocations only, so an event has none.
pub(crate) fn accept(
    platform: &Arc<Platform>,
    reference: FunctionRef,
    payload: Bytes,
    headers: &HeaderMap,
    target: Target,
) -> Result<(), LambdaError> {
    let event = Event {
        function: reference.to_string(),
        payload: base64::engine::general_purpose::STANDARD.encode(&payload),
        headers: headers
            .iter()
            .filter(|(k, _)| !SECRET_HEADERS.contains(&k.as_str()))
            .filter_map(|(k, v)| Some((k.to_string(), v.to_str().ok()?.to_owned())))
            .collect(),
        request_id: uuid(),
        received_ms: now_ms(),
        failures: 0,
        last_failure_ms: 0,
    };
    save(&folder(platform), &event).map_err(|e| {
        LambdaError::new(
            ErrorType::Service,
            format!("could not keep the asynchronous event: {e}"),
        )
    })?;
    let series = series_of(&target);
    platform
        .metrics
        .record_async(series, now_ms(), AsyncSample::Received);
    tokio::spawn(run(platform.clone(), event, Some(target)));
    Ok(())
}

/// Starts trying every event kept from before the platform stopped.
pub(crate) fn resume(platform: &Arc<Platform>) {
    let Ok(entries) = std::fs::read_dir(folder(platform)) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().is_none_or(|e| e != "json") {
            continue;
        }
        match std::fs::read(&path)
            .map_err(|e| e.to_string())
            .and_then(|b| serde_json::from_slice::<Event>(&b).map_err(|e| e.to_string()))
        {
            Ok(event) => {
                tokio::spawn(run(platform.clone(), event, None));
            }
            Err(e) => tracing::warn!(
                "{} is not an asynchronous event fledge local can resume ({e}); left as it is",
                path.display()
            ),
        }
    }
}

fn series_of(target: &Target) -> SeriesKey {
    SeriesKey {
        function: target.function.as_str().into(),
        resource: target.resource.as_deref().map(Into::into),
        executed: None,
    }
}

/// Tries `event` to its end, then forgets it. `target` is its first try's routing, when the
/// caller already resolved it.
async fn run(platform: Arc<Platform>, mut event: Event, target: Option<Target>) {
    let folder = folder(&platform);
    let mut stopping = platform.stopping.subscribe();
    let tried = tokio::select! {
        tried = tries(&platform, &folder, &mut event, target) => tried,
        // The platform stopped: the event stays on disk and is resumed at the next start.
        _ = stopping.wait_for(|stopped| *stopped) => return,
    };
    if let Err(ended) = &tried {
        tracing::info!(
            "asynchronous event {} for {} dropped: {}",
            event.request_id,
            event.function,
            ended.why
        );
    }
    if let Err(given_up) = &tried
        && given_up.condition.is_some()
    {
        send_to_dead_letter(&platform, &event, given_up);
    }
    send_record(&platform, &event, tried);
    if let Err(e) = std::fs::remove_file(file(&folder, &event.request_id)) {
        tracing::warn!(
            "could not forget asynchronous event {}: {e}",
            event.request_id
        );
    }
}

/// How an event's last try went, for its invocation record.
struct Tried {
    /// The version that ran it.
    executed: String,
    /// That version's dead-letter target.
    dead_letter: Option<String>,
    /// The function's answer: its response, or its error in Lambda's shape.
    payload: Bytes,
    function_error: bool,
}

/// Why an event was given up on.
struct GivenUp {
    why: String,
    /// Lambda's `condition` for an invocation record (`RetriesExhausted`,
    /// `EventAgeExceeded`); `None` when no record is sent (the function is gone, say).
    condition: Option<&'static str>,
    /// Its last try, if it ran.
    last: Option<Tried>,
}

impl GivenUp {
    fn without_record(why: String) -> GivenUp {
        GivenUp {
            why,
            condition: None,
            last: None,
        }
    }
}

/// Tries `event` until it runs (`Ok`, with its answer) or is given up on (`Err`, saying
/// why; the `AsyncEventsDropped` metric is recorded when the function is known).
async fn tries(
    platform: &Platform,
    folder: &Path,
    event: &mut Event,
    mut target: Option<Target>,
) -> Result<Tried, GivenUp> {
    let reference = event
        .reference()
        .map_err(|e| GivenUp::without_record(e.message))?;
    let (payload, headers) = (event.payload(), event.headers());
    let qualifier = reference
        .qualifier
        .as_ref()
        .map_or("$LATEST".to_owned(), |q| q.to_string());
    let options = platform
        .store
        .read(|functions| {
            functions
                .get(&reference.name)
                .and_then(|f| f.event_invoke.get(&qualifier))
                .cloned()
        })
        .unwrap_or_default();
    let retries = options
        .maximum_retry_attempts
        .map_or(ASYNC_RETRIES, |n| n as usize);
    let max_age = options
        .maximum_event_age_in_seconds
        .map_or(ASYNC_MAX_AGE, |s| Duration::from_secs(s.into()));
    let mut throttle_backoff = Duration::from_secs(1);
    let mut last: Option<Tried> = None;
    let too_old = |last: Option<Tried>, why: String| GivenUp {
        why,
        condition: Some("EventAgeExceeded"),
        last,
    };
    if event.failures > 0 {
        // Resumed after a restart while waiting for a retry: it is due the retry delay
        // after the try that failed, not at once.
        let due = event.last_failure_ms + retry_delay(platform, event.failures).as_millis() as u64;
        let wait = Duration::from_millis(due.saturating_sub(now_ms()));
        tokio::time::sleep(wait.min(max_age.saturating_sub(event.age()))).await;
    }
    loop {
        if event.age() > max_age {
            return Err(too_old(last, format!("it is older than {max_age:?}")));
        }
        let routed = match target.take() {
            Some(t) => t,
            None => resolve(platform, &reference, sticky_of(&headers, &payload))
                .map_err(|e| GivenUp::without_record(e.message))?,
        };
        let series = series_of(&routed);
        let metric = |sample| {
            platform
                .metrics
                .record_async(series.clone(), now_ms(), sample)
        };
        metric(AsyncSample::Age(event.age().as_secs_f64() * 1000.0));
        let outcome = run_with_id(
            platform,
            &routed,
            payload.clone(),
            None,
            event.request_id.clone(),
            false,
            None,
        )
        .await;
        let wait = match outcome {
            Err(e) if e.kind == ErrorType::TooManyRequests => {
                let wait = throttle_backoff;
                throttle_backoff = (throttle_backoff * 2).min(THROTTLE_BACKOFF_MAX);
                wait
            }
            Err(e) => {
                metric(AsyncSample::Dropped);
                return Err(GivenUp::without_record(e.message));
            }
            Ok(outcome) => {
                let settled = settle(&routed, &event.request_id, outcome);
                let tried = Tried {
                    executed: routed.version.version.to_string(),
                    dead_letter: routed.version.dead_letter_target.clone(),
                    payload: settled.body,
                    function_error: settled.failed,
                };
                if !tried.function_error {
                    return Ok(tried);
                }
                last = Some(tried);
                event.failures += 1;
                event.last_failure_ms = now_ms();
                if event.failures > retries {
                    metric(AsyncSample::Dropped);
                    return Err(GivenUp {
                        why: format!("its function failed {} times", event.failures),
                        condition: Some("RetriesExhausted"),
                        last,
                    });
                }
                if let Err(e) = save(folder, event) {
                    tracing::warn!(
                        "could not record a failed try of asynchronous event {}: {e}",
                        event.request_id
                    );
                }
                retry_delay(platform, event.failures)
            }
        };
        if event.age() + wait > max_age {
            metric(AsyncSample::Dropped);
            return Err(too_old(last, format!("it would be older than {max_age:?}")));
        }
        tokio::time::sleep(wait).await;
    }
}

/// How long an event waits after its `failures`-th failed try (from 1): the platform's
/// retry delays, Lambda's 1 and 2 minutes by default.
fn retry_delay(platform: &Platform, failures: usize) -> Duration {
    platform
        .config
        .async_retry_delays
        .get(failures.saturating_sub(1))
        .copied()
        .unwrap_or(Duration::from_secs(120))
}

/// Sends the invocation record of an event that ran, or was given up on, to the
/// destination its qualifier's options name, as Lambda does.
fn send_record(platform: &Arc<Platform>, event: &Event, ended: Result<Tried, GivenUp>) {
    let Ok(reference) = event.reference() else {
        return;
    };
    let qualifier = reference
        .qualifier
        .as_ref()
        .map_or("$LATEST".to_owned(), |q| q.to_string());
    let options = platform.store.read(|functions| {
        functions
            .get(&reference.name)
            .and_then(|f| f.event_invoke.get(&qualifier))
            .cloned()
    });
    let Some(options) = options else {
        return;
    };
    let (destination, condition, tried, count) = match &ended {
        Ok(tried) => (
            &options.on_success,
            "Success",
            Some(tried),
            event.failures + 1,
        ),
        Err(GivenUp {
            condition: Some(condition),
            last,
            ..
        }) => (
            &options.on_failure,
            *condition,
            last.as_ref(),
            event.failures,
        ),
        Err(_) => return,
    };
    let Some(destination) = destination else {
        return;
    };
    let function_arn = format!(
        "{}:{qualifier}",
        platform.store.function_arn(&reference.name)
    );
    let as_json = |bytes: &[u8]| {
        serde_json::from_slice::<serde_json::Value>(bytes)
            .unwrap_or_else(|_| serde_json::Value::String(String::from_utf8_lossy(bytes).into()))
    };
    let mut record = serde_json::json!({
        "version": "1.0",
        "timestamp": crate::wire::iso8601(now_ms()),
        "requestContext": {
            "requestId": event.request_id,
            "functionArn": function_arn,
            "condition": condition,
            "approximateInvokeCount": count,
        },
        "requestPayload": as_json(&event.payload()),
    });
    if let Some(tried) = tried {
        let mut response =
            serde_json::json!({"statusCode": 200, "executedVersion": tried.executed});
        if tried.function_error {
            response["functionError"] = serde_json::json!("Unhandled");
        }
        record["responseContext"] = response;
        record["responsePayload"] = as_json(&tried.payload);
    }
    let sent = if destination.starts_with("arn:aws:sns:") {
        platform.sns.publish_from(
            platform,
            destination,
            &record.to_string(),
            crate::sns::Attributes::new(),
        )
    } else {
        invoke_async(platform, destination, Bytes::from(record.to_string())).map_err(|e| e.message)
    };
    if let Err(e) = sent {
        tracing::warn!(
            "the invocation record of asynchronous event {} could not go to {destination}: {e}",
            event.request_id
        );
        if let Ok(target) = resolve(platform, &reference, |_| None) {
            platform.metrics.record_async(
                series_of(&target),
                now_ms(),
                AsyncSample::DestinationFailed,
            );
        }
    }
}

/// Publishes a given-up event's payload to its version's dead-letter topic, as Lambda sends
/// it to a dead-letter queue.
fn send_to_dead_letter(platform: &Arc<Platform>, event: &Event, given_up: &GivenUp) {
    let target = match &given_up.last {
        Some(tried) => tried.dead_letter.clone(),
        // It never ran (throttled until too old): the version it would run.
        None => event.reference().ok().and_then(|r| {
            resolve(platform, &r, |_| None)
                .ok()
                .and_then(|t| t.version.dead_letter_target.clone())
        }),
    };
    let Some(topic) = target else {
        return;
    };
    // What Lambda adds to a dead-letter message: the request, the response's status code,
    // and the first KB of the error's message.
    let error_message = given_up
        .last
        .as_ref()
        .and_then(|t| serde_json::from_slice::<serde_json::Value>(&t.payload).ok())
        .and_then(|e| e["errorMessage"].as_str().map(str::to_owned))
        .unwrap_or_else(|| given_up.why.clone());
    let cut = (0..=error_message.len().min(1024))
        .rev()
        .find(|i| error_message.is_char_boundary(*i))
        .unwrap_or(0);
    let attribute = |value: &str| crate::sns::Attribute {
        data_type: "String".into(),
        value: value.to_owned(),
    };
    let attributes = crate::sns::Attributes::from([
        ("RequestID".to_owned(), attribute(&event.request_id)),
        ("ErrorCode".to_owned(), attribute("200")),
        ("ErrorMessage".to_owned(), attribute(&error_message[..cut])),
    ]);
    let payload = event.payload();
    if let Err(e) = platform.sns.publish_from(
        platform,
        &topic,
        &String::from_utf8_lossy(&payload),
        attributes,
    ) {
        tracing::warn!(
            "asynchronous event {} could not go to its dead-letter topic {topic}: {e}",
            event.request_id
        );
    }
}

/// Invokes the function `arn` names (a version or an alias, routed) asynchronously with
/// `payload`, as AWS's services invoke functions.
pub(crate) fn invoke_async(
    platform: &Arc<Platform>,
    arn: &str,
    payload: Bytes,
) -> Result<(), LambdaError> {
    let reference = FunctionRef::parse(arn, NameKind::Namespaced)?;
    reference.check_region(&platform.store.region)?;
    let headers = HeaderMap::new();
    let target = resolve(platform, &reference, sticky_of(&headers, &payload))?;
    accept(platform, reference, payload, &headers, target)
}
