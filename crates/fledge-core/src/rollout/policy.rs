//! The pure error policy: given a failed call, retry it, re-read the alias, or give up.

use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::spec::RetryPolicy;

/// What kind of failure a platform call met, as the adapter classifies it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// 429: throttled.
    Throttled,
    /// 5xx, a timeout, or no connection: the platform may answer later.
    Unavailable,
    /// 412: the alias's RevisionId is not the one we wrote against.
    RevisionMismatch,
    /// 404: the function, version or alias is gone.
    NotFound,
    /// Any other 4xx: the request itself is refused; retrying will not help.
    Rejected,
}

impl fmt::Display for FailureKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FailureKind::Throttled => "throttled",
            FailureKind::Unavailable => "unavailable",
            FailureKind::RevisionMismatch => "revision mismatch",
            FailureKind::NotFound => "not found",
            FailureKind::Rejected => "rejected",
        })
    }
}

/// A failed platform call.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ApiFailure {
    pub kind: FailureKind,
    pub message: String,
}

impl ApiFailure {
    pub fn new(kind: FailureKind, message: impl Into<String>) -> Self {
        ApiFailure {
            kind,
            message: message.into(),
        }
    }
}

/// Why a call was made, which decides how hard fledge tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Reading the alias.
    Read,
    /// Moving forward: a shift, the finalize, a hook.
    Forward,
    /// Putting the original back.
    Rollback,
}

/// What to do about a failure.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Retry {
        after: Duration,
    },
    /// Read the alias to learn whether our write landed or someone else changed it.
    Reconcile,
    GiveUp,
}

/// Decides what to do about the `attempt`-th failure (1-based) of a call.
pub fn decide(kind: FailureKind, attempt: u32, purpose: Purpose, policy: &RetryPolicy) -> Action {
    match kind {
        FailureKind::RevisionMismatch if purpose != Purpose::Read => Action::Reconcile,
        FailureKind::Throttled | FailureKind::Unavailable => {
            if purpose == Purpose::Rollback || attempt < policy.attempts {
                Action::Retry {
                    after: backoff(attempt, policy),
                }
            } else {
                Action::GiveUp
            }
        }
        _ => Action::GiveUp,
    }
}

/// `base · 2^(attempt-1)`, capped at `max`.
pub fn backoff(attempt: u32, policy: &RetryPolicy) -> Duration {
    let factor = 2_u32.saturating_pow(attempt.saturating_sub(1).min(20));
    policy.base.saturating_mul(factor).min(policy.max)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let p = RetryPolicy::default();
        use Action::*;
        use FailureKind::*;
        use Purpose as P;
        let cases = [
            (
                Throttled,
                1,
                P::Forward,
                Retry {
                    after: Duration::from_millis(250),
                },
            ),
            (
                Unavailable,
                3,
                P::Forward,
                Retry {
                    after: Duration::from_secs(1),
                },
            ),
            (Unavailable, 8, P::Forward, GiveUp),
            (
                Unavailable,
                500,
                P::Rollback,
                Retry {
                    after: Duration::from_secs(30),
                },
            ),
            (Throttled, 100, P::Read, GiveUp),
            (RevisionMismatch, 1, P::Forward, Reconcile),
            (RevisionMismatch, 1, P::Rollback, Reconcile),
            (NotFound, 1, P::Rollback, GiveUp),
            (Rejected, 1, P::Forward, GiveUp),
        ];
        for (kind, attempt, purpose, want) in cases {
            assert_eq!(
                decide(kind, attempt, purpose, &p),
                want,
                "{kind:?} #{attempt} {purpose:?}"
            );
        }
    }
}
