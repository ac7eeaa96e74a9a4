//! `rooster status [--json]` (SPEC §4): per queue live, owned, desired now, next change,
//! refusals and held writes; the last cycle; the calendar reads. Read-only: works while the
//! daemon runs and while Graph is down (the schedule comes from the events last read).

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{CommandError, EXIT_OK, Report, clients, emit, local, rfc3339};
use crate::config::{Config, Secrets};
use crate::model::{Member, QueueNo};
use crate::schedule;
use crate::store::{HeldWrite, OpenMode, Store};
use crate::tring::TringClient;

/// What `status` found. `--json` prints it as one object; the text is rendered from the same
/// values.
#[derive(Debug, Serialize)]
pub struct StatusReport {
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    /// The verdict `/healthz` gives (SPEC §4), from the state and this command's own lists.
    pub health: crate::health::Health,
    pub queues: Vec<QueueStatus>,
    pub calendars: Vec<CalendarLine>,
    pub last_cycle: Option<CycleLine>,
    /// For the text only: times are shown in the configured zone.
    #[serde(skip)]
    pub timezone: Tz,
}

#[derive(Debug, Serialize)]
pub struct QueueStatus {
    pub queue: QueueNo,
    pub name: String,
    /// `None` when TRiNG could not be asked (`live_error` says why). Sorted.
    pub live: Option<Vec<Member>>,
    pub live_error: Option<String>,
    pub owned: Vec<Member>,
    pub desired: Vec<Member>,
    pub next_change: Option<NextChange>,
    /// SPEC §4 "History and coverage": the next interval with nobody desired (7 days).
    pub next_gap: Option<GapLine>,
    pub refusals: Vec<String>,
    /// SPEC §3 rule 9: writes TRiNG refused for good, not sent again for now.
    pub held: Vec<HeldWrite>,
}

#[derive(Debug, Serialize)]
pub struct NextChange {
    #[serde(with = "rfc3339")]
    pub at: DateTime<Utc>,
    pub join: Vec<Member>,
    pub leave: Vec<Member>,
}

#[derive(Debug, Serialize)]
pub struct GapLine {
    #[serde(with = "rfc3339")]
    pub from: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub to: DateTime<Utc>,
}

#[derive(Debug, Serialize)]
pub struct CalendarLine {
    pub calendar: String,
    #[serde(with = "rfc3339::option")]
    pub last_good_read: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    #[serde(with = "rfc3339::option")]
    pub last_error_at: Option<DateTime<Utc>>,
}

#[derive(Debug, Serialize)]
pub struct CycleLine {
    pub id: i64,
    #[serde(with = "rfc3339")]
    pub started: DateTime<Utc>,
    #[serde(with = "rfc3339")]
    pub ended: DateTime<Utc>,
    pub adds: u32,
    pub dels: u32,
    pub refused: u32,
    pub errors: Vec<String>,
}

/// `status [--json]`.
pub async fn status(
    cfg: Config,
    secrets: &Secrets,
    json_out: bool,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let report = status_report(&cfg, secrets, Utc::now()).await?;
    emit(&report, json_out, out)?;
    Ok(EXIT_OK)
}

