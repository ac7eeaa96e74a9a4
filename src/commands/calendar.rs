//! `rooster calendar MAILBOX` (SPEC §4): what rooster reads from one calendar, normalised.

use std::io::Write;

use chrono::Utc;
use chrono_tz::Tz;
use serde_json::{Value, json};

use super::{CommandError, EXIT_OK, Report, clients, emit, local, parse_time};
use crate::config::{Config, Secrets};
use crate::model::{CalendarRef, Event, EventTime, Mailbox, sanitize};
use crate::schedule;

/// The arguments of `calendar`.
pub struct CalendarArgs<'a> {
    pub mailbox: &'a str,
    pub name: Option<&'a str>,
    pub from: Option<&'a str>,
    pub to: Option<&'a str>,
    pub json: bool,
}

/// `calendar MAILBOX [--calendar NAME] [--from] [--to] [--json]`: what rooster reads.
pub async fn calendar(
    cfg: Config,
    secrets: &Secrets,
    args: CalendarArgs<'_>,
    out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let CalendarArgs {
        mailbox,
        name,
        from,
        to,
        json: json_out,
    } = args;
    let tz = cfg.timezone;
    let mailbox = Mailbox::parse(mailbox).map_err(|e| CommandError::Usage(e.to_string()))?;
    let now = Utc::now();
    let (dfrom, dto) = schedule::read_window(&cfg.roster(), now);
    let from = from
        .map(|s| parse_time(s, tz))
        .transpose()?
        .unwrap_or(dfrom);
    let to = to.map(|s| parse_time(s, tz)).transpose()?.unwrap_or(dto);
    if to <= from {
        return Err(CommandError::Usage("--to must be after --from".into()));
    }
    let (graph, _) = clients(&cfg, secrets)?;
    let cal = CalendarRef {
        mailbox,
        name: name.map(str::to_owned),
    };
    let read = graph
        .read_calendar(&cal, from, to)
        .await
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let report = CalendarReport {
        calendar: cal.to_string(),
        pages: read.pages,
        events: read.events.iter().map(event_json).collect(),
        from_text: local(from, tz),
        to_text: local(to, tz),
        lines: read.events.iter().map(|e| event_line(e, tz)).collect(),
    };
    emit(&report, json_out, out)?;
    Ok(EXIT_OK)
}

/// What `calendar` read: the events as rooster sees them (a private event's subject hidden).
#[derive(Debug, serde::Serialize)]
pub struct CalendarReport {
    pub calendar: String,
    pub pages: u32,
    pub events: Vec<Value>,
    #[serde(skip)]
    from_text: String,
    #[serde(skip)]
    to_text: String,
    #[serde(skip)]
    lines: Vec<String>,
}

impl Report for CalendarReport {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()> {
        writeln!(
            out,
            "calendar {}: {} event(s) from {} to {} ({} page(s))",
            self.calendar,
            self.lines.len(),
            self.from_text,
            self.to_text,
            self.pages
        )?;
        for l in &self.lines {
            writeln!(out, "  {l}")?;
        }
        Ok(())
    }
}

/// One event as the text shows it, times in the configured zone; calendar text sanitised.
fn event_line(e: &Event, tz: Tz) -> String {
    let when = match e.when {
        EventTime::Timed { start, end } => format!(
            "{} – {}",
            start.with_timezone(&tz).format("%Y-%m-%d %H:%M"),
            end.with_timezone(&tz).format("%Y-%m-%d %H:%M")
        ),
        EventTime::AllDay { start, end } => format!("{start} – {end} (all day)"),
    };
    format!(
        "{when}  {:<10} {}{}{}",
        e.show_as.as_str(),
        e.display_subject(),
        if e.categories.is_empty() {
            String::new()
        } else {
            format!(
                " [{}]",
                e.categories
                    .iter()
                    .map(|c| sanitize(c, 40))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        },
        if e.is_cancelled { " (cancelled)" } else { "" }
    )
}

fn event_json(e: &Event) -> Value {
    let mut v = serde_json::to_value(e).unwrap_or(Value::Null);
    if e.is_private() {
        v["subject"] = json!("private event");
    }
    v
}
