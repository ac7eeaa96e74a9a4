//! The plan (SPEC §3): desired + live + owned + read status + the queue's policy → the adds
//! and dels for one queue, cut back by the safety rules, with every refusal and warning
//! returned as data.
//!
//! Pure: no HTTP, SQL, clock or logging. The executor performs `actions` in order (adds first,
//! then dels, so a queue is never momentarily emptier than it has to be), records `refused`
//! and `warnings`, and drops `forget_owned` from the owned set. The plan never branches on a
//! member's provenance.
//!
//! The plan returns data, not sentences: why a member is added is the schedule's `Why`s, why
//! a del is held back is a [`RefusalKind`]. `crate::words` puts them into the sentences the
//! log, `plan`, `explain` and `status` show, with the roster's names and time zone, so the
//! plan needs neither.
//!
//! Whether a del may go is decided in one place, [`DelGate`]: the plan asks it counting every
//! add as landed (its forecast), and the executor asks it again before each del counting only
//! what TRiNG confirmed (SPEC §3 rule 3: a hand-over whose new member cannot be added leaves
//! the old member in place).

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::config::{Ownership, QueueConfig};
use crate::model::{Member, QueueNo};
use crate::schedule::{DesiredMember, Why};

/// Everything the plan for one queue depends on.
#[derive(Debug, Clone, Copy)]
pub struct QueueInput<'a> {
    pub queue: &'a QueueConfig,
    /// `schedule::Desired::queues[queue]`.
    pub desired: &'a BTreeMap<Member, DesiredMember>,
    /// What TRiNG `list` returned; `None` when it failed or could not be parsed (rule 2).
    pub live: Option<&'a BTreeSet<Member>>,
    /// The members rooster added and has not removed since.
    pub owned: &'a BTreeSet<Member>,
    /// Every calendar feeding this queue (`schedule::calendars_feeding`) was read completely
    /// this cycle (rule 1).
    pub complete: bool,
}

/// What one cycle does to one queue.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueuePlan {
    pub queue: QueueNo,
    /// Adds (sorted by member) then dels (sorted by member): the order to execute them in.
    pub actions: Vec<Action>,
    /// Dels the safety rules held back, or the whole queue when it could not be read.
    pub refused: Vec<Refusal>,
    pub warnings: Vec<PlanWarning>,
    /// Owned members gone from live that are not desired either: drop them from owned
    /// (SPEC §3 "Drift"). Sorted.
    pub forget_owned: Vec<Member>,
    /// The gate as it stands before any of this plan's writes: the executor asks a copy of it
    /// before each del, telling it what TRiNG confirmed on the way.
    #[serde(skip)]
    pub gate: DelGate,
}

/// SPEC §3 rules 1, 3 and 4 for one queue's dels, in the one place that decides whether a del
/// may be sent. It tracks the members *surely* in the queue: those listed at the start of
/// the cycle, plus each add TRiNG confirmed, minus each del sent (a del whose answer never
/// came may have landed). A failed, refused, held-back or uncertain add never counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DelGate {
    /// Rule 1: every calendar feeding the queue was read completely this cycle.
    complete: bool,
    /// Rule 3.
    keep_last: bool,
    /// Rule 4.
    max_removals: usize,
    present: BTreeSet<Member>,
    dels_sent: usize,
}

impl DelGate {
    /// The gate of a queue whose live membership was `live` when this cycle listed it.
    pub fn new(queue: &QueueConfig, live: &BTreeSet<Member>, complete: bool) -> Self {
        DelGate {
            complete,
            keep_last: queue.keep_last,
            max_removals: queue.max_removals,
            present: live.clone(),
            dels_sent: 0,
        }
    }

    /// A gate that lets no del through: the queue could not be listed (rule 2).
    pub fn closed() -> Self {
        DelGate::default()
    }

    /// Why `m` may not be removed now, or `None` when it may. Rule 1 first (nothing can be
    /// removed on a half-read calendar), then rule 3 (never the last member), then rule 4.
    pub fn refuses(&self, m: &Member) -> Option<RefusalKind> {
        if !self.complete {
            return Some(RefusalKind::IncompleteRead);
        }
        if self.keep_last && self.present.iter().all(|p| p == m) {
            return Some(RefusalKind::KeepLast);
        }
        if self.dels_sent >= self.max_removals {
            return Some(RefusalKind::RemovalCap);
        }
        None
    }

