//! Provisioned concurrency: Put, Get, Delete and List ProvisionedConcurrencyConfig.
//!
//! A version's or an alias's configuration keeps that many processes started and ready
//! before any invocation (an alias's are split between its versions by weight, and follow
//! the weights as they change), so those invocations pay no cold start and report no Init
//! Duration. They are never stopped for being idle. The platform brings the processes to
//! what is asked for when a configuration changes and every second after.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use fledge_core::lambda::{LambdaError, NameKind, Version};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::control::Answer;
use crate::server::Platform;
use crate::store::ProvisionedConfig;
use crate::wire::iso8601;

#[derive(Deserialize, Default)]
pub struct ProvisionedQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
    #[serde(rename = "List")]
    list: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ProvisionedInput {
    provisioned_concurrent_executions: Option<i64>,
}

/// The function and the qualifier (required) a request names.
fn target(
    p: &Platform,
    raw: &str,
    qualifier: Option<&str>,
) -> Result<(String, String), LambdaError> {
    let r = crate::control::function_name(p, raw, NameKind::Function)?
        .with_qualifier_param(qualifier)?;
    let qualifier = r
        .qualifier
        .as_ref()
        .map(ToString::to_string)
        .ok_or_else(|| LambdaError::validation("null", "qualifier", "Member must not be null"))?;
    Ok((r.name.clone(), qualifier))
}

/// A configuration as Lambda shows it, with how many of its processes are started and
/// ready now.
fn config_json(p: &Platform, function: &str, qualifier: &str, c: &ProvisionedConfig) -> Value {
    let versions: Vec<Version> = p.store.read(|functions| {
        let Some(f) = functions.get(function) else {
            return Vec::new();
        };
        match f.aliases.get(qualifier) {
            Some(a) => std::iter::once(a.function_version)
                .chain(a.additional.map(|x| Version::Number(x.version)))
                .collect(),
            None => qualifier
                .parse::<u64>()
                .map(|n| vec![Version::Number(n)])
                .unwrap_or_default(),
        }
    });
    let (started, ready) = versions
        .iter()
        .map(|v| p.pools.provisioned_of(function, *v))
        .fold((0, 0), |(s, r), (a, b)| (s + a, r + b));
    let requested = c.requested as usize;
    let (allocated, available) = (started.min(requested), ready.min(requested));
    json!({
        "RequestedProvisionedConcurrentExecutions": requested,
        "AllocatedProvisionedConcurrentExecutions": allocated,
        "AvailableProvisionedConcurrentExecutions": available,
        "Status": if available >= requested { "READY" } else { "IN_PROGRESS" },
        "LastModified": iso8601(c.modified_ms),
    })
}

pub async fn put(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<ProvisionedQuery>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("PutProvisionedConcurrencyConfig").await?;
    let input: ProvisionedInput = crate::control::body(&bytes)?;
    let (name, qualifier) = target(&p, &name, q.qualifier.as_deref())?;
    let requested = input.provisioned_concurrent_executions.ok_or_else(|| {
        LambdaError::validation(
            "null",
            "provisionedConcurrentExecutions",
            "Member must not be null",
        )
    })?;
    let requested = crate::store::within(
        requested,
        "provisionedConcurrentExecutions",
        1,
        i64::from(u32::MAX),
    )?;
    let config =
        p.store
            .set_provisioned(&name, &qualifier, requested, p.config.concurrency_limit)?;
    crate::invoke::provision(&p).await;
    let mut out = config_json(&p, &name, &qualifier, &config);
    // As Lambda answers a Put: the processes are on their way.
    out["Status"] = json!("IN_PROGRESS");
    Ok((StatusCode::ACCEPTED, axum::Json(out)).into_response())
}

pub async fn get(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<ProvisionedQuery>,
) -> Answer {
    if q.list.is_some() {
        return list(&p, &name).await;
    }
    p.faults.apply("GetProvisionedConcurrencyConfig").await?;
    let (name, qualifier) = target(&p, &name, q.qualifier.as_deref())?;
    let config = p.store.provisioned(&name, &qualifier)?;
    Ok(axum::Json(config_json(&p, &name, &qualifier, &config)).into_response())
}

async fn list(p: &Platform, name: &str) -> Answer {
    p.faults.apply("ListProvisionedConcurrencyConfigs").await?;
    let r = crate::control::function_name(p, name, NameKind::Function)?;
    let configs: Vec<(String, ProvisionedConfig)> = p.store.read(|functions| {
        functions
            .get(&r.name)
            .map(|f| {
                f.provisioned
                    .iter()
                    .map(|(q, c)| (q.clone(), c.clone()))
                    .collect()
            })
            .ok_or_else(|| {
                LambdaError::not_found(format!(
                    "Function not found: {}",
                    p.store.function_arn(&r.name)
                ))
            })
    })?;
    let shown: Vec<Value> = configs
        .iter()
        .map(|(q, c)| {
            let mut v = config_json(p, &r.name, q, c);
            v["FunctionArn"] = json!(format!("{}:{q}", p.store.function_arn(&r.name)));
            v
        })
        .collect();
    Ok(axum::Json(json!({"ProvisionedConcurrencyConfigs": shown})).into_response())
}

pub async fn delete(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<ProvisionedQuery>,
) -> Answer {
    p.faults.apply("DeleteProvisionedConcurrencyConfig").await?;
    let (name, qualifier) = target(&p, &name, q.qualifier.as_deref())?;
    p.store.delete_provisioned(&name, &qualifier)?;
    crate::invoke::provision(&p).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}
