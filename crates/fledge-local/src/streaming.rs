//! InvokeWithResponseStream (`POST /2021-11-15/functions/{name}/response-streaming-invocations`):
//! the function's response reaches the caller as it is written, in the AWS event stream
//! framing the SDKs read: `PayloadChunk` events with the bytes, then one `InvokeComplete`
//! (with `ErrorCode` and `ErrorDetails` when the function failed, and `LogResult` with
//! `LogType: Tail`).
//!
//! A function that streams (`Lambda-Runtime-Function-Response-Mode: streaming`) is passed
//! through chunk by chunk, byte for byte, including the metadata prelude some runtimes
//! write first, as Lambda passes it. A function that answers all at once arrives as one
//! chunk. Routing, concurrency, throttles and metrics are Invoke's.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::invoke::{InvokeQuery, Outcome, Request, Target, run_with_id, settle};
use crate::server::Platform;
use crate::wire::{ApiError, uuid};

/// How many chunks may wait between the function and a slow caller before the function's
/// writes wait too.
const IN_FLIGHT_CHUNKS: usize = 16;
/// The most bytes of queued writes sent as one chunk.
const COALESCE_UP_TO: usize = 64 * 1024;

pub async fn handle(
    State(platform): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(query): Query<InvokeQuery>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    platform.faults.apply("InvokeWithResponseStream").await?;
    let request = Request::read(
        &platform,
        &name,
        query.qualifier.as_deref(),
        &headers,
        body,
        &["RequestResponse", "DryRun"],
    )?;
    let target = request.target.clone();
    if request.invocation_type == "DryRun" {
        return Ok(StatusCode::NO_CONTENT.into_response());
    }
    let request_id = uuid();
    let tail = request.tail;
    let (chunks, mut from_function) = mpsc::channel::<Bytes>(IN_FLIGHT_CHUNKS);
    let mut run = tokio::spawn({
        let (platform, target, request_id) = (platform.clone(), target.clone(), request_id.clone());
        async move {
            run_with_id(
                &platform,
                &target,
                request.payload,
                request.client_context,
                request_id,
                tail,
                Some(chunks),
            )
            .await
        }
    });
    // Until the function writes its first byte or ends, a refusal (a throttle) can still be
    // an HTTP error; after that, the answer is a stream. (A closed channel with nothing in
    // it means the invocation ended: the other branch answers.)
    let first = tokio::select! {
        biased;
        Some(chunk) = from_function.recv() => chunk,
        ended = &mut run => {
            let outcome = ended.map_err(|e| {
                fledge_core::lambda::LambdaError::new(
                    fledge_core::lambda::ErrorType::Service,
                    format!("the invocation stopped: {e}"),
                )
            })??;
            // Whatever the function streamed before it ended is still queued.
            let mut events = Vec::new();
            while let Ok(chunk) = from_function.try_recv() {
                events.push(payload_chunk(&chunk));
            }
            events.extend(finish(&target, &request_id, outcome, tail, events.is_empty()));
            let body = Body::from(events.concat());
            return Ok(answer(&target, &request_id, body));
        }
    };
    let (to_caller, events) = mpsc::channel::<Result<Bytes, Infallible>>(IN_FLIGHT_CHUNKS);
    tokio::spawn({
        let (target, request_id) = (target.clone(), request_id.clone());
        async move {
            let mut next = Some(first);
            while let Some(mut chunk) = next {
                // What the function wrote while the caller was being sent the last chunk
                // goes out together: a chunk as soon as it is written, without an event's
                // framing around every small write of a fast writer.
                if let Ok(more) = from_function.try_recv() {
                    let mut joined = chunk.to_vec();
                    joined.extend_from_slice(&more);
                    while joined.len() < COALESCE_UP_TO {
                        let Ok(more) = from_function.try_recv() else {
                            break;
                        };
                        joined.extend_from_slice(&more);
                    }
                    chunk = Bytes::from(joined);
                }
                if to_caller.send(Ok(payload_chunk(&chunk))).await.is_err() {
                    // The caller went away; the function still finishes, unheard.
                    drop(from_function);
                    return;
                }
                next = from_function.recv().await;
            }
            let events = match run.await {
                Ok(Ok(outcome)) => finish(&target, &request_id, outcome, tail, false),
                Ok(Err(e)) => vec![invoke_complete(
                    Some((e.kind.wire_name(), &e.message)),
                    None,
                )],
                Err(e) => vec![invoke_complete(
                    Some(("ServiceException", &e.to_string())),
                    None,
                )],
            };
            for event in events {
                let _ = to_caller.send(Ok(event)).await;
            }
        }
    });
    let mut events = events;
    let stream = futures_util::stream::poll_fn(move |cx| events.poll_recv(cx));
    Ok(answer(&target, &request_id, Body::from_stream(stream)))
}

