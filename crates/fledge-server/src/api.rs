//! The HTTP API under `/v1` (described by `openapi.json`), `/metrics`, and the dashboard.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use fledge_core::rollout::OperatorCommand;
use fledge_engine::store::{DeploymentRow, Filter};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::manager::{CreateRequest, Manager, Refusal};

pub const OPENAPI: &str = include_str!("openapi.json");
const DASHBOARD: &str = include_str!("dashboard.html");

#[derive(Clone)]
pub struct AppState {
    pub manager: Arc<Manager>,
    pub token: Arc<str>,
}

pub fn router(state: AppState) -> Router {
    let v1 = Router::new()
        .route("/deployments", post(create).get(list))
        .route("/deployments/{id}", get(show))
        .route("/deployments/{id}/events", get(events))
        .route("/deployments/{id}/notifications", get(notifications))
        .route("/deployments/{id}/{action}", post(act))
        .layer(middleware::from_fn_with_state(state.clone(), authorize));
    Router::new()
        .nest("/v1", v1)
        .route("/v1/openapi.json", get(openapi))
        .route("/metrics", get(metrics))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/", get(|| async { Html(DASHBOARD) }))
        .with_state(state)
}

fn error(status: StatusCode, code: &str, message: impl Into<String>) -> Response {
    (
        status,
        Json(json!({"error": {"code": code, "message": message.into()}})),
    )
        .into_response()
}

impl IntoResponse for Refusal {
    fn into_response(self) -> Response {
        match self {
            Refusal::Invalid(m) => error(StatusCode::BAD_REQUEST, "invalid", m),
            Refusal::NotFound(m) => error(StatusCode::NOT_FOUND, "not_found", m),
            Refusal::Conflict(m, row) => (
                StatusCode::CONFLICT,
                Json(json!({"error": {"code": "conflict", "message": m, "deployment": row}})),
            )
                .into_response(),
            Refusal::Platform(m) => error(StatusCode::BAD_GATEWAY, "platform", m),
            Refusal::Busy(m) => error(StatusCode::SERVICE_UNAVAILABLE, "busy", m),
            Refusal::Store(e) => error(StatusCode::INTERNAL_SERVER_ERROR, "store", e.to_string()),
        }
    }
}

/// Compares without an early exit, so the time taken says nothing about the token.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn authorize(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let given = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match given {
        Some(t) if same(t.as_bytes(), state.token.as_bytes()) => next.run(request).await,
        Some(_) => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "the bearer token is not this server's; use the token `fledge serve` printed (or FLEDGE_TOKEN)",
        ),
        None => error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send `Authorization: Bearer TOKEN` with the token `fledge serve` printed (or FLEDGE_TOKEN)",
        ),
    }
}

async fn openapi() -> Response {
    ([(header::CONTENT_TYPE, "application/json")], OPENAPI).into_response()
}

async fn create(State(state): State<AppState>, body: axum::body::Bytes) -> Response {
    let request: CreateRequest = match serde_json::from_slice(&body) {
        Ok(r) => r,
        Err(e) => {
            return error(
                StatusCode::BAD_REQUEST,
                "invalid",
                format!("the request body is not a create request: {e}"),
            );
        }
    };
    match state.manager.create(request).await {
        Ok((row, true)) => (StatusCode::CREATED, Json(row)).into_response(),
        Ok((row, false)) => (StatusCode::OK, Json(row)).into_response(),
        Err(refusal) => refusal.into_response(),
    }
}

#[derive(Deserialize)]
struct ListQuery {
    state: Option<String>,
    function: Option<String>,
    limit: Option<u32>,
}

const STATES: &[&str] = &[
    "active",
    "finished",
    "pending",
    "recording",
    "pre_traffic_hook",
    "shifting",
    "post_traffic_hook",
    "rolling_back",
    "promoted",
    "rolled_back",
    "aborted",
    "failed",
];

