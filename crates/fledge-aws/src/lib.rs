//! fledge's one client path to a platform: the official AWS SDK for Rust. Against AWS it uses
//! the standard credential chain (environment, profiles, SSO); with an endpoint URL it talks
//! to any Lambda-compatible endpoint, fledge local included. Errors are classified into the
//! core's [`FailureKind`] so the core's retry policy can decide; the SDK's own retries are
//! off, so that every failure is seen, recorded and decided on once.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant, SystemTime};

use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricStat, ScanBy, StateValue,
};
use aws_sdk_lambda::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_lambda::primitives::Blob;
use aws_sdk_lambda::types::AliasRoutingConfiguration;
use fledge_core::judge::{LatencyHistogram, VersionSample};
use fledge_core::lambda::{AdditionalVersion, AliasRouting, FunctionRef, NameKind, Version};
use fledge_core::rollout::{ApiFailure, FailureKind};

/// Clients for one platform.
#[derive(Clone, Debug)]
pub struct Aws {
    pub lambda: aws_sdk_lambda::Client,
    pub cloudwatch: aws_sdk_cloudwatch::Client,
    /// For notifications to SNS topics.
    pub sns: aws_sdk_sns::Client,
    /// Set when talking to a compatible endpoint rather than AWS.
    pub endpoint: Option<String>,
}

/// One invocation's result as a caller sees it.
#[derive(Clone, Debug)]
pub struct Invoked {
    pub executed_version: Option<Version>,
    pub function_error: Option<String>,
    pub payload: Vec<u8>,
    pub latency: Duration,
}

impl Aws {
    /// Loads configuration the standard way; `endpoint` overrides where requests go (and,
    /// when no credentials are configured, supplies placeholder ones, which a local endpoint
    /// accepts).
    pub async fn connect(endpoint: Option<&str>, region: Option<&str>) -> Aws {
        // fledge's core decides about retries (and records each failure), so the SDK makes
        // one attempt per call; timeouts keep an unreachable platform from hanging a step.
        let timeouts = aws_config::timeout::TimeoutConfig::builder()
            .connect_timeout(Duration::from_secs(3))
            .operation_attempt_timeout(Duration::from_secs(15))
            .build();
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .retry_config(aws_config::retry::RetryConfig::disabled())
            .timeout_config(timeouts);
        if let Some(r) = region {
            loader = loader.region(aws_config::Region::new(r.to_string()));
        }
        if let Some(url) = endpoint {
            loader = loader.endpoint_url(url);
            if std::env::var_os("AWS_ACCESS_KEY_ID").is_none()
                && std::env::var_os("AWS_PROFILE").is_none()
            {
                loader = loader.credentials_provider(aws_sdk_lambda::config::Credentials::new(
                    "fledge",
                    "local",
                    None,
                    None,
                    "fledge-local",
                ));
            }
            if region.is_none()
                && std::env::var_os("AWS_REGION").is_none()
                && std::env::var_os("AWS_DEFAULT_REGION").is_none()
            {
                loader = loader.region(aws_config::Region::new("us-east-1"));
            }
        }
        let config = loader.load().await;
        Aws {
            lambda: aws_sdk_lambda::Client::new(&config),
            cloudwatch: aws_sdk_cloudwatch::Client::new(&config),
            sns: aws_sdk_sns::Client::new(&config),
            endpoint: endpoint.map(String::from),
        }
    }

    /// Publishes a message to an SNS topic; its MessageId.
    pub async fn publish(
        &self,
        topic_arn: &str,
        subject: &str,
        message: &str,
    ) -> Result<String, ApiFailure> {
        let out = self
            .sns
            .publish()
            .topic_arn(topic_arn)
            .subject(subject)
            .message(message)
            .send()
            .await
            .map_err(classify)?;
        Ok(out.message_id().unwrap_or_default().to_owned())
    }

