//! `rooster history` (SPEC §4 "History and coverage"): every TRiNG write and every refusal
//! or held-back write from the state's journal, with its cycle, reason and outcome, so "why
//! was I (not) in the queue at 09:00?" is answered without reading logs. Opens the state
//! read-only, so it works beside a running daemon; never talks to TRiNG or Graph.

use std::io::Write;

use chrono::{DateTime, Duration, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{CommandError, EXIT_OK, out_err, parse_time};
use crate::config::Config;
use crate::model::{Member, QueueNo, sanitize};
use crate::store::{JournalRow, OpenMode, Outcome, RefusalRecord, Store};

/// What `history` is asked for; times as the user typed them (SPEC §4 `TIME`).
#[derive(Debug, Clone, Default)]
pub struct HistoryArgs {
    pub queue: Option<String>,
    pub member: Option<String>,
    pub person: Option<String>,
    pub since: Option<String>,
    pub until: Option<String>,
}

/// Which entries to keep, validated.
#[derive(Debug, Clone, Default)]
pub struct HistoryFilter {
    pub queue: Option<QueueNo>,
    /// A written member (`ext:201`), or a bare extension or number matching either kind.
    pub member: Option<String>,
    /// Case-insensitive part of a person's name.
    pub person: Option<String>,
}

impl HistoryFilter {
    fn keeps(&self, queue: &QueueNo, member: Option<&Member>, person: Option<&str>) -> bool {
        let queue_ok = self.queue.as_ref().is_none_or(|q| q == queue);
        let member_ok = self.member.as_ref().is_none_or(|want| {
            member.is_some_and(|m| {
                let written = m.to_string();
                &written == want || written.split_once(':').is_some_and(|(_, id)| id == want)
            })
        });
        let person_ok = self.person.as_ref().is_none_or(|want| {
            person.is_some_and(|p| p.to_lowercase().contains(&want.to_lowercase()))
        });
        queue_ok && member_ok && person_ok
    }
}

/// What became of a write or a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryOutcome {
    /// TRiNG confirmed the write.
    Applied,
    /// TRiNG said the member already was (add) or was not (del) there.
    AlreadyInState,
    /// TRiNG refused it; `detail` holds its answer.
    Failed,
    /// No usable reply; settled against the queue by a later cycle.
    Uncertain,
    /// Decided against live after the process died or the reply was lost (SPEC §3 rule 7).
    SettledApplied,
    SettledNotApplied,
    /// No outcome recorded yet: in flight, or the process died (settled at the next start).
    Open,
    /// A safety rule held a removal (or the whole queue) back (SPEC §3 rules 1–4).
    Refused,
    /// TRiNG refused this write for good earlier; not sent (SPEC §3 rule 9).
    Held,
}

impl EntryOutcome {
    pub fn text(&self) -> &'static str {
        match self {
            EntryOutcome::Applied => "applied",
            EntryOutcome::AlreadyInState => "already so",
            EntryOutcome::Failed => "FAILED",
            EntryOutcome::Uncertain => "uncertain",
            EntryOutcome::SettledApplied => "settled after a crash: reached TRiNG",
            EntryOutcome::SettledNotApplied => "settled after a crash: never reached TRiNG",
            EntryOutcome::Open => "no outcome yet",
            EntryOutcome::Refused => "refused",
            EntryOutcome::Held => "held back",
        }
    }
}

/// One line of history: a write or a refusal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HistoryEntry {
    /// When the write's intent was recorded, or when the refusal was first made.
    pub at: DateTime<Utc>,
    /// `write` or `refusal`.
    pub entry: &'static str,
    /// The cycle that wrote (or first refused); `None` for rows older than the history.
    pub cycle: Option<i64>,
    pub queue: QueueNo,
    /// `add`/`del` for writes; the refusal's kind (`keep_last`, `removal_cap`,
    /// `incomplete_read`, `unreadable_queue`, `held`) for refusals.
    pub action: String,
    pub member: Option<Member>,
    pub person: Option<String>,
    /// Why: rule, event subject, calendar, from–to (writes); the refusal's sentence.
    pub reason: String,
    pub outcome: EntryOutcome,
    /// TRiNG's answer (failed, uncertain, held) or how a settlement was decided.
    pub detail: Option<String>,
    /// A refusal made cycle after cycle: the last cycle and time it was still made.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_cycle: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub until: Option<DateTime<Utc>>,
    /// A refusal the queue's latest cycle still made.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub standing: bool,
}

