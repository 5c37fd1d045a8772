//! The state machine driven by hand, event by event: operator commands in every phase,
//! API failures, and an alias changed by someone else.

use std::time::Duration;

use fledge_core::judge::{Outcome as Check, Verdict};
use fledge_core::lambda::{AliasRouting, Version};
use fledge_core::rollout::{
    ApiFailure, CheckPolicy, Command, Deployment, DeploymentSpec, Event, FailureKind, Hooks,
    OperatorCommand, Outcome, Phase, RecordKind, RetryPolicy, WritePurpose,
};
use fledge_core::time::Timestamp;

const T0: Timestamp = Timestamp(1_000_000);

fn spec(strategy: &str, pre: Option<&str>, post: Option<&str>) -> DeploymentSpec {
    DeploymentSpec {
        function: "orders".into(),
        alias: "live".parse().unwrap(),
        target: 2,
        schedule: strategy
            .parse::<fledge_core::schedule::Strategy>()
            .unwrap()
            .schedule()
            .unwrap(),
        analysis: Default::default(),
        checks: CheckPolicy::default(),
        hooks: Hooks {
            pre_traffic: pre.map(String::from),
            post_traffic: post.map(String::from),
            ..Hooks::default()
        },
        retry: RetryPolicy::default(),
    }
}

fn at(secs: u64) -> Timestamp {
    T0.plus(Duration::from_secs(secs))
}

/// A hand-driven deployment and a fake alias that answers its reads and writes.
struct Harness {
    d: Deployment,
    alias: AliasRouting,
    revision: u64,
    pending: Vec<Command>,
    records: Vec<RecordKind>,
}

impl Harness {
    fn new(spec: DeploymentSpec) -> Harness {
        let (d, out) = Deployment::new("d-1", spec, T0);
        let mut h = Harness {
            d,
            alias: AliasRouting::single(Version::Number(1)),
            revision: 1,
            pending: vec![],
            records: vec![],
        };
        h.absorb(out);
        h
    }

    fn absorb(&mut self, out: Vec<Command>) {
        for c in out {
            match c {
                Command::Record(r) => self.records.push(r.kind),
                Command::Notify(_) => {}
                other => self.pending.push(other),
            }
        }
    }

    fn feed(&mut self, now: Timestamp, event: Event) {
        let out = self.d.handle_event(now, event);
        self.absorb(out);
    }

    fn operator(&mut self, now: Timestamp, command: OperatorCommand) -> bool {
        self.feed(now, Event::Operator { command });
        match self
            .records
            .iter()
            .rev()
            .find(|r| matches!(r, RecordKind::Operator { .. }))
        {
            Some(RecordKind::Operator { accepted, .. }) => *accepted,
            _ => unreachable!(),
        }
    }

    fn tick(&mut self, now: Timestamp) {
        let out = self.d.handle_timeout(now);
        self.absorb(out);
    }

    /// Answers every outstanding read and write as the platform would; checks and hooks
    /// are answered by the given closures' outcomes.
    fn serve(&mut self, now: Timestamp, verdict: Check, hook_ok: bool) {
        while let Some(c) = (!self.pending.is_empty()).then(|| self.pending.remove(0)) {
            let event = match c {
                Command::ReadAlias { op } => Event::AliasRead {
                    op,
                    routing: self.alias.clone(),
                    revision_id: self.revision.to_string(),
                },
                Command::WriteAlias {
                    op,
                    routing,
                    revision_id,
                    ..
                } => {
                    if revision_id != self.revision.to_string() {
                        Event::ApiFailed {
                            op,
                            failure: ApiFailure::new(FailureKind::RevisionMismatch, "stale"),
                        }
                    } else {
                        self.alias = routing;
                        self.revision += 1;
                        Event::AliasWritten {
                            op,
                            revision_id: self.revision.to_string(),
                        }
                    }
                }
                Command::Evaluate { op, .. } => Event::Verdict {
                    op,
                    verdict: Verdict::new(verdict, "scripted", vec![]),
                },
                Command::InvokeHook { op, .. } => Event::HookFinished {
                    op,
                    succeeded: hook_ok,
                    detail: "scripted".into(),
                },
                _ => continue,
            };
            self.feed(now, event);
        }
    }

    fn writes(&self) -> Vec<&Command> {
        self.pending
            .iter()
            .filter(|c| matches!(c, Command::WriteAlias { .. }))
            .collect()
    }

