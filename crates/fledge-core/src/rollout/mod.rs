//! The deployment state machine: events and `now` in, commands out.
//!
//! # Lifecycle
//! 1. **Record.** Read the alias and keep it as found (primary, routing, RevisionId) before
//!    any change. An alias that is already split, or already on the target, is not touched.
//! 2. **Pre-traffic hook** (optional). Nothing has shifted; a failure ends the deployment
//!    with the alias untouched.
//! 3. **Shift.** For each step: write the alias (carrying the last RevisionId), hold the
//!    weight while checks run; `fail` rolls back at once; the step advances only on `pass`
//!    when its hold ends; `inconclusive` extends the hold up to a limit, then the configured
//!    policy applies. A step at 100% makes the new version the primary with no routing.
//! 4. **Finalize.** The new version is the primary, no routing.
//! 5. **Post-traffic hook** (optional); a failure rolls back.
//! 6. **Roll back** (when needed): the recorded original primary, no routing, retried until
//!    it lands.
//!
//! Idempotency: every write is a whole alias state, so repeating it is harmless. A write
//! refused for a stale RevisionId, or one in flight when the driver restarted, is settled by
//! reading the alias: our state means it landed; the state before means write again;
//! anything else means someone else changed the alias, and fledge stops without touching it.

mod io;
mod policy;
mod spec;

use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::judge::{self, Verdict};
use crate::lambda::{AliasRouting, Version};
use crate::time::{Timestamp, duration_millis};

pub use io::{
    Command, Event, HookKind, OpId, OperatorCommand, Outcome, Record, RecordKind, WritePurpose,
};
pub use policy::{Action, ApiFailure, FailureKind, Purpose, backoff, decide};
pub use spec::{CheckPolicy, DeploymentSpec, Hooks, InconclusivePolicy, RetryPolicy};

/// Where a deployment is.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "phase", rename_all = "snake_case")]
pub enum Phase {
    Recording,
    PreTrafficHook,
    Shifting,
    PostTrafficHook,
    RollingBack { outcome: Outcome, reason: String },
    Done { outcome: Outcome, reason: String },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Hold {
    started: Timestamp,
    ends: Timestamp,
    extended_ms: u64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Pause {
    at: Timestamp,
    /// The hold time left when the pause began.
    remaining_ms: Option<u64>,
}

/// Work that waits for a resume.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum Waiting {
    StartShifting,
    Advance,
}

/// What an operator asked for while a write was in flight.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
enum PromoteRequest {
    NextStep,
    Fully,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
enum PendingOp {
    /// Reading the alias; with `reconcile`, to settle a write whose fate is unknown.
    Read {
        reconcile: Option<(AliasRouting, WritePurpose)>,
    },
    Write {
        routing: AliasRouting,
        purpose: WritePurpose,
    },
    Hook {
        hook: HookKind,
        deadline: Timestamp,
    },
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct Pending {
    op: OpId,
    what: PendingOp,
    attempt: u32,
    retry_at: Option<Timestamp>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
struct Checks {
    pending: Option<OpId>,
    next_at: Option<Timestamp>,
    /// The hold has ended and the next verdict decides the step.
    deciding: bool,
}

/// One deployment: its spec and everything it has learnt. Serialises whole; a deployment
/// restored from that form behaves identically.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    id: String,
    spec: DeploymentSpec,
    started_at: Timestamp,
    phase: Phase,
    original: Option<AliasRouting>,
    alias: Option<AliasRouting>,
    revision_id: Option<String>,
    step: usize,
    hold: Option<Hold>,
    paused: Option<Pause>,
    waiting: Option<Waiting>,
    promote_request: Option<PromoteRequest>,
    pending: Option<Pending>,
    checks: Checks,
    last_verdict: Option<Verdict>,
    next_op: OpId,
    #[serde(skip)]
    out: Vec<Command>,
}

/// A snapshot for displays.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Status {
    pub phase: Phase,
    /// 1-based; 0 before the first shift.
    pub step: usize,
    pub steps: usize,
    pub weight: f64,
    pub paused: bool,
    pub hold_ends: Option<Timestamp>,
    pub alias: Option<AliasRouting>,
}

impl Deployment {
    /// A new deployment with the id the caller minted; the returned commands start it.
    #[must_use]
    pub fn new(
        id: impl Into<String>,
        spec: DeploymentSpec,
        now: Timestamp,
    ) -> (Deployment, Vec<Command>) {
        let mut d = Deployment {
            id: id.into(),
            spec,
            started_at: now,
            phase: Phase::Recording,
            original: None,
            alias: None,
            revision_id: None,
            step: 0,
            hold: None,
            paused: None,
            waiting: None,
            promote_request: None,
            pending: None,
            checks: Checks::default(),
            last_verdict: None,
            next_op: 1,
            out: Vec::new(),
        };
        d.record(
            now,
            RecordKind::Started {
                id: d.id.clone(),
                function: d.spec.function.clone(),
                alias: d.spec.alias.to_string(),
                target: d.spec.target,
                schedule: d.spec.schedule.steps().to_vec(),
            },
        );
        d.issue(PendingOp::Read { reconcile: None });
        let out = d.take();
        (d, out)
    }

