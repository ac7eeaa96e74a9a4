//! The act phase of a cycle: each queue's plan carried out one write at a time, every write
//! between its intent and its outcome (SPEC §3 rule 7, `crate::journal`), every del asked of
//! the plan's `DelGate` again with only what TRiNG confirmed (rules 1, 3, 4), writes TRiNG
//! refused for good held back (rule 9), shutdown checked between writes (SPEC §5).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};

use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::deadlines::{Deadlines, human};
use super::ports::{Calendars, Clock, Pbx, Permanence, WriteError};
use super::{CycleReport, Reconciler, SHUTDOWN_GRACE};
use crate::journal::Journal;
use crate::model::{Member, QueueNo, sanitize};
use crate::plan::{ActionKind, PlanWarning, QueuePlan, RefusalKind};
use crate::store::{HeldWrite, Intent, Outcome, RefusalNote, StoreError, WriteAction};
use crate::tring::WriteOutcome;
use crate::words::{Words, person_of};

impl<C: Calendars, P: Pbx, K: Clock> Reconciler<C, P, K> {
    /// Carries out one queue's plan: logs refusals and warnings, writes each action between
    /// an intent and an outcome, forgets owned members that left by themselves.
    /// One queue's part of the cycle, as a report of its own (merged by the caller).
    pub(super) async fn act(
        &self,
        plan: &QueuePlan,
        live: Option<&BTreeSet<Member>>,
        held: &[HeldWrite],
        cancel: &CancellationToken,
        deadlines: &Deadlines,
    ) -> Result<CycleReport, StoreError> {
        let mut report = CycleReport::default();
        // A queue whose turn comes after shutdown was requested is not started at all.
        if cancel.is_cancelled() {
            report.interrupted = true;
            return Ok(report);
        }
        if let Some(live) = live {
            report.live_after.insert(plan.queue.clone(), live.clone());
        }
        self.act_on(plan, held, cancel, deadlines, &mut report)
            .await?;
        Ok(report)
    }

