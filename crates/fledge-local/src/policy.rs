//! Resource-based policies: AddPermission, GetPolicy and RemovePermission, kept per function
//! and qualifier as Lambda keeps them, so that deployment scripts that grant a service the
//! right to invoke a function run here unchanged.
//!
//! There is no IAM here: calls to fledge local are not checked against policies. One
//! service does check them, as on AWS: SNS invokes a subscribed function only when the
//! policy of the version or alias it subscribed lets `sns.amazonaws.com` invoke it.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use fledge_core::lambda::{LambdaError, NameKind};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::control::Answer;
use crate::server::Platform;

/// A function's or qualifier's policy may hold this many bytes, as on Lambda.
pub const MAX_POLICY: usize = 20 * 1024;

/// One qualifier's policy: its statements in the order they were added.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Policy {
    /// Changes with every statement added or removed.
    pub revision_id: String,
    pub statements: Vec<Statement>,
}

/// A statement as AddPermission gave it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct Statement {
    pub statement_id: String,
    pub action: String,
    pub principal: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_arn: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_account: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_source_token: Option<String>,
    #[serde(
        default,
        rename = "PrincipalOrgID",
        skip_serializing_if = "Option::is_none"
    )]
    pub principal_org_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub function_url_auth_type: Option<String>,
}

impl Statement {
    /// The statement as it appears in the policy document, on `resource` (the function's
    /// ARN, qualified when the policy is a version's or an alias's).
    pub fn document(&self, resource: &str) -> Value {
        let principal = if self.principal == "*" {
            json!("*")
        } else if self.principal.len() == 12 && self.principal.bytes().all(|b| b.is_ascii_digit()) {
            json!({"AWS": format!("arn:aws:iam::{}:root", self.principal)})
        } else if self.principal.starts_with("arn:") {
            json!({"AWS": self.principal})
        } else {
            json!({"Service": self.principal})
        };
        let mut condition = Map::new();
        let mut string_equals = Map::new();
        if let Some(arn) = &self.source_arn {
            condition.insert("ArnLike".into(), json!({"AWS:SourceArn": arn}));
        }
        for (key, value) in [
            ("AWS:SourceAccount", &self.source_account),
            ("lambda:EventSourceToken", &self.event_source_token),
            ("aws:PrincipalOrgID", &self.principal_org_id),
            ("lambda:FunctionUrlAuthType", &self.function_url_auth_type),
        ] {
            if let Some(value) = value {
                string_equals.insert(key.into(), json!(value));
            }
        }
        if !string_equals.is_empty() {
            condition.insert("StringEquals".into(), Value::Object(string_equals));
        }
        let mut statement = json!({
            "Sid": self.statement_id,
            "Effect": "Allow",
            "Principal": principal,
            "Action": self.action,
            "Resource": resource,
        });
        if !condition.is_empty() {
            statement["Condition"] = Value::Object(condition);
        }
        statement
    }

    /// Whether this statement lets `service` invoke the function on behalf of
    /// `source_arn`, a resource of `account`.
    pub fn lets_service_invoke(&self, service: &str, source_arn: &str, account: &str) -> bool {
        let action = matches!(
            self.action.as_str(),
            "lambda:InvokeFunction" | "lambda:*" | "*"
        );
        let principal = self.principal == service || self.principal == "*";
        let arn = self
            .source_arn
            .as_deref()
            .is_none_or(|pattern| arn_like(pattern, source_arn));
        let owner = self.source_account.as_deref().is_none_or(|a| a == account);
        action && principal && arn && owner && self.principal_org_id.is_none()
    }
}

impl Policy {
    /// The policy document, as GetPolicy gives it (a JSON string).
    pub fn document(&self, resource: &str) -> String {
        json!({
            "Version": "2012-10-17",
            "Id": "default",
            "Statement": self
                .statements
                .iter()
                .map(|s| s.document(resource))
                .collect::<Vec<_>>(),
        })
        .to_string()
    }
}