    // ---- getters ----

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn spec(&self) -> &DeploymentSpec {
        &self.spec
    }

    pub fn phase(&self) -> &Phase {
        &self.phase
    }

    pub fn started_at(&self) -> Timestamp {
        self.started_at
    }

    /// The outcome, once the deployment has ended.
    pub fn outcome(&self) -> Option<Outcome> {
        match &self.phase {
            Phase::Done { outcome, .. } => Some(*outcome),
            _ => None,
        }
    }

    pub fn is_finished(&self) -> bool {
        matches!(self.phase, Phase::Done { .. })
    }

    /// The alias as fledge last knew it.
    pub fn alias(&self) -> Option<&AliasRouting> {
        self.alias.as_ref()
    }

    /// The alias as it was found, before any change.
    pub fn original(&self) -> Option<&AliasRouting> {
        self.original.as_ref()
    }

    pub fn last_verdict(&self) -> Option<&Verdict> {
        self.last_verdict.as_ref()
    }

    pub fn status(&self) -> Status {
        let target = Version::Number(self.spec.target);
        Status {
            phase: self.phase.clone(),
            step: if matches!(self.phase, Phase::Recording | Phase::PreTrafficHook) {
                0
            } else {
                self.step + 1
            },
            steps: self.spec.schedule.len(),
            weight: self.alias.as_ref().map_or(0.0, |a| a.weight_of(target)),
            paused: self.paused.is_some(),
            hold_ends: self
                .hold
                .as_ref()
                .filter(|_| self.paused.is_none())
                .map(|h| h.ends),
            alias: self.alias.clone(),
        }
    }

    /// The next moment the machine wants [`Deployment::handle_timeout`] called, if any.
    pub fn poll_deadline(&self) -> Option<Timestamp> {
        if self.is_finished() {
            return None;
        }
        let retry = self.pending.as_ref().and_then(|p| p.retry_at);
        let hook = match &self.pending {
            Some(Pending {
                what: PendingOp::Hook { deadline, .. },
                ..
            }) => Some(*deadline),
            _ => None,
        };
        let hold = self
            .hold
            .as_ref()
            .filter(|_| {
                self.paused.is_none() && !self.checks.deciding && self.phase == Phase::Shifting
            })
            .map(|h| h.ends);
        [retry, hook, hold, self.checks.next_at]
            .into_iter()
            .flatten()
            .min()
    }

    // ---- inputs ----

    /// Feeds one event.
    #[must_use]
    pub fn handle_event(&mut self, now: Timestamp, event: Event) -> Vec<Command> {
        if !self.is_finished() {
            match event {
                Event::AliasRead {
                    op,
                    routing,
                    revision_id,
                } => self.on_alias_read(now, op, routing, revision_id),
                Event::AliasWritten { op, revision_id } => {
                    self.on_alias_written(now, op, revision_id)
                }
                Event::ApiFailed { op, failure } => self.on_api_failed(now, op, failure),
                Event::Verdict { op, verdict } => self.on_verdict(now, op, verdict),
                Event::HookFinished {
                    op,
                    succeeded,
                    detail,
                } => self.on_hook_finished(now, op, succeeded, detail),
                Event::Operator { command } => self.on_operator(now, command),
            }
        } else if let Event::Operator { command } = event {
            let detail = format!(
                "the deployment has ended: {}",
                self.outcome().expect("finished")
            );
            self.record(
                now,
                RecordKind::Operator {
                    command,
                    accepted: false,
                    detail,
                },
            );
        }
        self.take()
    }

