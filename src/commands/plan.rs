//! `rooster plan [--at TIME] [--json]` (SPEC §4): what a cycle would do now, or the desired
//! membership at TIME; writes nothing (SPEC §3 rule 5). The JSON is SPEC §4's `plan --json`
//! object.

use std::io::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{CommandError, EXIT_OK, Report, emit, local, observe_now, parse_time, rfc3339};
use crate::config::{Config, Secrets};
use crate::cycle::{Decision, Observation};
use crate::model::{Member, QueueNo};
use crate::plan::{ActionKind, RefusalKind};
use crate::words::Words;

/// SPEC §4 `plan --json`.
#[derive(Debug, Serialize)]
pub struct PlanReport {
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub queues: Vec<QueueLine>,
    pub calendars: Vec<crate::cycle::CalendarStatus>,
    #[serde(skip)]
    pub warnings: Vec<String>,
    #[serde(skip)]
    pub timezone: Tz,
}

#[derive(Debug, Serialize)]
pub struct QueueLine {
    pub queue: QueueNo,
    #[serde(skip)]
    pub name: String,
    pub desired: Vec<DesiredLine>,
    /// `None` when the queue could not be listed (SPEC §3 rule 2).
    pub live: Option<Vec<Member>>,
    pub owned: Vec<Member>,
    pub actions: Vec<ActionLine>,
    pub refused: Vec<RefusedLine>,
}

#[derive(Debug, Serialize)]
pub struct DesiredLine {
    pub member: Member,
    pub person: Option<String>,
    pub why: Vec<WhyLine>,
}

#[derive(Debug, Serialize)]
pub struct WhyLine {
    pub rule: String,
    pub calendar: String,
    pub subject: String,
    #[serde(with = "rfc3339")]
    pub from: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub to: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct ActionLine {
    pub action: ActionKind,
    pub member: Member,
    pub person: Option<String>,
    pub reason: String,
}

#[derive(Debug, Serialize)]
pub struct RefusedLine {
    pub kind: RefusalKind,
    pub member: Option<Member>,
    pub reason: String,
}

impl PlanReport {
    /// The report for `decision`, made from `obs` for the instant `at`.
    pub fn new(cfg: &Config, obs: &Observation, decision: &Decision, at: DateTime<Utc>) -> Self {
        let words = Words::new(cfg.roster());
        let queues = decision
            .plans
            .iter()
            .map(|p| QueueLine {
                queue: p.queue.clone(),
                name: cfg
                    .queue(&p.queue)
                    .map(|q| q.name.clone())
                    .unwrap_or_default(),
                desired: decision
                    .desired
                    .queues
                    .get(&p.queue)
                    .into_iter()
                    .flat_map(|d| d.values())
                    .map(|d| DesiredLine {
                        member: d.member.clone(),
                        person: d.person.clone(),
                        why: d
                            .why
                            .iter()
                            .map(|w| WhyLine {
                                rule: w.rule.clone(),
                                calendar: w.calendar.clone(),
                                subject: w.subject.clone(),
                                from: w.from,
                                to: w.to,
                            })
                            .collect(),
                    })
                    .collect(),
                live: match obs.live.get(&p.queue) {
                    Some(Ok(l)) => Some(l.iter().cloned().collect()),
                    _ => None,
                },
                owned: obs
                    .owned
                    .get(&p.queue)
                    .into_iter()
                    .flatten()
                    .cloned()
                    .collect(),
                actions: p
                    .actions
                    .iter()
                    .map(|a| ActionLine {
                        action: a.kind,
                        member: a.member.clone(),
                        person: words.person(a),
                        reason: words.action(a),
                    })
                    .collect(),
                refused: p
                    .refused
                    .iter()
                    .map(|r| RefusedLine {
                        kind: r.kind,
                        member: r.member.clone(),
                        reason: words.refusal(&p.queue, r.kind, r.member.as_ref()),
                    })
                    .collect(),
            })
            .collect();
        PlanReport {
            at,
            queues,
            calendars: obs.calendars.values().cloned().collect(),
            warnings: decision
                .desired
                .warnings
                .iter()
                .map(ToString::to_string)
                .collect(),
            timezone: cfg.timezone,
        }
    }
}

impl Report for PlanReport {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(out, "plan at {}", local(self.at, self.timezone))?;
        for c in self.calendars.iter().filter(|c| !c.complete) {
            writeln!(
                out,
                "  calendar {}: not read ({}); removals from its queues are held back",
                c.calendar,
                c.error.as_deref().unwrap_or("unknown error")
            )?;
        }
        for q in &self.queues {
            writeln!(out, "queue {} {}", q.queue, q.name)?;
            if q.actions.is_empty() && q.refused.is_empty() {
                writeln!(out, "  nothing to do")?;
            }
            for a in &q.actions {
                let sign = match a.action {
                    ActionKind::Add => "+",
                    ActionKind::Del => "-",
                };
                writeln!(
                    out,
                    "  {sign} {:<16} {:<20} {}",
                    a.member.to_string(),
                    a.person.as_deref().unwrap_or("-"),
                    a.reason
                )?;
            }
            for r in &q.refused {
                writeln!(
                    out,
                    "  ! refused {:?} {}: {}",
                    r.kind,
                    r.member.as_ref().map(|m| m.to_string()).unwrap_or_default(),
                    r.reason
                )?;
            }
        }
        for w in &self.warnings {
            writeln!(out, "warning: {w}")?;
        }
        Ok(())
    }
}

/// `plan [--at TIME] [--json]`.
pub async fn plan(
    cfg: Config,
    secrets: &Secrets,
    at: Option<&str>,
    json_out: bool,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let at = at.map(|s| parse_time(s, cfg.timezone)).transpose()?;
    let (rec, obs) = observe_now(cfg, secrets).await?;
    let at = at.unwrap_or(obs.at);
    let decision = rec.decide(&obs, at);
    emit(
        &PlanReport::new(rec.config(), &obs, &decision, at),
        json_out,
        out,
    )?;
    Ok(EXIT_OK)
}
