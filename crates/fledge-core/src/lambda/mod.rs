//! Lambda's own rules, as data: names and ARNs, alias routing, and the errors AWS answers
//! when a rule is broken. Messages are AWS's, word for word where AWS's wording is known, so
//! the local platform can answer with them verbatim and fledge's users see what AWS would say.

mod error;
mod name;
mod routing;

pub use error::{ErrorType, LambdaError};
pub use name::{
    AliasName, DEFAULT_ACCOUNT, DEFAULT_PARTITION, DEFAULT_REGION, FunctionRef, NameKind,
    Qualifier, Version,
};
pub use routing::{AdditionalVersion, AliasRouting, RoutingRequest, percent};
