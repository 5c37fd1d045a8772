//! An alias's routing: one primary version and at most one additional version with a
//! weight in [0, 1], checked with the rules (and messages) of Lambda's CreateAlias and
//! UpdateAlias.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::{LambdaError, Version};

/// Where an alias sends invocations: `primary` gets `1 - weight`, the additional version
/// `weight`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AliasRouting {
    pub primary: Version,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub additional: Option<AdditionalVersion>,
}

/// The second version behind an alias and the fraction of invocations it receives.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct AdditionalVersion {
    pub version: u64,
    pub weight: f64,
}

impl AliasRouting {
    /// An alias on one version, with no routing.
    pub fn single(primary: Version) -> Self {
        AliasRouting {
            primary,
            additional: None,
        }
    }

    /// `primary` plus `version` at `weight`; no checks (use [`RoutingRequest`] for input).
    pub fn split(primary: Version, version: u64, weight: f64) -> Self {
        AliasRouting {
            primary,
            additional: Some(AdditionalVersion { version, weight }),
        }
    }

    /// The share of invocations `version` receives.
    pub fn weight_of(&self, version: Version) -> f64 {
        let extra_weight = self.additional.map_or(0.0, |a| a.weight);
        if self.primary == version {
            1.0 - extra_weight
        } else if self
            .additional
            .is_some_and(|a| Version::Number(a.version) == version)
        {
            extra_weight
        } else {
            0.0
        }
    }

    /// True when the alias points at exactly one version with no routing left behind.
    pub fn is_single(&self) -> bool {
        self.additional.is_none()
    }

    /// The versions this routing names, primary first; each must exist.
    pub fn versions(&self) -> impl Iterator<Item = Version> + '_ {
        std::iter::once(self.primary).chain(self.additional.map(|a| Version::Number(a.version)))
    }

    /// The wire form of `RoutingConfig.AdditionalVersionWeights`.
    pub fn weights_map(&self) -> BTreeMap<String, f64> {
        self.additional
            .iter()
            .map(|a| (a.version.to_string(), a.weight))
            .collect()
    }

    /// Picks the version for one invocation from a uniform draw `u` in [0, 1).
    pub fn pick(&self, u: f64) -> Version {
        match self.additional {
            Some(a) if u < a.weight => Version::Number(a.version),
            _ => self.primary,
        }
    }
}

impl fmt::Display for AliasRouting {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.additional {
            None => write!(f, "version {} (no routing)", self.primary),
            Some(a) => write!(
                f,
                "version {} at {} and version {} at {}",
                self.primary,
                percent(1.0 - a.weight),
                a.version,
                percent(a.weight)
            ),
        }
    }
}

/// A weight as a percentage with no more digits than it needs: `5%`, `33.3333%`.
pub fn percent(weight: f64) -> String {
    let p = weight * 100.0;
    let text = format!("{p:.4}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}%")
}

/// What a CreateAlias or UpdateAlias asks for. `None` keeps what the alias has (UpdateAlias);
/// an empty map clears the routing.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RoutingRequest {
    pub function_version: Option<Version>,
    pub weights: Option<BTreeMap<String, f64>>,
}

impl RoutingRequest {
    /// Applies the request to the alias's current routing (none for CreateAlias) and checks
    /// the result with Lambda's rules, in the order Lambda applies them: the model's
    /// constraints first (ValidationException), then the alias rules
    /// (InvalidParameterValueException). Whether the versions exist is the caller's check.
    pub fn resolve(&self, current: Option<&AliasRouting>) -> Result<AliasRouting, LambdaError> {
        if let Some(weights) = &self.weights {
            check_model_constraints(weights)?;
        }
        let primary = self
            .function_version
            .or(current.map(|c| c.primary))
            .ok_or_else(|| LambdaError::invalid_parameter("FunctionVersion is required"))?;
        let additional = match &self.weights {
            Some(weights) => {
                if weights.len() > 1 {
                    return Err(LambdaError::invalid_parameter(
                        "Number of items in AdditionalVersionWeights cannot be greater than 1",
                    ));
                }
                weights
                    .iter()
                    .next()
                    .map(|(key, &weight)| AdditionalVersion {
                        version: key.parse().expect("keys were checked to be digits"),
                        weight,
                    })
            }
            None => current.and_then(|c| c.additional),
        };
        if let Some(extra) = additional {
            if primary == Version::Latest {
                return Err(LambdaError::invalid_parameter(
                    "$LATEST is not supported for an alias pointing to more than 1 version",
                ));
            }
            if primary == Version::Number(extra.version) {
                return Err(LambdaError::invalid_parameter(format!(
                    "Invalid function version {0}. Function version {0} is already included in routing configuration.",
                    extra.version
                )));
            }
        }
        Ok(AliasRouting {
            primary,
            additional,
        })
    }
}