    /// Reads an alias: its routing and RevisionId.
    pub async fn get_alias(
        &self,
        function: &str,
        alias: &str,
    ) -> Result<(AliasRouting, String), ApiFailure> {
        let out = self
            .lambda
            .get_alias()
            .function_name(function)
            .name(alias)
            .send()
            .await
            .map_err(classify)?;
        let primary: Version = out
            .function_version()
            .unwrap_or("$LATEST")
            .parse()
            .map_err(|e: fledge_core::lambda::LambdaError| {
                ApiFailure::new(FailureKind::Rejected, e.message)
            })?;
        let additional = out
            .routing_config()
            .and_then(|r| r.additional_version_weights())
            .and_then(|w| w.iter().next())
            .and_then(|(k, w)| {
                Some(AdditionalVersion {
                    version: k.parse().ok()?,
                    weight: *w,
                })
            });
        Ok((
            AliasRouting {
                primary,
                additional,
            },
            out.revision_id().unwrap_or_default().to_string(),
        ))
    }

    /// Writes exactly `routing` to the alias, guarded by `revision_id`; answers the new one.
    pub async fn update_alias(
        &self,
        function: &str,
        alias: &str,
        routing: &AliasRouting,
        revision_id: &str,
    ) -> Result<String, ApiFailure> {
        let weights: HashMap<String, f64> = routing.weights_map().into_iter().collect();
        let mut call = self
            .lambda
            .update_alias()
            .function_name(function)
            .name(alias)
            .function_version(routing.primary.to_string())
            .routing_config(
                AliasRoutingConfiguration::builder()
                    .set_additional_version_weights(Some(weights))
                    .build(),
            );
        if !revision_id.is_empty() {
            call = call.revision_id(revision_id);
        }
        let out = call.send().await.map_err(classify)?;
        Ok(out.revision_id().unwrap_or_default().to_string())
    }

    /// Publishes `$LATEST`; answers the version number.
    pub async fn publish_version(&self, function: &str) -> Result<u64, ApiFailure> {
        let out = self
            .lambda
            .publish_version()
            .function_name(function)
            .send()
            .await
            .map_err(classify)?;
        out.version().and_then(|v| v.parse().ok()).ok_or_else(|| {
            ApiFailure::new(
                FailureKind::Rejected,
                format!("PublishVersion answered version {:?}", out.version()),
            )
        })
    }

    /// Whether a version exists.
    pub async fn version_exists(&self, function: &str, version: u64) -> Result<bool, ApiFailure> {
        match self
            .lambda
            .get_function_configuration()
            .function_name(function)
            .qualifier(version.to_string())
            .send()
            .await
        {
            Ok(_) => Ok(true),
            Err(e) => {
                let failure = classify(e);
                if failure.kind == FailureKind::NotFound {
                    Ok(false)
                } else {
                    Err(failure)
                }
            }
        }
    }

    /// Invokes synchronously.
    pub async fn invoke(&self, function: &str, payload: &[u8]) -> Result<Invoked, ApiFailure> {
        let started = Instant::now();
        let out = self
            .lambda
            .invoke()
            .function_name(function)
            .payload(Blob::new(payload.to_vec()))
            .send()
            .await
            .map_err(classify)?;
        Ok(Invoked {
            executed_version: out.executed_version().and_then(|v| v.parse().ok()),
            function_error: out.function_error().map(String::from),
            payload: out.payload.map(|p| p.into_inner()).unwrap_or_default(),
            latency: started.elapsed(),
        })
    }