/// IAM's `ArnLike`: `*` matches any run of characters and `?` any one.
fn arn_like(pattern: &str, arn: &str) -> bool {
    let (p, a): (Vec<char>, Vec<char>) = (pattern.chars().collect(), arn.chars().collect());
    // Wildcard matching with one point to come back to, as in glob matchers.
    let (mut i, mut j, mut star, mut mark) = (0, 0, None, 0);
    while j < a.len() {
        if i < p.len() && (p[i] == '?' || p[i] == a[j]) {
            i += 1;
            j += 1;
        } else if i < p.len() && p[i] == '*' {
            star = Some(i);
            mark = j;
            i += 1;
        } else if let Some(s) = star {
            i = s + 1;
            mark += 1;
            j = mark;
        } else {
            return false;
        }
    }
    p[i..].iter().all(|c| *c == '*')
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct AddPermissionInput {
    statement_id: Option<String>,
    action: Option<String>,
    principal: Option<String>,
    source_arn: Option<String>,
    source_account: Option<String>,
    event_source_token: Option<String>,
    #[serde(rename = "PrincipalOrgID")]
    principal_org_id: Option<String>,
    function_url_auth_type: Option<String>,
    revision_id: Option<String>,
}

fn required(value: Option<String>, field: &str) -> Result<String, LambdaError> {
    value.ok_or_else(|| LambdaError::validation("null", field, "Member must not be null"))
}

fn pattern(value: &str, field: &str, ok: bool, pattern: &str) -> Result<(), LambdaError> {
    if ok {
        Ok(())
    } else {
        Err(LambdaError::validation(
            value,
            field,
            &format!("Member must satisfy regular expression pattern: {pattern}"),
        ))
    }
}

/// A statement id: 1–100 of letters, digits, `-`, `_` (and `.` where one is named).
pub(crate) fn check_statement_id(id: &str, dot: bool) -> Result<(), LambdaError> {
    if id.is_empty() || id.chars().count() > 100 {
        return Err(LambdaError::validation(
            id,
            "statementId",
            "Member must have length less than or equal to 100, Member must have length greater than or equal to 1",
        ));
    }
    let ok = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || (dot && c == '.'));
    let shape = if dot {
        "([a-zA-Z0-9-_.]+)"
    } else {
        "([a-zA-Z0-9-_]+)"
    };
    pattern(id, "statementId", ok, shape)
}

impl AddPermissionInput {
    fn check(self) -> Result<(Statement, Option<String>), LambdaError> {
        let statement_id = required(self.statement_id, "statementId")?;
        check_statement_id(&statement_id, false)?;
        let action = required(self.action, "action")?;
        let action_ok = action == "*"
            || action.strip_prefix("lambda:").is_some_and(|rest| {
                rest == "*" || (!rest.is_empty() && rest.chars().all(|c| c.is_ascii_alphabetic()))
            });
        pattern(
            &action,
            "action",
            action_ok,
            "(lambda:[*]|lambda:[a-zA-Z]+|[*])",
        )?;
        let principal = required(self.principal, "principal")?;
        pattern(
            &principal,
            "principal",
            !principal.is_empty() && !principal.chars().any(char::is_whitespace),
            "[^\\s]+",
        )?;
        if let Some(account) = &self.source_account {
            let ok = account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit());
            pattern(account, "sourceAccount", ok, "\\d{12}")?;
        }
        if let Some(arn) = &self.source_arn {
            let parts: Vec<&str> = arn.splitn(6, ':').collect();
            let ok = parts.len() == 6
                && parts[0] == "arn"
                && parts[1].starts_with("aws")
                && !parts[2].is_empty()
                && (parts[4].is_empty()
                    || (parts[4].len() == 12 && parts[4].bytes().all(|b| b.is_ascii_digit())));
            pattern(
                arn,
                "sourceArn",
                ok,
                "arn:(aws[a-zA-Z0-9-]*):([a-zA-Z0-9\\-])+:([a-z]{2}(-gov)?-[a-z]+-\\d{1})?:(\\d{12})?:(.*)",
            )?;
        }
        if let Some(t) = &self.function_url_auth_type
            && t != "NONE"
            && t != "AWS_IAM"
        {
            return Err(LambdaError::validation(
                t,
                "functionUrlAuthType",
                "Member must satisfy enum value set: [NONE, AWS_IAM]",
            ));
        }
        Ok((
            Statement {
                statement_id,
                action,
                principal,
                source_arn: self.source_arn,
                source_account: self.source_account,
                event_source_token: self.event_source_token,
                principal_org_id: self.principal_org_id,
                function_url_auth_type: self.function_url_auth_type,
            },
            self.revision_id,
        ))
    }
}

#[derive(Deserialize, Default)]
pub struct PolicyQuery {
    #[serde(rename = "Qualifier")]
    qualifier: Option<String>,
    #[serde(rename = "RevisionId")]
    revision_id: Option<String>,
}

