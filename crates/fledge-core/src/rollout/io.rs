//! The machine's inputs (events) and outputs (commands and records).

use serde::{Deserialize, Serialize};

use super::policy::ApiFailure;
use crate::judge::Verdict;
use crate::lambda::AliasRouting;
use crate::schedule::Step;
use crate::time::Timestamp;

/// Identifies one command that expects an answer; an answer carries it back. Answers to
/// commands the machine no longer waits for are ignored.
pub type OpId = u64;

/// Something that happened, fed to [`super::Deployment::handle_event`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The alias as read, for a [`Command::ReadAlias`].
    AliasRead {
        op: OpId,
        routing: AliasRouting,
        revision_id: String,
    },
    /// A [`Command::WriteAlias`] landed; the alias has a new RevisionId.
    AliasWritten { op: OpId, revision_id: String },
    /// A read, write or hook invocation failed.
    ApiFailed { op: OpId, failure: ApiFailure },
    /// The answer to a [`Command::Evaluate`].
    Verdict { op: OpId, verdict: Verdict },
    /// A hook function reported.
    HookFinished {
        op: OpId,
        succeeded: bool,
        detail: String,
    },
    /// A person (or a script) steering the deployment.
    Operator { command: OperatorCommand },
}

/// What an operator can ask for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OperatorCommand {
    /// Stop advancing: the hold clock stops; health is still watched and a failure still
    /// rolls back.
    Pause,
    Resume,
    /// End the current step now and go to the next.
    Promote,
    /// Move all traffic to the new version now and finish.
    PromoteFully,
    /// Put the original version back and stop.
    Abort,
}

/// Which lifecycle hook.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum HookKind {
    PreTraffic,
    PostTraffic,
}

impl HookKind {
    /// CodeDeploy's name for the lifecycle event.
    pub fn lifecycle_event(self) -> &'static str {
        match self {
            HookKind::PreTraffic => "BeforeAllowTraffic",
            HookKind::PostTraffic => "AfterAllowTraffic",
        }
    }
}

/// Why an alias write is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "step", rename_all = "snake_case")]
pub enum WritePurpose {
    /// Shift to step `n` (0-based).
    Step(usize),
    /// The new version becomes the primary with no routing.
    Finalize,
    /// The original comes back with no routing.
    Rollback,
}

/// An effect for the driver to carry out. Commands that expect an answer carry an [`OpId`].
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Command {
    /// Read the alias (GetAlias) and answer [`Event::AliasRead`].
    ReadAlias { op: OpId },
    /// UpdateAlias to exactly `routing`, carrying `revision_id`; answer
    /// [`Event::AliasWritten`] or [`Event::ApiFailed`].
    WriteAlias {
        op: OpId,
        routing: AliasRouting,
        revision_id: String,
        purpose: WritePurpose,
    },
    /// Run the health checks and answer [`Event::Verdict`]. `step_started` is when the
    /// current weight took effect: canary requests since then count toward the step.
    Evaluate {
        op: OpId,
        step: usize,
        weight: f64,
        step_started: Timestamp,
    },
    /// Invoke a hook function with `payload`; answer [`Event::HookFinished`].
    InvokeHook {
        op: OpId,
        hook: HookKind,
        function: String,
        payload: serde_json::Value,
    },
    /// Persist this record (the deployment's journal).
    Record(Record),
    /// Tell people: a state change worth a notification.
    Notify(Record),
}

/// How a deployment ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// All traffic is on the new version.
    Promoted,
    /// The evidence (or a hook) said the new version is worse; the original is back.
    RolledBack,
    /// An operator stopped it; the original is back.
    Aborted,
    /// fledge could not act: the platform failed, or someone else changed the alias.
    Failed,
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Outcome::Promoted => "promoted",
            Outcome::RolledBack => "rolled_back",
            Outcome::Aborted => "aborted",
            Outcome::Failed => "failed",
        })
    }
}

/// One entry of a deployment's journal: a decision, or a fact it rests on, with its numbers.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Record {
    pub at: Timestamp,
    #[serde(flatten)]
    pub kind: RecordKind,
}

/// What a record says.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum RecordKind {
    Started {
        id: String,
        function: String,
        alias: String,
        target: u64,
        schedule: Vec<Step>,
    },
    AliasRecorded {
        routing: AliasRouting,
        revision_id: String,
    },
    HookInvoked {
        hook: HookKind,
        function: String,
    },
    HookFinished {
        hook: HookKind,
        function: String,
        succeeded: bool,
        detail: String,
    },
    /// Step `step` of `steps` (1-based) is live.
    StepApplied {
        step: usize,
        steps: usize,
        weight: f64,
        routing: AliasRouting,
        hold_ms: u64,
    },
    Checked {
        step: usize,
        weight: f64,
        verdict: Verdict,
    },
    StepPassed {
        step: usize,
        weight: f64,
    },
    HoldExtended {
        step: usize,
        by_ms: u64,
        extended_ms: u64,
        max_ms: u64,
        reason: String,
    },
    ProceededWithoutEvidence {
        step: usize,
        reason: String,
    },
    Operator {
        command: OperatorCommand,
        accepted: bool,
        detail: String,
    },
    ApiError {
        operation: String,
        failure: ApiFailure,
        attempt: u32,
        retry_in_ms: Option<u64>,
    },
    RollbackStarted {
        reason: String,
        from: Option<AliasRouting>,
        to: AliasRouting,
    },
    AliasChangedExternally {
        expected: AliasRouting,
        found: AliasRouting,
    },
    /// The driver restarted from the stored state and settles what was in flight.
    Restarted {
        settling: String,
    },
    Finished {
        outcome: Outcome,
        reason: String,
        alias: Option<AliasRouting>,
        alias_split: bool,
    },
}

impl RecordKind {
    /// Whether people should be told about this as it happens.
    pub fn is_notable(&self) -> bool {
        match self {
            RecordKind::Started { .. }
            | RecordKind::StepApplied { .. }
            | RecordKind::RollbackStarted { .. }
            | RecordKind::AliasChangedExternally { .. }
            | RecordKind::Finished { .. } => true,
            RecordKind::Operator { accepted, .. } => *accepted,
            RecordKind::HookFinished { succeeded, .. } => !succeeded,
            _ => false,
        }
    }
}