    /// Acts on every timer due at `now`. Harmless when called early, twice, or with a clock
    /// that went back.
    #[must_use]
    pub fn handle_timeout(&mut self, now: Timestamp) -> Vec<Command> {
        if self.is_finished() {
            return self.take();
        }
        if let Some(p) = &self.pending {
            if p.retry_at.is_some_and(|t| t <= now) {
                self.resend();
            } else if let PendingOp::Hook { hook, deadline } = p.what
                && deadline <= now
            {
                let detail = format!("no report within {}s", self.spec.hooks.timeout.as_secs());
                self.hook_done(now, hook, false, detail);
            }
        }
        if self.phase == Phase::Shifting {
            if self.checks.next_at.is_some_and(|t| t <= now) {
                self.checks.next_at = Some(now.plus(self.spec.checks.interval));
                self.request_check();
            }
            let hold_over = self.hold.as_ref().is_some_and(|h| h.ends <= now);
            if hold_over && self.paused.is_none() && !self.checks.deciding {
                self.hold_ended();
            }
        }
        self.take()
    }

    /// After a restart from the stored form: settles whatever was in flight. A write's fate
    /// is learnt by reading the alias; a read, a check or a hook is issued again (hooks must
    /// therefore be safe to run twice).
    #[must_use]
    pub fn resume_after_restart(&mut self, now: Timestamp) -> Vec<Command> {
        if self.is_finished() {
            return self.take();
        }
        let settling = match self.pending.as_ref().map(|p| &p.what) {
            Some(PendingOp::Write { purpose, .. }) => {
                format!(
                    "a write ({}) was in flight; reading the alias to learn whether it landed",
                    describe_purpose(*purpose)
                )
            }
            Some(PendingOp::Read { .. }) => "reading the alias again".into(),
            Some(PendingOp::Hook { hook, .. }) => {
                format!("invoking the {} hook again", hook.lifecycle_event())
            }
            None => "nothing was in flight".into(),
        };
        self.record(now, RecordKind::Restarted { settling });
        if let Some(p) = self.pending.take() {
            match p.what {
                PendingOp::Write { routing, purpose } => self.issue(PendingOp::Read {
                    reconcile: Some((routing, purpose)),
                }),
                what => self.issue(what),
            }
        }
        if self.checks.pending.take().is_some() && self.phase == Phase::Shifting {
            self.request_check();
        }
        self.take()
    }

    // ---- alias reads and writes ----

    fn on_alias_read(
        &mut self,
        now: Timestamp,
        op: OpId,
        routing: AliasRouting,
        revision_id: String,
    ) {
        let Some(PendingOp::Read { reconcile }) = self.take_pending(op) else {
            return;
        };
        match reconcile {
            None if self.phase == Phase::Recording => self.on_recorded(now, routing, revision_id),
            None => {}
            Some((intended, purpose)) => {
                if routing == intended {
                    self.write_landed(now, routing, revision_id, purpose);
                } else if Some(&routing) == self.alias.as_ref() {
                    self.revision_id = Some(revision_id);
                    self.issue(PendingOp::Write {
                        routing: intended,
                        purpose,
                    });
                } else {
                    let expected = self.alias.clone().unwrap_or(intended);
                    self.alias = Some(routing.clone());
                    self.record(
                        now,
                        RecordKind::AliasChangedExternally {
                            expected,
                            found: routing.clone(),
                        },
                    );
                    let split = if routing.is_single() {
                        String::new()
                    } else {
                        " The alias is SPLIT between two versions; decide by hand which to keep."
                            .into()
                    };
                    let reason = format!(
                        "the alias was changed by someone else (now {routing}); fledge stopped and left it as it is.{split}"
                    );
                    self.finish(now, Outcome::Failed, reason);
                }
            }
        }
    }

    fn on_recorded(&mut self, now: Timestamp, routing: AliasRouting, revision_id: String) {
        let target = Version::Number(self.spec.target);
        self.record(
            now,
            RecordKind::AliasRecorded {
                routing: routing.clone(),
                revision_id: revision_id.clone(),
            },
        );
        self.alias = Some(routing.clone());
        self.revision_id = Some(revision_id);
        if !routing.is_single() {
            let reason = format!(
                "the alias is already split ({routing}); another deployment may be running. Finish or undo it, then try again"
            );
            return self.finish(now, Outcome::Failed, reason);
        }
        if routing.primary == target {
            return self.finish(
                now,
                Outcome::Promoted,
                format!("the alias already serves version {target}; nothing to do"),
            );
        }
        self.original = Some(routing);
        match self.spec.hooks.pre_traffic.clone() {
            Some(function) => self.invoke_hook(now, HookKind::PreTraffic, function),
            None => self.start_shifting(now),
        }
    }

