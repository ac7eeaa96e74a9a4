//! `rooster coverage` (SPEC §4 "History and coverage"): per queue and day, who is desired over
//! the next N days at 15-minute resolution, drawn one row per queue and day so a week fits an
//! 80-column terminal, then the gaps (nobody desired) and the intervals covered by `fallback`
//! alone. Reads the events last read from the state (read-only, no network), so it works
//! offline and beside the daemon. The computing is [`crate::coverage`]'s; this file draws.

use std::io::Write;

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use super::{CommandError, EXIT_FAILED, EXIT_OK, out_err, queue_arg};
use crate::config::Config;
use crate::coverage::{self, Level, QueueCoverage};
use crate::model::{QueueNo, sanitize};
use crate::schedule::local_midnight;
use crate::store::{OpenMode, Store};

/// The most days `--days` may ask for.
pub const MAX_DAYS: u32 = 62;

/// An interval in a report.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Interval {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

/// One local day of one queue: a level per 15-minute cell from local midnight (92, 96 or 100
/// cells on DST days); `None` for cells before now or past what the events read cover.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DayRow {
    pub date: NaiveDate,
    pub cells: Vec<Option<Level>>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct QueueReport {
    pub queue: QueueNo,
    pub name: String,
    pub days: Vec<DayRow>,
    pub gaps: Vec<Interval>,
    pub fallback_only: Vec<Interval>,
    pub gap_seconds: i64,
}

/// The answer of `coverage`.
#[derive(Debug, Clone, Serialize)]
pub struct CoverageReport {
    /// Coverage is computed for `[from, to)`: from now to the end of the last day asked for,
    /// or to the end of the read window if that comes first.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub days: u32,
    /// The read window ends before the last day does: past `to` nothing is known.
    pub cut_at_window: bool,
    pub queues: Vec<QueueReport>,
    #[serde(skip)]
    pub timezone: Tz,
}

impl CoverageReport {
    /// SPEC §4: 1 when a gap exists, else 0.
    pub fn exit_code(&self) -> u8 {
        if self.queues.iter().any(|q| !q.gaps.is_empty()) {
            EXIT_FAILED
        } else {
            EXIT_OK
        }
    }

    /// Text: a legend, then per queue one row per day (one character per half hour: the
    /// worse of its two 15-minute cells, so a gap of a quarter hour still shows), then the
    /// gaps and fallback-only intervals in local time.
    pub fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        let tz = self.timezone;
        writeln!(
            out,
            "coverage {} – {} ({tz})",
            local(self.from, tz, true),
            local(self.to, tz, true)
        )?;
        if self.cut_at_window {
            writeln!(
                out,
                "(the events read reach only this far: raise `window` to see further)"
            )?;
        }
        writeln!(
            out,
            "one character per half hour, the worse of its two quarters: {}, blank = past or unknown",
            [Level::Many, Level::One, Level::FallbackOnly, Level::Gap]
                .iter()
                .map(|l| format!("'{}' {}", l.glyph(), l.describe()))
                .collect::<Vec<_>>()
                .join(", ")
        )?;
        for q in &self.queues {
            writeln!(out)?;
            writeln!(out, "queue {} {}", q.queue, sanitize(&q.name, 60))?;
            writeln!(out, "{:10} {}", "", ruler())?;
            for d in &q.days {
                writeln!(
                    out,
                    "{:10}|{}|",
                    d.date.format("%a %m-%d").to_string(),
                    row(&d.cells)
                )?;
            }
            if q.gaps.is_empty() {
                writeln!(out, "  no gaps")?;
            } else {
                writeln!(
                    out,
                    "  gaps ({} in all):",
                    human(Duration::seconds(q.gap_seconds))
                )?;
                for g in &q.gaps {
                    writeln!(out, "    {}", span(g, tz))?;
                }
            }
            if !q.fallback_only.is_empty() {
                writeln!(out, "  fallback only:")?;
                for f in &q.fallback_only {
                    writeln!(out, "    {}", span(f, tz))?;
                }
            }
        }
        Ok(())
    }
}

/// Hour marks every three hours over the 48 half-hour columns of a day.
fn ruler() -> String {
    (0..24)
        .step_by(3)
        .map(|h| format!("{h:<6}"))
        .collect::<String>()
        .trim_end()
        .to_owned()
}

/// Two cells per character; the worse level of the two is drawn.
fn row(cells: &[Option<Level>]) -> String {
    cells
        .chunks(2)
        .map(|pair| {
            pair.iter()
                .flatten()
                .min()
                .map_or(' ', |level| level.glyph())
        })
        .collect()
}

fn local(t: DateTime<Utc>, tz: Tz, zone: bool) -> String {
    let fmt = if zone {
        "%Y-%m-%d %H:%M %Z"
    } else {
        "%Y-%m-%d %H:%M"
    };
    t.with_timezone(&tz).format(fmt).to_string()
}