    /// TRiNG confirmed `m` is in the queue (added, or answered "already a member").
    pub fn added(&mut self, m: &Member) {
        self.present.insert(m.clone());
    }

    /// A del of `m` is being sent: from now on `m` may be gone, whatever the answer.
    pub fn del_sent(&mut self, m: &Member) {
        self.present.remove(m);
        self.dels_sent += 1;
    }

    /// TRiNG answered that the del of `m` was refused: `m` is still there.
    pub fn del_refused(&mut self, m: &Member) {
        self.present.insert(m.clone());
    }
}

impl QueuePlan {
    pub fn adds(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.kind == ActionKind::Add)
    }
    pub fn dels(&self) -> impl Iterator<Item = &Action> {
        self.actions.iter().filter(|a| a.kind == ActionKind::Del)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionKind {
    Add,
    Del,
}

/// One TRiNG write.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Action {
    #[serde(rename = "action")]
    pub kind: ActionKind,
    pub member: Member,
    /// For an add, the person the schedule names; `None` for a del (`crate::words` names it
    /// from the roster).
    pub person: Option<String>,
    /// For an add, the rules, events, static or fallback entries that want the member; empty
    /// for a del (nothing wants it: that is why it goes).
    pub why: Vec<Why>,
    /// An add that puts back an owned member someone removed behind rooster's back.
    pub drift: bool,
    /// A del of a member rooster did not add, from an exclusive queue.
    pub unowned: bool,
}

/// Why a del (or a whole queue) was held back. Serialised as SPEC §4 `plan --json` names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RefusalKind {
    /// Rule 1: a calendar feeding the queue was not read completely.
    IncompleteRead,
    /// Rule 3: the del would have left the queue empty.
    KeepLast,
    /// Rule 4: more dels than `max_removals`.
    RemovalCap,
    /// Rule 2: TRiNG `list` failed; the queue is left alone.
    UnreadableQueue,
}

impl RefusalKind {
    /// Every kind, for the metrics that export one series per kind from the start.
    pub const ALL: [RefusalKind; 4] = [
        RefusalKind::IncompleteRead,
        RefusalKind::KeepLast,
        RefusalKind::RemovalCap,
        RefusalKind::UnreadableQueue,
    ];

    /// The name SPEC §4 `plan --json` gives the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            RefusalKind::IncompleteRead => "incomplete_read",
            RefusalKind::KeepLast => "keep_last",
            RefusalKind::RemovalCap => "removal_cap",
            RefusalKind::UnreadableQueue => "unreadable_queue",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Refusal {
    pub kind: RefusalKind,
    /// The member not removed; `None` for [`RefusalKind::UnreadableQueue`].
    pub member: Option<Member>,
}

/// Something the log must say about this queue that is not a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PlanWarning {
    /// An owned, desired member disappeared from live and is added again (SPEC §3 "Drift").
    Drift {
        queue: QueueNo,
        member: Member,
        person: Option<String>,
    },
    /// Rule 1: adds only this cycle; `postponed` dels were held back.
    IncompleteRead { queue: QueueNo, postponed: usize },
}