fn check_model_constraints(weights: &BTreeMap<String, f64>) -> Result<(), LambdaError> {
    let rendered = || {
        let items: Vec<String> = weights
            .iter()
            .map(|(k, v)| format!("{k}={}", java_double(*v)))
            .collect();
        format!("{{{}}}", items.join(", "))
    };
    let field = "routingConfig.additionalVersionWeights";
    let key_ok =
        |k: &String| !k.is_empty() && k.len() <= 1024 && k.bytes().all(|b| b.is_ascii_digit());
    if !weights.keys().all(key_ok) {
        return Err(LambdaError::validation(
            &rendered(),
            field,
            "Map keys must satisfy constraint: [Member must have length less than or equal to 1024, Member must have length greater than or equal to 1, Member must satisfy regular expression pattern: [0-9]+]",
        ));
    }
    if !weights.values().all(|w| (0.0..=1.0).contains(w)) {
        return Err(LambdaError::validation(
            &rendered(),
            field,
            "Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0, Member must not be null]",
        ));
    }
    Ok(())
}

/// A double as Java prints it (AWS's messages are rendered by Java): `2.0`, `0.05`.
fn java_double(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e7 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::ErrorType;

    fn request(version: &str, weights: &[(&str, f64)]) -> RoutingRequest {
        RoutingRequest {
            function_version: Some(version.parse().unwrap()),
            weights: Some(weights.iter().map(|(k, w)| (k.to_string(), *w)).collect()),
        }
    }

    #[test]
    fn a_canary_split_is_accepted() {
        let r = request("1", &[("2", 0.05)]).resolve(None).unwrap();
        assert_eq!(r, AliasRouting::split(Version::Number(1), 2, 0.05));
        assert!((r.weight_of(Version::Number(1)) - 0.95).abs() < 1e-12);
        assert_eq!(r.to_string(), "version 1 at 95% and version 2 at 5%");
    }

    #[test]
    fn the_documented_rejections_carry_aws_messages() {
        let e = request("1", &[("2", 2.0)]).resolve(None).unwrap_err();
        assert_eq!(e.kind, ErrorType::Validation);
        assert_eq!(
            e.message,
            "1 validation error detected: Value '{2=2.0}' at 'routingConfig.additionalVersionWeights' failed to satisfy constraint: Map value must satisfy constraint: [Member must have value less than or equal to 1.0, Member must have value greater than or equal to 0.0, Member must not be null]"
        );
        let e = request("1", &[("$LATEST", 0.5)]).resolve(None).unwrap_err();
        assert_eq!(e.kind, ErrorType::Validation);
        assert!(e.message.contains("Map keys must satisfy constraint"));
        let e = request("1", &[("2", 0.1), ("3", 0.1)])
            .resolve(None)
            .unwrap_err();
        assert_eq!(
            e.message,
            "Number of items in AdditionalVersionWeights cannot be greater than 1"
        );
        let e = request("$LATEST", &[("2", 0.1)]).resolve(None).unwrap_err();
        assert_eq!(
            e.message,
            "$LATEST is not supported for an alias pointing to more than 1 version"
        );
        let e = request("1", &[("1", 0.1)]).resolve(None).unwrap_err();
        assert_eq!(
            e.message,
            "Invalid function version 1. Function version 1 is already included in routing configuration."
        );
    }

    #[test]
    fn an_update_without_routing_keeps_the_routing_and_an_empty_map_clears_it() {
        let current = AliasRouting::split(Version::Number(1), 2, 0.3);
        let keep = RoutingRequest {
            function_version: None,
            weights: None,
        };
        assert_eq!(keep.resolve(Some(&current)).unwrap(), current);
        let promote = request("2", &[]);
        assert_eq!(
            promote.resolve(Some(&current)).unwrap(),
            AliasRouting::single(Version::Number(2))
        );
        let clash = RoutingRequest {
            function_version: Some(Version::Number(2)),
            weights: None,
        };
        assert!(clash.resolve(Some(&current)).is_err());
    }

    #[test]
    fn latest_alone_is_fine() {
        let r = request("$LATEST", &[]).resolve(None).unwrap();
        assert_eq!(r, AliasRouting::single(Version::Latest));
    }

    #[test]
    fn pick_sends_the_weight_to_the_additional_version() {
        let r = AliasRouting::split(Version::Number(1), 2, 0.25);
        assert_eq!(r.pick(0.1), Version::Number(2));
        assert_eq!(r.pick(0.25), Version::Number(1));
        assert_eq!(r.pick(0.99), Version::Number(1));
    }
}
