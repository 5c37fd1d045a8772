//! fledge's engine: runs the pure rollout core against a platform. The core decides; the
//! engine carries out its commands (alias reads and writes, checks, hooks), feeds the results
//! back with the time, and reports every record and a status line as it goes.
//!
//! # Layout
//! - [`tally`]: per-version, per-second evidence, and the [`fledge_core::judge::Observation`]
//!   a check is judged on.
//! - [`checks`]: the evidence sources: probes (fledge invoking the alias itself), CloudWatch
//!   metrics, CloudWatch alarms, and the pre-traffic smoke test.
//! - [`driver`]: the loop that runs one deployment to its end, in the foreground or durably.
//! - [`store`]: `fledge serve`'s SQLite store: deployments, their journals, the notification
//!   outbox.
//! - [`notify`]: delivering that outbox to webhooks and commands.

pub mod checks;
pub mod driver;
pub mod notify;
pub mod store;
pub mod tally;

pub use checks::{CheckConfig, Expectation, ExternalCheck, ProbeConfig};
pub use driver::{Journal, Progress, RunOptions, Start, StatusLine, Steer, Summary, drive, run};
