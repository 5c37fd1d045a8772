//! How a deployment looks while it runs: a live status line on a terminal, plain lines
//! otherwise, or one JSON event per line with `--json`.

use std::io::{IsTerminal, Write};

use fledge_core::lambda::percent;
use fledge_core::rollout::{Outcome, RecordKind};
use fledge_core::time::format_duration;
use fledge_engine::notify::Undelivered;
use fledge_engine::{Progress, StatusLine, Summary};

/// Prints progress as it arrives.
pub struct Renderer {
    json: bool,
    tty: bool,
    status_shown: bool,
    last_check: Option<String>,
}

impl Renderer {
    pub fn new(json: bool) -> Renderer {
        Renderer {
            json,
            tty: std::io::stderr().is_terminal(),
            status_shown: false,
            last_check: None,
        }
    }

    pub fn show(&mut self, progress: &Progress) {
        if self.json {
            if !matches!(progress, Progress::Status(_)) {
                println!(
                    "{}",
                    serde_json::to_string(progress).expect("progress serialises")
                );
            }
            return;
        }
        match progress {
            Progress::Status(s) if self.tty => {
                eprint!("\r\x1b[2K{}", status_text(s));
                let _ = std::io::stderr().flush();
                self.status_shown = true;
            }
            Progress::Status(_) => {}
            Progress::Note { message } => self.line(message),
            Progress::Record(r) => {
                if let Some(text) = self.describe(&r.kind) {
                    self.line(&text);
                }
            }
        }
    }

    /// Notifications that could not be delivered: a `notification_failed` event each with
    /// `--json`, a line each otherwise.
    pub fn undelivered(&mut self, failed: &[Undelivered]) {
        for u in failed {
            if self.json {
                let mut value = serde_json::to_value(u).expect("undelivered serialises");
                value["kind"] = "notification_failed".into();
                println!("{value}");
            } else {
                self.line(&format!(
                    "notification of '{}' to {} not delivered after {} attempts: {}",
                    u.event, u.sink, u.attempts, u.error
                ));
            }
        }
    }

    fn line(&mut self, text: &str) {
        if self.status_shown {
            eprint!("\r\x1b[2K");
            self.status_shown = false;
        }
        eprintln!("{text}");
    }

    fn describe(&mut self, kind: &RecordKind) -> Option<String> {
        Some(match kind {
            RecordKind::Started {
                function,
                alias,
                target,
                schedule,
                ..
            } => {
                let total: std::time::Duration = schedule.iter().map(|s| s.hold).sum();
                format!(
                    "deploying {function}:{alias} → version {target}: {} steps over {}",
                    schedule.len(),
                    format_duration(total)
                )
            }
            RecordKind::AliasRecorded { routing, .. } => format!("alias as found: {routing}"),
            RecordKind::HookInvoked { hook, function } => {
                format!("hook {}: invoking {function}", hook.lifecycle_event())
            }
            RecordKind::HookFinished {
                hook,
                succeeded,
                detail,
                ..
            } => {
                format!(
                    "hook {}: {} ({detail})",
                    hook.lifecycle_event(),
                    if *succeeded { "succeeded" } else { "FAILED" }
                )
            }
            RecordKind::StepApplied {
                step,
                steps,
                weight,
                hold_ms,
                ..
            } => {
                format!(
                    "step {step}/{steps}: {} on the new version, hold {}",
                    percent(*weight),
                    format_duration(std::time::Duration::from_millis(*hold_ms))
                )
            }
            RecordKind::Checked { verdict, .. } => {
                let text = format!("check {}: {}", verdict.outcome, verdict.reason);
                let repeat = self.last_check.as_deref().map(|l| l.split(':').next())
                    == Some(text.split(':').next());
                self.last_check = Some(text.clone());
                if repeat && verdict.outcome != fledge_core::judge::Outcome::Fail {
                    return None;
                }
                text
            }
            RecordKind::StepPassed { step, weight } => {
                format!("step {step} passed at {}", percent(*weight))
            }
            RecordKind::HoldExtended {
                step,
                by_ms,
                reason,
                ..
            } => {
                format!(
                    "step {step} held {} longer: {reason}",
                    format_duration(std::time::Duration::from_millis(*by_ms))
                )
            }
            RecordKind::ProceededWithoutEvidence { step, reason } => {
                format!("step {step}: proceeding WITHOUT evidence ({reason})")
            }
            RecordKind::Operator {
                command,
                accepted,
                detail,
            } => {
                format!(
                    "operator {command:?}: {} ({detail})",
                    if *accepted { "accepted" } else { "refused" }
                )
            }
            RecordKind::ApiError {
                operation,
                failure,
                attempt,
                retry_in_ms,
            } => match retry_in_ms {
                Some(ms) => format!(
                    "{operation} failed ({}, attempt {attempt}): {}; retrying in {ms} ms",
                    failure.kind, failure.message
                ),
                None => format!(
                    "{operation} failed ({}, attempt {attempt}): {}",
                    failure.kind, failure.message
                ),
            },
            RecordKind::RollbackStarted { reason, to, .. } => {
                format!("ROLLING BACK to {to}: {reason}")
            }
            RecordKind::AliasChangedExternally { expected, found } => {
                format!("the alias was changed by someone else: expected {expected}, found {found}")
            }
            RecordKind::Restarted { settling } => format!("resumed: {settling}"),
            RecordKind::Finished { .. } => return None,
        })
    }

