//! A CloudWatch-compatible endpoint over the local metrics: GetMetricData,
//! GetMetricStatistics, ListMetrics, PutMetricData (metrics of the caller's own, which
//! functions can also publish in the embedded metric format), and metric alarms
//! (PutMetricAlarm, DescribeAlarms, SetAlarmState, DeleteAlarms) evaluated on them.
//!
//! Three wire protocols reach one dispatcher: Smithy RPC v2 CBOR
//! (`POST /service/GraniteServiceVersion20100801/operation/<Op>`, what the Rust SDK sends),
//! AWS JSON 1.0 (`POST /` with `X-Amz-Target: GraniteServiceVersion20100801.<Op>`, what
//! the AWS CLI and boto3 send), and the AWS query protocol (a form-encoded `POST /` with
//! `Action=<Op>&Version=2010-08-01`, answered in XML: what every SDK and CLI released
//! before December 2025 sends). Requests become JSON values with timestamps as epoch
//! seconds; answers are JSON values whose timestamp fields become CBOR tag 1, or ISO 8601
//! in XML, on the way out.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use ciborium::Value as Cbor;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::metrics::{Aggregate, CustomKey, Metrics, Published, Statistic};
use crate::server::Platform;
use crate::wire::{iso8601, now_ms, uuid, xml_escape};

const TARGET_PREFIX: &str = "GraniteServiceVersion20100801.";
/// The API version a query-protocol request names.
const QUERY_VERSION: &str = "2010-08-01";
const QUERY_NAMESPACE: &str = "http://monitoring.amazonaws.com/doc/2010-08-01/";
/// The operations fledge local answers.
const OPERATIONS: [&str; 8] = [
    "GetMetricData",
    "GetMetricStatistics",
    "ListMetrics",
    "PutMetricData",
    "PutMetricAlarm",
    "DescribeAlarms",
    "SetAlarmState",
    "DeleteAlarms",
];

/// Fields that carry timestamps in CloudWatch's shapes.
const TIMESTAMP_FIELDS: [&str; 6] = [
    "Timestamps",
    "Timestamp",
    "StateUpdatedTimestamp",
    "AlarmConfigurationUpdatedTimestamp",
    "StateTransitionedTimestamp",
    "LastUpdated",
];

/// A CloudWatch error with its awsQuery-compatible code.
#[derive(Debug)]
pub struct CwError {
    pub code: &'static str,
    pub status: StatusCode,
    pub message: String,
}

fn invalid(message: impl Into<String>) -> CwError {
    CwError {
        code: "InvalidParameterValue",
        status: StatusCode::BAD_REQUEST,
        message: message.into(),
    }
}

fn missing(field: &str) -> CwError {
    CwError {
        code: "MissingParameter",
        status: StatusCode::BAD_REQUEST,
        message: format!("The parameter {field} is required."),
    }
}

// ---- wire ----

pub async fn cbor(
    State(p): State<Arc<Platform>>,
    Path(op): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if headers.contains_key("x-amz-target") {
        return encode_cbor_error(invalid(
            "an RPC v2 CBOR request must not carry X-Amz-Target",
        ));
    }
    let body = match decoded(&headers, body) {
        Ok(body) => body,
        Err(e) => return encode_cbor_error(e),
    };
    let request = if body.is_empty() {
        Value::Object(Default::default())
    } else {
        match ciborium::de::from_reader::<Cbor, _>(&body[..]) {
            Ok(v) => cbor_to_json(v),
            Err(e) => return encode_cbor_error(invalid(format!("the body is not CBOR: {e}"))),
        }
    };
    match dispatch(&p, &op, request).await {
        Ok(v) => {
            let mut out = Vec::new();
            ciborium::ser::into_writer(&json_to_cbor(v, false), &mut out).expect("CBOR encodes");
            let mut response = (StatusCode::OK, out).into_response();
            let h = response.headers_mut();
            h.insert("content-type", HeaderValue::from_static("application/cbor"));
            h.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
            response
        }
        Err(e) => encode_cbor_error(e),
    }
}

/// The request body, gunzipped when it says `Content-Encoding: gzip` (SDKs compress large
/// PutMetricData requests).
pub(crate) fn decoded(headers: &HeaderMap, body: Bytes) -> Result<Bytes, CwError> {
    let gzip = headers
        .get("content-encoding")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|e| e.trim().eq_ignore_ascii_case("gzip")));
    if !gzip {
        return Ok(body);
    }
    let mut out = Vec::new();
    std::io::Read::read_to_end(&mut flate2::read::GzDecoder::new(&body[..]), &mut out)
        .map_err(|e| invalid(format!("the body says it is gzip, but is not: {e}")))?;
    Ok(Bytes::from(out))
}

fn encode_cbor_error(e: CwError) -> Response {
    let header = query_error(&e);
    let body = Cbor::Map(vec![
        (
            Cbor::Text("__type".into()),
            Cbor::Text(format!("com.amazonaws.cloudwatch#{}", e.code)),
        ),
        (Cbor::Text("message".into()), Cbor::Text(e.message)),
    ]);
    let mut out = Vec::new();
    ciborium::ser::into_writer(&body, &mut out).expect("CBOR encodes");
    let mut response = (e.status, out).into_response();
    let h = response.headers_mut();
    h.insert("content-type", HeaderValue::from_static("application/cbor"));
    h.insert("smithy-protocol", HeaderValue::from_static("rpc-v2-cbor"));
    h.insert("x-amzn-query-error", header);
    response
}

fn query_error(e: &CwError) -> HeaderValue {
    let who = if e.status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    HeaderValue::from_str(&format!("{};{who}", e.code)).expect("ascii")
}