    async fn act_on(
        &self,
        plan: &QueuePlan,
        held: &[HeldWrite],
        cancel: &CancellationToken,
        deadlines: &Deadlines,
        report: &mut CycleReport,
    ) -> Result<(), StoreError> {
        let q = &plan.queue;
        let words = Words::new(self.cfg.roster());
        for w in &plan.warnings {
            // With nothing held back, the calendar's own failure (logged above) says it all.
            if !matches!(w, PlanWarning::IncompleteRead { postponed: 0, .. }) {
                warn!(queue = %q, "{w}");
            }
        }
        let mut refused = Refused::default();
        for r in &plan.refused {
            let reason = words.refusal(q, r.kind, r.member.as_ref());
            self.refused(q, r.member.as_ref(), r.kind, &reason, report, &mut refused);
        }
        let unreadable = plan
            .refused
            .iter()
            .any(|r| r.kind == RefusalKind::UnreadableQueue);
        if self.dry_run {
            for a in &plan.actions {
                let person = words.person(a);
                let person = person.as_deref().unwrap_or("-");
                info!(action = ?a.kind, queue = %q, member = %a.member, person, reason = %words.action(a), "dry run: would write");
            }
            if !unreadable {
                report.applied_in_full.insert(q.clone());
            }
            return Ok(());
        }
        let Some(store) = self.writer().cloned() else {
            return Ok(());
        };
        let now = self.clock.now();
        if unreadable {
            // Rule 2: nothing is known of this queue; its holds stay as they are.
            store.set_refusals(q, &refused.lines).await?;
            store.log_refusals(q, &refused.notes, now).await?;
            return Ok(());
        }
        for m in &plan.forget_owned {
            info!(queue = %q, member = %m, "owned member left the queue outside rooster and is not desired; no longer owned");
            store.forget_owned(q, m).await?;
        }
        // Only a queue with a hold, or a write refused for good, needs what holds depend on.
        let basis = || self.basis(q);
        let mut held: BTreeMap<(Member, WriteAction), &HeldWrite> = held
            .iter()
            .map(|h| ((h.member.clone(), h.action), h))
            .collect();
        let wanted: BTreeSet<(Member, WriteAction)> = plan
            .actions
            .iter()
            .map(|a| (a.member.clone(), write_action(a.kind)))
            .collect();
        // Holds of writes the plan no longer wants are over (SPEC §3 rule 9: "until the
        // config or the calendars feeding it change").
        for (m, a) in held.keys().filter(|k| !wanted.contains(*k)) {
            store.release_held_write(q, m, *a).await?;
        }
        held.retain(|k, _| wanted.contains(k));

        // SPEC §3 rules 1, 3 and 4 asked again before each del, of the gate the plan asked,
        // now told only what TRiNG confirmed (an add that failed, was held back or whose
        // answer never came counts as not applied).
        let mut gate = plan.gate.clone();
        let mut in_full = true;
        for (n, a) in plan.actions.iter().enumerate() {
            self.beat();
            // SPEC §5 / STYLE 11: shutdown is checked between writes, never inside one.
            if cancel.is_cancelled() {
                report.interrupted = true;
                in_full = false;
                break;
            }
            // No write starts after the cycle's time is up; the next cycle plans them again.
            if tokio::time::Instant::now() >= deadlines.write {
                let left = plan.actions.len() - n;
                let line = format!(
                    "queue {q}: {left} write(s) postponed to the next cycle: this one reached poll_interval {}",
                    human(deadlines.poll)
                );
                warn!("{line}");
                report.errors.push(line);
                in_full = false;
                break;
            }
            let named = words.person(a);
            let person = named.as_deref().unwrap_or("-");
            let reason = words.action(a);
            let action = write_action(a.kind);
            if a.kind == ActionKind::Del
                && let Some(kind) = gate.refuses(&a.member)
            {
                let mut reason = words.refusal(q, kind, Some(&a.member));
                if kind == RefusalKind::KeepLast {
                    reason.push_str(": the member meant to replace it was not added");
                }
                self.refused(q, Some(&a.member), kind, &reason, report, &mut refused);
                in_full = false;
                continue;
            }
            // SPEC §3 rule 9: a write TRiNG refused for good is not sent again until the
            // config or the calendars feeding the queue change, or an hour has passed.
            if let Some(h) = held.get(&(a.member.clone(), action))
                && h.basis == basis()
                && now < h.since + HOLD_FOR
            {
                debug!(action = action.as_str(), queue = %q, member = %a.member, person, answer = %h.answer, "write held back: TRiNG refused it for good earlier");
                report.held += 1;
                report.errors.push(held_line(h));
                refused.notes.push(RefusalNote {
                    kind: "held".into(),
                    member: Some(a.member.clone()),
                    person: named.clone(),
                    reason: h.answer.clone(),
                });
                in_full = false;
                continue;
            }
            let journal = Journal::new(&store);
            let id = journal
                .intent(&Intent {
                    queue: q.clone(),
                    member: a.member.clone(),
                    action,
                    person: named.clone(),
                    reason: sanitize(&reason, 300),
                    at: self.clock.now(),
                })
                .await?;
            if a.kind == ActionKind::Del {
                gate.del_sent(&a.member);
            }
            let write = self.pbx.write(a.kind, q, &a.member);
            let result = tokio::select! {
                r = write => r,
                _ = async { cancel.cancelled().await; tokio::time::sleep(SHUTDOWN_GRACE).await } => {
                    Err(WriteError::Uncertain("shutdown before TRiNG answered".into()))
                }
            };
            if let Some(m) = &self.metrics {
                m.tring_write(action.as_str(), &result);
            }
            match result {
                Ok(outcome) => {
                    let recorded = match outcome {
                        WriteOutcome::Applied => Outcome::Applied,
                        WriteOutcome::AlreadyInState => Outcome::AlreadyInState,
                    };
                    journal.outcome(id, &recorded, self.clock.now()).await?;
                    if held.remove(&(a.member.clone(), action)).is_some() {
                        store.release_held_write(q, &a.member, action).await?;
                    }
                    let live = report.live_after.entry(q.clone()).or_default();
                    match a.kind {
                        ActionKind::Add => {
                            gate.added(&a.member);
                            report.adds += 1;
                            live.insert(a.member.clone());
                        }
                        ActionKind::Del => {
                            report.dels += 1;
                            live.remove(&a.member);
                        }
                    }
                    let msg = match (a.kind, a.drift) {
                        (ActionKind::Add, false) => "member added",
                        (ActionKind::Add, true) => "member added again after drift",
                        (ActionKind::Del, _) => "member removed",
                    };
                    info!(action = action.as_str(), queue = %q, member = %a.member, person, reason = %reason, "{msg}");
                }
                Err(WriteError::Refused {
                    permanence,
                    message,
                }) => {
                    in_full = false;
                    journal
                        .outcome(id, &Outcome::Failed(message.clone()), self.clock.now())
                        .await?;
                    if a.kind == ActionKind::Del {
                        gate.del_refused(&a.member);
                    }
                    if permanence == Permanence::Permanent {
                        let h = HeldWrite {
                            queue: q.clone(),
                            member: a.member.clone(),
                            action,
                            person: named.clone(),
                            answer: sanitize(&message, 300),
                            basis: basis(),
                            since: self.clock.now(),
                        };
                        error!(action = action.as_str(), queue = %q, member = %a.member, person, answer = %h.answer, "TRiNG refused the write for a reason retrying cannot fix; not sending it again until the config or the calendars feeding the queue change, or for an hour");
                        store.hold_write(&h).await?;
                        report.held += 1;
                        report.errors.push(held_line(&h));
                    } else {
                        error!(action = action.as_str(), queue = %q, member = %a.member, person, error = %message, "write failed; the next cycle tries again");
                        report.errors.push(format!(
                            "queue {q}: {action} {} failed: {message}",
                            a.member
                        ));
                    }
                }
                Err(WriteError::Uncertain(e)) => {
                    in_full = false;
                    // The intent stays open; the next cycle's `list` settles it.
                    journal
                        .outcome(id, &Outcome::Uncertain(e.clone()), self.clock.now())
                        .await?;
                    warn!(action = action.as_str(), queue = %q, member = %a.member, person, error = %e, "write outcome unknown; settled against the queue next cycle");
                    report
                        .errors
                        .push(format!("queue {q}: {} {} uncertain: {e}", action, a.member));
                }
            }
        }
        store.set_refusals(q, &refused.lines).await?;
        store.log_refusals(q, &refused.notes, now).await?;
        if in_full {
            report.applied_in_full.insert(q.clone());
        }
        Ok(())
    }

