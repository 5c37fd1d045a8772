//! Weight schedules: the list of steps `(weight, hold)` a deployment walks through, and the
//! strategies that make them.
//!
//! A schedule's weights strictly increase and end at 1.0. Each step's hold is how long the
//! canary keeps that weight (and is watched) before the next step; a final step at 1.0 with
//! no hold means "finalize as soon as 100% is reached", as CodeDeploy does.

mod seed;
mod strategy;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::lambda::percent;
use crate::time::{format_duration, millis};

pub use seed::{SeedInput, SeedInputError};
pub use strategy::{PRESETS, Preset, STRATEGY_SYNTAX, Strategy, StrategyError};

/// One step: the canary's share of traffic and how long it is held there.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Step {
    pub weight: f64,
    #[serde(with = "millis", rename = "hold_ms")]
    pub hold: Duration,
}

impl Step {
    pub fn new(weight: f64, hold: Duration) -> Self {
        Step { weight, hold }
    }
}

/// A checked list of steps: weights in (0, 1], strictly increasing, the last exactly 1.0.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "Vec<Step>", into = "Vec<Step>")]
pub struct Schedule {
    steps: Vec<Step>,
}

/// A list of steps that is not a schedule, and why.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ScheduleError {
    /// No steps at all.
    #[error("a schedule needs at least one step, and its last step must be at 100%")]
    Empty,
    /// A weight outside (0, 1].
    #[error("step {step} has weight {weight}; a weight must be above 0 and at most 1 (100%)")]
    WeightOutOfRange { step: usize, weight: f64 },
    /// A weight not above the one before.
    #[error(
        "step {step} has weight {weight}, not above the previous step's {previous}; weights must strictly increase"
    )]
    NotIncreasing {
        step: usize,
        weight: f64,
        previous: f64,
    },
    /// A last weight below 1.0.
    #[error(
        "the last step has weight {weight}; a schedule must end at 1 (100%) — add a final step at 100%"
    )]
    DoesNotFinish { weight: f64 },
}

impl Schedule {
    /// Checks `steps` and makes them a schedule.
    pub fn new(steps: Vec<Step>) -> Result<Schedule, ScheduleError> {
        let last = steps.last().ok_or(ScheduleError::Empty)?;
        let mut previous = 0.0;
        for (i, step) in steps.iter().enumerate() {
            let n = i + 1;
            if !(step.weight > 0.0 && step.weight <= 1.0) {
                return Err(ScheduleError::WeightOutOfRange {
                    step: n,
                    weight: step.weight,
                });
            }
            if step.weight <= previous {
                return Err(ScheduleError::NotIncreasing {
                    step: n,
                    weight: step.weight,
                    previous,
                });
            }
            previous = step.weight;
        }
        if last.weight != 1.0 {
            return Err(ScheduleError::DoesNotFinish {
                weight: last.weight,
            });
        }
        Ok(Schedule { steps })
    }

    pub fn steps(&self) -> &[Step] {
        &self.steps
    }

    pub fn len(&self) -> usize {
        self.steps.len()
    }

    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Adds a bake: the final 100% step is held `bake` longer before the alias is finalized.
    pub fn with_bake(mut self, bake: Duration) -> Schedule {
        if let Some(last) = self.steps.last_mut() {
            last.hold += bake;
        }
        self
    }

    /// The time from the first shift until the alias is finalized, if every step passes at
    /// the end of its hold: the sum of the holds.
    pub fn total(&self) -> Duration {
        self.steps.iter().map(|s| s.hold).sum()
    }

    /// When step `index` (0-based) begins, counted from the first shift.
    pub fn starts_at(&self, index: usize) -> Duration {
        self.steps[..index].iter().map(|s| s.hold).sum()
    }

    /// The longest a canary that fails can keep traffic when failure is only noticed as a
    /// step's hold ends (the original's end-of-step check): the first step's hold. fledge's
    /// continuous checks usually act far sooner; see the simulator.
    pub fn exposure_with_end_of_step_checks(&self) -> Duration {
        self.steps[0].hold
    }

    /// One line per step, for people: step, weight, hold, and when it starts.
    pub fn describe(&self) -> Vec<String> {
        self.steps
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let hold = if s.hold.is_zero() && s.weight == 1.0 {
                    "then finalize".to_string()
                } else {
                    format!("hold {}", format_duration(s.hold))
                };
                format!(
                    "{:>4}  {:>9}  {:<16} {}",
                    i + 1,
                    percent(s.weight),
                    hold,
                    format_duration(self.starts_at(i))
                )
            })
            .collect()
    }
}

impl TryFrom<Vec<Step>> for Schedule {
    type Error = ScheduleError;
    fn try_from(steps: Vec<Step>) -> Result<Self, Self::Error> {
        Schedule::new(steps)
    }
}

impl From<Schedule> for Vec<Step> {
    fn from(s: Schedule) -> Self {
        s.steps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(s: u64) -> Duration {
        Duration::from_secs(s)
    }

    #[test]
    fn rejects_what_is_not_a_schedule() {
        assert_eq!(Schedule::new(vec![]), Err(ScheduleError::Empty));
        let e = Schedule::new(vec![Step::new(1.5, secs(1))]).unwrap_err();
        assert!(e.to_string().contains("1.5"));
        let e = Schedule::new(vec![Step::new(0.5, secs(1)), Step::new(0.5, secs(1))]).unwrap_err();
        assert!(matches!(e, ScheduleError::NotIncreasing { step: 2, .. }));
        let e = Schedule::new(vec![Step::new(0.5, secs(1))]).unwrap_err();
        assert!(matches!(e, ScheduleError::DoesNotFinish { .. }));
        assert!(Schedule::new(vec![Step::new(f64::NAN, secs(1))]).is_err());
    }

    #[test]
    fn totals_and_bake() {
        let s = Schedule::new(vec![Step::new(0.1, secs(300)), Step::new(1.0, secs(0))]).unwrap();
        assert_eq!(s.total(), secs(300));
        assert_eq!(s.starts_at(1), secs(300));
        let baked = s.with_bake(secs(600));
        assert_eq!(baked.steps()[1].hold, secs(600));
        assert_eq!(baked.total(), secs(900));
    }

    #[test]
    fn serialises_as_a_list_of_steps_and_checks_on_the_way_back() {
        let s = Schedule::new(vec![Step::new(0.5, secs(60)), Step::new(1.0, secs(0))]).unwrap();
        let json = serde_json::to_string(&s).unwrap();
        assert_eq!(
            json,
            r#"[{"weight":0.5,"hold_ms":60000},{"weight":1.0,"hold_ms":0}]"#
        );
        assert_eq!(serde_json::from_str::<Schedule>(&json).unwrap(), s);
        assert!(serde_json::from_str::<Schedule>(r#"[{"weight":0.5,"hold_ms":1}]"#).is_err());
    }
}
