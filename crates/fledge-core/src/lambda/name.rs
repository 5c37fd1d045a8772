//! Function names, partial and full ARNs, qualifiers, versions and alias names, parsed with
//! the patterns and length limits of Lambda's model (see `FunctionName`,
//! `NamespacedFunctionName`, `Alias` and `Version` in the Lambda service model).

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::LambdaError;

/// The partition, region and account the local platform and fledge's examples use when a
/// bare name gives none.
pub const DEFAULT_PARTITION: &str = "aws";
pub const DEFAULT_REGION: &str = "us-east-1";
pub const DEFAULT_ACCOUNT: &str = "000000000000";

const FUNCTION_NAME_PATTERN: &str = r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_]+)(:(\$LATEST|[a-zA-Z0-9-_]+))?";
const NAMESPACED_FUNCTION_NAME_PATTERN: &str = r"(arn:(aws[a-zA-Z-]*)?:lambda:)?((eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}:)?(\d{12}:)?(function:)?([a-zA-Z0-9-_.]+)(:(\$LATEST(\.PUBLISHED)?|[a-zA-Z0-9-_]+))?";
const ALIAS_PATTERN: &str = r"(?!^[0-9]+$)([a-zA-Z0-9-_]+)";
const VERSION_PATTERN: &str = r"(\$LATEST|[0-9]+)";

/// The longest bare function name Lambda accepts.
const MAX_NAME_LEN: usize = 64;

/// Which of Lambda's two function-name shapes a parameter has.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameKind {
    /// `FunctionName`: CreateFunction, the alias operations, PublishVersion,
    /// UpdateFunctionCode. At most 140 characters.
    Function,
    /// `NamespacedFunctionName`: GetFunction, ListVersionsByFunction, Invoke. At most 256
    /// characters, and the name may contain `.`.
    Namespaced,
}

/// A published version number or the mutable draft `$LATEST`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Version {
    Latest,
    Number(u64),
}

impl Version {
    pub fn number(self) -> Option<u64> {
        match self {
            Version::Number(n) => Some(n),
            Version::Latest => None,
        }
    }

    /// Reads a version as Lambda's `Version` shape allows: `$LATEST` or digits. `field` names
    /// the parameter in the error.
    pub fn parse_field(text: &str, field: &str) -> Result<Version, LambdaError> {
        if text == "$LATEST" {
            return Ok(Version::Latest);
        }
        let digits =
            !text.is_empty() && text.len() <= 1024 && text.bytes().all(|b| b.is_ascii_digit());
        if digits && let Ok(n) = text.parse() {
            return Ok(Version::Number(n));
        }
        Err(LambdaError::validation(
            text,
            field,
            &format!("Member must satisfy regular expression pattern: {VERSION_PATTERN}"),
        ))
    }
}

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Version::Latest => f.write_str("$LATEST"),
            Version::Number(n) => write!(f, "{n}"),
        }
    }
}

impl FromStr for Version {
    type Err = LambdaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Version::parse_field(s, "functionVersion")
    }
}