impl HistoryEntry {
    /// A journal row as history shows it.
    pub fn from_write(cycle: Option<i64>, row: &JournalRow) -> HistoryEntry {
        let (outcome, detail) = match (&row.settlement, &row.outcome) {
            (Some(s), _) => (
                if s.applied {
                    EntryOutcome::SettledApplied
                } else {
                    EntryOutcome::SettledNotApplied
                },
                Some(s.note.clone()),
            ),
            (None, Some((Outcome::Applied, _))) => (EntryOutcome::Applied, None),
            (None, Some((Outcome::AlreadyInState, _))) => (EntryOutcome::AlreadyInState, None),
            (None, Some((Outcome::Failed(e), _))) => (EntryOutcome::Failed, Some(e.clone())),
            (None, Some((Outcome::Uncertain(e), _))) => (EntryOutcome::Uncertain, Some(e.clone())),
            (None, None) => (EntryOutcome::Open, None),
        };
        let i = &row.intent;
        HistoryEntry {
            at: i.at,
            entry: "write",
            cycle,
            queue: i.queue.clone(),
            action: i.action.as_str().to_owned(),
            member: Some(i.member.clone()),
            person: i.person.clone(),
            reason: i.reason.clone(),
            outcome,
            detail: detail.map(|d| sanitize(&d, 300)),
            last_cycle: None,
            until: None,
            standing: false,
        }
    }

    /// A refusal (or held-back write) as history shows it.
    pub fn from_refusal(r: &RefusalRecord) -> HistoryEntry {
        let held = r.note.kind == "held";
        HistoryEntry {
            at: r.first,
            entry: "refusal",
            cycle: r.first_cycle.map(|c| c.0),
            queue: r.queue.clone(),
            action: r.note.kind.clone(),
            member: r.note.member.clone(),
            person: r.note.person.clone(),
            reason: if held {
                "TRiNG refused this write for good earlier; not sent again until the config or \
                 the calendars feeding the queue change, or an hour has passed"
                    .to_owned()
            } else {
                r.note.reason.clone()
            },
            outcome: if held {
                EntryOutcome::Held
            } else {
                EntryOutcome::Refused
            },
            detail: held.then(|| r.note.reason.clone()),
            last_cycle: (r.last_cycle != r.first_cycle)
                .then_some(r.last_cycle.map(|c| c.0))
                .flatten(),
            until: (r.last != r.first).then_some(r.last),
            standing: r.standing,
        }
    }

    /// One line in the configured zone: time, cycle, queue, action, member (person),
    /// outcome (detail), reason.
    pub fn render(&self, tz: Tz, out: &mut dyn Write) -> std::io::Result<()> {
        let local = |t: DateTime<Utc>| t.with_timezone(&tz).format("%Y-%m-%d %H:%M:%S");
        let cycle = match (self.cycle, self.last_cycle) {
            (Some(a), Some(b)) => format!("cycle {a}–{b}"),
            (Some(a), None) => format!("cycle {a}"),
            (None, _) => "cycle ?".to_owned(),
        };
        let member = self
            .member
            .as_ref()
            .map_or("-".to_owned(), |m| m.to_string());
        let person = self
            .person
            .as_deref()
            .map(|p| format!(" ({})", sanitize(p, 80)))
            .unwrap_or_default();
        let mut outcome = self.outcome.text().to_owned();
        if let Some(d) = &self.detail {
            outcome.push_str(&format!(": {}", sanitize(d, 300)));
        }
        if let Some(u) = self.until {
            outcome.push_str(&format!(
                ", {} {}",
                if self.standing {
                    "still standing at"
                } else {
                    "until"
                },
                local(u)
            ));
        } else if self.standing {
            outcome.push_str(", still standing");
        }
        writeln!(
            out,
            "{}  {cycle:<11} queue {:<6} {:<16} {member}{person}  {outcome}  — {}",
            local(self.at),
            self.queue,
            self.action,
            sanitize(&self.reason, 400)
        )
    }
}