/// AWS JSON 1.0, for the AWS CLI and boto3; the operation comes from `X-Amz-Target`.
pub async fn json_rpc(State(p): State<Arc<Platform>>, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let Some(op) = target.strip_prefix(TARGET_PREFIX) else {
        return encode_json_error(invalid(format!(
            "fledge local answers CloudWatch here (X-Amz-Target: {TARGET_PREFIX}<Operation>); got X-Amz-Target '{target}'"
        )));
    };
    let body = match decoded(&headers, body) {
        Ok(body) => body,
        Err(e) => return encode_json_error(e),
    };
    let request = if body.is_empty() {
        Ok(json!({}))
    } else {
        serde_json::from_slice(&body)
    };
    let request = match request {
        Ok(v) => v,
        Err(e) => return encode_json_error(invalid(format!("the body is not JSON: {e}"))),
    };
    match dispatch(&p, op, request).await {
        Ok(v) => {
            let mut response = (StatusCode::OK, v.to_string()).into_response();
            response.headers_mut().insert(
                "content-type",
                HeaderValue::from_static("application/x-amz-json-1.0"),
            );
            response
        }
        Err(e) => encode_json_error(e),
    }
}

fn encode_json_error(e: CwError) -> Response {
    let body =
        json!({"__type": format!("com.amazonaws.cloudwatch#{}", e.code), "message": e.message});
    let mut response = (e.status, body.to_string()).into_response();
    let h = response.headers_mut();
    h.insert(
        "content-type",
        HeaderValue::from_static("application/x-amz-json-1.0"),
    );
    h.insert("x-amzn-query-error", query_error(&e));
    response
}

/// Whether a form-encoded request is for CloudWatch: it names CloudWatch's API version, or
/// names none and asks for one of CloudWatch's operations.
pub fn is_query_request(form: &[(String, String)]) -> bool {
    let get = |key: &str| form.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str());
    match get("Version") {
        Some(version) => version == QUERY_VERSION,
        None => get("Action").is_some_and(|a| OPERATIONS.contains(&a)),
    }
}

/// The AWS query protocol: `Action`, `Version` and the input as flattened form fields
/// (`Dimensions.member.1.Name=…`), answered in XML.
pub async fn query(p: &Platform, form: Vec<(String, String)>) -> Response {
    let mut action = String::new();
    let mut fields = Vec::with_capacity(form.len());
    for (key, value) in form {
        match key.as_str() {
            "Action" => action = value,
            "Version" => {}
            _ => fields.push((key, value)),
        }
    }
    let request = match form_to_json(fields) {
        Ok(v) => v,
        Err(e) => return encode_xml_error(e),
    };
    match dispatch(p, &action, request).await {
        Ok(v) => {
            let mut body = format!("<{action}Response xmlns=\"{QUERY_NAMESPACE}\">");
            if v.as_object().is_some_and(|o| !o.is_empty()) {
                write_xml(&mut body, &format!("{action}Result"), &v, false);
            }
            body.push_str(&format!(
                "<ResponseMetadata><RequestId>{}</RequestId></ResponseMetadata></{action}Response>",
                uuid()
            ));
            (StatusCode::OK, [("content-type", "text/xml")], body).into_response()
        }
        Err(e) => encode_xml_error(e),
    }
}

fn encode_xml_error(e: CwError) -> Response {
    let who = if e.status.is_server_error() {
        "Receiver"
    } else {
        "Sender"
    };
    let body = format!(
        "<ErrorResponse xmlns=\"{QUERY_NAMESPACE}\"><Error><Type>{who}</Type><Code>{}</Code><Message>{}</Message></Error><RequestId>{}</RequestId></ErrorResponse>",
        e.code,
        xml_escape(&e.message),
        uuid()
    );
    (e.status, [("content-type", "text/xml")], body).into_response()
}

/// Input members that are numbers or booleans; in a form every value is text.
const INTEGER_FIELDS: [&str; 6] = [
    "Period",
    "EvaluationPeriods",
    "DatapointsToAlarm",
    "MaxDatapoints",
    "MaxRecords",
    "StorageResolution",
];
/// (`Value` is a number in a MetricData item, and text in a Dimensions item.)
const DOUBLE_FIELDS: [&str; 8] = [
    "Threshold",
    "Value",
    "Values",
    "Counts",
    "SampleCount",
    "Sum",
    "Minimum",
    "Maximum",
];
const BOOLEAN_FIELDS: [&str; 2] = ["ReturnData", "ActionsEnabled"];

/// One node of a form being rebuilt into the shape the JSON protocols send.
#[derive(Default)]
struct FormNode {
    value: Option<String>,
    /// Named members, and list members by their 1-based index (`member.N`).
    fields: BTreeMap<String, FormNode>,
    members: BTreeMap<u32, FormNode>,
}

impl FormNode {
    /// `name` is the member this node is (a list's items take the list's name), and
    /// `container` the member that holds it.
    fn into_json(self, name: &str, container: &str) -> Result<Value, CwError> {
        if let Some(text) = self.value {
            return typed(name, container, text);
        }
        if !self.members.is_empty() {
            return self
                .members
                .into_values()
                .map(|m| m.into_json(name, container))
                .collect::<Result<Vec<_>, _>>()
                .map(Value::Array);
        }
        let mut out = serde_json::Map::new();
        for (key, node) in self.fields {
            let v = node.into_json(&key, name)?;
            out.insert(key, v);
        }
        Ok(Value::Object(out))
    }
}

/// A form value as the member `name` carries it in JSON.
fn typed(name: &str, container: &str, text: String) -> Result<Value, CwError> {
    let bad = |kind: &str| {
        invalid(format!(
            "The parameter {name} must be {kind}; got '{text}'."
        ))
    };
    if INTEGER_FIELDS.contains(&name) {
        text.parse::<i64>()
            .map(Value::from)
            .map_err(|_| bad("an integer"))
    } else if DOUBLE_FIELDS.contains(&name) && (name != "Value" || container == "MetricData") {
        text.parse::<f64>()
            .ok()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| bad("a number"))
    } else if BOOLEAN_FIELDS.contains(&name) {
        match text.as_str() {
            "true" => Ok(Value::Bool(true)),
            "false" => Ok(Value::Bool(false)),
            _ => Err(bad("true or false")),
        }
    } else {
        Ok(Value::String(text))
    }
}