async fn list(State(state): State<AppState>, Query(q): Query<ListQuery>) -> Response {
    if let Some(s) = &q.state
        && !STATES.contains(&s.as_str())
    {
        return error(
            StatusCode::BAD_REQUEST,
            "invalid",
            format!("state '{s}' is not known; use one of {}", STATES.join(", ")),
        );
    }
    let filter = Filter {
        state: q.state,
        function: q.function,
        limit: q.limit,
    };
    match state.manager.store.list(filter).await {
        Ok(rows) => Json(json!({ "deployments": rows })).into_response(),
        Err(e) => Refusal::Store(e).into_response(),
    }
}

async fn detail(state: &AppState, row: DeploymentRow) -> Result<Value, Refusal> {
    let stored = state.manager.store.state(&row.id).await?;
    let mut v = serde_json::to_value(&row).expect("a row serialises");
    if let Some(d) = stored {
        let status = d.status();
        v["hold_ends"] = json!(status.hold_ends.map(|t| t.0));
        v["alias_routing"] = json!(status.alias);
        v["original"] = json!(d.original());
        v["last_verdict"] = json!(d.last_verdict());
        v["schedule"] = json!(d.spec().schedule.steps());
    }
    let notes = state.manager.store.notifications(&row.id).await?;
    let count = |s: &str| notes.iter().filter(|n| n.status == s).count();
    v["notifications"] = json!({
        "sent": count("sent"),
        "pending": count("pending"),
        "failed": count("failed"),
    });
    Ok(v)
}

/// The deployment `id`, or the answer that it is missing.
async fn found(state: &AppState, id: &str) -> Result<DeploymentRow, Response> {
    match state.manager.store.get(id).await {
        Ok(Some(row)) => Ok(row),
        Ok(None) => Err(Refusal::NotFound(format!("no deployment {id}")).into_response()),
        Err(e) => Err(Refusal::Store(e).into_response()),
    }
}

async fn show(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    let row = match found(&state, &id).await {
        Ok(row) => row,
        Err(answer) => return answer,
    };
    match detail(&state, row).await {
        Ok(v) => Json(v).into_response(),
        Err(r) => r.into_response(),
    }
}

#[derive(Deserialize)]
struct EventsQuery {
    after: Option<i64>,
    limit: Option<u32>,
}

async fn events(
    State(state): State<AppState>,
    Path(id): Path<String>,
    Query(q): Query<EventsQuery>,
) -> Response {
    if let Err(answer) = found(&state, &id).await {
        return answer;
    }
    let limit = q.limit.unwrap_or(1000).min(10_000);
    match state
        .manager
        .store
        .events(&id, q.after.unwrap_or(0), limit)
        .await
    {
        Ok(events) => Json(json!({ "events": events })).into_response(),
        Err(e) => Refusal::Store(e).into_response(),
    }
}

async fn notifications(State(state): State<AppState>, Path(id): Path<String>) -> Response {
    if let Err(answer) = found(&state, &id).await {
        return answer;
    }
    match state.manager.store.notifications(&id).await {
        Ok(rows) => Json(json!({ "notifications": rows })).into_response(),
        Err(e) => Refusal::Store(e).into_response(),
    }
}

async fn act(
    State(state): State<AppState>,
    Path((id, action)): Path<(String, String)>,
) -> Response {
    let command = match action.as_str() {
        "pause" => OperatorCommand::Pause,
        "resume" => OperatorCommand::Resume,
        "promote" => OperatorCommand::Promote,
        "promote-fully" => OperatorCommand::PromoteFully,
        "abort" => OperatorCommand::Abort,
        other => {
            return error(
                StatusCode::NOT_FOUND,
                "not_found",
                format!(
                    "'{other}' is not an action; use pause, resume, promote, promote-fully or abort"
                ),
            );
        }
    };
    match state.manager.command(&id, command).await {
        Ok(detail) => (
            StatusCode::ACCEPTED,
            Json(json!({"deployment": id, "command": action, "accepted": true, "detail": detail})),
        )
            .into_response(),
        Err(r) => r.into_response(),
    }
}

async fn metrics(State(state): State<AppState>, _headers: HeaderMap) -> Response {
    match state.manager.store.counts().await {
        Ok(counts) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            crate::metrics::render(&counts, state.manager.running()),
        )
            .into_response(),
        Err(e) => Refusal::Store(e).into_response(),
    }
}