impl Serialize for Version {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Version {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// An alias name: 1–128 of `[a-zA-Z0-9-_]`, and not all digits (that would be a version).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct AliasName(String);

impl AliasName {
    /// Checks `text` against Lambda's `Alias` shape; `field` names the parameter in the error.
    pub fn parse_field(text: &str, field: &str) -> Result<AliasName, LambdaError> {
        if text.is_empty() {
            return Err(LambdaError::validation(
                text,
                field,
                "Member must have length greater than or equal to 1",
            ));
        }
        if text.len() > 128 {
            return Err(LambdaError::validation(
                text,
                field,
                "Member must have length less than or equal to 128",
            ));
        }
        let charset_ok = text.bytes().all(is_name_byte);
        let all_digits = text.bytes().all(|b| b.is_ascii_digit());
        if !charset_ok || all_digits {
            return Err(LambdaError::validation(
                text,
                field,
                &format!("Member must satisfy regular expression pattern: {ALIAS_PATTERN}"),
            ));
        }
        Ok(AliasName(text.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for AliasName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl FromStr for AliasName {
    type Err = LambdaError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        AliasName::parse_field(s, "name")
    }
}

impl Serialize for AliasName {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for AliasName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// What follows a function name: a version, `$LATEST`, or an alias.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Qualifier {
    Version(Version),
    Alias(AliasName),
}

impl Qualifier {
    /// Reads a qualifier: digits are a version, `$LATEST` is the draft, anything else of the
    /// name alphabet is an alias.
    pub fn parse_field(text: &str, field: &str) -> Result<Qualifier, LambdaError> {
        if text.len() > 128 {
            return Err(LambdaError::validation(
                text,
                field,
                "Member must have length less than or equal to 128",
            ));
        }
        if text == "$LATEST" || (!text.is_empty() && text.bytes().all(|b| b.is_ascii_digit())) {
            return Version::parse_field(text, field).map(Qualifier::Version);
        }
        AliasName::parse_field(text, field).map(Qualifier::Alias)
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Version(v) => v.fmt(f),
            Qualifier::Alias(a) => a.fmt(f),
        }
    }
}

/// A function as a caller named it: a bare name, a partial ARN (`123456789012:function:f`)
/// or a full ARN, with an optional `:qualifier`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionRef {
    pub name: String,
    pub partition: Option<String>,
    pub region: Option<String>,
    pub account: Option<String>,
    pub qualifier: Option<Qualifier>,
}

impl FunctionRef {
    /// Parses `input` as Lambda does for a parameter of the given shape, answering AWS's error
    /// (type and message) when the input breaks a rule.
    pub fn parse(input: &str, kind: NameKind) -> Result<FunctionRef, LambdaError> {
        let (max_len, pattern) = match kind {
            NameKind::Function => (140, FUNCTION_NAME_PATTERN),
            NameKind::Namespaced => (256, NAMESPACED_FUNCTION_NAME_PATTERN),
        };
        let field = "functionName";
        if input.is_empty() {
            return Err(LambdaError::validation(
                input,
                field,
                "Member must have length greater than or equal to 1",
            ));
        }
        if input.len() > max_len {
            return Err(LambdaError::validation(
                input,
                field,
                &format!("Member must have length less than or equal to {max_len}"),
            ));
        }
        let bad_pattern = || {
            LambdaError::validation(
                input,
                field,
                &format!("Member must satisfy regular expression pattern: {pattern}"),
            )
        };
        let parsed = split_function_ref(input, kind).ok_or_else(bad_pattern)?;
        if parsed.name.len() > MAX_NAME_LEN {
            return Err(LambdaError::invalid_parameter(format!(
                "1 validation error detected: Value '{}' at '{field}' failed to satisfy constraint: Member must have length less than or equal to {MAX_NAME_LEN}",
                parsed.name
            )));
        }
        Ok(parsed)
    }

    /// Joins a qualifier given separately (`?Qualifier=`) with one embedded in the name.
    /// Both present and different is AWS's 400.
    pub fn with_qualifier_param(mut self, param: Option<&str>) -> Result<FunctionRef, LambdaError> {
        let Some(text) = param else { return Ok(self) };
        let given = Qualifier::parse_field(text, "qualifier")?;
        match &self.qualifier {
            Some(embedded) if *embedded != given => Err(LambdaError::invalid_parameter(
                "The derived qualifier from the function name does not match the specified qualifier.",
            )),
            _ => {
                self.qualifier = Some(given);
                Ok(self)
            }
        }
    }

    /// AWS's 404 for an ARN of another region.
    pub fn check_region(&self, region: &str) -> Result<(), LambdaError> {
        match &self.region {
            Some(theirs) if theirs != region => Err(LambdaError::not_found(format!(
                "Functions from '{theirs}' are not reachable in this region ('{region}')"
            ))),
            _ => Ok(()),
        }
    }

    /// The unqualified function ARN, filling what the reference did not say from the
    /// defaults given.
    pub fn function_arn(&self, region: &str, account: &str) -> String {
        format!(
            "arn:{}:lambda:{}:{}:function:{}",
            self.partition
                .as_deref()
                .filter(|p| !p.is_empty())
                .unwrap_or(DEFAULT_PARTITION),
            self.region.as_deref().unwrap_or(region),
            self.account.as_deref().unwrap_or(account),
            self.name
        )
    }

