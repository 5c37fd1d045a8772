//! SNS subscription filter policies: which messages a subscription receives, by their
//! attributes (`FilterPolicyScope` `MessageAttributes`, the default) or by their JSON body
//! (`MessageBody`).
//!
//! A policy is a JSON object: every key must match (nested objects reach into a body), and a
//! key matches when any rule of its array does. Rules: a string or a number (equal), and
//! `{"prefix"}`, `{"suffix"}`, `{"equals-ignore-case"}`, `{"anything-but"}` (a value, a
//! list, or `{"prefix"}`), `{"numeric": [op, n, …]}` and `{"exists": bool}`.

use serde_json::{Map, Value};

/// Why a policy cannot be used, for SNS's `InvalidParameter` answer.
pub fn check(policy: &Value) -> Result<(), String> {
    let Value::Object(keys) = policy else {
        return Err("a filter policy is a JSON object".into());
    };
    if keys.is_empty() {
        return Err("a filter policy has at least one key".into());
    }
    for (key, condition) in keys {
        match condition {
            Value::Object(_) => check(condition)?,
            Value::Array(rules) if !rules.is_empty() => {
                for rule in rules {
                    check_rule(key, rule)?;
                }
            }
            _ => {
                return Err(format!(
                    "the condition of '{key}' must be a non-empty array of rules (or an object, for a message body)"
                ));
            }
        }
    }
    Ok(())
}

fn check_rule(key: &str, rule: &Value) -> Result<(), String> {
    let Value::Object(o) = rule else {
        return match rule {
            Value::String(_) | Value::Number(_) | Value::Null => Ok(()),
            _ => Err(format!(
                "a rule of '{key}' must be a string, a number or an object"
            )),
        };
    };
    let Some((operator, operand)) = o.iter().next().filter(|_| o.len() == 1) else {
        return Err(format!("a rule object of '{key}' has exactly one operator"));
    };
    let ok = match operator.as_str() {
        "prefix" | "suffix" | "equals-ignore-case" => operand.is_string(),
        "exists" => operand.is_boolean(),
        "anything-but" => match operand {
            Value::String(_) | Value::Number(_) => true,
            Value::Array(values) => values.iter().all(|v| v.is_string() || v.is_number()),
            Value::Object(p) => p.len() == 1 && p.get("prefix").is_some_and(Value::is_string),
            _ => false,
        },
        "numeric" => numeric_bounds(operand).is_some(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "the rule {rule} of '{key}' is not one fledge local knows (prefix, suffix, equals-ignore-case, anything-but, numeric, exists)"
        ))
    }
}

/// `["<", 10, ">=", 0]` as (operator, bound) pairs.
fn numeric_bounds(operand: &Value) -> Option<Vec<(&str, f64)>> {
    let items = operand.as_array()?;
    if items.is_empty() || items.len() % 2 != 0 {
        return None;
    }
    items
        .chunks(2)
        .map(|pair| {
            let op = pair[0].as_str()?;
            let n = pair[1].as_f64()?;
            matches!(op, "=" | "<" | "<=" | ">" | ">=").then_some((op, n))
        })
        .collect()
}

/// Whether `document` (the attributes as a JSON object, or the message body) passes `policy`.
pub fn matches(policy: &Map<String, Value>, document: &Value) -> bool {
    policy.iter().all(|(key, condition)| {
        let value = document.get(key);
        match condition {
            Value::Object(nested) => value.is_some_and(|v| matches(nested, v)),
            Value::Array(rules) => rules.iter().any(|rule| rule_matches(rule, value)),
            _ => false,
        }
    })
}

fn rule_matches(rule: &Value, value: Option<&Value>) -> bool {
    if let Some(Value::Object(o)) = Some(rule)
        && let Some(exists) = o.get("exists").and_then(Value::as_bool)
    {
        return value.is_some() == exists;
    }
    match value {
        None => false,
        // An array value matches when one of its elements does.
        Some(Value::Array(items)) => items.iter().any(|item| rule_matches(rule, Some(item))),
        Some(v) => scalar_matches(rule, v),
    }
}