    fn on_alias_written(&mut self, now: Timestamp, op: OpId, revision_id: String) {
        let Some(PendingOp::Write { routing, purpose }) = self.take_pending(op) else {
            return;
        };
        self.write_landed(now, routing, revision_id, purpose);
    }

    fn write_landed(
        &mut self,
        now: Timestamp,
        routing: AliasRouting,
        revision_id: String,
        purpose: WritePurpose,
    ) {
        self.alias = Some(routing.clone());
        self.revision_id = Some(revision_id);
        if let Phase::RollingBack { outcome, reason } = self.phase.clone() {
            return if purpose == WritePurpose::Rollback {
                self.finish(now, outcome, reason)
            } else {
                self.write_rollback(now)
            };
        }
        match purpose {
            WritePurpose::Step(k) => self.step_live(now, k, routing),
            WritePurpose::Finalize => self.finalized(now),
            WritePurpose::Rollback => {}
        }
    }

    fn on_api_failed(&mut self, now: Timestamp, op: OpId, failure: ApiFailure) {
        let Some(pending) = self
            .pending
            .as_ref()
            .filter(|p| p.op == op && p.retry_at.is_none())
        else {
            return;
        };
        let (operation, purpose) = match &pending.what {
            PendingOp::Read { reconcile: None } => ("GetAlias".to_string(), Purpose::Read),
            PendingOp::Read {
                reconcile: Some((_, p)),
            } => ("GetAlias".to_string(), purpose_of(*p)),
            PendingOp::Write { purpose, .. } => (
                format!("UpdateAlias ({})", describe_purpose(*purpose)),
                purpose_of(*purpose),
            ),
            PendingOp::Hook { .. } => ("Invoke (hook)".to_string(), Purpose::Forward),
        };
        let attempt = pending.attempt;
        let action = decide(failure.kind, attempt, purpose, &self.spec.retry);
        let retry_in_ms = match action {
            Action::Retry { after } => Some(duration_millis(after)),
            _ => None,
        };
        self.record(
            now,
            RecordKind::ApiError {
                operation: operation.clone(),
                failure: failure.clone(),
                attempt,
                retry_in_ms,
            },
        );
        match action {
            Action::Retry { after } => {
                let p = self.pending.as_mut().expect("checked above");
                p.retry_at = Some(now.plus(after));
            }
            Action::Reconcile => {
                let Some(PendingOp::Write { routing, purpose }) =
                    self.pending.take().map(|p| p.what)
                else {
                    return;
                };
                self.issue(PendingOp::Read {
                    reconcile: Some((routing, purpose)),
                });
            }
            Action::GiveUp => {
                let what = self.pending.take().expect("checked above").what;
                self.gave_up(now, what, &operation, &failure);
            }
        }
    }

    fn gave_up(&mut self, now: Timestamp, what: PendingOp, operation: &str, failure: &ApiFailure) {
        let cause = format!("{operation} failed ({}): {}", failure.kind, failure.message);
        match what {
            PendingOp::Hook { hook, .. } => self.hook_done(now, hook, false, cause),
            _ if self.phase == Phase::Recording => self.finish(
                now,
                Outcome::Failed,
                format!("could not read the alias; nothing was changed. {cause}"),
            ),
            PendingOp::Write {
                purpose: WritePurpose::Rollback,
                ..
            }
            | PendingOp::Read {
                reconcile: Some((_, WritePurpose::Rollback)),
            } => {
                let reason = format!("the rollback could not be written. {cause}");
                self.finish(now, Outcome::Failed, reason)
            }
            _ => self.roll_back(now, Outcome::Failed, cause),
        }
    }

    // ---- steps, holds and checks ----

    fn start_shifting(&mut self, now: Timestamp) {
        self.phase = Phase::Shifting;
        if self.paused.is_some() {
            self.waiting = Some(Waiting::StartShifting);
            return;
        }
        if self.spec.analysis.continuous() {
            self.checks.next_at = Some(now.plus(self.spec.checks.interval));
        }
        self.step = 0;
        self.write_step(now, 0);
    }