/// Gathers the report: the state (read-only) plus a live `list` of each queue.
pub async fn status_report(
    cfg: &Config,
    secrets: &Secrets,
    now: DateTime<Utc>,
) -> Result<StatusReport, CommandError> {
    let store = Store::open(&cfg.state, OpenMode::ReadOnly).await?;
    let owned = store.owned_all().await?;
    let refusals = store.refusals().await?;
    let held = store.held_writes().await?;
    let cal_states = store.calendar_states().await?;
    let last_cycle = store.last_cycle().await?;
    let (_, tring) = clients(cfg, secrets)?;
    // One schedule for the three questions (it is the expensive part at 100,000 events),
    // built one stored calendar at a time.
    let sched = store.stored_schedule(&cfg.roster()).await?;
    let desired = sched.desired_at(&cfg.roster(), now);
    let boundary = sched.next_boundary(&cfg.roster(), now);
    let after = boundary.map(|b| (b, sched.desired_at(&cfg.roster(), b)));
    let gaps = crate::coverage::gap_outlook(&sched, cfg, now, chrono::Duration::days(7));
    let members_of = |d: &schedule::Desired, q: &QueueNo| -> BTreeSet<Member> {
        d.queues
            .get(q)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default()
    };

    let numbers: Vec<QueueNo> = cfg.queues.iter().map(|q| q.number.clone()).collect();
    let mut lists = list_within(&tring, &numbers, STATUS_LIST_DEADLINE).await;
    let mut queues = Vec::new();
    for q in &cfg.queues {
        let live = lists
            .remove(&q.number)
            .unwrap_or_else(|| Err("not listed".into()));
        let d = members_of(&desired, &q.number);
        let next_change = after.as_ref().and_then(|(b, a)| {
            let n = members_of(a, &q.number);
            let join: Vec<Member> = n.difference(&d).cloned().collect();
            let leave: Vec<Member> = d.difference(&n).cloned().collect();
            (!join.is_empty() || !leave.is_empty()).then_some(NextChange {
                at: *b,
                join,
                leave,
            })
        });
        queues.push(QueueStatus {
            queue: q.number.clone(),
            name: q.name.clone(),
            // Sorted like every other member list, whatever order TRiNG answers in.
            live: live.as_ref().ok().map(|l| {
                l.iter()
                    .cloned()
                    .collect::<BTreeSet<_>>()
                    .into_iter()
                    .collect()
            }),
            live_error: live.as_ref().err().map(|e| e.to_string()),
            owned: owned
                .get(&q.number)
                .into_iter()
                .flatten()
                .cloned()
                .collect(),
            desired: d.into_iter().collect(),
            next_change,
            next_gap: gaps
                .get(&q.number)
                .and_then(|g| g.next_gap)
                .map(|(from, to)| GapLine { from, to }),
            refusals: refusals.get(&q.number).cloned().unwrap_or_default(),
            held: held
                .iter()
                .filter(|h| h.queue == q.number)
                .cloned()
                .collect(),
        });
    }
    let health = status_health(cfg, &cal_states, last_cycle.as_ref(), &queues, now);
    Ok(StatusReport {
        at: now,
        health,
        queues,
        calendars: cal_states
            .into_iter()
            .map(|c| CalendarLine {
                calendar: c.calendar.to_string(),
                last_good_read: c.last_good_read,
                last_error: c.last_error,
                last_error_at: c.last_error_at,
            })
            .collect(),
        last_cycle: last_cycle.map(|c| CycleLine {
            id: c.id.0,
            started: c.started,
            ended: c.ended,
            adds: c.adds,
            dels: c.dels,
            refused: c.refused,
            errors: c.errors,
        }),
        timezone: cfg.timezone,
    })
}

impl Report for StatusReport {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let tz = self.timezone;
        let list = |ms: &[Member]| -> String {
            if ms.is_empty() {
                "-".into()
            } else {
                ms.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            }
        };
        writeln!(out, "status at {}", local(self.at, tz))?;
        // The verdict /healthz gives (SPEC §4 "Metrics").
        if self.health.healthy {
            writeln!(out, "health: ok")?;
        } else {
            writeln!(out, "health: FAILING: {}", self.health.sentence)?;
        }
        match &self.last_cycle {
            Some(c) => writeln!(
                out,
                "last cycle {} at {}: +{} -{} refused {}{}",
                c.id,
                local(c.ended, tz),
                c.adds,
                c.dels,
                c.refused,
                if c.errors.is_empty() {
                    String::new()
                } else {
                    format!(", {} error(s): {}", c.errors.len(), c.errors.join("; "))
                }
            )?,
            None => writeln!(out, "no cycle has run yet")?,
        }
        for q in &self.queues {
            writeln!(out, "queue {} {}", q.queue, q.name)?;
            match &q.live {
                Some(l) => writeln!(out, "  live     {}", list(l))?,
                None => writeln!(out, "  live     unknown")?,
            }
            if let Some(e) = &q.live_error {
                writeln!(out, "           ({e})")?;
            }
            writeln!(out, "  owned    {}", list(&q.owned))?;
            writeln!(out, "  desired  {}", list(&q.desired))?;
            if let Some(n) = &q.next_change {
                writeln!(
                    out,
                    "  next     {}: join {} leave {}",
                    local(n.at, tz),
                    list(&n.join),
                    list(&n.leave)
                )?;
            }
            if let Some(g) = &q.next_gap {
                writeln!(
                    out,
                    "  gap      {} – {}: nobody desired",
                    local(g.from, tz),
                    local(g.to, tz)
                )?;
            }
            for r in &q.refusals {
                writeln!(out, "  refused  {r}")?;
            }
            for h in &q.held {
                writeln!(
                    out,
                    "  held     {} {}{}: TRiNG refused it for good at {} ({}); not sent again until the config or calendars change, or an hour later",
                    h.action,
                    h.member,
                    h.person
                        .as_deref()
                        .map(|p| format!(" ({p})"))
                        .unwrap_or_default(),
                    local(h.since, tz),
                    h.answer
                )?;
            }
        }
        for c in &self.calendars {
            writeln!(
                out,
                "calendar {}: last good read {}{}",
                c.calendar,
                c.last_good_read
                    .map(|t| local(t, tz))
                    .unwrap_or("never".into()),
                c.last_error
                    .as_ref()
                    .map(|e| format!("; last error: {e}"))
                    .unwrap_or_default()
            )?;
        }
        Ok(())
    }
}

