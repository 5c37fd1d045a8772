//! Strategies, their compact command-line syntax, and CodeDeploy's presets.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Schedule, ScheduleError, Step};
use crate::time::{format_duration, millis, parse_duration};

/// Most steps a generated schedule may have: the original looped forever past 100.
pub const MAX_STEPS: u32 = 100;
/// CodeDeploy's limit on the minutes between the first and the last shift.
const CODEDEPLOY_MAX_MINUTES: u64 = 2880;

/// The compact syntax, for help texts and error messages.
pub const STRATEGY_SYNTAX: &str =
    "  linear:10x2m             10 steps of +10%, each held 2m (the last, at 100%, too)
  canary:10%/5m            10% held 5m, then 100%
  exp:1%x2/1m              1%, 2%, 4%, … doubling every 1m, capped at 100% (held 1m)
  weights:1,5,25,50@5m     explicit weights (%), each held 5m, then 100%
  weights:5/1m,50/10m,100/30m  explicit weights, each with its own hold
  all-at-once              100% at once
  time-based-canary:10/5   CodeDeploy TimeBasedCanary: 10% for 5 minutes, then 100%
  time-based-linear:10/1   CodeDeploy TimeBasedLinear: +10% every 1 minute
Durations: 90s, 2m, 1h30m, 7d. Weights are percentages; the % sign is optional.";

/// How a schedule is made.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Strategy {
    /// `steps` equal steps of `1/steps`, each held `interval`, the last at 1.0 too (the
    /// original's behaviour: weight i/N exactly, then a final hold at 100%).
    Linear {
        steps: u32,
        #[serde(with = "millis", rename = "interval_ms")]
        interval: Duration,
    },
    /// One canary step at `weight` held `hold`, then 100%.
    Canary {
        weight: f64,
        #[serde(with = "millis", rename = "hold_ms")]
        hold: Duration,
    },
    /// `start`, `start·factor`, `start·factor²`, … capped at 100%, each held `interval`.
    Exponential {
        start: f64,
        factor: f64,
        #[serde(with = "millis", rename = "interval_ms")]
        interval: Duration,
    },
    /// The steps as given; a final step at 100% with no hold is added when missing.
    Weights { steps: Vec<Step> },
    /// Everything at once.
    AllAtOnce,
    /// CodeDeploy's TimeBasedCanary: `percent` for `minutes`, then the rest.
    TimeBasedCanary { percent: u32, minutes: u32 },
    /// CodeDeploy's TimeBasedLinear: `percent` more every `minutes` until 100%.
    TimeBasedLinear { percent: u32, minutes: u32 },
}

/// A strategy that cannot be read or cannot make a schedule.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum StrategyError {
    /// The text is not in the compact syntax.
    #[error("invalid strategy '{input}': {reason}.\nWrite one of:\n{STRATEGY_SYNTAX}")]
    Syntax { input: String, reason: String },
    /// A value is outside what the strategy allows.
    #[error("invalid strategy '{input}': {reason}")]
    OutOfRange { input: String, reason: String },
    /// No preset has this name.
    #[error("unknown preset '{name}'; known presets: {}", preset_names())]
    UnknownPreset { name: String },
    /// The strategy made steps that are not a schedule.
    #[error("strategy '{input}' makes no valid schedule: {problem}")]
    Schedule {
        input: String,
        problem: ScheduleError,
    },
}

