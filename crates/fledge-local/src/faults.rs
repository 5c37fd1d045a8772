//! Injected failures of the platform's operations, for rehearsing what fledge does when the
//! Lambda API misbehaves. Managed through `/_fledge/faults`:
//!
//! ```text
//! POST   /_fledge/faults   {"operation":"UpdateAlias","status":429,"count":3}
//!                          {"operation":"*","status":500,"rate":0.2}
//!                          {"operation":"GetAlias","delay_ms":2000,"count":1}
//! GET    /_fledge/faults   the faults in force
//! DELETE /_fledge/faults   remove them all
//! ```
//!
//! `operation` is a Lambda or CloudWatch operation name (`UpdateAlias`, `Invoke`,
//! `GetMetricData`, …) or `*`. `status` is 429 (TooManyRequestsException), or 500, 502, 503
//! (ServiceException); without it the fault only delays. `count` limits the fault to the
//! next N matching calls; `rate` makes it apply to that share of them (seeded).

use std::sync::Mutex;
use std::time::Duration;

use fledge_core::lambda::{ErrorType, LambdaError};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// One injected fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub operation: String,
    #[serde(default)]
    pub status: Option<u16>,
    #[serde(default)]
    pub delay_ms: u64,
    /// Apply to the next `count` matching calls only.
    #[serde(default)]
    pub count: Option<u64>,
    /// Apply to this share of matching calls (0..=1).
    #[serde(default)]
    pub rate: Option<f64>,
}

impl Fault {
    /// Checks a fault as given by a user; the error says what to change.
    pub fn check(&self) -> Result<(), String> {
        if let Some(s) = self.status
            && ![429, 500, 502, 503].contains(&s)
        {
            return Err(format!(
                "status {s} is not injectable; use 429, 500, 502 or 503"
            ));
        }
        if let Some(r) = self.rate
            && !(0.0..=1.0).contains(&r)
        {
            return Err(format!("rate {r} must be between 0 and 1"));
        }
        if self.status.is_none() && self.delay_ms == 0 {
            return Err("a fault needs a status, a delay_ms, or both".into());
        }
        Ok(())
    }
}

/// What a matching fault does to a call.
#[derive(Debug, PartialEq)]
pub struct Effect {
    pub delay: Duration,
    pub error: Option<LambdaError>,
}

/// The faults in force.
pub struct Faults {
    list: Mutex<Vec<Fault>>,
    rng: Mutex<StdRng>,
}

impl Faults {
    pub fn new(seed: u64) -> Faults {
        Faults {
            list: Mutex::new(Vec::new()),
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
        }
    }

    pub fn add(&self, fault: Fault) -> Result<(), String> {
        fault.check()?;
        self.list.lock().expect("faults lock").push(fault);
        Ok(())
    }

    pub fn list(&self) -> Vec<Fault> {
        self.list.lock().expect("faults lock").clone()
    }

    pub fn clear(&self) {
        self.list.lock().expect("faults lock").clear();
    }

    /// The effect on one call of `operation`, spending a counted fault's budget.
    pub fn effect(&self, operation: &str) -> Option<Effect> {
        let mut list = self.list.lock().expect("faults lock");
        if list.is_empty() {
            return None;
        }
        let mut rng = self.rng.lock().expect("faults lock");
        let index = list.iter().position(|f| {
            (f.operation == "*" || f.operation == operation)
                && f.rate.is_none_or(|r| rng.random::<f64>() < r)
        })?;
        let fault = list[index].clone();
        if let Some(n) = list[index].count.as_mut() {
            *n = n.saturating_sub(1);
            if *n == 0 {
                list.remove(index);
            }
        }
        let error = fault.status.map(|status| match status {
            429 => LambdaError::new(
                ErrorType::TooManyRequests,
                "Rate exceeded (injected by fledge local)",
            ),
            s => LambdaError::new(
                ErrorType::Service,
                format!("Service unavailable (injected by fledge local: {s})"),
            ),
        });
        Some(Effect {
            delay: Duration::from_millis(fault.delay_ms),
            error,
        })
    }

    /// Applies the effect: waits, then answers the injected error, if any.
    pub async fn apply(&self, operation: &str) -> Result<(), LambdaError> {
        let Some(effect) = self.effect(operation) else {
            return Ok(());
        };
        if !effect.delay.is_zero() {
            tokio::time::sleep(effect.delay).await;
        }
        effect.error.map_or(Ok(()), Err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(op: &str, status: u16, count: Option<u64>) -> Fault {
        Fault {
            operation: op.into(),
            status: Some(status),
            delay_ms: 0,
            count,
            rate: None,
        }
    }

    #[test]
    fn a_counted_fault_applies_to_the_next_n_calls() {
        let f = Faults::new(1);
        f.add(fault("UpdateAlias", 429, Some(2))).unwrap();
        assert!(f.effect("GetAlias").is_none());
        assert_eq!(
            f.effect("UpdateAlias").unwrap().error.unwrap().kind,
            ErrorType::TooManyRequests
        );
        assert!(f.effect("UpdateAlias").is_some());
        assert!(f.effect("UpdateAlias").is_none());
    }

    #[test]
    fn a_rate_applies_to_about_that_share() {
        let f = Faults::new(1);
        f.add(Fault {
            rate: Some(0.3),
            ..fault("*", 500, None)
        })
        .unwrap();
        let hits = (0..10_000).filter(|_| f.effect("Invoke").is_some()).count();
        assert!((2_700..3_300).contains(&hits), "{hits}");
    }

    #[test]
    fn bad_faults_are_refused_with_the_fix() {
        let f = Faults::new(1);
        assert!(
            f.add(fault("*", 404, None))
                .unwrap_err()
                .contains("429, 500")
        );
        assert!(
            f.add(Fault {
                status: None,
                ..fault("*", 500, None)
            })
            .unwrap_err()
            .contains("delay_ms")
        );
    }
}