/// Rebuilds a query-protocol form (`A.member.1.B=x`) into the JSON protocols' shape
/// (`{"A": [{"B": "x"}]}`). An empty list (`A=`) stays an empty text, which the operations
/// read as no items, as they do a missing list.
fn form_to_json(fields: Vec<(String, String)>) -> Result<Value, CwError> {
    let mut root = FormNode::default();
    for (key, value) in fields {
        let mut node = &mut root;
        let mut parts = key.split('.').peekable();
        while let Some(part) = parts.next() {
            node = if part == "member" && parts.peek().is_some() {
                let index = parts.next().unwrap_or_default();
                let index: u32 = index
                    .parse()
                    .map_err(|_| invalid(format!("'{key}' has no list index after member.")))?;
                node.members.entry(index).or_default()
            } else {
                node.fields.entry(part.to_string()).or_default()
            };
        }
        node.value = Some(value);
    }
    root.into_json("", "")
}

/// Writes `v` as the XML element `name`: objects as child elements, lists as `member`
/// elements, timestamps (by member name) as ISO 8601.
fn write_xml(out: &mut String, name: &str, v: &Value, timestamp: bool) {
    let text = match v {
        Value::Null => return,
        Value::Object(o) => {
            out.push_str(&format!("<{name}>"));
            for (key, child) in o {
                write_xml(out, key, child, TIMESTAMP_FIELDS.contains(&key.as_str()));
            }
            out.push_str(&format!("</{name}>"));
            return;
        }
        Value::Array(items) => {
            out.push_str(&format!("<{name}>"));
            for item in items {
                write_xml(out, "member", item, timestamp);
            }
            out.push_str(&format!("</{name}>"));
            return;
        }
        Value::Number(n) if timestamp => {
            iso8601((n.as_f64().unwrap_or(0.0) * 1000.0).round().max(0.0) as u64)
        }
        Value::Number(n) => n.to_string(),
        Value::Bool(b) => b.to_string(),
        Value::String(s) => xml_escape(s),
    };
    out.push_str(&format!("<{name}>{text}</{name}>"));
}

fn cbor_to_json(v: Cbor) -> Value {
    match v {
        Cbor::Integer(i) => {
            let n: i128 = i.into();
            i64::try_from(n)
                .map(Value::from)
                .unwrap_or_else(|_| Value::from(n as f64))
        }
        Cbor::Float(f) => json!(f),
        Cbor::Text(s) => Value::String(s),
        Cbor::Bool(b) => Value::Bool(b),
        Cbor::Null => Value::Null,
        Cbor::Tag(_, inner) => cbor_to_json(*inner),
        Cbor::Array(a) => Value::Array(a.into_iter().map(cbor_to_json).collect()),
        Cbor::Map(m) => Value::Object(
            m.into_iter()
                .filter_map(|(k, v)| match k {
                    Cbor::Text(k) => Some((k, cbor_to_json(v))),
                    _ => None,
                })
                .collect(),
        ),
        Cbor::Bytes(b) => Value::String(String::from_utf8_lossy(&b).into_owned()),
        _ => Value::Null,
    }
}

fn json_to_cbor(v: Value, timestamp: bool) -> Cbor {
    match v {
        Value::Null => Cbor::Null,
        Value::Bool(b) => Cbor::Bool(b),
        Value::Number(n) if timestamp => {
            Cbor::Tag(1, Box::new(Cbor::Float(n.as_f64().unwrap_or(0.0))))
        }
        Value::Number(n) => match n.as_i64() {
            Some(i) => Cbor::Integer(i.into()),
            None => Cbor::Float(n.as_f64().unwrap_or(0.0)),
        },
        Value::String(s) => Cbor::Text(s),
        Value::Array(a) => Cbor::Array(a.into_iter().map(|x| json_to_cbor(x, timestamp)).collect()),
        Value::Object(o) => Cbor::Map(
            o.into_iter()
                .map(|(k, v)| {
                    let ts = TIMESTAMP_FIELDS.contains(&k.as_str());
                    (Cbor::Text(k), json_to_cbor(v, ts))
                })
                .collect(),
        ),
    }
}

// ---- operations ----

async fn dispatch(p: &Platform, op: &str, request: Value) -> Result<Value, CwError> {
    if let Err(e) = p.faults.apply(op).await {
        let status =
            StatusCode::from_u16(e.kind.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let code = if status == StatusCode::TOO_MANY_REQUESTS {
            "Throttling"
        } else {
            "InternalServiceError"
        };
        return Err(CwError {
            code,
            status,
            message: e.message,
        });
    }
    let now_s = now_ms() as f64 / 1000.0;
    match op {
        "GetMetricData" => get_metric_data(&p.metrics, &request),
        "GetMetricStatistics" => get_metric_statistics(&p.metrics, &request),
        "ListMetrics" => Ok(list_metrics(&p.metrics, &request)),
        "PutMetricData" => put_metric_data(&p.metrics, &request, now_ms()).map(|()| json!({})),
        "PutMetricAlarm" => p.alarms.put(&request, now_s).map(|()| json!({})),
        "DescribeAlarms" => Ok(p.alarms.describe(&p.metrics, &request, now_s)),
        "SetAlarmState" => p.alarms.set_state(&request, now_s).map(|()| json!({})),
        "DeleteAlarms" => p.alarms.delete(&request).map(|()| json!({})),
        other => Err(CwError {
            code: "InvalidAction",
            status: StatusCode::BAD_REQUEST,
            message: format!(
                "fledge local does not implement the CloudWatch operation '{other}'; it implements {}",
                OPERATIONS.join(", ")
            ),
        }),
    }
}

/// A list of strings in a request, empty when absent.
fn strings<'a>(v: &'a Value, field: &str) -> Vec<&'a str> {
    v.get(field)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter_map(Value::as_str)
        .collect()
}