    /// Logs and counts one del held back by a safety rule (the plan's or the executor's).
    fn refused(
        &self,
        q: &QueueNo,
        m: Option<&Member>,
        kind: RefusalKind,
        reason: &str,
        report: &mut CycleReport,
        refused: &mut Refused,
    ) {
        let member = m.map(ToString::to_string).unwrap_or_default();
        match kind {
            RefusalKind::KeepLast => {
                error!(queue = %q, member = %member, kind = "keep_last", "removal refused: {reason}")
            }
            // Already reported as the list failure.
            RefusalKind::UnreadableQueue => {}
            _ => {
                warn!(queue = %q, member = %member, kind = ?kind, "removal refused: {reason}")
            }
        }
        if kind != RefusalKind::UnreadableQueue {
            report.refused += 1;
            report
                .errors
                .push(format!("queue {q}: removal of {member} refused: {reason}"));
        }
        if let Some(m) = &self.metrics {
            m.refusal(kind);
        }
        refused.lines.push(format!("{kind:?}: {member} {reason}"));
        refused.notes.push(RefusalNote {
            kind: kind.as_str().into(),
            person: m.and_then(|m| person_of(&self.cfg.persons, m)),
            member: m.cloned(),
            reason: sanitize(reason, 300),
        });
    }

    /// What a held write depends on (SPEC §3 rule 9): the config, and the last good read of
    /// every calendar feeding `q`. When it changes, a held write is tried again.
    fn basis(&self, q: &QueueNo) -> u64 {
        let mut h = std::hash::DefaultHasher::new();
        self.config_print.hash(&mut h);
        if let Some(f) = self.feeds.get(q) {
            let own = self.own_calendars.iter().filter(|_| f.own);
            for cal in own.chain(f.shared.iter()) {
                self.fingerprints
                    .get(cal)
                    .copied()
                    .unwrap_or(0)
                    .hash(&mut h);
            }
        }
        h.finish()
    }
}

/// One queue's refusals this cycle: the lines `status` shows, and the notes `history` keeps.
#[derive(Default)]
struct Refused {
    lines: Vec<String>,
    notes: Vec<RefusalNote>,
}

/// SPEC §3 rule 9: how long a permanent refusal holds a write back at most.
const HOLD_FOR: chrono::Duration = chrono::Duration::hours(1);

fn write_action(kind: ActionKind) -> WriteAction {
    match kind {
        ActionKind::Add => WriteAction::Add,
        ActionKind::Del => WriteAction::Del,
    }
}

/// The sentence `once` and the cycle record carry while a write is held back.
fn held_line(h: &HeldWrite) -> String {
    let person = h
        .person
        .as_deref()
        .map(|p| format!(" ({p})"))
        .unwrap_or_default();
    format!(
        "queue {}: {} {}{person} held back: TRiNG refused it for good ({}); not sent again until the config or the calendars feeding the queue change, or an hour after {}",
        h.queue,
        h.action,
        h.member,
        h.answer,
        h.since.format("%Y-%m-%d %H:%M:%S UTC")
    )
}