    fn weight(&self) -> f64 {
        self.alias.weight_of(Version::Number(2))
    }
}

/// Pause stops the hold clock; resume continues with the time that was left.
#[test]
fn pause_and_resume_during_a_hold() {
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.serve(T0, Check::Pass, true);
    assert_eq!(h.weight(), 0.25);
    assert!(h.operator(at(20), OperatorCommand::Pause));
    assert!(
        !h.operator(at(21), OperatorCommand::Pause),
        "already paused"
    );
    for s in (25..600).step_by(5) {
        h.tick(at(s));
        h.serve(at(s), Check::Pass, true);
    }
    assert_eq!(h.weight(), 0.25, "no step while paused");
    assert!(h.operator(at(600), OperatorCommand::Resume));
    assert!(!h.operator(at(600), OperatorCommand::Resume), "not paused");
    assert_eq!(
        h.d.poll_deadline().map(|t| t <= at(640)),
        Some(true),
        "40 s of hold were left"
    );
    for s in (605..=640).step_by(5) {
        h.tick(at(s));
        h.serve(at(s), Check::Pass, true);
    }
    assert_eq!(h.weight(), 0.5);
}

/// A failing check while paused still rolls back.
#[test]
fn a_failure_while_paused_still_rolls_back() {
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.serve(T0, Check::Pass, true);
    h.operator(at(10), OperatorCommand::Pause);
    h.tick(at(15));
    h.serve(at(15), Check::Fail, true);
    assert_eq!(h.d.outcome(), Some(Outcome::RolledBack));
    assert_eq!(h.alias, AliasRouting::single(Version::Number(1)));
}

/// Promote ends the current step at once; promote fully finalizes.
#[test]
fn promote_and_promote_fully_during_shifting() {
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.serve(T0, Check::Pass, true);
    assert!(h.operator(at(5), OperatorCommand::Promote));
    h.serve(at(5), Check::Pass, true);
    assert_eq!(h.weight(), 0.5);
    assert!(h.operator(at(6), OperatorCommand::PromoteFully));
    h.serve(at(6), Check::Pass, true);
    assert_eq!(h.d.outcome(), Some(Outcome::Promoted));
    assert_eq!(h.alias, AliasRouting::single(Version::Number(2)));
}

/// A promote that arrives while a step's write is in flight applies once it lands.
#[test]
fn promote_while_a_write_is_in_flight() {
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.serve(T0, Check::Pass, true);
    h.operator(at(1), OperatorCommand::Promote);
    assert_eq!(h.writes().len(), 1, "step 2 is being written");
    assert!(h.operator(at(1), OperatorCommand::Promote));
    h.serve(at(2), Check::Pass, true);
    assert_eq!(
        h.weight(),
        0.75,
        "the second promote took effect after the write landed"
    );
}