    fn routing_for(&self, k: usize) -> AliasRouting {
        let weight = self.spec.schedule.steps()[k].weight;
        let target = self.spec.target;
        if weight >= 1.0 {
            AliasRouting::single(Version::Number(target))
        } else {
            let primary = self
                .original
                .as_ref()
                .expect("recorded before shifting")
                .primary;
            AliasRouting::split(primary, target, weight)
        }
    }

    fn write_step(&mut self, now: Timestamp, k: usize) {
        self.step = k;
        self.hold = None;
        self.checks.deciding = false;
        let routing = self.routing_for(k);
        if self.alias.as_ref() == Some(&routing) {
            return self.step_live(now, k, routing);
        }
        self.issue(PendingOp::Write {
            routing,
            purpose: WritePurpose::Step(k),
        });
    }

    fn step_live(&mut self, now: Timestamp, k: usize, routing: AliasRouting) {
        let step = self.spec.schedule.steps()[k];
        self.record(
            now,
            RecordKind::StepApplied {
                step: k + 1,
                steps: self.spec.schedule.len(),
                weight: step.weight,
                routing,
                hold_ms: duration_millis(step.hold),
            },
        );
        self.hold = Some(Hold {
            started: now,
            ends: now.plus(step.hold),
            extended_ms: 0,
        });
        if let Some(p) = self.paused.as_mut() {
            p.remaining_ms = Some(duration_millis(step.hold));
        }
        match self.promote_request.take() {
            Some(PromoteRequest::Fully) => return self.finalize(now),
            Some(PromoteRequest::NextStep) => return self.step_forward(now),
            None => {}
        }
        if step.hold.is_zero() {
            // No hold, nothing to watch: the schedule says go straight on.
            self.advance(now);
        }
    }

    fn hold_ended(&mut self) {
        self.checks.deciding = true;
        if self.checks.pending.is_none() {
            self.request_check();
        }
    }

    fn request_check(&mut self) {
        if self.checks.pending.is_some() {
            return;
        }
        let Some(hold) = &self.hold else { return };
        let step_started = hold.started;
        let op = self.mint_op();
        self.checks.pending = Some(op);
        let weight = self.spec.schedule.steps()[self.step].weight;
        self.out.push(Command::Evaluate {
            op,
            step: self.step,
            weight,
            step_started,
        });
    }

    fn on_verdict(&mut self, now: Timestamp, op: OpId, verdict: Verdict) {
        let current = self.checks.pending == Some(op);
        if current {
            self.checks.pending = None;
        }
        if self.phase != Phase::Shifting || (!current && verdict.outcome != judge::Outcome::Fail) {
            return;
        }
        let weight = self.spec.schedule.steps()[self.step].weight;
        self.record(
            now,
            RecordKind::Checked {
                step: self.step + 1,
                weight,
                verdict: verdict.clone(),
            },
        );
        self.last_verdict = Some(verdict.clone());
        if verdict.outcome == judge::Outcome::Fail {
            return self.roll_back(now, Outcome::RolledBack, verdict.reason);
        }
        if !(self.checks.deciding && current) {
            return;
        }
        self.checks.deciding = false;
        if self.paused.is_some() {
            return;
        }
        match verdict.outcome {
            judge::Outcome::Pass => {
                self.record(
                    now,
                    RecordKind::StepPassed {
                        step: self.step + 1,
                        weight,
                    },
                );
                self.advance(now);
            }
            _ => self.inconclusive_at_hold_end(now, verdict.reason),
        }
    }

    fn inconclusive_at_hold_end(&mut self, now: Timestamp, reason: String) {
        let max_ms = duration_millis(self.spec.checks.max_extension);
        let by_ms = duration_millis(self.spec.checks.interval).max(1_000);
        let hold = self.hold.as_mut().expect("deciding implies a hold");
        if hold.extended_ms + by_ms <= max_ms {
            hold.extended_ms += by_ms;
            hold.ends = now.plus(Duration::from_millis(by_ms));
            let extended_ms = hold.extended_ms;
            let step = self.step + 1;
            return self.record(
                now,
                RecordKind::HoldExtended {
                    step,
                    by_ms,
                    extended_ms,
                    max_ms,
                    reason,
                },
            );
        }
        let waited = crate::time::format_duration(Duration::from_millis(hold.extended_ms));
        match self.spec.checks.on_inconclusive {
            InconclusivePolicy::RollBack => {
                let why = format!(
                    "no conclusive evidence after extending the hold by {waited}: {reason}"
                );
                self.roll_back(now, Outcome::RolledBack, why)
            }
            InconclusivePolicy::Proceed => {
                self.record(
                    now,
                    RecordKind::ProceededWithoutEvidence {
                        step: self.step + 1,
                        reason,
                    },
                );
                self.advance(now)
            }
        }
    }