fn str_field<'a>(v: &'a Value, field: &str) -> Result<&'a str, CwError> {
    v.get(field)
        .and_then(Value::as_str)
        .ok_or_else(|| missing(field))
}

fn time_field(v: &Value, field: &str) -> Result<f64, CwError> {
    match v.get(field) {
        Some(Value::Number(n)) => n
            .as_f64()
            .ok_or_else(|| invalid(format!("{field} is not a time"))),
        Some(Value::String(s)) => parse_iso8601(s).ok_or_else(|| {
            invalid(format!(
                "{field} '{s}' is not a time; use ISO 8601 or epoch seconds"
            ))
        }),
        _ => Err(missing(field)),
    }
}

/// `2026-11-26T06:00:00Z` (optionally with fractional seconds) or epoch seconds as text.
fn parse_iso8601(s: &str) -> Option<f64> {
    if let Ok(n) = s.parse::<f64>() {
        return Some(n);
    }
    let s = s.trim_end_matches('Z');
    let (date, time) = s.split_once('T')?;
    let mut d = date.split('-').map(|x| x.parse::<i64>().ok());
    let (y, mo, day) = (d.next()??, d.next()??, d.next()??);
    let mut t = time.split(':');
    let (h, mi) = (
        t.next()?.parse::<i64>().ok()?,
        t.next()?.parse::<i64>().ok()?,
    );
    let sec = t.next().map_or(Some(0.0), |x| x.parse::<f64>().ok())?;
    let y2 = if mo <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some((days * 86_400 + h * 3600 + mi * 60) as f64 + sec)
}

fn dimensions(v: Option<&Value>) -> Result<BTreeMap<String, String>, CwError> {
    let mut out = BTreeMap::new();
    for d in v.and_then(Value::as_array).into_iter().flatten() {
        let name = str_field(d, "Name")?;
        let value = str_field(d, "Value")?;
        out.insert(name.to_string(), value.to_string());
    }
    Ok(out)
}

fn period_field(v: &Value, field: &str) -> Result<i64, CwError> {
    let period = v
        .get(field)
        .and_then(Value::as_i64)
        .ok_or_else(|| missing(field))?;
    if period < 1 {
        return Err(invalid(format!(
            "The parameter {field} must be greater than 0."
        )));
    }
    Ok(period)
}

fn get_metric_data(metrics: &Metrics, request: &Value) -> Result<Value, CwError> {
    let queries = request
        .get("MetricDataQueries")
        .and_then(Value::as_array)
        .ok_or_else(|| missing("MetricDataQueries"))?;
    if queries.len() > 500 {
        return Err(invalid(
            "The collection MetricDataQueries must not have a size greater than 500.",
        ));
    }
    let start = time_field(request, "StartTime")?.floor() as i64;
    let end = time_field(request, "EndTime")?.ceil() as i64;
    if end <= start {
        return Err(invalid(
            "The parameter StartTime must be less than the parameter EndTime.",
        ));
    }
    let ascending = request.get("ScanBy").and_then(Value::as_str) == Some("TimestampAscending");
    let mut results = Vec::new();
    for q in queries {
        let id = str_field(q, "Id")?;
        let id_ok = id.chars().next().is_some_and(|c| c.is_ascii_lowercase())
            && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !id_ok {
            return Err(invalid(format!(
                "The value {id} for parameter MetricDataQueries.member.Id is invalid: it must start with a lowercase letter and contain only letters, digits and underscores."
            )));
        }
        if q.get("Expression").is_some() {
            return Err(invalid(format!(
                "query {id}: fledge local does not evaluate metric math expressions; ask for the metrics (MetricStat) and compute in the client"
            )));
        }
        if q.get("ReturnData").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let stat_block = q.get("MetricStat").ok_or_else(|| missing("MetricStat"))?;
        let metric = stat_block
            .get("Metric")
            .ok_or_else(|| missing("MetricStat.Metric"))?;
        let namespace = str_field(metric, "Namespace")?;
        let name = str_field(metric, "MetricName")?;
        let dims = dimensions(metric.get("Dimensions"))?;
        let period = period_field(stat_block, "Period")?;
        let stat_text = str_field(stat_block, "Stat")?;
        let stat = Statistic::parse(stat_text).ok_or_else(|| invalid(format!("The statistic {stat_text} is not valid; use Sum, SampleCount, Average, Minimum, Maximum or pNN")))?;
        let mut points: Vec<(i64, f64)> =
            datapoints(metrics, namespace, name, &dims, start, end, period)
                .0
                .into_iter()
                .filter_map(|(t, a)| a.value(stat).map(|v| (t, v)))
                .collect();
        if !ascending {
            points.reverse();
        }
        let label = q.get("Label").and_then(Value::as_str).unwrap_or(name);
        results.push(json!({
            "Id": id,
            "Label": label,
            "Timestamps": points.iter().map(|(t, _)| *t as f64).collect::<Vec<_>>(),
            "Values": points.iter().map(|(_, v)| *v).collect::<Vec<_>>(),
            "StatusCode": "Complete",
        }));
    }
    Ok(json!({"MetricDataResults": results, "Messages": []}))
}