impl Strategy {
    /// The schedule this strategy makes.
    pub fn schedule(&self) -> Result<Schedule, StrategyError> {
        let input = self.to_string();
        let out_of_range = |reason: String| StrategyError::OutOfRange {
            input: input.clone(),
            reason,
        };
        let steps = match *self {
            Strategy::Linear { steps, interval } => {
                if !(1..=MAX_STEPS).contains(&steps) {
                    return Err(out_of_range(format!(
                        "{steps} steps; use 1 to {MAX_STEPS} steps"
                    )));
                }
                (1..=steps)
                    .map(|i| Step::new(f64::from(i) / f64::from(steps), interval))
                    .collect()
            }
            Strategy::Canary { weight, hold } => {
                if !(weight > 0.0 && weight < 1.0) {
                    return Err(out_of_range(format!(
                        "the canary weight {} must be above 0% and below 100%",
                        weight * 100.0
                    )));
                }
                vec![Step::new(weight, hold), Step::new(1.0, Duration::ZERO)]
            }
            Strategy::Exponential {
                start,
                factor,
                interval,
            } => {
                if !(start > 0.0 && start <= 1.0) {
                    return Err(out_of_range(format!(
                        "the start weight {}% must be above 0% and at most 100%",
                        start * 100.0
                    )));
                }
                if !(factor > 1.0 && factor.is_finite()) {
                    return Err(out_of_range(format!(
                        "the growth factor {factor} must be above 1"
                    )));
                }
                let mut steps = Vec::new();
                let mut weight = start;
                while weight < 1.0 {
                    steps.push(Step::new(weight, interval));
                    weight *= factor;
                    if steps.len() > MAX_STEPS as usize {
                        return Err(out_of_range(format!(
                            "it takes more than {MAX_STEPS} steps to reach 100%; raise the start or the factor"
                        )));
                    }
                }
                steps.push(Step::new(1.0, interval));
                steps
            }
            Strategy::Weights { ref steps } => {
                let mut steps = steps.clone();
                if steps.last().is_some_and(|s| s.weight < 1.0) {
                    steps.push(Step::new(1.0, Duration::ZERO));
                }
                steps
            }
            Strategy::AllAtOnce => vec![Step::new(1.0, Duration::ZERO)],
            Strategy::TimeBasedCanary { percent, minutes } => {
                check_codedeploy(percent, minutes, 1).map_err(out_of_range)?;
                vec![
                    Step::new(f64::from(percent) / 100.0, minutes_to_duration(minutes)),
                    Step::new(1.0, Duration::ZERO),
                ]
            }
            Strategy::TimeBasedLinear { percent, minutes } => {
                let increments = 100_u32.div_ceil(percent.max(1));
                check_codedeploy(percent, minutes, increments.saturating_sub(1))
                    .map_err(out_of_range)?;
                let hold = minutes_to_duration(minutes);
                (1..=increments)
                    .map(|i| {
                        let weight = (f64::from(i * percent) / 100.0).min(1.0);
                        Step::new(
                            weight,
                            if i == increments {
                                Duration::ZERO
                            } else {
                                hold
                            },
                        )
                    })
                    .collect()
            }
        };
        Schedule::new(steps).map_err(|problem| StrategyError::Schedule { input, problem })
    }

    /// The strategy a preset name stands for: SAM's `Canary10Percent5Minutes` or CodeDeploy's
    /// `CodeDeployDefault.LambdaCanary10Percent5Minutes`, in any letter case.
    pub fn preset(name: &str) -> Result<Strategy, StrategyError> {
        let wanted = name.trim();
        let short = strip_prefix_ignore_case(wanted, "CodeDeployDefault.Lambda").unwrap_or(wanted);
        PRESETS
            .iter()
            .find(|p| p.sam_name.eq_ignore_ascii_case(short))
            .map(Preset::strategy)
            .ok_or_else(|| StrategyError::UnknownPreset {
                name: name.to_string(),
            })
    }
}

fn strip_prefix_ignore_case<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

fn minutes_to_duration(minutes: u32) -> Duration {
    Duration::from_secs(u64::from(minutes) * 60)
}

/// CodeDeploy's limits: 1–99% per increment, at least a minute between shifts, and at most
/// 2880 minutes between the first shift and the last.
fn check_codedeploy(percent: u32, minutes: u32, waits: u32) -> Result<(), String> {
    if !(1..=99).contains(&percent) {
        return Err(format!(
            "{percent}% per increment; CodeDeploy allows 1% to 99%"
        ));
    }
    if minutes == 0 {
        return Err("0 minutes between shifts; CodeDeploy needs at least 1 minute".into());
    }
    let total = u64::from(minutes) * u64::from(waits);
    if total > CODEDEPLOY_MAX_MINUTES {
        return Err(format!(
            "shifting would take {total} minutes; CodeDeploy allows at most {CODEDEPLOY_MAX_MINUTES} minutes from the first shift to the last"
        ));
    }
    Ok(())
}

/// A CodeDeploy predefined configuration for Lambda.
#[derive(Clone, Copy, Debug)]
pub struct Preset {
    /// SAM's `DeploymentPreference.Type` spelling.
    pub sam_name: &'static str,
    kind: PresetKind,
}

#[derive(Clone, Copy, Debug)]
enum PresetKind {
    Canary { percent: u32, minutes: u32 },
    Linear { percent: u32, minutes: u32 },
    AllAtOnce,
}

