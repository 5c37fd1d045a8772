//! What a deployment is asked to do, as plain data.

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::judge::Analysis;
use crate::lambda::AliasName;
use crate::schedule::Schedule;
use crate::time::millis;

/// Everything a deployment needs to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeploymentSpec {
    /// The function's name or ARN.
    pub function: String,
    pub alias: AliasName,
    /// The version to move the alias to.
    pub target: u64,
    pub schedule: Schedule,
    #[serde(default)]
    pub analysis: Analysis,
    #[serde(default)]
    pub checks: CheckPolicy,
    #[serde(default)]
    pub hooks: Hooks,
    #[serde(default)]
    pub retry: RetryPolicy,
}

/// When health is checked, and what to do when it cannot be told.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CheckPolicy {
    /// Time between checks during a hold (fledge's analysis checks continuously; the
    /// original's only as a hold ends).
    #[serde(with = "millis", rename = "interval_ms")]
    pub interval: Duration,
    /// How much longer a step may be held, in total, while its evidence is inconclusive.
    #[serde(with = "millis", rename = "max_extension_ms")]
    pub max_extension: Duration,
    /// What happens when a step is still inconclusive after the longest extension.
    pub on_inconclusive: InconclusivePolicy,
}

impl Default for CheckPolicy {
    fn default() -> Self {
        CheckPolicy {
            interval: Duration::from_secs(5),
            max_extension: Duration::from_secs(600),
            on_inconclusive: InconclusivePolicy::RollBack,
        }
    }
}

/// The choice when the evidence stays inconclusive.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InconclusivePolicy {
    /// Roll back: nothing is promoted without evidence (the default).
    RollBack,
    /// Go on to the next step anyway, recording that it had no evidence. For functions
    /// with too little traffic to judge, when the user accepts that.
    Proceed,
}

/// CodeDeploy-style lifecycle hooks: functions invoked before traffic shifts and after it
/// has all shifted.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct Hooks {
    /// Invoked before any traffic shifts (CodeDeploy's BeforeAllowTraffic).
    pub pre_traffic: Option<String>,
    /// Invoked once all traffic is on the new version (AfterAllowTraffic).
    pub post_traffic: Option<String>,
    /// How long a hook may take before it counts as failed (CodeDeploy: one hour).
    #[serde(with = "millis", rename = "timeout_ms")]
    pub timeout: Duration,
}

impl Default for Hooks {
    fn default() -> Self {
        Hooks {
            pre_traffic: None,
            post_traffic: None,
            timeout: Duration::from_secs(3600),
        }
    }
}

/// How API failures are retried.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct RetryPolicy {
    /// Attempts at a forward step (a shift, a finalize, a hook) before rolling back. A
    /// rollback is retried until it lands or someone stops it.
    pub attempts: u32,
    /// The first backoff, doubled on each retry…
    #[serde(with = "millis", rename = "base_ms")]
    pub base: Duration,
    /// …up to this.
    #[serde(with = "millis", rename = "max_ms")]
    pub max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 8,
            base: Duration::from_millis(250),
            max: Duration::from_secs(30),
        }
    }
}
