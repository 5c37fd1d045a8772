//! Function URLs: the configuration API (Create, Get, Update, Delete and List
//! FunctionUrlConfig) and the URLs themselves. A URL on an alias is routed by the alias's
//! weights, so any HTTP client (a browser, curl, a load generator) can send a rollout's
//! traffic.
//!
//! On AWS a URL is `https://ID.lambda-url.REGION.on.aws/`; here it is
//! `http://HOST:PORT/_fledge/url/ID/`, and what follows the id is the path the function
//! sees. A request becomes Lambda's payload format 2.0 event; the function's answer becomes
//! the HTTP response as Lambda's URLs make it (a `statusCode` object, or any JSON value as a
//! 200 `application/json` body).
//!
//! Not here: `AWS_IAM` URLs take any request that carries a SigV4 `Authorization` header
//! (nothing here checks signatures), and `RESPONSE_STREAM` URLs are refused.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use fledge_core::lambda::{ErrorType, FunctionRef, LambdaError, NameKind};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::Answer;
use crate::invoke::{Outcome, resolve, run_with_id, settle, sticky_of};
use crate::server::Platform;
use crate::store::{UrlConfig, check_enum};
use crate::wire::{clf_time, iso8601, now_ms, uuid};

/// The most a request body to a URL may be, as on Lambda.
const MAX_BODY: usize = 6 * 1024 * 1024;

#[derive(Deserialize, Default)]
pub struct UrlQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UrlInput {
    auth_type: Option<String>,
    cors: Option<Value>,
    invoke_mode: Option<String>,
}

impl UrlInput {
    fn check(&self) -> Result<(), LambdaError> {
        check_enum(self.auth_type.as_deref(), "authType", &["NONE", "AWS_IAM"])?;
        check_enum(
            self.invoke_mode.as_deref(),
            "invokeMode",
            &["BUFFERED", "RESPONSE_STREAM"],
        )?;
        if self.invoke_mode.as_deref() == Some("RESPONSE_STREAM") {
            return Err(LambdaError::invalid_parameter(
                "fledge local's function URLs answer in BUFFERED mode only: give InvokeMode BUFFERED (or none), and use InvokeWithResponseStream to stream",
            ));
        }
        if let Some(cors) = &self.cors
            && !cors.is_object()
        {
            return Err(LambdaError::invalid_parameter(
                "Cors must be an object (AllowOrigins, AllowMethods, AllowHeaders, ExposeHeaders, AllowCredentials, MaxAge)",
            ));
        }
        Ok(())
    }
}

/// The function and qualifier a URL configuration request names.
fn target(
    p: &Platform,
    raw: &str,
    qualifier: Option<&str>,
) -> Result<(String, Option<String>), LambdaError> {
    let r = crate::control::function_name(p, raw, NameKind::Function)?
        .with_qualifier_param(qualifier)?;
    Ok((r.name.clone(), r.qualifier.as_ref().map(|q| q.to_string())))
}

/// A URL configuration as Lambda renders it.
fn config_json(p: &Platform, function: &str, qualifier: &str, c: &UrlConfig) -> Value {
    let arn = p.store.function_arn(function);
    let arn = if qualifier.is_empty() {
        arn
    } else {
        format!("{arn}:{qualifier}")
    };
    let mut out = json!({
        "FunctionUrl": format!("{}/_fledge/url/{}/", p.endpoint(), c.id),
        "FunctionArn": arn,
        "AuthType": c.auth_type,
        "InvokeMode": c.invoke_mode,
        "CreationTime": iso8601(c.created_ms),
        "LastModifiedTime": iso8601(c.modified_ms),
    });
    if let Some(cors) = &c.cors {
        out["Cors"] = cors.clone();
    }
    out
}

pub async fn create(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<UrlQuery>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("CreateFunctionUrlConfig").await?;
    let input: UrlInput = crate::control::body(&bytes)?;
    input.check()?;
    let auth_type = input
        .auth_type
        .ok_or_else(|| LambdaError::validation("null", "authType", "Member must not be null"))?;
    let (name, qualifier) = target(&p, &name, q.qualifier.as_deref())?;
    let config = p.store.create_url(
        &name,
        qualifier.as_deref(),
        auth_type,
        input.cors,
        input.invoke_mode.unwrap_or_else(|| "BUFFERED".into()),
    )?;
    let mut out = config_json(&p, &name, qualifier.as_deref().unwrap_or_default(), &config);
    if let Some(o) = out.as_object_mut() {
        o.remove("LastModifiedTime");
    }
    Ok((StatusCode::CREATED, axum::Json(out)).into_response())
}