fn get_metric_statistics(metrics: &Metrics, request: &Value) -> Result<Value, CwError> {
    let namespace = str_field(request, "Namespace")?;
    let name = str_field(request, "MetricName")?;
    let dims = dimensions(request.get("Dimensions"))?;
    let start = time_field(request, "StartTime")?.floor() as i64;
    let end = time_field(request, "EndTime")?.ceil() as i64;
    let period = period_field(request, "Period")?;
    let plain: Vec<&str> = strings(request, "Statistics");
    let extended: Vec<&str> = strings(request, "ExtendedStatistics");
    if plain.is_empty() == extended.is_empty() {
        return Err(CwError {
            code: "InvalidParameterCombination",
            status: StatusCode::BAD_REQUEST,
            message:
                "Exactly one of the parameters Statistics or ExtendedStatistics must be specified."
                    .into(),
        });
    }
    let (points, unit) = datapoints(metrics, namespace, name, &dims, start, end, period);
    let mut datapoints = Vec::new();
    for (t, agg) in points {
        let mut dp = json!({"Timestamp": t as f64, "Unit": unit});
        for s in &plain {
            let stat = Statistic::parse(s)
                .filter(|x| !matches!(x, Statistic::Percentile(_)))
                .ok_or_else(|| invalid(format!("The statistic {s} is not valid")))?;
            dp[*s] = json!(agg.value(stat));
        }
        if !extended.is_empty() {
            let mut ext = serde_json::Map::new();
            for s in &extended {
                let stat = Statistic::parse(s)
                    .ok_or_else(|| invalid(format!("The extended statistic {s} is not valid")))?;
                ext.insert(s.to_string(), json!(agg.value(stat)));
            }
            dp["ExtendedStatistics"] = Value::Object(ext);
        }
        datapoints.push(dp);
    }
    Ok(json!({"Label": name, "Datapoints": datapoints}))
}

/// The datapoints of one metric, Lambda's or a published one, and its unit.
fn datapoints(
    metrics: &Metrics,
    namespace: &str,
    name: &str,
    dims: &BTreeMap<String, String>,
    start: i64,
    end: i64,
    period: i64,
) -> (Vec<(i64, Aggregate)>, String) {
    if namespace == "AWS/Lambda" {
        let unit = if name == "Duration" || name == "AsyncEventAge" {
            "Milliseconds"
        } else {
            "Count"
        };
        (metrics.query(name, dims, start, end, period), unit.into())
    } else {
        let key = CustomKey {
            namespace: namespace.into(),
            name: name.into(),
            dimensions: dims.clone(),
        };
        let (points, unit) = metrics.query_custom(&key, start, end, period);
        (points, unit.unwrap_or_else(|| "None".into()))
    }
}

/// PutMetricData: values for metrics in a namespace of the caller's, at a time (now by
/// default), as single values, values with counts, or a summary.
fn put_metric_data(metrics: &Metrics, request: &Value, now_ms: u64) -> Result<(), CwError> {
    let namespace = str_field(request, "Namespace")?;
    if namespace.is_empty() || namespace.len() > 255 || namespace.starts_with("AWS/") {
        return Err(invalid(format!(
            "The value {namespace} for parameter Namespace is invalid: a namespace has 1 to 255 characters and may not start with AWS/, which is AWS's own."
        )));
    }
    let data = request
        .get("MetricData")
        .and_then(Value::as_array)
        .filter(|d| !d.is_empty())
        .ok_or_else(|| missing("MetricData"))?;
    if data.len() > 1000 {
        return Err(invalid(format!(
            "The collection MetricData must not have more than 1000 items; it has {}.",
            data.len()
        )));
    }
    // Check every datum before keeping any: a refused request changes nothing.
    let mut accepted = Vec::with_capacity(data.len());
    for (i, datum) in data.iter().enumerate() {
        let member = format!("MetricData.member.{}", i + 1);
        let name =
            str_field(datum, "MetricName").map_err(|_| missing(&format!("{member}.MetricName")))?;
        let dims = dimensions(datum.get("Dimensions"))?;
        if dims.len() > 30 {
            return Err(invalid(format!(
                "The collection {member}.Dimensions must not have more than 30 items."
            )));
        }
        let at_ms = match datum.get("Timestamp") {
            None => now_ms,
            Some(_) => (time_field(datum, "Timestamp")? * 1000.0).max(0.0) as u64,
        };
        if at_ms > now_ms + 2 * 3600 * 1000 {
            return Err(invalid(format!(
                "The parameter {member}.Timestamp must not be more than 2 hours in the future."
            )));
        }
        let number = |v: &Value, what: &str| {
            v.as_f64().filter(|x| x.is_finite()).ok_or_else(|| {
                invalid(format!(
                    "The value {v} for parameter {member}.{what} is invalid."
                ))
            })
        };
        let single = datum.get("Value");
        let many = datum.get("Values").and_then(Value::as_array);
        let stats = datum.get("StatisticValues");
        let given = [single.is_some(), many.is_some(), stats.is_some()];
        if given.iter().filter(|g| **g).count() != 1 {
            return Err(CwError {
                code: "InvalidParameterCombination",
                status: StatusCode::BAD_REQUEST,
                message: format!(
                    "Give exactly one of {member}.Value, {member}.Values and {member}.StatisticValues."
                ),
            });
        }
        let published = if let Some(v) = single {
            Published::Values(vec![(number(v, "Value")?, 1)])
        } else if let Some(values) = many {
            let counts = datum.get("Counts").and_then(Value::as_array);
            if counts.is_some_and(|c| c.len() != values.len()) {
                return Err(invalid(format!(
                    "{member}.Counts must have as many items as {member}.Values."
                )));
            }
            let mut out = Vec::with_capacity(values.len());
            for (j, v) in values.iter().enumerate() {
                let n = match counts {
                    Some(c) => number(&c[j], "Counts")?.round().max(0.0) as u64,
                    None => 1,
                };
                out.push((number(v, "Values")?, n));
            }
            Published::Values(out)
        } else {
            let s = stats.expect("one of the three");
            let field = |f: &str| {
                s.get(f)
                    .ok_or_else(|| missing(&format!("{member}.StatisticValues.{f}")))
                    .and_then(|v| number(v, &format!("StatisticValues.{f}")))
            };
            let (count, sum, min, max) = (
                field("SampleCount")?,
                field("Sum")?,
                field("Minimum")?,
                field("Maximum")?,
            );
            if count <= 0.0 || min > max {
                return Err(invalid(format!(
                    "{member}.StatisticValues needs a SampleCount above 0 and a Minimum no larger than its Maximum."
                )));
            }
            Published::Statistics {
                count: count.round() as u64,
                sum,
                min,
                max,
            }
        };
        let key = CustomKey {
            namespace: namespace.into(),
            name: name.into(),
            dimensions: dims,
        };
        let unit = datum.get("Unit").and_then(Value::as_str).map(String::from);
        accepted.push((key, at_ms, published, unit));
    }
    for (key, at_ms, published, unit) in accepted {
        metrics.publish(key, at_ms, &published, unit.as_deref());
    }
    Ok(())
}