    /// The final word, and the exit code it stands for.
    pub fn finish(&mut self, summary: &Summary) -> u8 {
        let code = exit_code(summary.outcome);
        if self.json {
            let mut value = serde_json::to_value(summary).expect("summary serialises");
            value["kind"] = "summary".into();
            value["exit_code"] = code.into();
            println!("{value}");
            return code;
        }
        let headline = match summary.outcome {
            Outcome::Promoted => "PROMOTED",
            Outcome::RolledBack => "ROLLED BACK",
            Outcome::Aborted => "ABORTED",
            Outcome::Failed => "FAILED",
        };
        self.line(&format!(
            "{headline} after {:.1}s: {}",
            summary.duration_secs, summary.reason
        ));
        if let Some(alias) = &summary.alias {
            let loud = if summary.alias_split {
                "  <-- THE ALIAS IS SPLIT; fix it by hand"
            } else {
                ""
            };
            self.line(&format!("alias now: {alias}{loud}"));
        }
        code
    }
}

/// 0 promoted; 1 rolled back or aborted; 3 could not complete.
pub fn exit_code(outcome: Outcome) -> u8 {
    match outcome {
        Outcome::Promoted => 0,
        Outcome::RolledBack | Outcome::Aborted => 1,
        Outcome::Failed => 3,
    }
}

fn status_text(s: &StatusLine) -> String {
    let mut text = format!(
        "[{}] step {}/{} at {}",
        s.phase,
        s.step,
        s.steps,
        percent(s.weight)
    );
    if s.paused {
        text.push_str(" (paused)");
    } else if let Some(left) = s.hold_left_secs {
        text.push_str(&format!(", {left:.0}s left in hold"));
    }
    if let (Some(c), Some(n)) = (s.canary_error_rate, s.canary_requests) {
        text.push_str(&format!(" | canary {:.2}% errors over {n}", c * 100.0));
    }
    if let Some(b) = s.baseline_error_rate {
        text.push_str(&format!(" | baseline {:.2}%", b * 100.0));
        if let Some(n) = s.baseline_requests {
            text.push_str(&format!(" over {n}"));
        }
    }
    if let (Some(c), Some(b)) = (s.canary_p99_ms, s.baseline_p99_ms) {
        text.push_str(&format!(" | p99 {c:.0} ms vs {b:.0} ms"));
    }
    text
}
