//! The original's JSON input, read strictly:
//! `{"function-name":"f","alias-name":"live","new-version":"2","steps":10,"interval":120,"type":"linear"}`.
//!
//! The original accepted anything and misbehaved on much of it (no steps, more than 100
//! steps, a negative wait). Here every field is checked and a bad one is named.

use std::time::Duration;

use serde::Deserialize;
use serde_json::Value;

use super::{Strategy, StrategyError};
use crate::lambda::{AliasName, FunctionRef, NameKind};
use crate::schedule::strategy::MAX_STEPS;

/// A checked seed input.
#[derive(Clone, Debug, PartialEq)]
pub struct SeedInput {
    pub function: FunctionRef,
    pub alias: AliasName,
    pub new_version: u64,
    pub strategy: Strategy,
    /// The original's switch for its health check; fledge still never promotes on silence.
    pub health_check: bool,
}

/// What is wrong with a seed input, naming the field and the value.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum SeedInputError {
    /// Not JSON, or not an object, or a field missing or unknown.
    #[error("invalid seed input: {0}. Expected for example {EXAMPLE}")]
    Shape(String),
    /// A field's value is not allowed.
    #[error("invalid seed input: \"{field}\" is {value}; {fix}")]
    Field {
        field: &'static str,
        value: String,
        fix: String,
    },
}

const EXAMPLE: &str = r#"{"function-name":"my-function","alias-name":"live","new-version":"2","steps":10,"interval":120,"type":"linear"}"#;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Raw {
    #[serde(rename = "function-name")]
    function_name: String,
    #[serde(rename = "alias-name")]
    alias_name: String,
    #[serde(rename = "new-version")]
    new_version: Value,
    steps: Value,
    interval: Value,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(rename = "health-check", default)]
    health_check: Option<bool>,
}

impl SeedInput {
    /// Reads and checks the JSON text.
    pub fn parse(text: &str) -> Result<SeedInput, SeedInputError> {
        let raw: Raw =
            serde_json::from_str(text).map_err(|e| SeedInputError::Shape(e.to_string()))?;
        let field =
            |field: &'static str, value: &dyn std::fmt::Display, fix: &str| SeedInputError::Field {
                field,
                value: value.to_string(),
                fix: fix.to_string(),
            };
        let function = FunctionRef::parse(&raw.function_name, NameKind::Function).map_err(|e| {
            field(
                "function-name",
                &format!("'{}'", raw.function_name),
                &e.message,
            )
        })?;
        if function.qualifier.is_some() {
            return Err(field(
                "function-name",
                &format!("'{}'", raw.function_name),
                "give the function without a qualifier; the alias goes in \"alias-name\"",
            ));
        }
        let alias = AliasName::parse_field(&raw.alias_name, "alias-name")
            .map_err(|e| field("alias-name", &format!("'{}'", raw.alias_name), &e.message))?;
        let new_version = match &raw.new_version {
            Value::String(s) => s.parse::<u64>().ok().filter(|_| s.bytes().all(|b| b.is_ascii_digit())),
            Value::Number(n) => n.as_u64(),
            _ => None,
        }
        .filter(|v| *v >= 1)
        .ok_or_else(|| field("new-version", &raw.new_version, "give a published version number such as \"2\" ($LATEST cannot take weighted traffic)"))?;

        let steps = raw
            .steps
            .as_u64()
            .filter(|s| (1..=u64::from(MAX_STEPS)).contains(s))
            .ok_or_else(|| {
                field(
                    "steps",
                    &raw.steps,
                    &format!("it must be a whole number from 1 to {MAX_STEPS}"),
                )
            })?;
        let interval = raw
            .interval
            .as_f64()
            .filter(|i| i.is_finite() && *i >= 0.0 && *i <= 365.0 * 86_400.0)
            .ok_or_else(|| {
                field(
                    "interval",
                    &raw.interval,
                    "it must be a number of seconds from 0 to 31536000 (a year)",
                )
            })?;
        let kind = raw.kind.as_deref().unwrap_or("linear");
        if kind != "linear" {
            return Err(field(
                "type",
                &format!("'{kind}'"),
                "the seed input supports only \"linear\"; use a fledge strategy (for example canary:10%/5m) for other shapes",
            ));
        }
        let strategy = Strategy::Linear {
            steps: u32::try_from(steps).expect("checked to be at most 100"),
            interval: Duration::from_secs_f64(interval),
        };
        Ok(SeedInput {
            function,
            alias,
            new_version,
            strategy,
            health_check: raw.health_check.unwrap_or(true),
        })
    }

    /// The schedule the input asks for.
    pub fn schedule(&self) -> Result<super::Schedule, StrategyError> {
        self.strategy.schedule()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(steps: &str, interval: &str, extra: &str) -> String {
        format!(
            r#"{{"function-name":"f","alias-name":"live","new-version":"2","steps":{steps},"interval":{interval},"type":"linear"{extra}}}"#
        )
    }

    #[test]
    fn the_documented_example_is_ten_linear_steps() {
        let seed = SeedInput::parse(&input("10", "120", "")).unwrap();
        assert_eq!(seed.new_version, 2);
        assert_eq!(seed.alias.as_str(), "live");
        let schedule = seed.schedule().unwrap();
        assert_eq!(schedule.len(), 10);
        assert!(
            schedule
                .steps()
                .iter()
                .all(|s| s.hold == Duration::from_secs(120))
        );
        assert_eq!(schedule.steps()[9].weight, 1.0);
    }

    #[test]
    fn the_originals_defects_become_errors_that_name_the_value() {
        for (steps, interval, needle) in [
            ("0", "120", "\"steps\" is 0"),
            ("-3", "120", "\"steps\" is -3"),
            ("101", "120", "\"steps\" is 101"),
            ("10.5", "120", "\"steps\" is 10.5"),
            ("\"10\"", "120", "\"steps\" is \"10\""),
            ("10", "-1", "\"interval\" is -1"),
        ] {
            let e = SeedInput::parse(&input(steps, interval, "")).unwrap_err();
            assert!(e.to_string().contains(needle), "{e}");
        }
        let e =
            SeedInput::parse(&input("10", "120", "").replace("linear", "exponential")).unwrap_err();
        assert!(e.to_string().contains("'exponential'"), "{e}");
        let e = SeedInput::parse(&input("10", "120", r#","stepz":1"#)).unwrap_err();
        assert!(e.to_string().contains("stepz"), "{e}");
        let e = SeedInput::parse(r#"{"function-name":"f"}"#).unwrap_err();
        assert!(e.to_string().contains("missing field"), "{e}");
        let e =
            SeedInput::parse(&input("10", "120", "").replace("\"2\"", "\"$LATEST\"")).unwrap_err();
        assert!(e.to_string().contains("new-version"), "{e}");
    }

    #[test]
    fn health_check_switch_is_read() {
        let seed = SeedInput::parse(&input("1", "0", r#","health-check":false"#)).unwrap();
        assert!(!seed.health_check);
    }
}