/// How long `status` waits for TRiNG's lists: it answers a person at a terminal, so an
/// unreachable TRiNG must not hold it for each queue's timeouts and retries in turn.
const STATUS_LIST_DEADLINE: std::time::Duration = std::time::Duration::from_secs(5);

/// Lists `queues`, four at a time (tring-api.md "Limits") and all within `deadline`; a queue
/// without an answer by then says so.
async fn list_within(
    tring: &TringClient,
    queues: &[QueueNo],
    deadline: std::time::Duration,
) -> BTreeMap<QueueNo, Result<Vec<Member>, String>> {
    use futures::StreamExt;
    let mut lists: BTreeMap<QueueNo, Result<Vec<Member>, String>> = futures::stream::iter(queues)
        .map(|q| async move { (q.clone(), tring.list(q).await.map_err(|e| e.to_string())) })
        .buffer_unordered(4)
        .take_until(tokio::time::sleep(deadline))
        .collect()
        .await;
    for q in queues {
        lists.entry(q.clone()).or_insert_with(|| {
            Err(format!(
                "queue {q}: no answer from TRiNG within {}",
                humantime::format_duration(deadline)
            ))
        });
    }
    lists
}

/// `/healthz`'s verdict drawn from the state and this command's own `list`s: the daemon's
/// facts as its records keep them (the last cycle, each calendar's last good read) and the
/// queues as TRiNG answers now.
fn status_health(
    cfg: &Config,
    cal_states: &[crate::store::CalendarState],
    last_cycle: Option<&crate::store::CycleSummary>,
    queues: &[QueueStatus],
    now: DateTime<Utc>,
) -> crate::health::Health {
    let errors = last_cycle.map(|c| c.errors.clone()).unwrap_or_default();
    let all_failing = !cal_states.is_empty()
        && cal_states.iter().all(|c| {
            c.last_error_at
                .is_some_and(|e| c.last_good_read.is_none_or(|g| e > g))
        });
    let listed = queues.iter().any(|q| q.live_error.is_none());
    let facts = crate::health::HealthFacts {
        poll_interval: cfg.poll_interval,
        since: None,
        last_cycle: last_cycle.map(|c| c.ended),
        last_calendar_read: cal_states.iter().filter_map(|c| c.last_good_read).max(),
        last_queue_listed: listed.then_some(now),
        calendars_total: cal_states.len(),
        queues_total: queues.len(),
        calendar_cause: all_failing
            .then(|| {
                errors
                    .iter()
                    .find(|e| e.contains("calendars not read"))
                    .cloned()
                    .or_else(|| cal_states.iter().find_map(|c| c.last_error.clone()))
            })
            .flatten(),
        queue_cause: (!listed)
            .then(|| {
                queues.iter().find_map(|q| {
                    Some(format!(
                        "queue {}: list failed: {}",
                        q.queue,
                        q.live_error.as_deref()?
                    ))
                })
            })
            .flatten(),
        partial: errors,
    };
    crate::health::judge(&facts, now)
}