/// `2026-03-30 11:00 – 12:30 (1h 30m)`, the date repeated only when it changes.
fn span(i: &Interval, tz: Tz) -> String {
    let (a, b) = (i.from.with_timezone(&tz), i.to.with_timezone(&tz));
    let end = if a.date_naive() == b.date_naive() {
        b.format("%H:%M").to_string()
    } else {
        b.format("%Y-%m-%d %H:%M").to_string()
    };
    format!(
        "{} – {end} ({})",
        a.format("%Y-%m-%d %H:%M"),
        human(i.to - i.from)
    )
}

fn human(d: Duration) -> String {
    let minutes = d.num_minutes();
    match (minutes / 60, minutes % 60) {
        (0, m) => format!("{m}m"),
        (h, 0) => format!("{h}h"),
        (h, m) => format!("{h}h {m}m"),
    }
}

/// Builds the report from the coverage of `[now, end)` (pure: the caller brings the data).
pub fn report(
    cfg: &Config,
    covs: Vec<QueueCoverage>,
    now: DateTime<Utc>,
    to: DateTime<Utc>,
    days: u32,
    cut_at_window: bool,
) -> CoverageReport {
    let tz = cfg.timezone;
    let today = now.with_timezone(&tz).date_naive();
    let queues = covs
        .into_iter()
        .map(|c| {
            let day_rows = (0..days)
                .filter_map(|n| today.checked_add_days(chrono::Days::new(n.into())))
                .map(|date| DayRow {
                    date,
                    cells: c.day_cells(date, tz, now),
                })
                .collect();
            let intervals = |level| {
                c.intervals(level)
                    .into_iter()
                    .map(|(from, to)| Interval { from, to })
                    .collect()
            };
            QueueReport {
                gaps: intervals(Level::Gap),
                fallback_only: intervals(Level::FallbackOnly),
                gap_seconds: c.gap_seconds(),
                queue: c.queue,
                name: c.name,
                days: day_rows,
            }
        })
        .collect();
    CoverageReport {
        from: now,
        to,
        days,
        cut_at_window,
        queues,
        timezone: tz,
    }
}

/// `coverage`: from the events last read, for `days` local days from today.
pub async fn coverage(
    cfg: &Config,
    days: u32,
    queue: Option<&str>,
    now: DateTime<Utc>,
) -> Result<CoverageReport, CommandError> {
    if days == 0 || days > MAX_DAYS {
        return Err(CommandError::Usage(format!(
            "--days {days} is out of range: 1 to {MAX_DAYS}"
        )));
    }
    let only = queue.map(|q| queue_arg(cfg, q)).transpose()?;
    let tz = cfg.timezone;
    let today = now.with_timezone(&tz).date_naive();
    let last = today
        .checked_add_days(chrono::Days::new(days.into()))
        .unwrap_or(today);
    let end = local_midnight(last, tz);
    // Beyond the read window (counted from now: the daemon reads every poll) no event is
    // known, and everything would look like a gap.
    let known = now + Duration::from_std(cfg.window).unwrap_or(Duration::days(14));
    let to = end.min(known);
    let store = Store::open(&cfg.state, OpenMode::ReadOnly).await?;
    let schedule = store.stored_schedule(&cfg.roster()).await?;
    store.close().await;
    let mut covs = coverage::coverage(&schedule, cfg, now, to);
    if let Some(q) = &only {
        covs.retain(|c| &c.queue == q);
    }
    Ok(report(cfg, covs, now, to, days, to < end))
}

/// `coverage` as the CLI runs it: prints the report, returns 0 (no gap) or 1 (a gap).
pub async fn run(
    cfg: &Config,
    days: u32,
    queue: Option<&str>,
    json: bool,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let report = coverage(cfg, days, queue, Utc::now()).await?;
    if json {
        serde_json::to_writer(&mut *out, &report)
            .map_err(|e| CommandError::Failed(format!("output could not be written: {e}")))?;
        writeln!(out).map_err(out_err)?;
    } else {
        report.render(out).map_err(out_err)?;
    }
    Ok(report.exit_code())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_half_hour_shows_the_worse_of_its_quarters() {
        let cells = [
            Some(Level::Many),
            Some(Level::Gap),
            Some(Level::One),
            Some(Level::One),
            None,
            None,
            None,
            Some(Level::FallbackOnly),
        ];
        assert_eq!(row(&cells), "!- f");
    }

    #[test]
    fn the_ruler_spans_the_half_hours_of_a_day() {
        // A label every 3 hours, 6 columns (half hours) apart, over the 48 columns of a day:
        // the last label, "21", ends at column 44. With the 10-column date and two bars, a
        // 25-hour DST day is 62 columns: within 80.
        assert_eq!(ruler().len(), 44);
    }
}