fn list_metrics(metrics: &Metrics, request: &Value) -> Value {
    let namespace = request.get("Namespace").and_then(Value::as_str);
    let wanted = request.get("MetricName").and_then(Value::as_str);
    let mut out = Vec::new();
    for key in metrics.custom_keys() {
        if namespace.is_none_or(|n| n == key.namespace) && wanted.is_none_or(|w| w == key.name) {
            let dims: Vec<Value> = key
                .dimensions
                .iter()
                .map(|(k, v)| json!({"Name": k, "Value": v}))
                .collect();
            out.push(
                json!({"Namespace": key.namespace, "MetricName": key.name, "Dimensions": dims}),
            );
        }
    }
    if namespace.is_some_and(|n| n != "AWS/Lambda") {
        return json!({"Metrics": out});
    }
    for set in metrics.dimension_sets() {
        for name in crate::metrics::METRICS
            .iter()
            .filter(|m| wanted.is_none_or(|w| w == **m))
        {
            let dims: Vec<Value> = set
                .iter()
                .map(|(k, v)| json!({"Name": k, "Value": v}))
                .collect();
            out.push(json!({"Namespace": "AWS/Lambda", "MetricName": name, "Dimensions": dims}));
        }
    }
    json!({"Metrics": out})
}

// ---- alarms ----

/// A metric alarm.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Alarm {
    pub name: String,
    pub description: String,
    pub namespace: String,
    pub metric_name: String,
    pub dimensions: BTreeMap<String, String>,
    pub statistic: String,
    pub period: i64,
    pub evaluation_periods: i64,
    pub datapoints_to_alarm: i64,
    pub threshold: f64,
    pub comparison: String,
    pub treat_missing_data: String,
    pub state: String,
    pub state_reason: String,
    pub state_updated: f64,
    pub configuration_updated: f64,
    /// A state set by SetAlarmState holds until the next evaluation after this.
    pub manual_until: Option<f64>,
}

const COMPARISONS: [&str; 4] = [
    "GreaterThanOrEqualToThreshold",
    "GreaterThanThreshold",
    "LessThanThreshold",
    "LessThanOrEqualToThreshold",
];

impl Alarm {
    fn breaches(&self, v: f64) -> bool {
        match self.comparison.as_str() {
            "GreaterThanOrEqualToThreshold" => v >= self.threshold,
            "GreaterThanThreshold" => v > self.threshold,
            "LessThanThreshold" => v < self.threshold,
            _ => v <= self.threshold,
        }
    }

    /// The state the metric puts the alarm in now, and why.
    fn evaluate(&self, metrics: &Metrics, now: f64) -> (String, String) {
        let stat = Statistic::parse(&self.statistic).unwrap_or(Statistic::Sum);
        // The second in progress counts: at one-second resolution an alarm should see the
        // errors that just happened, not only those of completed periods.
        let end = now.floor() as i64 + 1;
        let start = end - self.period * self.evaluation_periods;
        let (points, _) = datapoints(
            metrics,
            &self.namespace,
            &self.metric_name,
            &self.dimensions,
            start,
            end,
            self.period,
        );
        let values: Vec<f64> = points.iter().filter_map(|(_, a)| a.value(stat)).collect();
        let missing = (self.evaluation_periods as usize).saturating_sub(values.len());
        let breaching = values.iter().filter(|v| self.breaches(**v)).count()
            + if self.treat_missing_data == "breaching" {
                missing
            } else {
                0
            };
        let considered = values.len()
            + if matches!(
                self.treat_missing_data.as_str(),
                "breaching" | "notBreaching"
            ) {
                missing
            } else {
                0
            };
        let recent: Vec<String> = values.iter().map(|v| format!("{v}")).collect();
        if breaching as i64 >= self.datapoints_to_alarm {
            let reason = format!(
                "Threshold Crossed: {breaching} of the last {} datapoints [{}] were breaching (threshold {})",
                self.evaluation_periods,
                recent.join(", "),
                self.threshold
            );
            return ("ALARM".into(), reason);
        }
        if considered == 0 {
            if self.treat_missing_data == "ignore" {
                return (self.state.clone(), self.state_reason.clone());
            }
            return (
                "INSUFFICIENT_DATA".into(),
                format!(
                    "Insufficient Data: no datapoints in the last {} periods of {} s",
                    self.evaluation_periods, self.period
                ),
            );
        }
        (
            "OK".into(),
            format!(
                "Threshold Crossed: {breaching} of the last {} datapoints [{}] were breaching (threshold {})",
                self.evaluation_periods,
                recent.join(", "),
                self.threshold
            ),
        )
    }