/// The answer of `history`: the entries of `[since, until]`, oldest first.
#[derive(Debug, Clone, Serialize)]
pub struct HistoryReport {
    pub since: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub entries: Vec<HistoryEntry>,
    #[serde(skip)]
    pub timezone: Tz,
}

impl HistoryReport {
    /// Text: a header line, then one line per entry.
    pub fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let local = |t: DateTime<Utc>| {
            t.with_timezone(&self.timezone)
                .format("%Y-%m-%d %H:%M %Z")
                .to_string()
        };
        writeln!(
            out,
            "history {} – {}: {} entr{}",
            local(self.since),
            local(self.until),
            self.entries.len(),
            if self.entries.len() == 1 { "y" } else { "ies" }
        )?;
        for e in &self.entries {
            e.render(self.timezone, out)?;
        }
        Ok(())
    }

    /// `--json`: one object per entry, one per line (JSON lines).
    pub fn render_json(&self, out: &mut dyn Write) -> std::io::Result<()> {
        for e in &self.entries {
            serde_json::to_writer(&mut *out, e)?;
            writeln!(out)?;
        }
        Ok(())
    }
}

/// Reads the history of `[since, until]` that `filter` keeps, oldest first (writes and
/// refusals interleaved by time).
pub async fn read(
    store: &Store,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    filter: &HistoryFilter,
) -> Result<Vec<HistoryEntry>, CommandError> {
    let mut entries: Vec<HistoryEntry> = store
        .journal_history(since, until)
        .await?
        .iter()
        .map(|(cycle, row)| HistoryEntry::from_write(cycle.map(|c| c.0), row))
        .chain(
            store
                .refusal_history(since, until)
                .await?
                .iter()
                .map(HistoryEntry::from_refusal),
        )
        .filter(|e| filter.keeps(&e.queue, e.member.as_ref(), e.person.as_deref()))
        .collect();
    entries.sort_by_key(|e| e.at);
    Ok(entries)
}

/// `history`: 0, or 2 for a bad argument or an unreadable state (SPEC §4).
pub async fn history(
    cfg: &Config,
    args: &HistoryArgs,
    now: DateTime<Utc>,
) -> Result<HistoryReport, CommandError> {
    let tz = cfg.timezone;
    let until = match &args.until {
        Some(t) => parse_time(t, tz)?,
        None => now,
    };
    let since = match &args.since {
        Some(t) => parse_time(t, tz)?,
        None => until - Duration::hours(24),
    };
    if since > until {
        return Err(CommandError::Usage(
            "--since is after --until: nothing can lie between them".to_owned(),
        ));
    }
    let filter = HistoryFilter {
        queue: args
            .queue
            .as_deref()
            .map(QueueNo::parse)
            .transpose()
            .map_err(|e| CommandError::Usage(e.to_string()))?,
        member: args.member.as_deref().map(|m| m.trim().to_owned()),
        person: args.person.as_deref().map(|p| p.trim().to_owned()),
    };
    let store = Store::open(&cfg.state, OpenMode::ReadOnly).await?;
    let entries = read(&store, since, until, &filter).await?;
    store.close().await;
    Ok(HistoryReport {
        since,
        until,
        entries,
        timezone: tz,
    })
}

/// `history` as the CLI runs it: prints the report, returns the exit code.
pub async fn run(
    cfg: &Config,
    args: &HistoryArgs,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let report = history(cfg, args, Utc::now()).await?;
    if json {
        report.render_json(out).map_err(out_err)?;
    } else {
        report.render(out).map_err(out_err)?;
    }
    Ok(EXIT_OK)
}
