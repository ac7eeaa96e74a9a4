//! The decide phase of a cycle: desired sets from the schedule and one plan per observed
//! queue (both pure, `crate::schedule` and `crate::plan`); which queues a boundary cycle
//! must take up.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Utc};

use super::Reconciler;
use super::observe::Observation;
use super::ports::{Calendars, Clock, Pbx};
use crate::model::{CalendarRef, QueueNo};
use crate::plan::{QueueInput, QueuePlan, plan_queue};
use crate::schedule::Desired;

/// The decision for one instant: desired sets and one plan per queue.
#[derive(Debug, Clone)]
pub struct Decision {
    pub desired: Desired,
    pub plans: Vec<QueuePlan>,
}

impl<C: Calendars, P: Pbx, K: Clock> Reconciler<C, P, K> {
    /// The queues whose desired set at `at` differs from the last cycle's (all of them before
    /// the first cycle).
    pub(super) fn changed_queues(&self, at: DateTime<Utc>) -> BTreeSet<QueueNo> {
        let desired = self.schedule.desired_at(&self.cfg.roster(), at);
        desired
            .queues
            .into_iter()
            .filter(|(q, d)| {
                self.last_desired
                    .get(q)
                    .is_none_or(|last| !last.iter().eq(d.keys()))
            })
            .map(|(q, _)| q)
            .collect()
    }

    /// Desired membership at `at` and the plan that turns live (as observed) into it.
    pub fn decide(&self, obs: &Observation, at: DateTime<Utc>) -> Decision {
        let desired = obs.schedule.desired_at(&self.cfg.roster(), at);
        let read_well = |c: &CalendarRef| obs.calendars.get(c).is_some_and(|s| s.complete);
        let own_read_well = self.own_calendars.iter().all(read_well);
        let empty_members = BTreeMap::new();
        let empty_set = BTreeSet::new();
        // Only the queues observed: all of them, or at a boundary those whose set changed.
        let plans =
            self.cfg
                .queues
                .iter()
                .filter(|q| obs.live.contains_key(&q.number))
                .map(|q| {
                    let complete = self.feeds.get(&q.number).is_none_or(|f| {
                        (!f.own || own_read_well) && f.shared.iter().all(read_well)
                    });
                    plan_queue(&QueueInput {
                        queue: q,
                        desired: desired.queues.get(&q.number).unwrap_or(&empty_members),
                        live: obs.live.get(&q.number).and_then(|r| r.as_ref().ok()),
                        owned: obs.owned.get(&q.number).unwrap_or(&empty_set),
                        complete,
                    })
                })
                .collect();
        Decision { desired, plans }
    }
}