fn scalar_matches(rule: &Value, v: &Value) -> bool {
    match rule {
        Value::String(s) => v.as_str() == Some(s),
        Value::Number(n) => v.as_f64().is_some() && v.as_f64() == n.as_f64(),
        Value::Null => v.is_null(),
        Value::Object(o) => {
            let Some((operator, operand)) = o.iter().next() else {
                return false;
            };
            let text = v.as_str();
            match operator.as_str() {
                "prefix" => text
                    .zip(operand.as_str())
                    .is_some_and(|(t, p)| t.starts_with(p)),
                "suffix" => text
                    .zip(operand.as_str())
                    .is_some_and(|(t, p)| t.ends_with(p)),
                "equals-ignore-case" => text
                    .zip(operand.as_str())
                    .is_some_and(|(t, p)| t.eq_ignore_ascii_case(p)),
                "anything-but" => match operand {
                    Value::Array(values) => !values.iter().any(|x| scalar_matches(x, v)),
                    Value::Object(p) => text
                        .zip(p.get("prefix").and_then(Value::as_str))
                        .is_some_and(|(t, p)| !t.starts_with(p)),
                    single => !scalar_matches(single, v),
                },
                "numeric" => v.as_f64().is_some_and(|x| {
                    numeric_bounds(operand).is_some_and(|bounds| {
                        bounds.iter().all(|(op, n)| match *op {
                            "=" => x == *n,
                            "<" => x < *n,
                            "<=" => x <= *n,
                            ">" => x > *n,
                            _ => x >= *n,
                        })
                    })
                }),
                _ => false,
            }
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn passes(policy: Value, document: Value) -> bool {
        check(&policy).unwrap();
        matches(policy.as_object().unwrap(), &document)
    }

    #[test]
    fn rules_match_as_sns_matches_them() {
        let doc =
            json!({"kind": "order", "amount": 12.5, "region": "eu-west-1", "tags": ["a", "b"]});
        assert!(passes(json!({"kind": ["order", "refund"]}), doc.clone()));
        assert!(!passes(json!({"kind": ["refund"]}), doc.clone()));
        assert!(passes(json!({"region": [{"prefix": "eu-"}]}), doc.clone()));
        assert!(passes(json!({"region": [{"suffix": "-1"}]}), doc.clone()));
        assert!(passes(
            json!({"kind": [{"equals-ignore-case": "ORDER"}]}),
            doc.clone()
        ));
        assert!(passes(
            json!({"kind": [{"anything-but": ["refund"]}]}),
            doc.clone()
        ));
        assert!(!passes(
            json!({"kind": [{"anything-but": "order"}]}),
            doc.clone()
        ));
        assert!(!passes(
            json!({"region": [{"anything-but": {"prefix": "eu-"}}]}),
            doc.clone()
        ));
        assert!(passes(
            json!({"amount": [{"numeric": [">", 10, "<=", 20]}]}),
            doc.clone()
        ));
        assert!(!passes(
            json!({"amount": [{"numeric": ["<", 10]}]}),
            doc.clone()
        ));
        assert!(passes(json!({"amount": [12.5]}), doc.clone()));
        assert!(passes(json!({"missing": [{"exists": false}]}), doc.clone()));
        assert!(!passes(json!({"kind": [{"exists": false}]}), doc.clone()));
        assert!(passes(json!({"tags": ["b"]}), doc.clone()));
        // Every key must match.
        assert!(!passes(
            json!({"kind": ["order"], "region": ["us-east-1"]}),
            doc
        ));
        // Nested objects reach into a message body.
        let body = json!({"order": {"status": "paid"}});
        assert!(passes(json!({"order": {"status": ["paid"]}}), body.clone()));
        assert!(!passes(json!({"order": {"status": ["open"]}}), body));
    }

    #[test]
    fn policies_that_cannot_work_are_refused() {
        assert!(check(&json!([])).is_err());
        assert!(check(&json!({})).is_err());
        assert!(check(&json!({"kind": "order"})).is_err());
        assert!(check(&json!({"kind": []})).is_err());
        assert!(check(&json!({"kind": [{"wildcard": "o*"}]})).is_err());
        assert!(check(&json!({"amount": [{"numeric": [">"]}]})).is_err());
    }
}
