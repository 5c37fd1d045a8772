//! CloudWatch's embedded metric format: a function that writes a JSON object with an `_aws`
//! member to its output publishes the metrics it names, as it does on Lambda (the Powertools
//! libraries and `aws-embedded-metrics` write this). A line may carry the prefix Lambda's
//! Node.js and Python runtimes put before console output (`time\trequest id\tLEVEL\t`).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::metrics::{CustomKey, Metrics, Published};

/// Publishes the metrics of one output line, if it is in the embedded metric format;
/// answers how many (metric, dimension set) values it published. `now_ms` stands in for a
/// missing timestamp.
pub fn publish_line(metrics: &Metrics, line: &str, now_ms: u64) -> usize {
    if !line.contains("\"_aws\"") {
        return 0;
    }
    let json = match line.trim_start().starts_with('{') {
        true => line.trim(),
        false => match line.rsplit_once('\t') {
            Some((_, rest)) if rest.trim_start().starts_with('{') => rest.trim(),
            _ => return 0,
        },
    };
    let Ok(Value::Object(root)) = serde_json::from_str::<Value>(json) else {
        return 0;
    };
    let Some(aws) = root.get("_aws") else {
        return 0;
    };
    let at_ms = aws
        .get("Timestamp")
        .and_then(Value::as_u64)
        .unwrap_or(now_ms);
    let mut published = 0;
    for directive in aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(namespace) = directive.get("Namespace").and_then(Value::as_str) else {
            continue;
        };
        if namespace.is_empty() || namespace.starts_with("AWS/") {
            continue;
        }
        // Each dimension set names members of the object; no sets is one set of none.
        let sets: Vec<Vec<&str>> = match directive.get("Dimensions").and_then(Value::as_array) {
            Some(sets) if !sets.is_empty() => sets
                .iter()
                .map(|set| {
                    set.as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(Value::as_str)
                        .collect()
                })
                .collect(),
            _ => vec![Vec::new()],
        };
        for definition in directive
            .get("Metrics")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let Some(name) = definition.get("Name").and_then(Value::as_str) else {
                continue;
            };
            let values: Vec<(f64, u64)> = match root.get(name) {
                Some(Value::Array(values)) => values
                    .iter()
                    .filter_map(Value::as_f64)
                    .map(|v| (v, 1))
                    .collect(),
                Some(v) => v.as_f64().map(|v| (v, 1)).into_iter().collect(),
                None => Vec::new(),
            };
            if values.iter().any(|(v, _)| !v.is_finite()) || values.is_empty() {
                continue;
            }
            let unit = definition.get("Unit").and_then(Value::as_str);
            for set in &sets {
                let dimensions: Option<BTreeMap<String, String>> = set
                    .iter()
                    .map(|d| {
                        let value = match root.get(*d)? {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        Some((d.to_string(), value))
                    })
                    .collect();
                // A set naming a member the object lacks publishes nothing, as on Lambda.
                let Some(dimensions) = dimensions else {
                    continue;
                };
                let key = CustomKey {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    dimensions,
                };
                metrics.publish(key, at_ms, &Published::Values(values.clone()), unit);
                published += 1;
            }
        }
    }
    published
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_metrics_are_published_per_dimension_set() {
        let m = Metrics::new(3600);
        let line = r#"2026-11-26T10:00:00.000Z	abc	INFO	{"_aws":{"Timestamp":1000000,"CloudWatchMetrics":[{"Namespace":"Shop","Dimensions":[["Service"],["Service","Version"],["Missing"]],"Metrics":[{"Name":"Orders","Unit":"Count"},{"Name":"Latency"}]}]},"Service":"cart","Version":2,"Orders":3,"Latency":[10,30]}"#;
        assert_eq!(publish_line(&m, line, 0), 4);
        let key = |dims: &[(&str, &str)], name: &str| CustomKey {
            namespace: "Shop".into(),
            name: name.into(),
            dimensions: dims
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        };
        let (points, unit) = m.query_custom(&key(&[("Service", "cart")], "Orders"), 990, 1010, 20);
        assert_eq!(unit.as_deref(), Some("Count"));
        assert_eq!(points.len(), 1);
        assert_eq!(points[0].1.sum, 3.0);
        let (points, _) = m.query_custom(
            &key(&[("Service", "cart"), ("Version", "2")], "Latency"),
            990,
            1010,
            20,
        );
        assert_eq!((points[0].1.sample_count, points[0].1.sum), (2.0, 40.0));
        assert_eq!(publish_line(&m, "just text", 0), 0);
        assert_eq!(publish_line(&m, r#"{"_aws": "not a directive"}"#, 0), 0);
        let aws_own = r#"{"_aws":{"CloudWatchMetrics":[{"Namespace":"AWS/Lambda","Metrics":[{"Name":"Errors"}]}]},"Errors":1}"#;
        assert_eq!(publish_line(&m, aws_own, 0), 0);
    }
}