impl Preset {
    /// CodeDeploy's name for it: `CodeDeployDefault.Lambda<SAM name>`.
    pub fn codedeploy_name(&self) -> String {
        format!("CodeDeployDefault.Lambda{}", self.sam_name)
    }

    pub fn strategy(&self) -> Strategy {
        match self.kind {
            PresetKind::Canary { percent, minutes } => {
                Strategy::TimeBasedCanary { percent, minutes }
            }
            PresetKind::Linear { percent, minutes } => {
                Strategy::TimeBasedLinear { percent, minutes }
            }
            PresetKind::AllAtOnce => Strategy::AllAtOnce,
        }
    }
}

const fn canary(sam_name: &'static str, minutes: u32) -> Preset {
    Preset {
        sam_name,
        kind: PresetKind::Canary {
            percent: 10,
            minutes,
        },
    }
}

const fn linear(sam_name: &'static str, minutes: u32) -> Preset {
    Preset {
        sam_name,
        kind: PresetKind::Linear {
            percent: 10,
            minutes,
        },
    }
}

/// The nine predefined CodeDeploy configurations for Lambda.
pub const PRESETS: [Preset; 9] = [
    canary("Canary10Percent5Minutes", 5),
    canary("Canary10Percent10Minutes", 10),
    canary("Canary10Percent15Minutes", 15),
    canary("Canary10Percent30Minutes", 30),
    linear("Linear10PercentEvery1Minute", 1),
    linear("Linear10PercentEvery2Minutes", 2),
    linear("Linear10PercentEvery3Minutes", 3),
    linear("Linear10PercentEvery10Minutes", 10),
    Preset {
        sam_name: "AllAtOnce",
        kind: PresetKind::AllAtOnce,
    },
];

fn preset_names() -> String {
    PRESETS
        .iter()
        .map(|p| p.sam_name)
        .collect::<Vec<_>>()
        .join(", ")
        + " (or with the prefix CodeDeployDefault.Lambda)"
}

impl FromStr for Strategy {
    type Err = StrategyError;

    /// Reads the compact syntax described in [`STRATEGY_SYNTAX`].
    fn from_str(input: &str) -> Result<Self, Self::Err> {
        let text = input.trim();
        let syntax = |reason: &str| StrategyError::Syntax {
            input: input.to_string(),
            reason: reason.to_string(),
        };
        let (kind, args) = text.split_once(':').unwrap_or((text, ""));
        let duration = |s: &str| parse_duration(s).map_err(|e| syntax(&e.to_string()));
        match kind.to_ascii_lowercase().as_str() {
            "all-at-once" | "allatonce" => {
                if !args.is_empty() {
                    return Err(syntax("all-at-once takes no arguments"));
                }
                Ok(Strategy::AllAtOnce)
            }
            "linear" => {
                let (n, interval) = args.split_once('x').ok_or_else(|| {
                    syntax("write linear:STEPSxINTERVAL, for example linear:10x2m")
                })?;
                let steps = n
                    .trim()
                    .parse()
                    .map_err(|_| syntax(&format!("'{n}' is not a whole number of steps")))?;
                Ok(Strategy::Linear {
                    steps,
                    interval: duration(interval)?,
                })
            }
            "canary" => {
                let (w, hold) = args.split_once('/').ok_or_else(|| {
                    syntax("write canary:PERCENT/HOLD, for example canary:10%/5m")
                })?;
                Ok(Strategy::Canary {
                    weight: parse_percent(w).map_err(|r| syntax(&r))?,
                    hold: duration(hold)?,
                })
            }
            "exp" | "exponential" => {
                let (growth, interval) = args.split_once('/').ok_or_else(|| {
                    syntax("write exp:START%xFACTOR/INTERVAL, for example exp:1%x2/1m")
                })?;
                let (start, factor) = growth.split_once('x').ok_or_else(|| {
                    syntax("write exp:START%xFACTOR/INTERVAL, for example exp:1%x2/1m")
                })?;
                let factor: f64 = factor
                    .trim()
                    .parse()
                    .map_err(|_| syntax(&format!("'{factor}' is not a growth factor")))?;
                Ok(Strategy::Exponential {
                    start: parse_percent(start).map_err(|r| syntax(&r))?,
                    factor,
                    interval: duration(interval)?,
                })
            }
            "weights" => parse_weights(args).map_err(|r| syntax(&r)),
            "time-based-canary" | "timebasedcanary" => {
                let (percent, minutes) = parse_codedeploy_args(args).map_err(|r| syntax(&r))?;
                Ok(Strategy::TimeBasedCanary { percent, minutes })
            }
            "time-based-linear" | "timebasedlinear" => {
                let (percent, minutes) = parse_codedeploy_args(args).map_err(|r| syntax(&r))?;
                Ok(Strategy::TimeBasedLinear { percent, minutes })
            }
            _ => Err(syntax(&format!("unknown strategy '{kind}'"))),
        }
    }
}

