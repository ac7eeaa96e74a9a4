//! SPEC §3 rule 7, the whole write protocol: every TRiNG write sits between an *intent*
//! recorded before it is sent and an *outcome* recorded after its answer; an intent left
//! open (a crash, a shutdown mid-write, an answer that never came) is *settled* against the
//! queue's next `list` before anything else is planned for that queue. The store keeps the
//! rows (`journal` table); this file decides what they mean.
//!
//! Expected flow of one write:
//! ```text
//! intent (journal row, outcome NULL) ──send──> answer ──> outcome: applied / already_in_state
//!                                                                   (ownership changes in
//!                                                                    the same transaction)
//!                                     no answer ──> outcome: uncertain (intent stays open)
//!                                     refused   ──> outcome: failed (nothing changed)
//! crash anywhere after the intent ──> next start: settle(open intent, live)
//! ```
//! Guarantees: a crash at any point loses no ownership — an add that reached TRiNG is found
//! live and owned; a del that reached it is found gone and no longer owned; a write that
//! never left changes nothing. An open intent of a queue that cannot be listed stays open
//! until a later cycle can list it (rule 2: nothing is decided about an unreadable queue).
//!
//! The known limit (SPEC §3 rule 7): an add that never reached TRiNG, followed by a person
//! adding the same member by hand before the restart, is settled as owned. The window is
//! crash-to-restart; the settlement's log line says so.

use chrono::{DateTime, Utc};
use tracing::warn;

use crate::cycle::Lists;
use crate::store::{Intent, IntentId, Outcome, Store, StoreError, WriteAction};

/// How an open intent is decided against live: whether the write took effect, and the
/// sentence the log and the journal keep. Pure.
pub fn settlement(action: WriteAction, present_now: bool) -> (bool, &'static str) {
    match (action, present_now) {
        (WriteAction::Add, true) => (
            true,
            "found live after the write's reply was lost; taken as owned (had someone added it by hand meanwhile, rooster now owns it)",
        ),
        (WriteAction::Add, false) => (false, "not live: the add never reached TRiNG"),
        (WriteAction::Del, false) => (
            true,
            "gone from live: the del reached TRiNG; no longer owned",
        ),
        (WriteAction::Del, true) => (false, "still live: the del never reached TRiNG"),
    }
}

/// The journal of one writer store.
#[derive(Debug, Clone, Copy)]
pub struct Journal<'a> {
    store: &'a Store,
}

impl<'a> Journal<'a> {
    pub fn new(store: &'a Store) -> Self {
        Journal { store }
    }

    /// Before a write is sent.
    pub async fn intent(&self, intent: &Intent) -> Result<IntentId, StoreError> {
        self.store.record_intent(intent).await
    }

    /// After its answer (or the lack of one: [`Outcome::Uncertain`] keeps the intent open).
    pub async fn outcome(
        &self,
        id: IntentId,
        outcome: &Outcome,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.store.record_outcome(id, outcome, at).await
    }

    /// Settles every open intent whose queue was listed (`live`), before anything is planned.
    pub async fn settle(&self, live: &Lists, now: DateTime<Utc>) -> Result<(), StoreError> {
        for (id, intent) in self.store.open_intents().await? {
            let Some(Ok(set)) = live.get(&intent.queue) else {
                continue; // unreadable now: settle on a later cycle
            };
            let (applied, note) = settlement(intent.action, set.contains(&intent.member));
            warn!(
                queue = %intent.queue,
                member = %intent.member,
                action = %intent.action,
                intent = %id,
                "open intent settled: {note}"
            );
            self.store.settle_intent(id, applied, note, now).await?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_open_intent_is_decided_by_whether_live_shows_its_effect() {
        assert!(
            settlement(WriteAction::Add, true).0,
            "add found live: applied"
        );
        assert!(
            !settlement(WriteAction::Add, false).0,
            "add not live: never reached"
        );
        assert!(settlement(WriteAction::Del, false).0, "del gone: applied");
        assert!(
            !settlement(WriteAction::Del, true).0,
            "del still live: never reached"
        );
        assert!(
            settlement(WriteAction::Add, true).1.contains("by hand"),
            "the known limit is named where it can bite"
        );
    }
}
