use std::fmt;

use serde::{Deserialize, Serialize};

/// The error types Lambda's control and invoke APIs answer with. Each knows its HTTP status
/// and the wire name that goes into `X-Amzn-ErrorType`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ErrorType {
    /// 400: a parameter has a value Lambda does not accept.
    InvalidParameterValue,
    /// 400: a value breaks the model's constraints (length, pattern, range). Not in Lambda's
    /// model, but real AWS answers it; its body carries no `Type`.
    Validation,
    /// 404: the function, version or alias does not exist.
    ResourceNotFound,
    /// 409: the resource exists already, or another operation is in progress.
    ResourceConflict,
    /// 412: the RevisionId given is not the latest.
    PreconditionFailed,
    /// 429: a rate or concurrency limit was reached.
    TooManyRequests,
    /// 500: the service failed.
    Service,
    /// 413: an invocation payload is too large.
    RequestTooLarge,
    /// 415: an invocation body's content type is not JSON.
    UnsupportedMediaType,
    /// 400: an invocation body is not JSON, or a header is invalid.
    InvalidRequestContent,
    /// 400: too many aliases.
    AliasLimitExceeded,
    /// 400: too much code stored.
    CodeStorageExceeded,
    /// 502: the function's runtime is not supported or its package is broken.
    InvalidRuntime,
    /// 502: the deployment package could not be unzipped.
    InvalidZipFile,
    /// 400: a resource-based policy would grow past its 20 KB limit.
    PolicyLengthExceeded,
    /// 404: the qualifier has no provisioned concurrency configuration.
    ProvisionedConcurrencyConfigNotFound,
}

impl ErrorType {
    /// The HTTP status AWS answers with.
    pub fn status(self) -> u16 {
        match self {
            Self::InvalidParameterValue
            | Self::Validation
            | Self::InvalidRequestContent
            | Self::AliasLimitExceeded
            | Self::CodeStorageExceeded
            | Self::PolicyLengthExceeded => 400,
            Self::ResourceNotFound | Self::ProvisionedConcurrencyConfigNotFound => 404,
            Self::ResourceConflict => 409,
            Self::PreconditionFailed => 412,
            Self::RequestTooLarge => 413,
            Self::UnsupportedMediaType => 415,
            Self::TooManyRequests => 429,
            Self::Service => 500,
            Self::InvalidRuntime | Self::InvalidZipFile => 502,
        }
    }

    /// The shape name on the wire (`X-Amzn-ErrorType`).
    pub fn wire_name(self) -> &'static str {
        match self {
            Self::InvalidParameterValue => "InvalidParameterValueException",
            Self::Validation => "ValidationException",
            Self::ResourceNotFound => "ResourceNotFoundException",
            Self::ResourceConflict => "ResourceConflictException",
            Self::PreconditionFailed => "PreconditionFailedException",
            Self::TooManyRequests => "TooManyRequestsException",
            Self::Service => "ServiceException",
            Self::RequestTooLarge => "RequestTooLargeException",
            Self::UnsupportedMediaType => "UnsupportedMediaTypeException",
            Self::InvalidRequestContent => "InvalidRequestContentException",
            Self::AliasLimitExceeded => "AliasLimitExceededException",
            Self::CodeStorageExceeded => "CodeStorageExceededException",
            Self::InvalidRuntime => "InvalidRuntimeException",
            Self::InvalidZipFile => "InvalidZipFileException",
            Self::PolicyLengthExceeded => "PolicyLengthExceededException",
            Self::ProvisionedConcurrencyConfigNotFound => {
                "ProvisionedConcurrencyConfigNotFoundException"
            }
        }
    }

    /// The body field that carries the message: Lambda's model spells it `message` for some
    /// errors and `Message` for others, and clients read the one the model names.
    pub fn message_field(self) -> &'static str {
        match self {
            Self::ResourceNotFound
            | Self::Service
            | Self::InvalidRuntime
            | Self::InvalidZipFile => "Message",
            _ => "message",
        }
    }
}

/// An error as Lambda answers it: a type and AWS's message.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub struct LambdaError {
    pub kind: ErrorType,
    pub message: String,
    /// TooManyRequestsException's `Reason` (`ReservedFunctionConcurrentInvocationLimitExceeded`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

impl fmt::Display for LambdaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.wire_name(), self.message)
    }
}

impl LambdaError {
    pub fn new(kind: ErrorType, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            reason: None,
        }
    }

    /// The same error with a `Reason` member, as TooManyRequestsException carries one.
    pub fn with_reason(mut self, reason: impl Into<String>) -> Self {
        self.reason = Some(reason.into());
        self
    }

    pub fn invalid_parameter(message: impl Into<String>) -> Self {
        Self::new(ErrorType::InvalidParameterValue, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorType::ResourceNotFound, message)
    }

    /// AWS's wording for one broken model constraint, e.g.
    /// `1 validation error detected: Value 'x' at 'functionName' failed to satisfy constraint: …`.
    pub fn validation(value: &str, field: &str, constraint: &str) -> Self {
        Self::new(
            ErrorType::Validation,
            format!(
                "1 validation error detected: Value '{value}' at '{field}' failed to satisfy constraint: {constraint}"
            ),
        )
    }

    /// The answer to a write that carried a stale RevisionId.
    pub fn revision_mismatch() -> Self {
        Self::new(
            ErrorType::PreconditionFailed,
            "The Revision Id provided does not match the latest Revision Id. Call the GetFunction/GetAlias API to retrieve the latest Revision Id",
        )
    }

    /// The JSON body AWS sends: `{"Type":"User","message":"…"}` with the field spelled as the
    /// model spells it. Validation errors carry no `Type`.
    pub fn body(&self) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        if self.kind != ErrorType::Validation {
            let origin = if self.kind.status() >= 500 {
                "Service"
            } else {
                "User"
            };
            body.insert("Type".into(), origin.into());
        }
        body.insert(
            self.kind.message_field().into(),
            self.message.clone().into(),
        );
        if let Some(reason) = &self.reason {
            body.insert("Reason".into(), reason.clone().into());
        }
        serde_json::Value::Object(body)
    }
}