pub async fn get(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<UrlQuery>,
) -> Answer {
    p.faults.apply("GetFunctionUrlConfig").await?;
    let (name, qualifier) = target(&p, &name, q.qualifier.as_deref())?;
    let config = p.store.url(&name, qualifier.as_deref())?;
    let out = config_json(&p, &name, qualifier.as_deref().unwrap_or_default(), &config);
    Ok(axum::Json(out).into_response())
}

pub async fn update(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<UrlQuery>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("UpdateFunctionUrlConfig").await?;
    let input: UrlInput = crate::control::body(&bytes)?;
    input.check()?;
    let (name, qualifier) = target(&p, &name, q.qualifier.as_deref())?;
    let config = p.store.update_url(
        &name,
        qualifier.as_deref(),
        input.auth_type,
        input.cors,
        input.invoke_mode,
    )?;
    let out = config_json(&p, &name, qualifier.as_deref().unwrap_or_default(), &config);
    Ok(axum::Json(out).into_response())
}

pub async fn delete(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<UrlQuery>,
) -> Answer {
    p.faults.apply("DeleteFunctionUrlConfig").await?;
    let (name, qualifier) = target(&p, &name, q.qualifier.as_deref())?;
    p.store.delete_url(&name, qualifier.as_deref())?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

pub async fn list(State(p): State<Arc<Platform>>, Path(name): Path<String>) -> Answer {
    p.faults.apply("ListFunctionUrlConfigs").await?;
    let (name, _) = target(&p, &name, None)?;
    let configs: Vec<Value> = p
        .store
        .urls(&name)?
        .iter()
        .map(|(q, c)| config_json(&p, &name, q, c))
        .collect();
    Ok(axum::Json(json!({"FunctionUrlConfigs": configs})).into_response())
}

// ---- the URLs ----

/// A JSON `{"Message": …}` answer, as Lambda's URLs give their own errors.
fn message(status: StatusCode, text: &str) -> Response {
    (status, axum::Json(json!({"Message": text}))).into_response()
}

/// `/_fledge/url/{id}` with no path after it.
pub async fn serve_root(
    state: State<Arc<Platform>>,
    Path(id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    serve(state, Path((id, String::new())), method, uri, headers, body).await
}

/// A request to a function URL.
pub async fn serve(
    State(p): State<Arc<Platform>>,
    Path((id, path)): Path<(String, String)>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((function, qualifier, config)) = p.store.find_url(&id) else {
        return message(StatusCode::NOT_FOUND, "Not Found");
    };
    let cors = config.cors.as_ref().map(Cors::from);
    let origin = headers
        .get("origin")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    if method == Method::OPTIONS
        && let (Some(cors), Some(origin)) = (&cors, &origin)
        && headers.contains_key("access-control-request-method")
    {
        let mut response = StatusCode::OK.into_response();
        cors.preflight(origin, response.headers_mut());
        return response;
    }
    if config.auth_type == "AWS_IAM"
        && !headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|a| a.starts_with("AWS4-HMAC-SHA256 "))
    {
        return message(StatusCode::FORBIDDEN, "Forbidden");
    }
    if body.len() > MAX_BODY {
        return message(StatusCode::PAYLOAD_TOO_LARGE, "Request Entity Too Large");
    }
    let request_id = uuid();
    let event = url_event(&id, &path, &method, &uri, &headers, &body, &request_id);
    let payload = Bytes::from(event.to_string());
    let named = if qualifier.is_empty() {
        function
    } else {
        format!("{function}:{qualifier}")
    };
    let invoked = match FunctionRef::parse(&named, NameKind::Namespaced) {
        Ok(reference) => invoke(&p, &reference, &headers, payload, request_id).await,
        Err(e) => Err(e),
    };
    let mut response = match invoked {
        Ok(response) => response,
        // A throttle, as Invoke answers it (what Lambda's URLs answer is unverified).
        Err(e) if e.kind == ErrorType::TooManyRequests => {
            message(StatusCode::TOO_MANY_REQUESTS, "Rate Exceeded.")
        }
        Err(e) if e.kind == ErrorType::ResourceNotFound => {
            message(StatusCode::NOT_FOUND, &e.message)
        }
        Err(_) => message(StatusCode::BAD_GATEWAY, "Internal Server Error"),
    };
    if let (Some(cors), Some(origin)) = (&cors, &origin) {
        cors.answer(origin, response.headers_mut());
    }
    response
}

async fn invoke(
    p: &Platform,
    reference: &FunctionRef,
    headers: &HeaderMap,
    payload: Bytes,
    request_id: String,
) -> Result<Response, LambdaError> {
    let target = resolve(p, reference, sticky_of(headers, &payload))?;
    let outcome = run_with_id(p, &target, payload, None, request_id.clone(), false, None).await?;
    if let Outcome::CouldNotStart(..) = outcome {
        return Ok(message(StatusCode::BAD_GATEWAY, "Internal Server Error"));
    }
    let settled = settle(&target, &request_id, outcome);
    if settled.failed {
        return Ok(message(StatusCode::BAD_GATEWAY, "Internal Server Error"));
    }
    Ok(http_response(&settled.body))
}

/// Lambda's payload format 2.0 event for a request.
fn url_event(
    id: &str,
    path: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
    body: &[u8],
    request_id: &str,
) -> Value {
    let mut joined: BTreeMap<String, String> = BTreeMap::new();
    let mut cookies: Vec<String> = Vec::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
        if name == "cookie" {
            cookies.extend(
                value
                    .split(';')
                    .map(|c| c.trim().to_owned())
                    .filter(|c| !c.is_empty()),
            );
            continue;
        }
        joined
            .entry(name.as_str().to_owned())
            .and_modify(|v| {
                v.push(',');
                v.push_str(&value);
            })
            .or_insert(value);
    }
    let raw_query = uri.query().unwrap_or_default().to_owned();
    let mut query: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in
        serde_urlencoded::from_str::<Vec<(String, String)>>(&raw_query).unwrap_or_default()
    {
        query
            .entry(k)
            .and_modify(|e| {
                e.push(',');
                e.push_str(&v);
            })
            .or_insert(v);
    }
    let raw_path = format!("/{path}");
    let now = now_ms();
    let host = joined.get("host").cloned().unwrap_or_default();
    let source_ip = joined
        .get("x-forwarded-for")
        .and_then(|f| f.split(',').next())
        .map_or("127.0.0.1".to_owned(), |ip| ip.trim().to_owned());
    let text = joined.get("content-type").is_none_or(|t| {
        let t = t.to_ascii_lowercase();
        t.starts_with("text/")
            || t.contains("json")
            || t.contains("xml")
            || t.contains("javascript")
            || t.contains("x-www-form-urlencoded")
    }) && std::str::from_utf8(body).is_ok();
    let mut event = json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": raw_query,
        "headers": joined,
        "requestContext": {
            "accountId": "anonymous",
            "apiId": id,
            "domainName": host,
            "domainPrefix": id,
            "http": {
                "method": method.as_str(),
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": source_ip,
                "userAgent": joined.get("user-agent").cloned().unwrap_or_default(),
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": clf_time(now),
            "timeEpoch": now,
        },
        "isBase64Encoded": !text,
    });
    if !cookies.is_empty() {
        event["cookies"] = json!(cookies);
    }
    if !query.is_empty() {
        event["queryStringParameters"] = json!(query);
    }
    if !body.is_empty() {
        event["body"] = if text {
            json!(String::from_utf8_lossy(body))
        } else {
            json!(base64::engine::general_purpose::STANDARD.encode(body))
        };
    }
    event
}

