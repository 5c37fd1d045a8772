//! `/metrics` in Prometheus' text format.

use std::fmt::Write;

use fledge_engine::store::Counts;

fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Renders the store's counts and the number of deployments this process drives.
pub fn render(c: &Counts, running: usize) -> String {
    let mut out = String::new();
    let mut family = |name: &str, kind: &str, help: &str, samples: Vec<(String, String)>| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, value) in samples {
            let _ = writeln!(out, "{name}{labels} {value}");
        }
    };
    family(
        "fledge_deployments",
        "gauge",
        "Deployments by state: the phase while active, the outcome once finished.",
        c.by_state
            .iter()
            .map(|(s, n)| (format!("{{state=\"{}\"}}", label(s)), n.to_string()))
            .collect(),
    );
    family(
        "fledge_alias_weight",
        "gauge",
        "Share of the alias's traffic on the new version, for aliases with an active deployment.",
        c.weights
            .iter()
            .map(|(f, a, w)| {
                (
                    format!("{{function=\"{}\",alias=\"{}\"}}", label(f), label(a)),
                    w.to_string(),
                )
            })
            .collect(),
    );
    family(
        "fledge_deployment_outcomes_total",
        "counter",
        "Finished deployments by outcome: promoted, rolled_back (by analysis or a hook), aborted (by an operator), failed (fledge could not act).",
        c.outcomes
            .iter()
            .map(|(o, n, _)| (format!("{{outcome=\"{}\"}}", label(o)), n.to_string()))
            .collect(),
    );
    family(
        "fledge_deployment_duration_seconds_sum",
        "counter",
        "Total time from creation to the end, by outcome.",
        c.outcomes
            .iter()
            .map(|(o, _, s)| (format!("{{outcome=\"{}\"}}", label(o)), s.to_string()))
            .collect(),
    );
    family(
        "fledge_deployment_duration_seconds_count",
        "counter",
        "Finished deployments counted in the sum, by outcome.",
        c.outcomes
            .iter()
            .map(|(o, n, _)| (format!("{{outcome=\"{}\"}}", label(o)), n.to_string()))
            .collect(),
    );
    family(
        "fledge_notifications",
        "gauge",
        "Notifications by delivery status; failed ones were retried and gave up.",
        [
            ("sent", c.notifications_sent),
            ("pending", c.notifications_pending),
            ("failed", c.notifications_failed),
        ]
        .iter()
        .map(|(s, n)| (format!("{{status=\"{s}\"}}"), n.to_string()))
        .collect(),
    );
    family(
        "fledge_notification_failures_total",
        "counter",
        "Notifications that could not be delivered after every retry.",
        vec![(String::new(), c.notifications_failed.to_string())],
    );
    family(
        "fledge_running_drivers",
        "gauge",
        "Deployments this process is driving now.",
        vec![(String::new(), running.to_string())],
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_belongs_to_a_declared_family_and_labels_are_escaped() {
        let counts = Counts {
            by_state: vec![("shifting".into(), 2), ("promoted".into(), 5)],
            weights: vec![("f\"x".into(), "live".into(), 0.25)],
            outcomes: vec![("promoted".into(), 5, 50.0)],
            notifications_failed: 1,
            ..Counts::default()
        };
        let text = render(&counts, 2);
        assert!(text.contains("fledge_deployments{state=\"shifting\"} 2"));
        assert!(text.contains("fledge_alias_weight{function=\"f\\\"x\",alias=\"live\"} 0.25"));
        assert!(text.contains("fledge_deployment_outcomes_total{outcome=\"promoted\"} 5"));
        assert!(text.contains("fledge_notification_failures_total 1"));
        let declared: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE "))
            .filter_map(|l| l.split(' ').next())
            .collect();
        for sample in text.lines().filter(|l| !l.starts_with('#')) {
            let name = sample.split(['{', ' ']).next().unwrap();
            assert!(declared.contains(&name), "{sample}");
        }
    }
}
