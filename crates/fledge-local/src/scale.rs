//! "Start another process?" as a pure function, so the rule is stated once and tested as a
//! table instead of living in conditions under locks.

use std::time::Duration;

/// What an invocation sees when it asks for a process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PoolView {
    /// Warm processes of this version waiting for work.
    pub idle: usize,
    /// Invocations of the whole function in flight (every version), this one excluded.
    pub in_flight: usize,
    /// The function's concurrency limit: its reserved concurrency, or the platform's.
    pub limit: usize,
}

/// The answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Hand the invocation to a warm process.
    UseIdle,
    /// Start a new process (a cold start).
    Start,
    /// Refuse with 429: the function is at its concurrency limit.
    Throttle,
}

pub fn decide(view: PoolView) -> Decision {
    if view.in_flight >= view.limit {
        Decision::Throttle
    } else if view.idle > 0 {
        Decision::UseIdle
    } else {
        Decision::Start
    }
}

/// Whether a process idle since `idle_for` should be stopped.
pub fn should_reap(idle_for: Duration, idle_timeout: Duration) -> bool {
    idle_for >= idle_timeout
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table() {
        let cases = [
            (
                PoolView {
                    idle: 1,
                    in_flight: 0,
                    limit: 4,
                },
                Decision::UseIdle,
            ),
            (
                PoolView {
                    idle: 0,
                    in_flight: 0,
                    limit: 4,
                },
                Decision::Start,
            ),
            (
                PoolView {
                    idle: 0,
                    in_flight: 3,
                    limit: 4,
                },
                Decision::Start,
            ),
            (
                PoolView {
                    idle: 0,
                    in_flight: 4,
                    limit: 4,
                },
                Decision::Throttle,
            ),
            (
                PoolView {
                    idle: 2,
                    in_flight: 4,
                    limit: 4,
                },
                Decision::Throttle,
            ),
            (
                PoolView {
                    idle: 0,
                    in_flight: 0,
                    limit: 0,
                },
                Decision::Throttle,
            ),
        ];
        for (view, want) in cases {
            assert_eq!(decide(view), want, "{view:?}");
        }
        assert!(should_reap(
            Duration::from_secs(300),
            Duration::from_secs(300)
        ));
        assert!(!should_reap(
            Duration::from_secs(1),
            Duration::from_secs(300)
        ));
    }
}