    fn to_json(&self, arn_prefix: &str) -> Value {
        let dims: Vec<Value> = self
            .dimensions
            .iter()
            .map(|(k, v)| json!({"Name": k, "Value": v}))
            .collect();
        let mut out = json!({
            "AlarmName": self.name,
            "AlarmArn": format!("{arn_prefix}{}", self.name),
            "AlarmDescription": self.description,
            "ActionsEnabled": false,
            "OKActions": [], "AlarmActions": [], "InsufficientDataActions": [],
            "StateValue": self.state,
            "StateReason": self.state_reason,
            "StateUpdatedTimestamp": self.state_updated,
            "StateTransitionedTimestamp": self.state_updated,
            "AlarmConfigurationUpdatedTimestamp": self.configuration_updated,
            "MetricName": self.metric_name,
            "Namespace": self.namespace,
            "Dimensions": dims,
            "Period": self.period,
            "EvaluationPeriods": self.evaluation_periods,
            "DatapointsToAlarm": self.datapoints_to_alarm,
            "Threshold": self.threshold,
            "ComparisonOperator": self.comparison,
            "TreatMissingData": self.treat_missing_data,
        });
        if self.statistic.starts_with('p') {
            out["ExtendedStatistic"] = json!(self.statistic);
        } else {
            out["Statistic"] = json!(self.statistic);
        }
        out
    }
}

/// The alarms, persisted in `alarms.json`.
pub struct Alarms {
    path: PathBuf,
    list: Mutex<BTreeMap<String, Alarm>>,
    /// `arn:aws:cloudwatch:<region>:<account>:alarm:`, the platform's.
    arn_prefix: String,
}

