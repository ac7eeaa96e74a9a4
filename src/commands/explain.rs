//! `rooster explain QUEUE [--at TIME]` (SPEC §4): for each member desired or live, why — the
//! rule, event subject, calendar and times — and what the next cycle would do to it.

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{
    CommandError, EXIT_OK, Report, emit, local, observe_now, parse_time, queue_arg, rfc3339,
};
use crate::config::{Config, Secrets};
use crate::model::{Member, QueueNo};
use crate::words::Words;

/// What `explain` found for one queue.
#[derive(Debug, Serialize)]
pub struct ExplainReport {
    pub queue: QueueNo,
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// `at` in the configured zone, for the text.
    #[serde(skip)]
    pub at_text: String,
    /// Why the queue could not be listed, when it could not.
    pub live_error: Option<String>,
    /// Calendars not read this time: their last events are used, nothing is removed.
    pub unread_calendars: Vec<(String, String)>,
    pub members: Vec<MemberLine>,
}

#[derive(Debug, Serialize)]
pub struct MemberLine {
    pub member: Member,
    pub person: Option<String>,
    pub live: bool,
    pub owned: bool,
    /// Each reason it is desired, worded in the configured zone; empty when it is not.
    pub desired: Vec<String>,
    /// What the next cycle would do to it, and what it would hold back.
    pub next: Vec<String>,
    pub held_back: Vec<String>,
}

impl Report for ExplainReport {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "queue {} at {}", self.queue, self.at_text)?;
        if let Some(e) = &self.live_error {
            writeln!(out, "  live: unknown ({e})")?;
        }
        for (cal, e) in &self.unread_calendars {
            writeln!(
                out,
                "  note: calendar {cal} could not be read ({e}); its last events are used and nothing is removed"
            )?;
        }
        if self.members.is_empty() {
            writeln!(out, "  no member is desired or live")?;
        }
        for m in &self.members {
            let state = match (m.live, m.owned) {
                (true, true) => "live, owned by rooster",
                (true, false) => "live, added by hand, not owned",
                (false, _) => "not live",
            };
            writeln!(
                out,
                "  {} {} — {state}",
                m.member,
                m.person.as_deref().unwrap_or("")
            )?;
            if m.desired.is_empty() {
                writeln!(out, "      not desired: no active rule names it")?;
            }
            for d in &m.desired {
                writeln!(out, "      desired: {d}")?;
            }
            for n in &m.next {
                writeln!(out, "      next cycle: {n}")?;
            }
            for h in &m.held_back {
                writeln!(out, "      held back: {h}")?;
            }
        }
        Ok(())
    }
}

/// `explain QUEUE [--at TIME]`.
pub async fn explain(
    cfg: Config,
    secrets: &Secrets,
    queue: &str,
    at: Option<&str>,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let tz = cfg.timezone;
    let q = queue_arg(&cfg, queue)?;
    let at = at.map(|s| parse_time(s, tz)).transpose()?;
    let (rec, obs) = observe_now(cfg, secrets).await?;
    let at = at.unwrap_or(obs.at);
    let decision = rec.decide(&obs, at);
    let empty = BTreeMap::new();
    let desired = decision.desired.queues.get(&q).unwrap_or(&empty);
    let live = obs.live.get(&q);
    let owned = obs.owned.get(&q).cloned().unwrap_or_default();
    let plan = decision.plans.iter().find(|p| p.queue == q);
    let words = Words::new(rec.config().roster());
    let mut members: BTreeSet<Member> = desired.keys().cloned().collect();
    if let Some(Ok(l)) = live {
        members.extend(l.iter().cloned());
    }
    let report = ExplainReport {
        queue: q.clone(),
        at,
        at_text: local(at, tz),
        live_error: match live {
            Some(Err(e)) => Some(e.to_string()),
            None => Some("not read".to_owned()),
            Some(Ok(_)) => None,
        },
        unread_calendars: obs
            .calendars
            .values()
            .filter(|c| !c.complete)
            .map(|c| {
                let e = c.error.as_deref().unwrap_or("unknown error").to_owned();
                (c.calendar.clone(), e)
            })
            .collect(),
        members: members
            .into_iter()
            .map(|m| MemberLine {
                live: matches!(live, Some(Ok(l)) if l.contains(&m)),
                owned: owned.contains(&m),
                person: words.person_of(&m),
                desired: desired
                    .get(&m)
                    .map(|d| d.why.iter().map(|w| w.describe(tz)).collect())
                    .unwrap_or_default(),
                next: plan
                    .into_iter()
                    .flat_map(|p| p.actions.iter().filter(|a| a.member == m))
                    .map(|a| format!("{:?} ({})", a.kind, words.action(a)))
                    .collect(),
                held_back: plan
                    .into_iter()
                    .flat_map(|p| p.refused.iter().filter(|r| r.member.as_ref() == Some(&m)))
                    .map(|r| words.refusal(&q, r.kind, r.member.as_ref()))
                    .collect(),
                member: m,
            })
            .collect(),
    };
    emit(&report, false, out)?;
    Ok(EXIT_OK)
}