/// Abort in every phase leaves the original version serving.
#[test]
fn abort_in_every_phase() {
    // Recording: nothing changed, nothing written.
    let mut h = Harness::new(spec("linear:4x1m", Some("pre"), Some("post")));
    assert!(h.operator(T0, OperatorCommand::Abort));
    assert_eq!(h.d.outcome(), Some(Outcome::Aborted));
    h.serve(T0, Check::Pass, true);
    assert_eq!(h.revision, 1, "no write");

    // Pre-traffic hook running.
    let mut h = Harness::new(spec("linear:4x1m", Some("pre"), None));
    let read = h.pending.remove(0);
    let Command::ReadAlias { op } = read else {
        panic!()
    };
    h.feed(
        T0,
        Event::AliasRead {
            op,
            routing: h.alias.clone(),
            revision_id: "1".into(),
        },
    );
    assert_eq!(h.d.phase(), &Phase::PreTrafficHook);
    assert!(
        !h.operator(T0, OperatorCommand::Promote),
        "nothing shifted yet"
    );
    assert!(h.operator(T0, OperatorCommand::Abort));
    assert_eq!(h.d.outcome(), Some(Outcome::Aborted));
    assert_eq!(h.revision, 1);

    // Shifting.
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.serve(T0, Check::Pass, true);
    assert!(h.operator(at(3), OperatorCommand::Abort));
    h.serve(at(3), Check::Pass, true);
    assert_eq!(h.d.outcome(), Some(Outcome::Aborted));
    assert_eq!(h.alias, AliasRouting::single(Version::Number(1)));

    // Post-traffic hook running: all traffic is on v2; abort puts v1 back.
    let mut h = Harness::new(spec("all-at-once", None, Some("post")));
    let Command::ReadAlias { op } = h.pending.remove(0) else {
        panic!()
    };
    h.feed(
        T0,
        Event::AliasRead {
            op,
            routing: h.alias.clone(),
            revision_id: "1".into(),
        },
    );
    let Command::WriteAlias { op, routing, .. } = h.pending.remove(0) else {
        panic!()
    };
    h.alias = routing;
    h.revision = 2;
    h.feed(
        T0,
        Event::AliasWritten {
            op,
            revision_id: "2".into(),
        },
    );
    assert_eq!(h.d.phase(), &Phase::PostTrafficHook);
    assert!(
        !h.operator(T0, OperatorCommand::PromoteFully),
        "already at 100%"
    );
    assert!(!h.operator(T0, OperatorCommand::Promote));
    assert!(h.operator(T0, OperatorCommand::Pause));
    assert!(h.operator(T0, OperatorCommand::Abort));
    h.pending
        .retain(|c| !matches!(c, Command::InvokeHook { .. }));
    h.serve(T0, Check::Pass, true);
    assert_eq!(h.d.outcome(), Some(Outcome::Aborted));
    assert_eq!(h.alias, AliasRouting::single(Version::Number(1)));

    // Rolling back: abort, pause and promote are refused, the rollback goes on.
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.serve(T0, Check::Pass, true);
    h.tick(at(5));
    let Command::Evaluate { op, .. } = h.pending.remove(0) else {
        panic!()
    };
    h.feed(
        at(5),
        Event::Verdict {
            op,
            verdict: Verdict::new(Check::Fail, "scripted", vec![]),
        },
    );
    assert!(matches!(h.d.phase(), Phase::RollingBack { .. }));
    for c in [
        OperatorCommand::Abort,
        OperatorCommand::Pause,
        OperatorCommand::Promote,
        OperatorCommand::Resume,
    ] {
        assert!(!h.operator(at(5), c), "{c:?}");
    }
    h.serve(at(6), Check::Pass, true);
    assert_eq!(h.d.outcome(), Some(Outcome::RolledBack));

    // Done: everything is refused.
    for c in [
        OperatorCommand::Abort,
        OperatorCommand::Pause,
        OperatorCommand::Promote,
        OperatorCommand::PromoteFully,
    ] {
        assert!(!h.operator(at(7), c), "{c:?}");
    }
}

/// Pause before the first shift holds the deployment at 0% until resumed.
#[test]
fn pause_before_any_shift_waits_for_resume() {
    let mut h = Harness::new(spec("linear:2x1m", Some("pre"), None));
    assert!(h.operator(T0, OperatorCommand::Pause));
    h.serve(T0, Check::Pass, true);
    assert_eq!(h.weight(), 0.0);
    assert_eq!(h.revision, 1);
    assert!(h.operator(at(30), OperatorCommand::Resume));
    h.serve(at(30), Check::Pass, true);
    assert_eq!(h.weight(), 0.5);
}

/// Someone else changes the alias mid-deployment: fledge stops, says so, and does not
/// overwrite the change.
#[test]
fn an_alias_changed_by_someone_else_is_left_alone() {
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.serve(T0, Check::Pass, true);
    // By hand: straight to version 3.
    h.alias = AliasRouting::single(Version::Number(3));
    h.revision = 99;
    h.operator(at(5), OperatorCommand::Promote);
    h.serve(at(5), Check::Pass, true);
    assert_eq!(h.d.outcome(), Some(Outcome::Failed));
    assert_eq!(
        h.alias,
        AliasRouting::single(Version::Number(3)),
        "the hand-made change stands"
    );
    assert!(
        h.records
            .iter()
            .any(|r| matches!(r, RecordKind::AliasChangedExternally { .. }))
    );
    let Phase::Done { reason, .. } = h.d.phase() else {
        panic!()
    };
    assert!(reason.contains("changed by someone else"), "{reason}");
}