fn answer(target: &Target, request_id: &str, body: Body) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(
        "content-type",
        HeaderValue::from_static("application/vnd.amazon.eventstream"),
    );
    headers.insert(
        "x-amzn-requestid",
        HeaderValue::from_str(request_id).expect("ascii"),
    );
    headers.insert(
        "x-amz-executed-version",
        HeaderValue::from_str(&target.version.version.to_string()).expect("ascii"),
    );
    (StatusCode::OK, headers, body).into_response()
}

/// The last events: the whole answer as one chunk when nothing was streamed (a function
/// that answered all at once), then `InvokeComplete`.
fn finish(
    target: &Target,
    request_id: &str,
    outcome: Outcome,
    tail: bool,
    nothing_streamed: bool,
) -> Vec<Bytes> {
    let settled = settle(target, request_id, outcome);
    let mut events = Vec::new();
    let error: Option<(String, String)> = settled.failed.then(|| {
        let error: Value = serde_json::from_slice(&settled.body).unwrap_or_default();
        let text = |field: &str| error.get(field).and_then(Value::as_str).map(str::to_owned);
        (
            text("errorType").unwrap_or_else(|| "Unhandled".into()),
            text("errorMessage")
                .unwrap_or_else(|| String::from_utf8_lossy(&settled.body).into_owned()),
        )
    });
    if error.is_none() && nothing_streamed && !settled.body.is_empty() {
        events.push(payload_chunk(&settled.body));
    }
    let log = tail.then(|| settled.tail_log(request_id, target));
    events.push(invoke_complete(
        error.as_ref().map(|(c, d)| (c.as_str(), d.as_str())),
        log,
    ));
    events
}

/// The closing event, with the error's code and details when the invocation failed, and
/// the log tail when it was asked for.
fn invoke_complete(error: Option<(&str, &str)>, log: Option<String>) -> Bytes {
    let mut complete = serde_json::Map::new();
    if let Some((code, details)) = error {
        complete.insert("ErrorCode".into(), json!(code));
        complete.insert("ErrorDetails".into(), json!(details));
    }
    if let Some(log) = log {
        complete.insert("LogResult".into(), json!(log));
    }
    event_message(
        "InvokeComplete",
        "application/json",
        Value::Object(complete).to_string().as_bytes(),
    )
}

fn payload_chunk(bytes: &[u8]) -> Bytes {
    event_message("PayloadChunk", "application/octet-stream", bytes)
}

/// One message of the AWS event stream encoding: a prelude (total length, headers length,
/// their CRC-32), string headers, the payload, and the CRC-32 of all that.
fn event_message(event_type: &str, content_type: &str, payload: &[u8]) -> Bytes {
    let mut headers = Vec::new();
    for (name, value) in [
        (":event-type", event_type),
        (":content-type", content_type),
        (":message-type", "event"),
    ] {
        headers.push(name.len() as u8);
        headers.extend_from_slice(name.as_bytes());
        // Value type 7: a string with a 2-byte length.
        headers.push(7);
        headers.extend_from_slice(&(value.len() as u16).to_be_bytes());
        headers.extend_from_slice(value.as_bytes());
    }
    let total = 12 + headers.len() + payload.len() + 4;
    let mut message = Vec::with_capacity(total);
    message.extend_from_slice(&(total as u32).to_be_bytes());
    message.extend_from_slice(&(headers.len() as u32).to_be_bytes());
    let prelude_crc = crc32fast::hash(&message);
    message.extend_from_slice(&prelude_crc.to_be_bytes());
    message.extend_from_slice(&headers);
    message.extend_from_slice(payload);
    let message_crc = crc32fast::hash(&message);
    message.extend_from_slice(&message_crc.to_be_bytes());
    Bytes::from(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_messages_carry_their_lengths_and_checksums() {
        let m = event_message("PayloadChunk", "application/octet-stream", b"hello");
        let total = u32::from_be_bytes(m[0..4].try_into().unwrap()) as usize;
        let headers = u32::from_be_bytes(m[4..8].try_into().unwrap()) as usize;
        assert_eq!(total, m.len());
        assert_eq!(
            u32::from_be_bytes(m[8..12].try_into().unwrap()),
            crc32fast::hash(&m[..8])
        );
        assert_eq!(&m[12 + headers..total - 4], b"hello");
        assert_eq!(
            u32::from_be_bytes(m[total - 4..].try_into().unwrap()),
            crc32fast::hash(&m[..total - 4])
        );
        let text = String::from_utf8_lossy(&m[12..12 + headers]);
        assert!(text.contains(":event-type") && text.contains("PayloadChunk"));
    }
}