    /// The ARN with the qualifier, if the reference had one.
    pub fn qualified_arn(&self, region: &str, account: &str) -> String {
        match &self.qualifier {
            Some(q) => format!("{}:{q}", self.function_arn(region, account)),
            None => self.function_arn(region, account),
        }
    }
}

impl fmt::Display for FunctionRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)?;
        if let Some(q) = &self.qualifier {
            write!(f, ":{q}")?;
        }
        Ok(())
    }
}

fn is_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'-' || b == b'_'
}

/// `(eusc-)?[a-z]{2}((-gov)|(-iso([a-z]?)))?-[a-z]+-\d{1}`
fn is_region(s: &str) -> bool {
    let s = s.strip_prefix("eusc-").unwrap_or(s);
    let parts: Vec<&str> = s.split('-').collect();
    let lower = |p: &str| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase());
    let two_letters = |p: &str| p.len() == 2 && lower(p);
    let one_digit = |p: &str| p.len() == 1 && p.as_bytes()[0].is_ascii_digit();
    let iso = |p: &str| p == "gov" || (p.starts_with("iso") && p.len() <= 4 && lower(p));
    match parts.as_slice() {
        [cc, area, n] => two_letters(cc) && lower(area) && one_digit(n),
        [cc, variant, area, n] => two_letters(cc) && iso(variant) && lower(area) && one_digit(n),
        _ => false,
    }
}

/// Reads the segments as the pattern does: optional `arn:PARTITION:lambda:`, then an
/// optional region, account and `function`, then the name and an optional qualifier. Where
/// the optional parts make the text ambiguous, the fullest reading that fits wins.
fn split_function_ref(input: &str, kind: NameKind) -> Option<FunctionRef> {
    let segs: Vec<&str> = input.split(':').collect();
    let mut start = 0;
    let mut partition = None;
    if segs.len() >= 4 && segs[0] == "arn" && segs[2] == "lambda" {
        let p = segs[1];
        let partition_ok = p.is_empty()
            || (p.starts_with("aws") && p.bytes().all(|b| b.is_ascii_alphabetic() || b == b'-'));
        if partition_ok {
            partition = Some(p.to_string());
            start = 3;
        }
    }
    let is_account = |s: &str| s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit());
    for mask in (0..8u8).rev() {
        let (with_region, with_account, with_function) =
            (mask & 4 != 0, mask & 2 != 0, mask & 1 != 0);
        let mut i = start;
        let mut take = |wanted: bool, ok: &dyn Fn(&str) -> bool| -> Option<Option<String>> {
            if !wanted {
                return Some(None);
            }
            let seg = segs.get(i)?;
            ok(seg).then(|| {
                i += 1;
                Some(seg.to_string())
            })
        };
        let Some(region) = take(with_region, &|s| is_region(s)) else {
            continue;
        };
        let Some(account) = take(with_account, &|s| is_account(s)) else {
            continue;
        };
        if take(with_function, &|s| s == "function").is_none() {
            continue;
        }
        if let Some(parsed) = name_and_qualifier(&segs[i..], kind) {
            return Some(FunctionRef {
                partition: partition.clone(),
                region,
                account,
                ..parsed
            });
        }
    }
    None
}