    /// Goes to the next step (or finalizes) unless paused, in which case it waits.
    fn advance(&mut self, now: Timestamp) {
        if self.paused.is_some() {
            self.waiting = Some(Waiting::Advance);
            return;
        }
        self.step_forward(now);
    }

    /// Goes to the next step (or finalizes) now, paused or not: an operator's promote.
    fn step_forward(&mut self, now: Timestamp) {
        let next = self.step + 1;
        if next < self.spec.schedule.len() {
            self.write_step(now, next);
        } else {
            self.finalize(now);
        }
    }

    fn finalize(&mut self, now: Timestamp) {
        self.hold = None;
        self.checks = Checks::default();
        let routing = AliasRouting::single(Version::Number(self.spec.target));
        if self.alias.as_ref() == Some(&routing) {
            return self.finalized(now);
        }
        self.issue(PendingOp::Write {
            routing,
            purpose: WritePurpose::Finalize,
        });
    }

    fn finalized(&mut self, now: Timestamp) {
        self.hold = None;
        self.checks = Checks::default();
        match self.spec.hooks.post_traffic.clone() {
            Some(function) => {
                self.phase = Phase::PostTrafficHook;
                self.invoke_hook(now, HookKind::PostTraffic, function);
            }
            None => {
                let target = self.spec.target;
                self.finish(
                    now,
                    Outcome::Promoted,
                    format!("all traffic is on version {target}"),
                );
            }
        }
    }

    // ---- hooks ----

    fn invoke_hook(&mut self, now: Timestamp, hook: HookKind, function: String) {
        if hook == HookKind::PreTraffic {
            self.phase = Phase::PreTrafficHook;
        }
        self.record(now, RecordKind::HookInvoked { hook, function });
        let deadline = now.plus(self.spec.hooks.timeout);
        self.issue(PendingOp::Hook { hook, deadline });
    }

    fn hook_payload(&self, hook: HookKind) -> serde_json::Value {
        serde_json::json!({
            "DeploymentId": self.id,
            "LifecycleEventHookExecutionId": format!("{}:{}", self.id, hook.lifecycle_event()),
            "LifecycleEvent": hook.lifecycle_event(),
            "FunctionName": self.spec.function,
            "Alias": self.spec.alias.as_str(),
            "CurrentVersion": self.original.as_ref().map(|o| o.primary.to_string()),
            "TargetVersion": self.spec.target.to_string(),
        })
    }

    fn on_hook_finished(&mut self, now: Timestamp, op: OpId, succeeded: bool, detail: String) {
        let Some(PendingOp::Hook { hook, .. }) = self
            .pending
            .as_ref()
            .filter(|p| p.op == op)
            .map(|p| p.what.clone())
        else {
            return;
        };
        self.hook_done(now, hook, succeeded, detail);
    }

    fn hook_done(&mut self, now: Timestamp, hook: HookKind, succeeded: bool, detail: String) {
        self.pending = None;
        let function = match hook {
            HookKind::PreTraffic => self.spec.hooks.pre_traffic.clone(),
            HookKind::PostTraffic => self.spec.hooks.post_traffic.clone(),
        }
        .unwrap_or_default();
        self.record(
            now,
            RecordKind::HookFinished {
                hook,
                function: function.clone(),
                succeeded,
                detail: detail.clone(),
            },
        );
        match (hook, succeeded) {
            (HookKind::PreTraffic, true) => self.start_shifting(now),
            (HookKind::PreTraffic, false) => {
                let reason = format!(
                    "the pre-traffic hook {function} failed ({detail}); no traffic was shifted"
                );
                self.finish(now, Outcome::RolledBack, reason)
            }
            (HookKind::PostTraffic, true) => {
                let target = self.spec.target;
                self.finish(
                    now,
                    Outcome::Promoted,
                    format!("all traffic is on version {target}; the post-traffic hook passed"),
                )
            }
            (HookKind::PostTraffic, false) => {
                let reason = format!("the post-traffic hook {function} failed ({detail})");
                self.roll_back(now, Outcome::RolledBack, reason)
            }
        }
    }