impl Alarms {
    pub fn open(dir: &std::path::Path, region: &str, account: &str) -> std::io::Result<Alarms> {
        let path = dir.join("alarms.json");
        let list = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(std::io::Error::other)?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => BTreeMap::new(),
            Err(e) => return Err(e),
        };
        Ok(Alarms {
            path,
            list: Mutex::new(list),
            arn_prefix: format!("arn:aws:cloudwatch:{region}:{account}:alarm:"),
        })
    }

    fn save(&self, list: &BTreeMap<String, Alarm>) -> Result<(), CwError> {
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_vec_pretty(list).expect("alarms serialise"),
        )
        .and_then(|()| std::fs::rename(&tmp, &self.path))
        .map_err(|e| CwError {
            code: "InternalServiceError",
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("could not save alarms: {e}"),
        })
    }

    fn put(&self, r: &Value, now: f64) -> Result<(), CwError> {
        let name = str_field(r, "AlarmName")?.to_string();
        let statistic = match (
            r.get("Statistic").and_then(Value::as_str),
            r.get("ExtendedStatistic").and_then(Value::as_str),
        ) {
            (Some(s), None) | (None, Some(s)) => s.to_string(),
            (None, None) if r.get("Metrics").is_some() => {
                return Err(invalid(
                    "fledge local evaluates alarms on one metric (MetricName and Statistic); metric math alarms are not available",
                ));
            }
            _ => {
                return Err(CwError {
                    code: "InvalidParameterCombination",
                    status: StatusCode::BAD_REQUEST,
                    message: "Exactly one of Statistic or ExtendedStatistic must be specified."
                        .into(),
                });
            }
        };
        if Statistic::parse(&statistic).is_none() {
            return Err(invalid(format!("The statistic {statistic} is not valid")));
        }
        let comparison = str_field(r, "ComparisonOperator")?.to_string();
        if !COMPARISONS.contains(&comparison.as_str()) {
            return Err(invalid(format!(
                "ComparisonOperator {comparison} is not one of {}",
                COMPARISONS.join(", ")
            )));
        }
        let evaluation_periods = r
            .get("EvaluationPeriods")
            .and_then(Value::as_i64)
            .ok_or_else(|| missing("EvaluationPeriods"))?;
        if evaluation_periods < 1 {
            return Err(invalid("EvaluationPeriods must be at least 1"));
        }
        let treat = r
            .get("TreatMissingData")
            .and_then(Value::as_str)
            .unwrap_or("missing")
            .to_string();
        if !["missing", "breaching", "notBreaching", "ignore"].contains(&treat.as_str()) {
            return Err(invalid(format!(
                "TreatMissingData {treat} is not one of missing, breaching, notBreaching, ignore"
            )));
        }
        let mut list = self.list.lock().expect("alarms lock");
        let previous = list.get(&name);
        let alarm = Alarm {
            description: r
                .get("AlarmDescription")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_string(),
            namespace: str_field(r, "Namespace")?.to_string(),
            metric_name: str_field(r, "MetricName")?.to_string(),
            dimensions: dimensions(r.get("Dimensions"))?,
            statistic,
            period: period_field(r, "Period")?,
            evaluation_periods,
            datapoints_to_alarm: r
                .get("DatapointsToAlarm")
                .and_then(Value::as_i64)
                .unwrap_or(evaluation_periods),
            threshold: r
                .get("Threshold")
                .and_then(Value::as_f64)
                .ok_or_else(|| missing("Threshold"))?,
            comparison,
            treat_missing_data: treat,
            state: previous.map_or("INSUFFICIENT_DATA".into(), |a| a.state.clone()),
            state_reason: previous.map_or("Unchecked: Initial alarm creation".into(), |a| {
                a.state_reason.clone()
            }),
            state_updated: previous.map_or(now, |a| a.state_updated),
            configuration_updated: now,
            manual_until: None,
            name: name.clone(),
        };
        list.insert(name, alarm);
        self.save(&list)
    }

    fn describe(&self, metrics: &Metrics, r: &Value, now: f64) -> Value {
        let names: Vec<&str> = strings(r, "AlarmNames");
        let prefix = r.get("AlarmNamePrefix").and_then(Value::as_str);
        let state = r.get("StateValue").and_then(Value::as_str);
        let mut list = self.list.lock().expect("alarms lock");
        let mut out = Vec::new();
        for alarm in list.values_mut() {
            if alarm.manual_until.is_none_or(|t| now >= t) {
                alarm.manual_until = None;
                let (value, reason) = alarm.evaluate(metrics, now);
                if value != alarm.state {
                    alarm.state_updated = now;
                }
                alarm.state = value;
                alarm.state_reason = reason;
            }
            let selected = (names.is_empty() || names.contains(&alarm.name.as_str()))
                && prefix.is_none_or(|p| alarm.name.starts_with(p))
                && state.is_none_or(|s| s == alarm.state);
            if selected {
                out.push(alarm.to_json(&self.arn_prefix));
            }
        }
        json!({"MetricAlarms": out, "CompositeAlarms": []})
    }

    fn set_state(&self, r: &Value, now: f64) -> Result<(), CwError> {
        let name = str_field(r, "AlarmName")?;
        let value = str_field(r, "StateValue")?;
        if !["OK", "ALARM", "INSUFFICIENT_DATA"].contains(&value) {
            return Err(invalid(format!(
                "StateValue {value} is not one of OK, ALARM, INSUFFICIENT_DATA"
            )));
        }
        let reason = str_field(r, "StateReason")?;
        let mut list = self.list.lock().expect("alarms lock");
        let alarm = list.get_mut(name).ok_or_else(|| CwError {
            code: "ResourceNotFound",
            status: StatusCode::NOT_FOUND,
            message: format!("Alarm {name} not found"),
        })?;
        alarm.state = value.into();
        alarm.state_reason = reason.into();
        alarm.state_updated = now;
        alarm.manual_until = Some(now + alarm.period as f64);
        self.save(&list)
    }

    fn delete(&self, r: &Value) -> Result<(), CwError> {
        let names: Vec<&str> = strings(r, "AlarmNames");
        let mut list = self.list.lock().expect("alarms lock");
        if let Some(missing) = names.iter().find(|n| !list.contains_key(**n)) {
            return Err(CwError {
                code: "ResourceNotFound",
                status: StatusCode::NOT_FOUND,
                message: format!("Alarm {missing} not found"),
            });
        }
        for n in names {
            list.remove(n);
        }
        self.save(&list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn query_forms_become_the_json_protocols_shape() {
        let v = form_to_json(form(&[
            ("MetricDataQueries.member.2.Id", "b"),
            ("MetricDataQueries.member.1.Id", "a"),
            ("MetricDataQueries.member.1.MetricStat.Period", "60"),
            (
                "MetricDataQueries.member.1.MetricStat.Metric.Dimensions.member.1.Name",
                "FunctionName",
            ),
            ("MetricDataQueries.member.1.ReturnData", "false"),
            ("Threshold", "0.5"),
            ("Statistics.member.1", "Sum"),
            ("AlarmNames", ""),
        ]))
        .unwrap();
        assert_eq!(
            v,
            json!({
                "MetricDataQueries": [
                    {"Id": "a", "ReturnData": false, "MetricStat": {
                        "Period": 60,
                        "Metric": {"Dimensions": [{"Name": "FunctionName"}]}}},
                    {"Id": "b"},
                ],
                "Threshold": 0.5,
                "Statistics": ["Sum"],
                "AlarmNames": "",
            })
        );
        let v = form_to_json(form(&[
            ("MetricData.member.1.Value", "2.5"),
            ("MetricData.member.1.Dimensions.member.1.Value", "cart"),
        ]))
        .unwrap();
        assert_eq!(
            v,
            json!({"MetricData": [{"Value": 2.5, "Dimensions": [{"Value": "cart"}]}]})
        );
        let e = form_to_json(form(&[("Period", "sixty")])).unwrap_err();
        assert_eq!(e.code, "InvalidParameterValue");
        assert!(e.message.contains("Period") && e.message.contains("sixty"));
    }

    #[test]
    fn answers_become_query_xml() {
        let mut out = String::new();
        let answer = json!({
            "Datapoints": [{"Timestamp": 1_586_545_592.5, "Sum": 3.0}],
            "Label": "a < b",
            "Empty": null,
        });
        write_xml(&mut out, "Result", &answer, false);
        assert_eq!(
            out,
            "<Result><Datapoints><member><Sum>3.0</Sum><Timestamp>2020-04-10T19:06:32.500Z</Timestamp></member></Datapoints><Label>a &lt; b</Label></Result>"
        );
    }

    #[test]
    fn iso_times_read_as_epoch_seconds() {
        assert_eq!(parse_iso8601("1970-01-01T00:00:00Z"), Some(0.0));
        assert_eq!(parse_iso8601("2020-04-10T19:06:32Z"), Some(1_586_545_592.0));
        assert_eq!(parse_iso8601("1586545592.5"), Some(1_586_545_592.5));
        assert_eq!(parse_iso8601("yesterday"), None);
    }

    #[test]
    fn timestamps_become_cbor_tag_1() {
        let v = json!({"MetricDataResults": [{"Timestamps": [1.0, 2.0], "Values": [3.0]}]});
        let Cbor::Map(top) = json_to_cbor(v, false) else {
            panic!()
        };
        let Cbor::Array(results) = &top[0].1 else {
            panic!()
        };
        let Cbor::Map(result) = &results[0] else {
            panic!()
        };
        let timestamps = result
            .iter()
            .find(|(k, _)| *k == Cbor::Text("Timestamps".into()))
            .unwrap();
        let Cbor::Array(ts) = &timestamps.1 else {
            panic!()
        };
        assert!(matches!(ts[0], Cbor::Tag(1, _)));
        let values = result
            .iter()
            .find(|(k, _)| *k == Cbor::Text("Values".into()))
            .unwrap();
        let Cbor::Array(vs) = &values.1 else { panic!() };
        assert!(matches!(vs[0], Cbor::Float(_)));
    }
}