/// The function and qualifier a policy request names (in the path or the query).
fn target(
    p: &Platform,
    raw: &str,
    qualifier: Option<&str>,
) -> Result<(String, Option<String>), LambdaError> {
    let r = crate::control::function_name(p, raw, NameKind::Namespaced)?
        .with_qualifier_param(qualifier)?;
    Ok((r.name.clone(), r.qualifier.as_ref().map(|q| q.to_string())))
}

pub async fn add_permission(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<PolicyQuery>,
    bytes: Bytes,
) -> Answer {
    p.faults.apply("AddPermission").await?;
    let (statement, revision_id) = crate::control::body::<AddPermissionInput>(&bytes)?.check()?;
    let (name, qualifier) = target(&p, &name, q.qualifier.as_deref())?;
    let (resource, added) = p.store.add_permission(
        &name,
        qualifier.as_deref(),
        statement,
        revision_id.as_deref(),
    )?;
    let body = json!({"Statement": added.document(&resource).to_string()});
    Ok((StatusCode::CREATED, axum::Json(body)).into_response())
}

pub async fn get_policy(
    State(p): State<Arc<Platform>>,
    Path(name): Path<String>,
    Query(q): Query<PolicyQuery>,
) -> Answer {
    p.faults.apply("GetPolicy").await?;
    let (name, qualifier) = target(&p, &name, q.qualifier.as_deref())?;
    let (resource, policy) = p.store.policy(&name, qualifier.as_deref())?;
    let body = json!({
        "Policy": policy.document(&resource),
        "RevisionId": policy.revision_id,
    });
    Ok(axum::Json(body).into_response())
}

pub async fn remove_permission(
    State(p): State<Arc<Platform>>,
    Path((name, statement_id)): Path<(String, String)>,
    Query(q): Query<PolicyQuery>,
) -> Answer {
    p.faults.apply("RemovePermission").await?;
    check_statement_id(&statement_id, true)?;
    let (name, qualifier) = target(&p, &name, q.qualifier.as_deref())?;
    p.store.remove_permission(
        &name,
        qualifier.as_deref(),
        &statement_id,
        q.revision_id.as_deref(),
    )?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arn_like_matches_as_iam_does() {
        let topic = "arn:aws:sns:us-east-1:000000000000:orders";
        assert!(arn_like(topic, topic));
        assert!(arn_like("arn:aws:sns:*:000000000000:*", topic));
        assert!(arn_like("arn:aws:sns:us-east-1:000000000000:order?", topic));
        assert!(!arn_like("arn:aws:sns:us-east-1:000000000000:order", topic));
        assert!(!arn_like("arn:aws:sns:eu-west-1:*", topic));
        assert!(arn_like("*", topic));
    }

    #[test]
    fn principals_and_conditions_render_as_lambda_renders_them() {
        let statement = Statement {
            statement_id: "sns".into(),
            action: "lambda:InvokeFunction".into(),
            principal: "sns.amazonaws.com".into(),
            source_arn: Some("arn:aws:sns:us-east-1:000000000000:orders".into()),
            source_account: Some("000000000000".into()),
            event_source_token: None,
            principal_org_id: None,
            function_url_auth_type: None,
        };
        let doc = statement.document("arn:aws:lambda:us-east-1:000000000000:function:f:live");
        assert_eq!(doc["Principal"], json!({"Service": "sns.amazonaws.com"}));
        assert_eq!(
            doc["Condition"],
            json!({
                "ArnLike": {"AWS:SourceArn": "arn:aws:sns:us-east-1:000000000000:orders"},
                "StringEquals": {"AWS:SourceAccount": "000000000000"},
            })
        );
        let account = Statement {
            principal: "123456789012".into(),
            source_arn: None,
            source_account: None,
            ..statement.clone()
        };
        assert_eq!(
            account.document("r")["Principal"],
            json!({"AWS": "arn:aws:iam::123456789012:root"})
        );
        assert!(account.document("r").get("Condition").is_none());

        let topic = "arn:aws:sns:us-east-1:000000000000:orders";
        assert!(statement.lets_service_invoke("sns.amazonaws.com", topic, "000000000000"));
        assert!(!statement.lets_service_invoke(
            "sns.amazonaws.com",
            "arn:aws:sns:us-east-1:000000000000:other",
            "000000000000"
        ));
        assert!(!statement.lets_service_invoke("events.amazonaws.com", topic, "000000000000"));
        let read_only = Statement {
            action: "lambda:GetFunction".into(),
            ..statement
        };
        assert!(!read_only.lets_service_invoke("sns.amazonaws.com", topic, "000000000000"));
    }
}