    // ---- operator ----

    fn on_operator(&mut self, now: Timestamp, command: OperatorCommand) {
        let verdict = self.operator_check(command);
        let (accepted, detail) = match &verdict {
            Ok(detail) => (true, detail.clone()),
            Err(detail) => (false, detail.clone()),
        };
        self.record(
            now,
            RecordKind::Operator {
                command,
                accepted,
                detail,
            },
        );
        if accepted {
            self.operator_apply(now, command);
        }
    }

    /// Whether `command` applies now, and what it will do (or why not).
    fn operator_check(&self, command: OperatorCommand) -> Result<String, String> {
        use OperatorCommand::*;
        let target = self.spec.target;
        match (&self.phase, command) {
            (Phase::RollingBack { .. }, Abort) => Err("already rolling back".into()),
            (Phase::RollingBack { .. }, _) => Err("a rollback cannot be paused, resumed or promoted; it runs until the original is back".into()),
            (_, Pause) if self.paused.is_some() => Err("already paused".into()),
            (_, Pause) => Ok("paused: the hold clock stops, health is still watched, and a failure still rolls back".into()),
            (_, Resume) if self.paused.is_none() => Err("not paused".into()),
            (_, Resume) => Ok("resumed".into()),
            (Phase::Recording | Phase::PreTrafficHook, Abort) => Ok("aborted before any traffic shifted; the alias is untouched".into()),
            (_, Abort) => Ok("aborting: the original version comes back".into()),
            (Phase::Recording | Phase::PreTrafficHook, Promote | PromoteFully) => {
                Err("no traffic has shifted yet; promote once the first step is live".into())
            }
            (Phase::PostTrafficHook, Promote | PromoteFully) => Err(format!("all traffic is already on version {target}")),
            (Phase::Shifting, Promote) => Ok(format!("step {} ends now", self.step + 1)),
            (Phase::Shifting, PromoteFully) => Ok(format!("all traffic moves to version {target} now")),
            (Phase::Done { .. }, _) => Err("the deployment has ended".into()),
        }
    }

    fn operator_apply(&mut self, now: Timestamp, command: OperatorCommand) {
        let write_in_flight = matches!(
            self.pending,
            Some(Pending {
                what: PendingOp::Write { .. },
                ..
            })
        );
        match command {
            OperatorCommand::Pause => {
                let remaining_ms = self
                    .hold
                    .as_ref()
                    .map(|h| duration_millis(h.ends.since(now)));
                self.paused = Some(Pause {
                    at: now,
                    remaining_ms,
                });
                self.checks.deciding = false;
            }
            OperatorCommand::Resume => {
                let pause = self.paused.take().expect("checked: paused");
                if let (Some(hold), Some(ms)) = (self.hold.as_mut(), pause.remaining_ms) {
                    hold.ends = now.plus(Duration::from_millis(ms));
                }
                match self.waiting.take() {
                    Some(Waiting::StartShifting) => self.start_shifting(now),
                    Some(Waiting::Advance) => self.advance(now),
                    None => {}
                }
            }
            OperatorCommand::Abort => match self.phase {
                Phase::Recording | Phase::PreTrafficHook => {
                    self.pending = None;
                    self.finish(
                        now,
                        Outcome::Aborted,
                        "aborted by an operator before any traffic shifted".into(),
                    )
                }
                _ => self.roll_back(now, Outcome::Aborted, "aborted by an operator".into()),
            },
            OperatorCommand::Promote if write_in_flight => {
                self.promote_request = Some(PromoteRequest::NextStep)
            }
            OperatorCommand::PromoteFully if write_in_flight => {
                self.promote_request = Some(PromoteRequest::Fully)
            }
            OperatorCommand::Promote => {
                self.waiting = None;
                self.step_forward(now);
            }
            OperatorCommand::PromoteFully => {
                self.waiting = None;
                self.paused = None;
                self.finalize(now);
            }
        }
    }

    // ---- rollback and the end ----