/// The plan for one queue (SPEC §3), safety rules applied in this order: unreadable queue
/// (nothing at all), incomplete read (no dels), keep last (never empty the queue), removal
/// cap (at most `max_removals` dels). Adds are never held back: they only ever bring the queue
/// closer to what the calendars say and cannot empty it.
pub fn plan_queue(input: &QueueInput) -> QueuePlan {
    let queue = input.queue.number.clone();
    let mut plan = QueuePlan {
        queue: queue.clone(),
        actions: Vec::new(),
        refused: Vec::new(),
        warnings: Vec::new(),
        forget_owned: Vec::new(),
        gate: DelGate::closed(),
    };

    // Rule 2: without live membership nothing can be compared, not even drift.
    let Some(live) = input.live else {
        plan.refused.push(Refusal {
            kind: RefusalKind::UnreadableQueue,
            member: None,
        });
        return plan;
    };

    // add = desired − live; an owned one among them was removed behind our back (drift).
    for (member, dm) in input.desired.iter().filter(|(m, _)| !live.contains(m)) {
        let drift = input.owned.contains(member);
        if drift {
            plan.warnings.push(PlanWarning::Drift {
                queue: queue.clone(),
                member: member.clone(),
                person: dm.person.clone(),
            });
        }
        plan.actions.push(Action {
            kind: ActionKind::Add,
            member: member.clone(),
            person: dm.person.clone(),
            why: dm.why.clone(),
            drift,
            unowned: false,
        });
    }

    // Owned, gone from live and not desired: nothing to do but forget it.
    plan.forget_owned = input
        .owned
        .iter()
        .filter(|m| !live.contains(m) && !input.desired.contains_key(m))
        .cloned()
        .collect();

    // additive: del = (live ∩ owned) − desired; exclusive: del = live − desired.
    let candidates: Vec<&Member> = live
        .iter()
        .filter(|m| !input.desired.contains_key(m))
        .filter(|m| match input.queue.ownership {
            Ownership::Additive => input.owned.contains(m),
            Ownership::Exclusive => true,
        })
        .collect();

    plan.gate = DelGate::new(input.queue, live, input.complete);

    // Rule 1: a calendar feeding the queue failed, so its absence of events proves nothing.
    if !input.complete {
        for m in &candidates {
            plan.refused.push(Refusal {
                kind: RefusalKind::IncompleteRead,
                member: Some((*m).clone()),
            });
        }
        plan.warnings.push(PlanWarning::IncompleteRead {
            queue: queue.clone(),
            postponed: candidates.len(),
        });
        return plan;
    }

    // Rules 3 and 4, asked of the same gate the executor asks, forecasting that every add
    // lands. The executor asks again counting only the adds TRiNG confirmed.
    let mut forecast = plan.gate.clone();
    for a in &plan.actions {
        forecast.added(&a.member);
    }
    for m in candidates {
        if let Some(kind) = forecast.refuses(m) {
            plan.refused.push(Refusal {
                kind,
                member: Some(m.clone()),
            });
            continue;
        }
        forecast.del_sent(m);
        plan.actions.push(Action {
            kind: ActionKind::Del,
            member: m.clone(),
            person: None,
            why: Vec::new(),
            drift: false,
            unowned: !input.owned.contains(m),
        });
    }
    plan
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::testkit::{jan_and_piet, member as m, support_shift as shift_why};

    // ---- fixture builder -------------------------------------------------------------------

    fn set(ms: &[&str]) -> BTreeSet<Member> {
        ms.iter().map(|s| m(s)).collect()
    }

    /// `Case::new().desired(["ext:201"]).live(["ext:202"]).owned(["ext:202"]).plan()`.
    #[derive(Clone, Debug)]
    struct Case {
        queue: QueueConfig,
        desired: BTreeMap<Member, DesiredMember>,
        live: Option<BTreeSet<Member>>,
        owned: BTreeSet<Member>,
        complete: bool,
    }

    impl Case {
        fn new() -> Self {
            Case {
                queue: QueueConfig {
                    number: QueueNo::parse("600").expect("valid"),
                    name: "Support".into(),
                    ownership: Ownership::Additive,
                    keep_last: true,
                    max_removals: 20,
                    fallback: Vec::new(),
                    static_members: Vec::new(),
                },
                desired: BTreeMap::new(),
                live: Some(BTreeSet::new()),
                owned: BTreeSet::new(),
                complete: true,
            }
        }
        fn desired(mut self, ms: &[&str]) -> Self {
            self.desired = ms
                .iter()
                .map(|s| {
                    let member = m(s);
                    let dm = DesiredMember {
                        member: member.clone(),
                        person: crate::words::person_of(&jan_and_piet(), &member),
                        why: vec![shift_why()],
                    };
                    (member, dm)
                })
                .collect();
            self
        }
        fn live(mut self, ms: &[&str]) -> Self {
            self.live = Some(set(ms));
            self
        }
        fn unreadable(mut self) -> Self {
            self.live = None;
            self
        }
        fn owned(mut self, ms: &[&str]) -> Self {
            self.owned = set(ms);
            self
        }
        fn exclusive(mut self) -> Self {
            self.queue.ownership = Ownership::Exclusive;
            self
        }
        fn incomplete(mut self) -> Self {
            self.complete = false;
            self
        }
        fn keep_last(mut self, on: bool) -> Self {
            self.queue.keep_last = on;
            self
        }
        fn max_removals(mut self, n: usize) -> Self {
            self.queue.max_removals = n;
            self
        }
        fn plan(&self) -> QueuePlan {
            plan_queue(&QueueInput {
                queue: &self.queue,
                desired: &self.desired,
                live: self.live.as_ref(),
                owned: &self.owned,
                complete: self.complete,
            })
        }
        /// Live and owned after executing `plan` in full.
        fn applied(&self, plan: &QueuePlan) -> Case {
            let mut next = self.clone();
            let live = next.live.get_or_insert_with(BTreeSet::new);
            for a in &plan.actions {
                match a.kind {
                    ActionKind::Add => {
                        live.insert(a.member.clone());
                        next.owned.insert(a.member.clone());
                    }
                    ActionKind::Del => {
                        live.remove(&a.member);
                        next.owned.remove(&a.member);
                    }
                }
            }
            for f in &plan.forget_owned {
                next.owned.remove(f);
            }
            next
        }
    }

    fn ops(plan: &QueuePlan) -> Vec<String> {
        plan.actions
            .iter()
            .map(|a| {
                let k = match a.kind {
                    ActionKind::Add => "add",
                    ActionKind::Del => "del",
                };
                format!("{k} {}", a.member)
            })
            .collect()
    }

    fn refused(plan: &QueuePlan) -> Vec<(RefusalKind, Option<String>)> {
        plan.refused
            .iter()
            .map(|r| (r.kind, r.member.as_ref().map(ToString::to_string)))
            .collect()
    }

    // ---- set arithmetic --------------------------------------------------------------------

    #[test]
    fn adds_and_dels_by_ownership() {
        let cases: &[(&str, Case, &[&str])] = &[
            (
                "desired member missing is added",
                Case::new().desired(&["ext:201"]),
                &["add ext:201"],
            ),
            (
                "desired and live: nothing",
                Case::new().desired(&["ext:201"]).live(&["ext:201"]),
                &[],
            ),
            (
                "additive removes owned undesired members",
                Case::new()
                    .desired(&["ext:201"])
                    .live(&["ext:201", "ext:202"])
                    .owned(&["ext:202"]),
                &["del ext:202"],
            ),
            (
                "additive never removes members added by hand",
                Case::new()
                    .desired(&["ext:201"])
                    .live(&["ext:201", "ext:299"]),
                &[],
            ),
            (
                "exclusive removes everything undesired",
                Case::new()
                    .exclusive()
                    .desired(&["ext:201"])
                    .live(&["ext:201", "ext:299"]),
                &["del ext:299"],
            ),
            (
                "adds come before dels, each sorted",
                Case::new()
                    .desired(&["cu:0612345678", "ext:203", "ext:201"])
                    .live(&["ext:205", "ext:204"])
                    .owned(&["ext:204", "ext:205"]),
                &[
                    "add ext:201",
                    "add ext:203",
                    "add cu:0612345678",
                    "del ext:204",
                    "del ext:205",
                ],
            ),
        ];
        for (situation, case, want) in cases {
            let plan = case.plan();
            assert_eq!(ops(&plan), *want, "{situation}");
            assert!(plan.refused.is_empty(), "{situation}: {:?}", plan.refused);
        }
    }

    #[test]
    fn desired_member_live_but_unowned_stays_unowned() {
        let plan = Case::new().desired(&["ext:201"]).live(&["ext:201"]).plan();
        assert!(plan.actions.is_empty());
        assert!(plan.forget_owned.is_empty());
    }

    #[test]
    fn actions_carry_person_and_why_as_data() {
        let plan = Case::new()
            .desired(&["ext:201"])
            .live(&["ext:202", "ext:299"])
            .owned(&["ext:202"])
            .exclusive()
            .plan();
        let add = &plan.actions[0];
        assert_eq!(add.person.as_deref(), Some("Jan de Vries"));
        assert_eq!(add.why, vec![shift_why()]);
        assert!(!add.drift && !add.unowned);
        let (owned_del, hand_del) = (&plan.actions[1], &plan.actions[2]);
        assert_eq!(owned_del.member, m("ext:202"));
        assert!(owned_del.why.is_empty() && owned_del.person.is_none());
        assert!(!owned_del.unowned, "rooster added ext:202");
        assert_eq!(hand_del.member, m("ext:299"));
        assert!(hand_del.unowned, "ext:299 was added by hand");
        let json = serde_json::to_value(&plan).expect("plan serialises");
        assert_eq!(json["actions"][0]["action"], "add");
        assert_eq!(json["actions"][0]["member"], "ext:201");
        assert_eq!(json["actions"][1]["action"], "del");
    }

    // ---- drift -----------------------------------------------------------------------------

    #[test]
    fn owned_member_gone_from_live_is_re_added_while_desired() {
        let plan = Case::new().desired(&["ext:201"]).owned(&["ext:201"]).plan();
        assert_eq!(ops(&plan), ["add ext:201"]);
        assert!(plan.actions[0].drift);
        assert_eq!(
            plan.warnings,
            [PlanWarning::Drift {
                queue: QueueNo::parse("600").expect("valid"),
                member: m("ext:201"),
                person: Some("Jan de Vries".into()),
            }]
        );
        assert!(plan.forget_owned.is_empty());
    }

    #[test]
    fn owned_member_gone_from_live_and_undesired_is_forgotten() {
        let plan = Case::new().live(&["ext:299"]).owned(&["ext:202"]).plan();
        assert!(plan.actions.is_empty());
        assert_eq!(plan.forget_owned, vec![m("ext:202")]);
    }

    // ---- the gate the executor asks -------------------------------------------------------

    /// The executor's side of rules 3 and 4 (SPEC §3), by literal sequences of what TRiNG
    /// answered: live {A, B}, desired {C}, exclusive. Every add of C fails.
    #[test]
    fn gate_counts_only_what_tring_confirmed() {
        let case = Case::new().exclusive().live(&["ext:201", "ext:202"]);
        let (a, b, c) = (m("ext:201"), m("ext:202"), m("ext:203"));
        let live = set(&["ext:201", "ext:202"]);
        let fresh = || DelGate::new(&case.queue, &live, true);

        // The add of C failed; the del of A was sent and its answer never came: A may be
        // gone, so B is the last member that is surely there.
        let mut gate = fresh();
        assert_eq!(gate.refuses(&a), None);
        gate.del_sent(&a);
        assert_eq!(gate.refuses(&b), Some(RefusalKind::KeepLast));

        // TRiNG refused the del of A: A is still there, so B may go.
        gate.del_refused(&a);
        assert_eq!(gate.refuses(&b), None);

        // Had the add of C been confirmed, both could go.
        let mut gate = fresh();
        gate.added(&c);
        gate.del_sent(&a);
        assert_eq!(gate.refuses(&b), None);
        gate.del_sent(&b);
        assert_eq!(gate.refuses(&c), Some(RefusalKind::KeepLast));

        // Rule 4 counts every del sent, whatever its answer.
        let capped = case.clone().max_removals(1);
        let mut gate = DelGate::new(&capped.queue, &live, true);
        gate.added(&c);
        gate.del_sent(&a);
        gate.del_refused(&a);
        assert_eq!(gate.refuses(&b), Some(RefusalKind::RemovalCap));

        // Rule 1 before all, and a closed gate (rule 2) lets nothing through.
        assert_eq!(
            DelGate::new(&case.queue, &live, false).refuses(&a),
            Some(RefusalKind::IncompleteRead)
        );
        assert!(DelGate::closed().refuses(&a).is_some());
    }

    // ---- safety rules ----------------------------------------------------------------------

    #[test]
    fn rule1_incomplete_read_allows_adds_but_no_dels() {
        let plan = Case::new()
            .incomplete()
            .desired(&["ext:201"])
            .live(&["ext:202", "ext:203"])
            .owned(&["ext:202", "ext:203"])
            .plan();
        assert_eq!(ops(&plan), ["add ext:201"]);
        assert_eq!(
            refused(&plan),
            [
                (RefusalKind::IncompleteRead, Some("ext:202".into())),
                (RefusalKind::IncompleteRead, Some("ext:203".into())),
            ]
        );
        assert!(plan.warnings.contains(&PlanWarning::IncompleteRead {
            queue: QueueNo::parse("600").expect("valid"),
            postponed: 2,
        }));
    }

    #[test]
    fn rule2_unreadable_queue_gets_no_action_at_all() {
        let plan = Case::new()
            .unreadable()
            .desired(&["ext:201"])
            .owned(&["ext:202"])
            .plan();
        assert!(plan.actions.is_empty());
        assert!(
            plan.forget_owned.is_empty(),
            "cannot tell drift without live"
        );
        assert_eq!(refused(&plan), [(RefusalKind::UnreadableQueue, None)]);
        let json = serde_json::to_value(&plan.refused[0]).expect("serialises");
        assert_eq!(json["kind"], "unreadable_queue");
    }

    #[test]
    fn rule3_keep_last_refuses_removing_last_member() {
        let cases: &[(&str, Case, &[&str], &[&str])] = &[
            (
                "only member, nobody coming in",
                Case::new().live(&["ext:201"]).owned(&["ext:201"]),
                &[],
                &["ext:201"],
            ),
            (
                "several members all going: the last in sort order stays",
                Case::new()
                    .exclusive()
                    .live(&["ext:201", "ext:202", "cu:0612345678"])
                    .owned(&["ext:201"]),
                &["del ext:201", "del ext:202"],
                &["cu:0612345678"],
            ),
            (
                "replacing the only member is fine",
                Case::new()
                    .desired(&["ext:202"])
                    .live(&["ext:201"])
                    .owned(&["ext:201"]),
                &["add ext:202", "del ext:201"],
                &[],
            ),
            (
                "a hand-added member keeps the queue filled",
                Case::new()
                    .live(&["ext:201", "ext:299"])
                    .owned(&["ext:201"]),
                &["del ext:201"],
                &[],
            ),
        ];
        for (situation, case, want_ops, kept) in cases {
            let plan = case.plan();
            assert_eq!(ops(&plan), *want_ops, "{situation}");
            let want_refused: Vec<_> = kept
                .iter()
                .map(|k| (RefusalKind::KeepLast, Some(k.to_string())))
                .collect();
            assert_eq!(refused(&plan), want_refused, "{situation}");
            let after = case.applied(&plan);
            assert!(
                !after.live.unwrap_or_default().is_empty(),
                "{situation}: emptied"
            );
        }
    }

    #[test]
    fn rule3_off_lets_the_queue_empty() {
        let plan = Case::new()
            .keep_last(false)
            .live(&["ext:201"])
            .owned(&["ext:201"])
            .plan();
        assert_eq!(ops(&plan), ["del ext:201"]);
        assert!(plan.refused.is_empty());
    }

    #[test]
    fn rule4_removal_cap_postpones_the_rest() {
        let plan = Case::new()
            .max_removals(2)
            .desired(&["ext:201"])
            .live(&["ext:202", "ext:203", "ext:204", "ext:205"])
            .owned(&["ext:202", "ext:203", "ext:204", "ext:205"])
            .plan();
        assert_eq!(
            ops(&plan),
            ["add ext:201", "del ext:202", "del ext:203"],
            "adds are never capped"
        );
        assert_eq!(
            refused(&plan),
            [
                (RefusalKind::RemovalCap, Some("ext:204".into())),
                (RefusalKind::RemovalCap, Some("ext:205".into())),
            ]
        );
    }

    #[test]
    fn rule4_cap_counts_after_keep_last() {
        let plan = Case::new()
            .exclusive()
            .max_removals(2)
            .live(&["ext:201", "ext:202", "ext:203"])
            .plan();
        assert_eq!(ops(&plan), ["del ext:201", "del ext:202"]);
        assert_eq!(
            refused(&plan),
            [(RefusalKind::KeepLast, Some("ext:203".into()))]
        );
    }

    // ---- properties ------------------------------------------------------------------------

    const POOL: [&str; 6] = [
        "ext:201",
        "ext:202",
        "ext:203",
        "ext:204",
        "cu:0612345678",
        "cu:0687654321",
    ];

    fn arb_set() -> impl Strategy<Value = Vec<&'static str>> {
        proptest::sample::subsequence(POOL.to_vec(), 0..=POOL.len())
    }

    fn arb_case() -> impl Strategy<Value = Case> {
        (
            arb_set(),
            proptest::option::weighted(0.9, arb_set()),
            arb_set(),
            any::<bool>(),
            any::<bool>(),
            any::<bool>(),
            0usize..4,
        )
            .prop_map(|(d, live, owned, excl, complete, keep, cap)| {
                let mut c = Case::new()
                    .desired(&d)
                    .owned(&owned)
                    .keep_last(keep)
                    .max_removals(cap);
                c.live = live.map(|l| set(&l));
                c.complete = complete;
                if excl {
                    c = c.exclusive();
                }
                c
            })
    }

    proptest! {
        #[test]
        fn never_dels_when_read_incomplete(c in arb_case()) {
            let plan = c.clone().incomplete().plan();
            prop_assert_eq!(plan.dels().count(), 0);
        }

        #[test]
        fn additive_never_dels_a_member_not_owned(c in arb_case()) {
            let mut c = c;
            c.queue.ownership = Ownership::Additive;
            let plan = c.plan();
            for d in plan.dels() {
                prop_assert!(c.owned.contains(&d.member), "{} not owned", d.member);
            }
        }

        #[test]
        fn keep_last_never_empties_a_queue_that_had_members(c in arb_case()) {
            let c = c.keep_last(true);
            let had = c.live.as_ref().is_some_and(|l| !l.is_empty());
            let after = c.applied(&c.plan());
            if had {
                prop_assert!(!after.live.unwrap_or_default().is_empty());
            }
        }

        #[test]
        fn dels_never_exceed_max_removals(c in arb_case()) {
            prop_assert!(c.plan().dels().count() <= c.queue.max_removals);
        }

        #[test]
        fn unreadable_queue_means_no_actions(c in arb_case()) {
            let plan = c.unreadable().plan();
            prop_assert!(plan.actions.is_empty());
            prop_assert_eq!(plan.refused.len(), 1);
        }

        #[test]
        fn actions_only_move_live_towards_desired(c in arb_case()) {
            let plan = c.plan();
            let live = c.live.clone().unwrap_or_default();
            for a in &plan.actions {
                match a.kind {
                    ActionKind::Add => {
                        prop_assert!(c.desired.contains_key(&a.member));
                        prop_assert!(!live.contains(&a.member));
                    }
                    ActionKind::Del => {
                        prop_assert!(!c.desired.contains_key(&a.member));
                        prop_assert!(live.contains(&a.member));
                    }
                }
            }
            // Adds first, then dels; no member twice.
            let kinds: Vec<ActionKind> = plan.actions.iter().map(|a| a.kind).collect();
            let mut sorted = kinds.clone();
            sorted.sort();
            prop_assert_eq!(kinds, sorted);
            let members: BTreeSet<&Member> = plan.actions.iter().map(|a| &a.member).collect();
            prop_assert_eq!(members.len(), plan.actions.len());
        }

        #[test]
        fn every_candidate_del_is_done_or_refused_exactly_once(c in arb_case()) {
            prop_assume!(c.live.is_some());
            let live = c.live.clone().unwrap_or_default();
            let candidates: BTreeSet<Member> = live.iter()
                .filter(|m| !c.desired.contains_key(*m))
                .filter(|m| c.queue.ownership == Ownership::Exclusive || c.owned.contains(*m))
                .cloned().collect();
            let plan = c.plan();
            let mut seen: Vec<Member> = plan.dels().map(|a| a.member.clone()).collect();
            seen.extend(plan.refused.iter().filter_map(|r| r.member.clone()));
            seen.sort();
            prop_assert_eq!(seen, candidates.into_iter().collect::<Vec<_>>());
        }

        #[test]
        fn applying_a_plan_then_planning_again_converges_to_no_actions(c in arb_case()) {
            prop_assume!(c.live.is_some());
            let plan = c.plan();
            let next = c.applied(&plan);
            let again = next.plan();
            let held_back = plan.refused.iter()
                .any(|r| matches!(r.kind, RefusalKind::IncompleteRead | RefusalKind::RemovalCap));
            if !held_back {
                prop_assert!(again.actions.is_empty(), "second plan {:?}", ops(&again));
            }
            // With dels postponed, repeated cycles still settle, and keep within the cap.
            let mut cur = next.clone();
            cur.complete = true;
            for _ in 0..POOL.len() + 1 {
                let p = cur.plan();
                if p.actions.is_empty() { break; }
                cur = cur.applied(&p);
            }
            prop_assert!(cur.plan().actions.is_empty());
        }
    }
}