fn name_and_qualifier(segs: &[&str], kind: NameKind) -> Option<FunctionRef> {
    let (name, rest) = segs.split_first()?;
    let name_ok = !name.is_empty()
        && name
            .bytes()
            .all(|b| is_name_byte(b) || (kind == NameKind::Namespaced && b == b'.'));
    if !name_ok {
        return None;
    }
    let qualifier = match rest {
        [] => None,
        [q] => {
            let ok = *q == "$LATEST" || (!q.is_empty() && q.bytes().all(is_name_byte));
            if !ok {
                return None;
            }
            Some(Qualifier::parse_field(q, "functionName").ok()?)
        }
        _ => return None,
    };
    Some(FunctionRef {
        name: name.to_string(),
        partition: None,
        region: None,
        account: None,
        qualifier,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lambda::ErrorType;

    fn parse(s: &str) -> Result<FunctionRef, LambdaError> {
        FunctionRef::parse(s, NameKind::Function)
    }

    #[test]
    fn accepts_every_documented_form() {
        let bare = parse("my-function").unwrap();
        assert_eq!((bare.name.as_str(), bare.qualifier), ("my-function", None));

        let partial = parse("123456789012:function:my-function").unwrap();
        assert_eq!(partial.account.as_deref(), Some("123456789012"));
        assert_eq!(partial.name, "my-function");

        let full =
            parse("arn:aws:lambda:us-west-2:123456789012:function:my-function:live").unwrap();
        assert_eq!(full.region.as_deref(), Some("us-west-2"));
        assert_eq!(
            full.qualifier,
            Some(Qualifier::Alias("live".parse().unwrap()))
        );
        assert_eq!(
            full.qualified_arn("x", "y"),
            "arn:aws:lambda:us-west-2:123456789012:function:my-function:live"
        );

        let latest = parse("f:$LATEST").unwrap();
        assert_eq!(latest.qualifier, Some(Qualifier::Version(Version::Latest)));
        let version = parse("f:7").unwrap();
        assert_eq!(
            version.qualifier,
            Some(Qualifier::Version(Version::Number(7)))
        );
        assert!(parse("arn:aws-us-gov:lambda:us-gov-west-1:123456789012:function:f").is_ok());
    }

    #[test]
    fn a_65_character_name_is_an_invalid_parameter() {
        let name = "a".repeat(65);
        let e = parse(&name).unwrap_err();
        assert_eq!(e.kind, ErrorType::InvalidParameterValue);
        assert!(
            e.message
                .ends_with("Member must have length less than or equal to 64"),
            "{e}"
        );
        assert!(parse(&"a".repeat(64)).is_ok());
    }

    #[test]
    fn a_141_character_arn_is_a_validation_error() {
        let arn = format!(
            "arn:aws:lambda:us-east-1:123456789012:function:{}",
            "a".repeat(94)
        );
        assert_eq!(arn.len(), 141);
        let e = parse(&arn).unwrap_err();
        assert_eq!(e.kind, ErrorType::Validation);
        assert!(e.message.contains("less than or equal to 140"));
    }

    #[test]
    fn names_outside_the_pattern_are_validation_errors() {
        for bad in [
            "my function",
            "f:a:b:c",
            "f:",
            ":f",
            "arn:aws:s3:::bucket",
            "f.g",
            "f:$latest",
        ] {
            let e = parse(bad).unwrap_err();
            assert_eq!(e.kind, ErrorType::Validation, "{bad}");
            assert!(
                e.message.contains("regular expression pattern"),
                "{bad}: {e}"
            );
        }
        assert!(FunctionRef::parse("f.g", NameKind::Namespaced).is_ok());
    }

    #[test]
    fn alias_names_follow_the_alias_shape() {
        assert!(AliasName::from_str("live").is_ok());
        assert!(AliasName::from_str("2024-01-02").is_ok());
        let digits = AliasName::from_str("2024").unwrap_err();
        assert_eq!(digits.kind, ErrorType::Validation);
        assert_eq!(digits.kind.status(), 400);
        assert!(AliasName::from_str(&"a".repeat(129)).is_err());
        assert!(AliasName::from_str("").is_err());
    }

    #[test]
    fn qualifier_in_the_name_and_the_query_must_agree() {
        let r = parse("f:live").unwrap();
        assert!(r.clone().with_qualifier_param(Some("live")).is_ok());
        let e = r.with_qualifier_param(Some("2")).unwrap_err();
        assert_eq!(
            e.message,
            "The derived qualifier from the function name does not match the specified qualifier."
        );
    }

    #[test]
    fn another_regions_arn_is_not_found() {
        let r = parse("arn:aws:lambda:ap-southeast-1:123456789012:function:f").unwrap();
        let e = r.check_region("us-east-1").unwrap_err();
        assert_eq!(e.kind.status(), 404);
        assert_eq!(
            e.message,
            "Functions from 'ap-southeast-1' are not reachable in this region ('us-east-1')"
        );
    }
}
