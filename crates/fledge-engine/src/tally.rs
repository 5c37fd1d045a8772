//! Per-version evidence by second, and the observation a check judges.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fledge_core::judge::{Observation, VersionSample};

/// Samples by (version, second).
#[derive(Clone, Debug, Default)]
pub struct Tally {
    buckets: BTreeMap<(u64, i64), VersionSample>,
}

fn second(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64)
}

impl Tally {
    pub fn add(&mut self, version: u64, at: SystemTime, sample: &VersionSample) {
        self.buckets
            .entry((version, second(at)))
            .or_default()
            .add(sample);
    }

    fn sum(&self, version: u64, from: SystemTime, to: SystemTime) -> VersionSample {
        let mut out = VersionSample::default();
        for (_, s) in self
            .buckets
            .range((version, second(from))..(version, second(to) + 1))
        {
            out.add(s);
        }
        out
    }

    /// The observation at `now`: the canary since `since`, the baseline since `since` (which
    /// may reach back before the deployment), the canary since `step_started`, and the canary
    /// over the last minute.
    pub fn observe(
        &self,
        canary: u64,
        baseline: u64,
        since: SystemTime,
        step_started: SystemTime,
        now: SystemTime,
    ) -> Observation {
        Observation {
            canary: self.sum(canary, since, now),
            baseline: self.sum(baseline, since, now),
            canary_in_step: self.sum(canary, step_started, now).requests,
            canary_last_minute: self.sum(canary, now - Duration::from_secs(59), now),
        }
    }

    /// Drops what is older than `before`.
    pub fn forget_before(&mut self, before: SystemTime) {
        let cut = second(before);
        self.buckets.retain(|(_, s), _| *s >= cut);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn observations_split_by_version_and_time() {
        let t0 = UNIX_EPOCH + Duration::from_secs(1_000);
        let mut t = Tally::default();
        for i in 0..100 {
            let s = VersionSample {
                requests: 1,
                errors: u64::from(i % 10 == 0),
                ..Default::default()
            };
            t.add(
                if i % 4 == 0 { 2 } else { 1 },
                t0 + Duration::from_secs(i),
                &s,
            );
        }
        let o = t.observe(
            2,
            1,
            t0,
            t0 + Duration::from_secs(50),
            t0 + Duration::from_secs(99),
        );
        assert_eq!((o.canary.requests, o.baseline.requests), (25, 75));
        assert_eq!(o.canary_in_step, 12);
        assert_eq!(o.canary_last_minute.requests, 15);
    }
}
