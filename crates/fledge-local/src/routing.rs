//! How an alias invocation picks a version.
//!
//! Lambda picks at random for each invocation, with the additional version's weight as its
//! probability ("a simple probabilistic model"); that is the default here, from a seedable
//! generator. Two local extensions, set per alias through `PUT /_fledge/routing/{fn}/{alias}`:
//! - `exact`: the share served never drifts from the weight by a whole invocation;
//! - `sticky`: a key from a header or the payload always lands on the same side, and as the
//!   weight grows keys only move from the old version to the new one.

use std::collections::HashMap;
use std::sync::Mutex;

use fledge_core::lambda::{AliasRouting, Version};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use serde::{Deserialize, Serialize};

/// An alias's routing mode.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "mode", rename_all = "snake_case")]
pub enum RoutingMode {
    /// Lambda's behaviour: an independent random draw per invocation.
    #[default]
    Random,
    /// Deterministic: after n invocations the additional version has served ⌊weight·n⌋.
    Exact,
    /// By a key: invocations with the same key go to the same version.
    Sticky { key: StickyKey },
}

/// Where a sticky key is read.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StickyKey {
    /// A request header, e.g. `x-user-id`.
    Header(String),
    /// A JSON pointer into the payload, e.g. `/user/id`.
    JsonPointer(String),
}

/// The exact-split counter of one alias at one routing.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ExactCounter {
    routing_key: (u64, u64),
    total: u64,
    extra: u64,
}

impl ExactCounter {
    /// Whether this invocation goes to the additional version, keeping
    /// `extra == ⌊weight · total⌋` at every step. A change of routing starts the count anew.
    pub fn pick_additional(&mut self, version: u64, weight: f64) -> bool {
        let key = (version, weight.to_bits());
        if key != self.routing_key {
            *self = ExactCounter {
                routing_key: key,
                total: 0,
                extra: 0,
            };
        }
        self.total += 1;
        let due = (weight * self.total as f64 + 1e-9).floor() as u64;
        let pick = self.extra < due;
        if pick {
            self.extra += 1;
        }
        pick
    }
}

/// A key's fixed point in [0, 1): FNV-1a, so it is stable across runs and machines.
pub fn sticky_point(key: &[u8]) -> f64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in key {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    // Spread the low bits before taking the top 53.
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    (h >> 11) as f64 / (1u64 << 53) as f64
}

/// Reads a sticky key from the request.
pub fn sticky_key(
    key: &StickyKey,
    header: impl Fn(&str) -> Option<String>,
    payload: &[u8],
) -> Option<String> {
    match key {
        StickyKey::Header(name) => header(name),
        StickyKey::JsonPointer(pointer) => {
            let value: serde_json::Value = serde_json::from_slice(payload).ok()?;
            match value.pointer(pointer)? {
                serde_json::Value::String(s) => Some(s.clone()),
                serde_json::Value::Null => None,
                other => Some(other.to_string()),
            }
        }
    }
}

/// The routing state of every alias on the platform.
pub struct Router {
    rng: Mutex<StdRng>,
    exact: Mutex<HashMap<(String, String), ExactCounter>>,
}

impl Router {
    /// A router; with a seed, the random picks repeat from run to run.
    pub fn new(seed: u64) -> Router {
        Router {
            rng: Mutex::new(StdRng::seed_from_u64(seed)),
            exact: Mutex::new(HashMap::new()),
        }
    }

    /// Picks the version for one invocation of `function:alias`.
    pub fn pick(
        &self,
        function: &str,
        alias: &str,
        routing: &AliasRouting,
        mode: &RoutingMode,
        key: Option<&str>,
    ) -> Version {
        let Some(extra) = routing.additional else {
            return routing.primary;
        };
        match (mode, key) {
            (RoutingMode::Exact, _) => {
                let mut counters = self.exact.lock().expect("router lock");
                let counter = counters
                    .entry((function.to_string(), alias.to_string()))
                    .or_default();
                if counter.pick_additional(extra.version, extra.weight) {
                    Version::Number(extra.version)
                } else {
                    routing.primary
                }
            }
            (RoutingMode::Sticky { .. }, Some(key)) => routing.pick(sticky_point(key.as_bytes())),
            _ => {
                let u: f64 = self.rng.lock().expect("router lock").random();
                routing.pick(u)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_split_never_drifts_by_a_whole_invocation() {
        for weight in [0.05, 0.1, 1.0 / 3.0, 0.5, 0.999] {
            let mut c = ExactCounter::default();
            let mut extra = 0u64;
            for n in 1..=10_000u64 {
                if c.pick_additional(2, weight) {
                    extra += 1;
                }
                assert!(
                    (extra as f64 - weight * n as f64).abs() < 1.0,
                    "w={weight} n={n} extra={extra}"
                );
            }
        }
    }

    #[test]
    fn exact_split_restarts_when_the_weight_changes() {
        let mut c = ExactCounter::default();
        let first: Vec<bool> = (0..10).map(|_| c.pick_additional(2, 0.5)).collect();
        assert_eq!(first.iter().filter(|b| **b).count(), 5);
        let after: Vec<bool> = (0..10).map(|_| c.pick_additional(2, 0.2)).collect();
        assert_eq!(after.iter().filter(|b| **b).count(), 2);
    }

    #[test]
    fn sticky_keys_only_move_towards_the_new_version() {
        let keys: Vec<String> = (0..2_000).map(|i| format!("user-{i}")).collect();
        let mut on_new_before = 0;
        for w in [0.1, 0.25, 0.5, 0.9] {
            let routing = AliasRouting::split(Version::Number(1), 2, w);
            let on_new: Vec<&String> = keys
                .iter()
                .filter(|k| routing.pick(sticky_point(k.as_bytes())) == Version::Number(2))
                .collect();
            assert!(on_new.len() >= on_new_before);
            let share = on_new.len() as f64 / keys.len() as f64;
            assert!((share - w).abs() < 0.05, "w={w} share={share}");
            on_new_before = on_new.len();
        }
    }

    #[test]
    fn keys_are_read_from_headers_or_the_payload() {
        let payload = br#"{"user":{"id":42}}"#;
        assert_eq!(
            sticky_key(
                &StickyKey::JsonPointer("/user/id".into()),
                |_| None,
                payload
            ),
            Some("42".into())
        );
        assert_eq!(
            sticky_key(
                &StickyKey::Header("x-user".into()),
                |h| (h == "x-user").then(|| "ann".to_string()),
                b""
            ),
            Some("ann".into())
        );
        assert_eq!(
            sticky_key(&StickyKey::JsonPointer("/nope".into()), |_| None, payload),
            None
        );
    }

    #[test]
    fn a_seeded_router_repeats() {
        let routing = AliasRouting::split(Version::Number(1), 2, 0.3);
        let picks = |seed| {
            let r = Router::new(seed);
            (0..100)
                .map(|_| r.pick("f", "live", &routing, &RoutingMode::Random, None))
                .collect::<Vec<_>>()
        };
        assert_eq!(picks(7), picks(7));
        assert_ne!(picks(7), picks(8));
    }
}