/// The HTTP response a function's answer makes: an object with `statusCode` says it all;
/// anything else is a 200 JSON body.
fn http_response(answer: &[u8]) -> Response {
    let value: Option<Value> = serde_json::from_slice(answer).ok();
    let Some(Value::Object(o)) = value.as_ref().filter(|v| v.get("statusCode").is_some()) else {
        let mut response = Bytes::copy_from_slice(answer).into_response();
        response
            .headers_mut()
            .insert("content-type", HeaderValue::from_static("application/json"));
        return response;
    };
    let status = o
        .get("statusCode")
        .and_then(Value::as_u64)
        .and_then(|s| StatusCode::from_u16(s as u16).ok())
        .unwrap_or(StatusCode::OK);
    let body = match o.get("body") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::String(s)) if o.get("isBase64Encoded") == Some(&Value::Bool(true)) => {
            base64::engine::general_purpose::STANDARD
                .decode(s)
                .unwrap_or_default()
        }
        Some(Value::String(s)) => s.clone().into_bytes(),
        Some(other) => other.to_string().into_bytes(),
    };
    let mut response = (status, body).into_response();
    let out = response.headers_mut();
    out.remove("content-type");
    if let Some(Value::Object(h)) = o.get("headers") {
        for (name, value) in h {
            let value = match value {
                Value::String(s) => s.clone(),
                other => other.to_string(),
            };
            if let (Ok(name), Ok(value)) = (
                HeaderName::try_from(name.as_str()),
                HeaderValue::try_from(value),
            ) {
                out.insert(name, value);
            }
        }
    }
    if let Some(Value::Array(cookies)) = o.get("cookies") {
        for cookie in cookies.iter().filter_map(Value::as_str) {
            if let Ok(v) = HeaderValue::try_from(cookie) {
                out.append("set-cookie", v);
            }
        }
    }
    if !out.contains_key("content-type") {
        out.insert("content-type", HeaderValue::from_static("application/json"));
    }
    response
}