/// A write whose answer was lost (the platform applied it, then a retry met a stale
/// RevisionId) is recognised as ours, not as someone else's change.
#[test]
fn a_lost_answer_is_recognised_as_our_own_write() {
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.serve(T0, Check::Pass, true);
    h.operator(at(5), OperatorCommand::Promote);
    let Command::WriteAlias { op, routing, .. } = h.pending.remove(0) else {
        panic!()
    };
    h.alias = routing;
    h.revision += 1;
    h.feed(
        at(5),
        Event::ApiFailed {
            op,
            failure: ApiFailure::new(FailureKind::RevisionMismatch, "stale"),
        },
    );
    h.serve(at(5), Check::Pass, true);
    assert!(h.d.outcome().is_none(), "still running");
    assert_eq!(h.d.status().step, 2);
}

/// Throttling is retried with backoff; a forward step that keeps failing rolls back, and
/// the rollback keeps trying until it lands.
#[test]
fn api_failures_are_retried_then_rolled_back() {
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.serve(T0, Check::Pass, true);
    h.operator(at(1), OperatorCommand::Promote);
    let mut now = at(1);
    for attempt in 1..=8 {
        let Some(Command::WriteAlias { op, purpose, .. }) = h.pending.pop() else {
            panic!("attempt {attempt}")
        };
        assert_eq!(purpose, WritePurpose::Step(1));
        h.feed(
            now,
            Event::ApiFailed {
                op,
                failure: ApiFailure::new(FailureKind::Throttled, "Rate exceeded"),
            },
        );
        while h.writes().is_empty() {
            now = h.d.poll_deadline().unwrap();
            h.tick(now);
        }
    }
    assert!(
        matches!(h.d.phase(), Phase::RollingBack { .. }),
        "{:?}",
        h.d.phase()
    );
    for _ in 0..50 {
        let Some(Command::WriteAlias { op, purpose, .. }) = h.pending.pop() else {
            panic!()
        };
        assert_eq!(purpose, WritePurpose::Rollback);
        h.feed(
            now,
            Event::ApiFailed {
                op,
                failure: ApiFailure::new(FailureKind::Unavailable, "503"),
            },
        );
        while h.writes().is_empty() {
            now = h.d.poll_deadline().unwrap();
            h.tick(now);
        }
    }
    assert!(
        h.d.outcome().is_none(),
        "a rollback never gives up on a platform that may come back"
    );
    h.serve(now, Check::Pass, true);
    assert_eq!(h.d.outcome(), Some(Outcome::Failed));
    assert_eq!(h.alias, AliasRouting::single(Version::Number(1)));
}

/// A deployment that cannot roll back says that the alias is left split.
#[test]
fn a_rollback_that_cannot_land_says_the_alias_is_split() {
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.serve(T0, Check::Pass, true);
    h.operator(at(1), OperatorCommand::Abort);
    let Some(Command::WriteAlias { op, .. }) = h.pending.pop() else {
        panic!()
    };
    h.feed(
        at(1),
        Event::ApiFailed {
            op,
            failure: ApiFailure::new(FailureKind::NotFound, "Alias not found"),
        },
    );
    assert_eq!(h.d.outcome(), Some(Outcome::Failed));
    let Some(RecordKind::Finished {
        alias_split,
        reason,
        ..
    }) = h.records.last()
    else {
        panic!()
    };
    assert!(*alias_split);
    assert!(reason.contains("SPLIT"), "{reason}");
}

/// An alias that is already split is not touched; one already on the target is done.
#[test]
fn preconditions_on_the_alias_as_found() {
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.alias = AliasRouting::split(Version::Number(1), 3, 0.1);
    h.serve(T0, Check::Pass, true);
    assert_eq!(h.d.outcome(), Some(Outcome::Failed));
    assert_eq!(h.revision, 1);

    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.alias = AliasRouting::single(Version::Number(2));
    h.serve(T0, Check::Pass, true);
    assert_eq!(h.d.outcome(), Some(Outcome::Promoted));
    assert_eq!(h.revision, 1);
}

/// handle_timeout tolerates being called early, twice, and with a clock that went back.
#[test]
fn timeouts_are_idempotent() {
    let mut h = Harness::new(spec("linear:4x1m", None, None));
    h.serve(T0, Check::Pass, true);
    h.tick(T0);
    h.tick(Timestamp(0));
    let before = h.pending.len();
    h.tick(at(5));
    h.tick(at(5));
    assert_eq!(h.pending.len(), before + 1, "one check, not two");
}
