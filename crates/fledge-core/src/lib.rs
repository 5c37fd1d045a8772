//! fledge's core: everything fledge decides, and nothing it does.
//!
//! This crate is deterministic. It performs no IO, reads no clock, draws no randomness it
//! was not handed (the simulator takes a seed), and has no async. Time comes in as a
//! [`time::Timestamp`] argument; a deployment's whole state is plain data that serialises,
//! so a driver can persist it, crash, and carry on from the stored form.
//!
//! # Layout
//! - [`time`]: timestamps as data, and durations as people write them.
//! - [`lambda`]: Lambda's names, ARNs, qualifiers and alias routing rules, with AWS's errors.
//! - [`schedule`]: weight schedules, the strategies and presets that make them, the
//!   original's JSON input.
//! - [`stats`]: the few distributions the judge needs.
//! - [`judge`]: turns per-version evidence into a verdict (`pass`, `fail`, `inconclusive`)
//!   that carries its numbers.
//! - [`rollout`]: the deployment state machine: events and `now` in, commands out.
//! - [`sim`]: a simulated world on virtual time that drives a deployment to its end.

pub mod judge;
pub mod lambda;
pub mod rollout;
pub mod schedule;
pub mod sim;
pub mod stats;
pub mod time;