/// `10%`, `10`, `0.5%` → a weight in [0, 1] (range is checked later, with the strategy).
fn parse_percent(text: &str) -> Result<f64, String> {
    let t = text.trim();
    let number = t.strip_suffix('%').unwrap_or(t);
    let p: f64 = number
        .parse()
        .map_err(|_| format!("'{t}' is not a percentage"))?;
    if !p.is_finite() {
        return Err(format!("'{t}' is not a percentage"));
    }
    Ok(p / 100.0)
}

/// `1,5,25,50@5m` or `5/1m,50/10m,100/30m`.
fn parse_weights(args: &str) -> Result<Strategy, String> {
    let (list, default_hold) = match args.rsplit_once('@') {
        Some((list, hold)) => (list, Some(parse_duration(hold).map_err(|e| e.to_string())?)),
        None => (args, None),
    };
    if list.trim().is_empty() {
        return Err("write weights:W1,W2,…@HOLD, for example weights:1,5,25,50@5m".into());
    }
    let mut steps = Vec::new();
    for item in list.split(',') {
        let (w, hold) = match item.split_once('/') {
            Some((w, h)) => (w, parse_duration(h).map_err(|e| e.to_string())?),
            None => (item, default_hold.ok_or_else(|| format!(
                "weight '{}' has no hold; add @HOLD after the list (weights:1,5,25@5m) or /HOLD to the weight (5/1m)",
                item.trim()
            ))?),
        };
        steps.push(Step::new(parse_percent(w)?, hold));
    }
    Ok(Strategy::Weights { steps })
}

/// `10/5` → (10 percent, 5 minutes), whole numbers as CodeDeploy takes them.
fn parse_codedeploy_args(args: &str) -> Result<(u32, u32), String> {
    let usage = "write PERCENT/MINUTES with whole numbers, for example time-based-canary:10/5";
    let (p, m) = args.split_once('/').ok_or(usage)?;
    let percent = p
        .trim()
        .trim_end_matches('%')
        .parse()
        .map_err(|_| format!("'{p}' is not a whole percentage; {usage}"))?;
    let minutes = m
        .trim()
        .trim_end_matches('m')
        .parse()
        .map_err(|_| format!("'{m}' is not a whole number of minutes; {usage}"))?;
    Ok((percent, minutes))
}

/// Prints the strategy in the compact syntax, so that parsing the output gives it back.
impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let pct = |w: f64| format!("{}%", trim_float(w * 100.0));
        match self {
            Strategy::Linear { steps, interval } => {
                write!(f, "linear:{steps}x{}", format_duration(*interval))
            }
            Strategy::Canary { weight, hold } => {
                write!(f, "canary:{}/{}", pct(*weight), format_duration(*hold))
            }
            Strategy::Exponential {
                start,
                factor,
                interval,
            } => {
                write!(
                    f,
                    "exp:{}x{}/{}",
                    pct(*start),
                    trim_float(*factor),
                    format_duration(*interval)
                )
            }
            Strategy::Weights { steps } => {
                let items: Vec<String> = steps
                    .iter()
                    .map(|s| format!("{}/{}", pct(s.weight), format_duration(s.hold)))
                    .collect();
                write!(f, "weights:{}", items.join(","))
            }
            Strategy::AllAtOnce => f.write_str("all-at-once"),
            Strategy::TimeBasedCanary { percent, minutes } => {
                write!(f, "time-based-canary:{percent}/{minutes}")
            }
            Strategy::TimeBasedLinear { percent, minutes } => {
                write!(f, "time-based-linear:{percent}/{minutes}")
            }
        }
    }
}

