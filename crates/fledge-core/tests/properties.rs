//! Property tests: schedules, and Lambda's rules checked against AWS's own patterns.

use std::collections::BTreeMap;
use std::time::Duration;

use fledge_core::lambda::{AliasName, ErrorType, FunctionRef, NameKind, RoutingRequest, Version};
use fledge_core::schedule::{Step, Strategy as Plan};
use proptest::prelude::*;
use regex::Regex;

const FUNCTION_NAME: &str = r"^(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?$";

fn strategy() -> impl Strategy<Value = Plan> {
    let interval = (0u64..100_000).prop_map(Duration::from_secs);
    prop_oneof![
        (1u32..=100, interval.clone())
            .prop_map(|(steps, interval)| Plan::Linear { steps, interval }),
        (1u32..100, interval.clone()).prop_map(|(p, hold)| Plan::Canary {
            weight: f64::from(p) / 100.0,
            hold
        }),
        (1u32..50, 2u32..5, interval.clone()).prop_map(|(s, f, interval)| Plan::Exponential {
            start: f64::from(s) / 100.0,
            factor: f64::from(f),
            interval
        }),
        proptest::collection::btree_set(1u32..=100, 1..10).prop_map(|set| Plan::Weights {
            steps: set
                .into_iter()
                .map(|p| Step::new(f64::from(p) / 100.0, Duration::from_secs(60)))
                .collect()
        }),
        Just(Plan::AllAtOnce),
        (1u32..100, 1u32..60)
            .prop_map(|(percent, minutes)| Plan::TimeBasedCanary { percent, minutes }),
        (5u32..100, 1u32..30)
            .prop_map(|(percent, minutes)| Plan::TimeBasedLinear { percent, minutes }),
    ]
}

proptest! {
    /// Every schedule a strategy makes increases strictly, ends at 100%, and lasts the sum
    /// of its holds.
    #[test]
    fn schedules_are_monotonic_and_finish(s in strategy()) {
        let schedule = s.schedule().unwrap();
        let steps = schedule.steps();
        prop_assert!(steps.windows(2).all(|w| w[0].weight < w[1].weight));
        prop_assert!(steps.iter().all(|s| s.weight > 0.0 && s.weight <= 1.0));
        prop_assert_eq!(steps.last().unwrap().weight, 1.0);
        prop_assert_eq!(schedule.total(), steps.iter().map(|s| s.hold).sum::<Duration>());
        prop_assert_eq!(s.to_string().parse::<Plan>().unwrap().schedule().unwrap(), schedule);
    }

    /// A name is accepted exactly when AWS's pattern and length limits accept it.
    #[test]
    fn function_names_follow_aws(input in r"(arn:aws:lambda:)?([a-z]{2}-[a-z]{3,5}-[0-9]:)?([0-9]{12}:)?(function:)?[a-zA-Z0-9_.$ -]{0,70}(:[a-zA-Z0-9$_-]{0,10})?") {
        let oracle = Regex::new(FUNCTION_NAME).unwrap();
        let ours = FunctionRef::parse(&input, NameKind::Function);
        let pattern_ok = oracle.is_match(&input) && !input.is_empty() && input.len() <= 140;
        if !pattern_ok {
            prop_assert!(ours.is_err(), "accepted {input:?}");
        } else if let Ok(r) = &ours {
            prop_assert!(r.name.len() <= 64);
        } else {
            // Only the 64-character rule may refuse what the pattern allows.
            let e = ours.unwrap_err();
            prop_assert_eq!(e.kind, ErrorType::InvalidParameterValue, "{}: {}", input, e);
        }
    }

    /// Alias names: the alias pattern, 1–128 characters, not all digits.
    #[test]
    fn alias_names_follow_aws(input in r"[a-zA-Z0-9_ .-]{0,130}") {
        let charset = Regex::new(r"^[a-zA-Z0-9-_]+$").unwrap();
        let expected = charset.is_match(&input) && input.len() <= 128 && !input.bytes().all(|b| b.is_ascii_digit());
        prop_assert_eq!(AliasName::parse_field(&input, "name").is_ok(), expected, "{:?}", input);
    }

    /// Routing: accepted exactly when every documented rule holds.
    #[test]
    fn routing_rules_follow_aws(
        primary in prop_oneof![Just(Version::Latest), (1u64..5).prop_map(Version::Number)],
        entries in proptest::collection::btree_map(prop_oneof![(1u64..5).prop_map(|v| v.to_string()), Just("$LATEST".to_string()), Just("x1".to_string())], -0.5f64..1.5, 0..3),
    ) {
        let weights: BTreeMap<String, f64> = entries;
        let result = RoutingRequest { function_version: Some(primary), weights: Some(weights.clone()) }.resolve(None);
        let keys_ok = weights.keys().all(|k| k.bytes().all(|b| b.is_ascii_digit()));
        let values_ok = weights.values().all(|w| (0.0..=1.0).contains(w));
        let expected = keys_ok
            && values_ok
            && weights.len() <= 1
            && (weights.is_empty() || primary != Version::Latest)
            && weights.keys().all(|k| Version::Number(k.parse().unwrap()) != primary);
        prop_assert_eq!(result.is_ok(), expected, "{:?} {:?} -> {:?}", primary, weights, result);
        if let Err(e) = result {
            let validation = !keys_ok || !values_ok;
            prop_assert_eq!(e.kind == ErrorType::Validation, validation, "{}", e);
            prop_assert_eq!(e.kind.status(), 400);
        }
    }
}