/// A URL's `Cors` settings.
struct Cors {
    origins: Vec<String>,
    methods: Vec<String>,
    headers: Vec<String>,
    expose: Vec<String>,
    credentials: bool,
    max_age: Option<u64>,
}

impl From<&Value> for Cors {
    fn from(v: &Value) -> Cors {
        let list = |key: &str| -> Vec<String> {
            v.get(key)
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(Value::as_str)
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default()
        };
        Cors {
            origins: list("AllowOrigins"),
            methods: list("AllowMethods"),
            headers: list("AllowHeaders"),
            expose: list("ExposeHeaders"),
            credentials: v
                .get("AllowCredentials")
                .and_then(Value::as_bool)
                .unwrap_or(false),
            max_age: v.get("MaxAge").and_then(Value::as_u64),
        }
    }
}

impl Cors {
    fn allows(&self, origin: &str) -> bool {
        self.origins
            .iter()
            .any(|o| o == "*" || o.eq_ignore_ascii_case(origin))
    }

    fn set(out: &mut HeaderMap, name: &'static str, value: &str) {
        if let Ok(v) = HeaderValue::try_from(value) {
            out.insert(name, v);
        }
    }

    /// The headers of an answer to a request from `origin`.
    fn answer(&self, origin: &str, out: &mut HeaderMap) {
        if !self.allows(origin) {
            return;
        }
        Self::set(out, "access-control-allow-origin", origin);
        if self.credentials {
            Self::set(out, "access-control-allow-credentials", "true");
        }
        if !self.expose.is_empty() {
            Self::set(out, "access-control-expose-headers", &self.expose.join(","));
        }
    }

    /// The headers of an answer to a preflight `OPTIONS` from `origin`.
    fn preflight(&self, origin: &str, out: &mut HeaderMap) {
        if !self.allows(origin) {
            return;
        }
        self.answer(origin, out);
        if !self.methods.is_empty() {
            Self::set(out, "access-control-allow-methods", &self.methods.join(","));
        }
        if !self.headers.is_empty() {
            Self::set(out, "access-control-allow-headers", &self.headers.join(","));
        }
        if let Some(age) = self.max_age {
            Self::set(out, "access-control-max-age", &age.to_string());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_with_a_status_code_says_it_all() {
        let r = http_response(
            br#"{"statusCode": 201, "headers": {"x-kind": "order"}, "cookies": ["a=1", "b=2"], "body": "made"}"#,
        );
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()["x-kind"], "order");
        let cookies: Vec<_> = r.headers().get_all("set-cookie").iter().collect();
        assert_eq!(cookies, ["a=1", "b=2"]);

        let r = http_response(br#"{"statusCode": 200, "body": "aGk=", "isBase64Encoded": true}"#);
        assert_eq!(r.status(), StatusCode::OK);

        let r = http_response(br#"{"version": "1", "ok": true}"#);
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-type"], "application/json");
    }

    #[test]
    fn a_request_becomes_a_payload_format_2_event() {
        let mut headers = HeaderMap::new();
        headers.insert("host", HeaderValue::from_static("127.0.0.1:9001"));
        headers.insert("cookie", HeaderValue::from_static("a=1; b=2"));
        headers.append("x-multi", HeaderValue::from_static("one"));
        headers.append("x-multi", HeaderValue::from_static("two"));
        headers.insert(
            "content-type",
            HeaderValue::from_static("application/octet-stream"),
        );
        let uri: Uri = "/_fledge/url/abc/orders/7?x=1&x=2&y=3".parse().unwrap();
        let event = url_event(
            "abc",
            "orders/7",
            &Method::POST,
            &uri,
            &headers,
            &[0, 1, 2],
            "req",
        );
        assert_eq!(event["rawPath"], "/orders/7");
        assert_eq!(event["rawQueryString"], "x=1&x=2&y=3");
        assert_eq!(
            event["queryStringParameters"],
            json!({"x": "1,2", "y": "3"})
        );
        assert_eq!(event["cookies"], json!(["a=1", "b=2"]));
        assert_eq!(event["headers"]["x-multi"], "one,two");
        assert!(event["headers"].get("cookie").is_none());
        assert_eq!(event["isBase64Encoded"], true);
        assert_eq!(event["body"], "AAEC");
        assert_eq!(event["requestContext"]["http"]["method"], "POST");
        assert_eq!(event["requestContext"]["domainPrefix"], "abc");
    }
}