/// Shortest decimal text that reads back to the same value.
fn trim_float(v: f64) -> String {
    format!("{v}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn weights(s: &Schedule) -> Vec<f64> {
        s.steps().iter().map(|s| s.weight).collect()
    }

    fn holds(s: &Schedule) -> Vec<u64> {
        s.steps().iter().map(|s| s.hold.as_secs()).collect()
    }

    fn plan(text: &str) -> Schedule {
        text.parse::<Strategy>().unwrap().schedule().unwrap()
    }

    #[test]
    fn linear_is_exact_and_holds_the_last_step() {
        let s = plan("linear:10x2m");
        let expected: Vec<f64> = (1..=10).map(|i| f64::from(i) / 10.0).collect();
        assert_eq!(weights(&s), expected);
        assert_eq!(holds(&s), vec![120; 10]);
        let thirds = plan("linear:3x1m");
        assert_eq!(weights(&thirds), vec![1.0 / 3.0, 2.0 / 3.0, 1.0]);
    }

    #[test]
    fn canary_exp_weights_and_all_at_once() {
        let c = plan("canary:10%/5m");
        assert_eq!((weights(&c), holds(&c)), (vec![0.1, 1.0], vec![300, 0]));
        let e = plan("exp:1%x2/1m");
        assert_eq!(
            weights(&e),
            vec![0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.0]
        );
        let w = plan("weights:1,5,25,50@5m");
        assert_eq!(
            (weights(&w), holds(&w)),
            (
                vec![0.01, 0.05, 0.25, 0.5, 1.0],
                vec![300, 300, 300, 300, 0]
            )
        );
        let own = plan("weights:5/1m,50/10m,100/30m");
        assert_eq!(
            (weights(&own), holds(&own)),
            (vec![0.05, 0.5, 1.0], vec![60, 600, 1800])
        );
        assert_eq!(weights(&plan("all-at-once")), vec![1.0]);
    }

    #[test]
    fn presets_by_either_name() {
        let sam = Strategy::preset("Linear10PercentEvery1Minute")
            .unwrap()
            .schedule()
            .unwrap();
        let expected: Vec<f64> = (1..=10).map(|i| f64::from(i) / 10.0).collect();
        assert_eq!(weights(&sam), expected);
        assert_eq!(sam.total(), Duration::from_secs(9 * 60));
        let cd = Strategy::preset("CodeDeployDefault.LambdaCanary10Percent5Minutes")
            .unwrap()
            .schedule()
            .unwrap();
        assert_eq!((weights(&cd), holds(&cd)), (vec![0.1, 1.0], vec![300, 0]));
        for p in PRESETS {
            assert!(
                Strategy::preset(&p.codedeploy_name())
                    .unwrap()
                    .schedule()
                    .is_ok()
            );
        }
        let e = Strategy::preset("Canary50Percent1Minute").unwrap_err();
        assert!(
            e.to_string().contains("'Canary50Percent1Minute'")
                && e.to_string().contains("AllAtOnce")
        );
    }

    #[test]
    fn codedeploy_limits() {
        assert!(plan("time-based-linear:30/10").steps().len() == 4);
        let over = "time-based-linear:1/30"
            .parse::<Strategy>()
            .unwrap()
            .schedule()
            .unwrap_err();
        assert!(over.to_string().contains("2880"), "{over}");
        let pct = "time-based-canary:100/5"
            .parse::<Strategy>()
            .unwrap()
            .schedule()
            .unwrap_err();
        assert!(pct.to_string().contains("100%"), "{pct}");
    }

    #[test]
    fn bad_text_names_the_value() {
        for (text, needle) in [
            ("linear:0x1m", "0 steps"),
            ("linear:101x1m", "101 steps"),
            ("linear:-3x1m", "'-3'"),
            ("canary:150%/5m", "150"),
            ("exp:1%x1/1m", "factor 1"),
            ("weights:1,150@1m", "150"),
            ("weights:50,10@1m", "strictly increase"),
            ("rolling:5", "'rolling'"),
            ("linear:10x2y", "'2y'"),
        ] {
            let e = text
                .parse::<Strategy>()
                .and_then(|s| s.schedule())
                .unwrap_err();
            assert!(e.to_string().contains(needle), "{text}: {e}");
        }
    }

    #[test]
    fn display_reads_back() {
        for text in [
            "linear:10x2m",
            "canary:10%/5m",
            "exp:1%x2/1m",
            "weights:5%/1m,50%/10m",
            "all-at-once",
            "time-based-linear:10/1",
        ] {
            let s: Strategy = text.parse().unwrap();
            assert_eq!(s.to_string().parse::<Strategy>().unwrap(), s, "{text}");
        }
    }
}