    /// Per-version Invocations, Errors and Throttles of an alias (`{FunctionName, Resource=F:A,
    /// ExecutedVersion}`), one sample per datapoint, from `start` to `end`.
    pub async fn alias_metrics(
        &self,
        function: &str,
        alias: &str,
        versions: &[u64],
        start: SystemTime,
        end: SystemTime,
        period: i32,
    ) -> Result<BTreeMap<u64, Vec<(SystemTime, VersionSample)>>, ApiFailure> {
        let mut call = self
            .cloudwatch
            .get_metric_data()
            .start_time(start.into())
            .end_time(end.into())
            .scan_by(ScanBy::TimestampAscending);
        let function = bare_name(function);
        for v in versions {
            for metric in ["Invocations", "Errors", "Throttles"] {
                let dims = version_dimensions(&function, alias, *v);
                call = call.metric_data_queries(
                    MetricDataQuery::builder()
                        .id(format!("{}{v}", metric.to_lowercase()))
                        .metric_stat(
                            MetricStat::builder()
                                .metric(
                                    Metric::builder()
                                        .namespace("AWS/Lambda")
                                        .metric_name(metric)
                                        .set_dimensions(Some(dims))
                                        .build(),
                                )
                                .period(period)
                                .stat("Sum")
                                .build(),
                        )
                        .build(),
                );
            }
        }
        let out = call.send().await.map_err(classify)?;
        let mut by_version: BTreeMap<u64, BTreeMap<i64, VersionSample>> = BTreeMap::new();
        for r in out.metric_data_results() {
            let id = r.id().unwrap_or_default();
            let Some((metric, version)) = ["invocations", "errors", "throttles"]
                .iter()
                .find_map(|m| Some((*m, id.strip_prefix(m)?)))
            else {
                continue;
            };
            let Ok(version) = version.parse::<u64>() else {
                continue;
            };
            for (t, value) in r.timestamps().iter().zip(r.values()) {
                let sample = by_version
                    .entry(version)
                    .or_default()
                    .entry(t.secs())
                    .or_default();
                match metric {
                    "errors" => sample.errors += *value as u64,
                    "throttles" => sample.throttles += *value as u64,
                    _ => sample.requests += *value as u64,
                }
            }
        }
        Ok(by_version
            .into_iter()
            .map(|(v, points)| {
                let list = points
                    .into_iter()
                    .map(|(t, s)| {
                        (
                            SystemTime::UNIX_EPOCH + Duration::from_secs(t.max(0) as u64),
                            s,
                        )
                    })
                    .collect();
                (v, list)
            })
            .collect())
    }

    /// Each version's p99 Duration (ms) over the whole window `[start, end)`: one period
    /// covering it, in multiples of `unit` seconds (60 on AWS, 1 on fledge local).
    pub async fn alias_p99(
        &self,
        function: &str,
        alias: &str,
        versions: &[u64],
        start: SystemTime,
        end: SystemTime,
        unit: i32,
    ) -> Result<BTreeMap<u64, f64>, ApiFailure> {
        let function = bare_name(function);
        let window = end
            .duration_since(start)
            .unwrap_or_default()
            .as_secs()
            .max(1);
        let unit = u64::from(unit.max(1).unsigned_abs());
        let period = i32::try_from(window.div_ceil(unit) * unit).unwrap_or(i32::MAX);
        let mut call = self
            .cloudwatch
            .get_metric_data()
            .start_time(start.into())
            .end_time(end.into());
        for v in versions {
            let dims = version_dimensions(&function, alias, *v);
            call = call.metric_data_queries(
                MetricDataQuery::builder()
                    .id(format!("p99v{v}"))
                    .metric_stat(
                        MetricStat::builder()
                            .metric(
                                Metric::builder()
                                    .namespace("AWS/Lambda")
                                    .metric_name("Duration")
                                    .set_dimensions(Some(dims))
                                    .build(),
                            )
                            .period(period)
                            .stat("p99")
                            .build(),
                    )
                    .build(),
            );
        }
        let out = call.send().await.map_err(classify)?;
        Ok(out
            .metric_data_results()
            .iter()
            .filter_map(|r| {
                let version = r.id()?.strip_prefix("p99v")?.parse().ok()?;
                let worst = r
                    .values()
                    .iter()
                    .copied()
                    .fold(None, |m: Option<f64>, v| Some(m.map_or(v, |m| m.max(v))))?;
                Some((version, worst))
            })
            .collect())
    }