    fn roll_back(&mut self, now: Timestamp, outcome: Outcome, reason: String) {
        self.phase = Phase::RollingBack {
            outcome,
            reason: reason.clone(),
        };
        self.hold = None;
        self.checks = Checks::default();
        self.paused = None;
        self.waiting = None;
        self.promote_request = None;
        let Some(original) = self.original.clone() else {
            return self.finish(now, outcome, reason);
        };
        self.record(
            now,
            RecordKind::RollbackStarted {
                reason,
                from: self.alias.clone(),
                to: original.clone(),
            },
        );
        match &self.pending {
            // A write in flight settles first; the rollback follows it (see `write_landed`).
            Some(Pending {
                what: PendingOp::Write { .. },
                ..
            })
            | Some(Pending {
                what: PendingOp::Read { reconcile: Some(_) },
                ..
            }) => {}
            _ => {
                self.pending = None;
                self.write_rollback(now);
            }
        }
    }

    fn write_rollback(&mut self, now: Timestamp) {
        let original = self
            .original
            .clone()
            .expect("rollback needs the recorded original");
        if self.alias.as_ref() == Some(&original) {
            if let Phase::RollingBack { outcome, reason } = self.phase.clone() {
                self.finish(now, outcome, reason);
            }
            return;
        }
        self.issue(PendingOp::Write {
            routing: original,
            purpose: WritePurpose::Rollback,
        });
    }

    fn finish(&mut self, now: Timestamp, outcome: Outcome, reason: String) {
        self.pending = None;
        self.hold = None;
        self.checks = Checks::default();
        self.paused = None;
        self.waiting = None;
        let alias_split = self.alias.as_ref().is_some_and(|a| !a.is_single());
        let reason = if alias_split && !reason.contains("SPLIT") {
            format!(
                "{reason}. WARNING: the alias is left SPLIT ({}); fix it by hand",
                self.alias.as_ref().expect("split")
            )
        } else {
            reason
        };
        self.phase = Phase::Done {
            outcome,
            reason: reason.clone(),
        };
        self.record(
            now,
            RecordKind::Finished {
                outcome,
                reason,
                alias: self.alias.clone(),
                alias_split,
            },
        );
    }

    // ---- plumbing ----

    fn mint_op(&mut self) -> OpId {
        let op = self.next_op;
        self.next_op += 1;
        op
    }

    fn issue(&mut self, what: PendingOp) {
        let op = self.mint_op();
        self.pending = Some(Pending {
            op,
            what,
            attempt: 1,
            retry_at: None,
        });
        self.send_pending();
    }

    fn resend(&mut self) {
        if let Some(p) = self.pending.as_mut() {
            p.attempt += 1;
            p.retry_at = None;
            p.op = self.next_op;
            self.next_op += 1;
        }
        self.send_pending();
    }

    fn send_pending(&mut self) {
        let Some(p) = self.pending.clone() else {
            return;
        };
        let command = match p.what {
            PendingOp::Read { .. } => Command::ReadAlias { op: p.op },
            PendingOp::Write { routing, purpose } => Command::WriteAlias {
                op: p.op,
                routing,
                revision_id: self.revision_id.clone().unwrap_or_default(),
                purpose,
            },
            PendingOp::Hook { hook, .. } => {
                let function = match hook {
                    HookKind::PreTraffic => self.spec.hooks.pre_traffic.clone(),
                    HookKind::PostTraffic => self.spec.hooks.post_traffic.clone(),
                }
                .unwrap_or_default();
                Command::InvokeHook {
                    op: p.op,
                    hook,
                    function,
                    payload: self.hook_payload(hook),
                }
            }
        };
        self.out.push(command);
    }

    /// Takes the pending operation if `op` answers it.
    fn take_pending(&mut self, op: OpId) -> Option<PendingOp> {
        if self
            .pending
            .as_ref()
            .is_some_and(|p| p.op == op && p.retry_at.is_none())
        {
            self.pending.take().map(|p| p.what)
        } else {
            None
        }
    }

    fn record(&mut self, now: Timestamp, kind: RecordKind) {
        let record = Record { at: now, kind };
        if record.kind.is_notable() {
            self.out.push(Command::Notify(record.clone()));
        }
        self.out.push(Command::Record(record));
    }

    fn take(&mut self) -> Vec<Command> {
        std::mem::take(&mut self.out)
    }
}

fn purpose_of(p: WritePurpose) -> Purpose {
    match p {
        WritePurpose::Rollback => Purpose::Rollback,
        _ => Purpose::Forward,
    }
}

fn describe_purpose(p: WritePurpose) -> String {
    match p {
        WritePurpose::Step(k) => format!("step {}", k + 1),
        WritePurpose::Finalize => "finalize".into(),
        WritePurpose::Rollback => "rollback".into(),
    }
}
