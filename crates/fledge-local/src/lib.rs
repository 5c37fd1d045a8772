//! fledge's local platform: a Lambda-compatible endpoint that runs real functions as local
//! processes, with weighted aliases, per-version metrics and a CloudWatch-compatible
//! metrics and alarms API. Its specification is AWS's behaviour: status codes, error types,
//! messages and validation as AWS answers them.
//!
//! # Layout
//! - [`store`]: functions, versions and aliases, persisted under the data directory.
//! - [`control`]: the Lambda control API (REST-JSON, `/2015-03-31/…`).
//! - [`invoke`]: Invoke, alias routing and the metrics each invocation leaves.
//! - [`events`]: asynchronous invocations, kept on disk until they have run, retried as
//!   Lambda retries them.
//! - [`routing`]: how an alias picks a version (Lambda's random split, and local extensions:
//!   exact split and sticky keys).
//! - [`runtimes`]: which runtimes run here (`provided*`, `python3.x` through awslambdaric,
//!   `nodejsN.x` through fledge's own runtime client), and how their processes start.
//! - [`sandbox`]: function processes and the Runtime API each one talks to.
//! - [`scale`]: the pure decision "start another process?".
//! - [`metrics`]: per-second metrics under Lambda's dimension sets, and published ones.
//! - [`emf`]: metrics a function publishes in CloudWatch's embedded metric format.
//! - [`streaming`]: InvokeWithResponseStream, the function's answer as it is written.
//! - [`cloudwatch`]: GetMetricData, GetMetricStatistics and metric alarms, over RPC v2
//!   CBOR (the Rust SDK), AWS JSON 1.0 (the AWS CLI, boto3) and the query protocol (SDKs
//!   and CLIs released before December 2025).
//! - [`faults`]: injected failures of control operations, for rehearsals.
//! - [`sns`]: SNS topics and Publish (the query protocol), to rehearse notifications.
//! - [`server`]: the router that puts it together, and [`Platform`] to run it.

pub mod cloudwatch;
pub mod control;
pub mod emf;
pub mod events;
pub mod faults;
pub mod invoke;
pub mod metrics;
pub mod policy;
pub mod provisioned;
pub mod routing;
pub mod runtimes;
pub mod sandbox;
pub mod scale;
pub mod server;
pub mod sns;
mod sns_filter;
pub mod store;
pub mod streaming;
pub mod urls;
mod wire;

pub use server::{Platform, PlatformConfig, RunningPlatform};