    /// The named alarms that are in ALARM, with their reasons.
    pub async fn alarms_firing(
        &self,
        names: &[String],
    ) -> Result<Vec<(String, String)>, ApiFailure> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let out = self
            .cloudwatch
            .describe_alarms()
            .set_alarm_names(Some(names.to_vec()))
            .send()
            .await
            .map_err(classify)?;
        Ok(out
            .metric_alarms()
            .iter()
            .filter(|a| a.state_value() == Some(&StateValue::Alarm))
            .map(|a| {
                (
                    a.alarm_name().unwrap_or_default().to_string(),
                    a.state_reason().unwrap_or_default().to_string(),
                )
            })
            .collect())
    }
}

/// CloudWatch's dimensions carry the bare function name, even when the caller named an ARN.
pub fn bare_name(function: &str) -> String {
    FunctionRef::parse(function, NameKind::Function)
        .map_or_else(|_| function.to_string(), |r| r.name)
}

/// `{FunctionName, Resource=F:A, ExecutedVersion}`: one version's share of an alias.
fn version_dimensions(function: &str, alias: &str, version: u64) -> Vec<Dimension> {
    [
        ("FunctionName", function.to_string()),
        ("Resource", format!("{function}:{alias}")),
        ("ExecutedVersion", version.to_string()),
    ]
    .iter()
    .map(|(n, v)| Dimension::builder().name(*n).value(v).build())
    .collect()
}

/// A latency histogram from one measured latency, for probe samples.
pub fn latency_sample(latency: Duration) -> LatencyHistogram {
    let mut h = LatencyHistogram::default();
    h.record(latency.as_secs_f64() * 1000.0);
    h
}

fn kind_for(status: Option<u16>, code: Option<&str>) -> FailureKind {
    match (status, code) {
        (_, Some("TooManyRequestsException" | "Throttling" | "ThrottlingException"))
        | (Some(429), _) => FailureKind::Throttled,
        (Some(412), _) | (_, Some("PreconditionFailedException")) => FailureKind::RevisionMismatch,
        (Some(404), _) | (_, Some("ResourceNotFoundException" | "ResourceNotFound")) => {
            FailureKind::NotFound
        }
        (Some(s), _) if s >= 500 => FailureKind::Unavailable,
        (Some(_), _) => FailureKind::Rejected,
        (None, _) => FailureKind::Unavailable,
    }
}

type HttpResponse = aws_sdk_lambda::config::http::HttpResponse;

/// Classifies an SDK error: throttled, unavailable (5xx, timeouts, no connection), a stale
/// RevisionId, not found, or rejected.
pub fn classify<E>(e: SdkError<E, HttpResponse>) -> ApiFailure
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = e.raw_response().map(|r| r.status().as_u16());
    let code = e.code().map(String::from);
    let message = e.message().map(String::from).unwrap_or_else(|| {
        let mut text = e.to_string();
        let mut source = std::error::Error::source(&e);
        while let Some(s) = source {
            text = format!("{text}: {s}");
            source = s.source();
        }
        text
    });
    let kind = kind_for(status, code.as_deref());
    ApiFailure::new(
        kind,
        match code {
            Some(c) => format!("{c}: {message}"),
            None => message,
        },
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_are_classified_for_the_retry_policy() {
        let cases = [
            (Some(429), None, FailureKind::Throttled),
            (
                Some(400),
                Some("ThrottlingException"),
                FailureKind::Throttled,
            ),
            (
                Some(412),
                Some("PreconditionFailedException"),
                FailureKind::RevisionMismatch,
            ),
            (
                Some(404),
                Some("ResourceNotFoundException"),
                FailureKind::NotFound,
            ),
            (
                Some(500),
                Some("ServiceException"),
                FailureKind::Unavailable,
            ),
            (Some(503), None, FailureKind::Unavailable),
            (
                Some(400),
                Some("InvalidParameterValueException"),
                FailureKind::Rejected,
            ),
            (None, None, FailureKind::Unavailable),
        ];
        for (status, code, want) in cases {
            assert_eq!(kind_for(status, code), want, "{status:?} {code:?}");
        }
    }
}
