//! The status page (SPEC §4 "Status page"): one read-only HTML page for the team, served when
//! `[web] listen` is set. Per queue who is on now, the next changes and seven days of coverage
//! as server-rendered SVG, then the last 24 h of history. It refreshes itself and needs no
//! JavaScript; the layout is fluid and sized in `rem`, so text zoom and a phone screen work.
//!
//! Everything shown comes from the state, read-only, on each request: the events last read
//! (through [`crate::schedule`] and [`crate::coverage`]) and the journal (through
//! [`crate::commands::history`]). Calendar text is untrusted: maud escapes every value put
//! into the markup, and phone numbers are never shown (a member is a person's name, an
//! extension, or "a mobile"; free text has configured mobiles and long digit runs masked). No
//! secret is ever in reach of this module. A Content-Security-Policy forbidding scripts backs
//! the escaping up.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Duration, SecondsFormat, Utc};
use chrono_tz::Tz;
use maud::{DOCTYPE, Markup, PreEscaped, html};
use regex::Regex;
use tokio_util::sync::CancellationToken;

use crate::commands::history::{self, HistoryEntry, HistoryFilter};
use crate::config::{Config, Person};
use crate::coverage::{self, Level, QueueCoverage};
use crate::model::{Member, QueueNo, sanitize};
use crate::schedule::{Schedule, local_midnight};
use crate::store::{OpenMode, Store};
use crate::words;

/// How often the page reloads itself, in seconds.
const REFRESH_SECS: u32 = 60;
/// How many upcoming changes are listed per queue.
const NEXT_CHANGES: usize = 4;
/// The coverage timeline's length (SPEC §4: the next 7 days).
const DAYS: u32 = 7;

/// A change of one queue's membership at an instant, in display names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub at: DateTime<Utc>,
    pub join: Vec<String>,
    pub leave: Vec<String>,
}

/// One queue as the page shows it.
#[derive(Debug, Clone)]
pub struct QueuePage {
    pub queue: QueueNo,
    pub name: String,
    /// Who is desired now, as display names (never numbers).
    pub now: Vec<String>,
    pub level_now: Level,
    pub changes: Vec<Change>,
    pub coverage: QueueCoverage,
}

/// Everything the page shows, gathered from the state.
#[derive(Debug, Clone)]
pub struct Page<'c> {
    pub at: DateTime<Utc>,
    pub timezone: Tz,
    pub queues: Vec<QueuePage>,
    pub history: Vec<HistoryEntry>,
    /// Sentences that make free text safe to show: configured mobiles, masked.
    mobiles: Vec<String>,
    /// The configured persons, to name members by.
    persons: &'c [Person],
}

/// A member as the page names it: the person's name, an extension, or "a mobile" — never a
/// phone number (SPEC §4: names, not phone numbers).
fn display(persons: &[Person], m: &Member) -> String {
    match (m, words::person_of(persons, m)) {
        (Member::Agent(_), Some(names)) => names,
        (Member::Custom(_), Some(names)) => format!("{names} (mobile)"),
        (Member::Agent(e), None) => format!("extension {}", e.as_str()),
        (Member::Custom(_), None) => "a mobile".to_owned(),
    }
}

/// Digit runs long enough to be a phone number (dates and times have at most four).
static DIGITS: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\+?\d{7,}").expect("the digit-run pattern compiles"));

impl Page<'_> {
    /// Free text (reasons, TRiNG's answers) made fit to show: control and bidi characters
    /// replaced, configured mobiles and long digit runs masked. Escaping is maud's.
    fn text(&self, s: &str) -> String {
        let mut out = sanitize(s, 400);
        for m in &self.mobiles {
            out = out.replace(m.as_str(), "[mobile]");
        }
        DIGITS.replace_all(&out, "[number]").into_owned()
    }

    fn name(&self, m: &Member) -> String {
        display(self.persons, m)
    }

    fn local(&self, t: DateTime<Utc>, fmt: &str) -> String {
        t.with_timezone(&self.timezone).format(fmt).to_string()
    }
}

/// Reads what the page shows: the schedule from the events last read, and the journal.
pub async fn gather<'c>(
    cfg: &'c Config,
    store: &Store,
    now: DateTime<Utc>,
) -> Result<Page<'c>, String> {
    let schedule = store
        .stored_schedule(&cfg.roster())
        .await
        .map_err(|e| e.to_string())?;
    let history = history::read(
        store,
        now - Duration::hours(24),
        now,
        &HistoryFilter::default(),
    )
    .await
    .map_err(|e| e.to_string())?;
    Ok(Page {
        at: now,
        timezone: cfg.timezone,
        queues: queues(cfg, &schedule, now),
        history,
        mobiles: cfg
            .persons
            .iter()
            .filter_map(|p| p.mobile.as_ref().map(|m| m.as_str().to_owned()))
            .collect(),
        persons: &cfg.persons,
    })
}

fn queues(cfg: &Config, schedule: &Schedule, now: DateTime<Utc>) -> Vec<QueuePage> {
    let persons = &cfg.persons;
    let tz = cfg.timezone;
    let today = now.with_timezone(&tz).date_naive();
    let start = local_midnight(today, tz);
    let end = today
        .checked_add_days(chrono::Days::new(DAYS.into()))
        .map_or(start + Duration::days(DAYS.into()), |d| {
            local_midnight(d, tz)
        });
    let known = now + Duration::from_std(cfg.window).unwrap_or(Duration::days(14));
    let covs = coverage::coverage(schedule, cfg, now, end.min(known));
    let set_at = |t: DateTime<Utc>| {
        schedule
            .desired_at(&cfg.roster(), t)
            .queues
            .into_iter()
            .map(|(q, m)| (q, m.into_keys().collect::<BTreeSet<Member>>()))
            .collect::<std::collections::BTreeMap<_, _>>()
    };
    let current = set_at(now);
    // The next changes of any queue, in order, until each queue has enough or a week passed.
    let mut changes: std::collections::BTreeMap<QueueNo, Vec<Change>> = Default::default();
    let mut before = current.clone();
    let mut t = now;
    for _ in 0..200 {
        let Some(b) = schedule
            .next_boundary(&cfg.roster(), t)
            .filter(|b| *b < end)
        else {
            break;
        };
        let after = set_at(b);
        for (q, set) in &after {
            let old = before.get(q).cloned().unwrap_or_default();
            let list = changes.entry(q.clone()).or_default();
            if set != &old && list.len() < NEXT_CHANGES {
                list.push(Change {
                    at: b,
                    join: set.difference(&old).map(|m| display(persons, m)).collect(),
                    leave: old.difference(set).map(|m| display(persons, m)).collect(),
                });
            }
        }
        if changes.len() == cfg.queues.len() && changes.values().all(|c| c.len() >= NEXT_CHANGES) {
            break;
        }
        before = after;
        t = b;
    }
    cfg.queues
        .iter()
        .zip(covs)
        .map(|(qc, cov)| {
            let set = current.get(&qc.number).cloned().unwrap_or_default();
            QueuePage {
                queue: qc.number.clone(),
                name: qc.name.clone(),
                now: set.iter().map(|m| display(persons, m)).collect(),
                level_now: Level::of(qc, &set),
                changes: changes.remove(&qc.number).unwrap_or_default(),
                coverage: cov,
            }
        })
        .collect()
}

const STYLE: &str = "
body{font-family:system-ui,sans-serif;margin:0 auto;padding:0.75rem;max-width:70rem;line-height:1.4;color:#1a1a1a;background:#fff}
h1{font-size:1.5rem;margin:0.25rem 0}
h2{font-size:1.2rem;margin:1.25rem 0 0.25rem}
section.queue{border-top:1px solid #ccc;padding-top:0.25rem}
.muted{color:#555;font-size:0.9rem}
ul{padding-left:1.25rem;margin:0.25rem 0}
.timeline svg{width:100%;min-width:40rem;height:auto;display:block}
.legend span{display:inline-block;margin-right:1rem;white-space:nowrap}
.swatch{display:inline-block;width:0.9rem;height:0.9rem;vertical-align:middle;margin-right:0.3rem;border:1px solid #999}
.scroll{overflow-x:auto}
table{border-collapse:collapse;width:100%;font-size:0.9rem}
th,td{text-align:left;vertical-align:top;padding:0.2rem 0.4rem;border-bottom:1px solid #eee}
td.reason{overflow-wrap:anywhere;min-width:12rem}
.gap{color:#b71c1c;font-weight:bold}
";

fn colour(level: Option<Level>) -> &'static str {
    match level {
        Some(Level::Many) => "#2e7d32",
        Some(Level::One) => "#81c784",
        Some(Level::FallbackOnly) => "#ffb300",
        Some(Level::Gap) => "#d32f2f",
        None => "#eeeeee",
    }
}

/// The page as HTML. Pure: everything comes in `page`.
pub fn render(page: &Page) -> String {
    let title = "rooster: who is on";
    let markup = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                meta http-equiv="refresh" content=(REFRESH_SECS);
                title { (title) }
                style { (PreEscaped(STYLE)) }
            }
            body {
                header {
                    h1 { (title) }
                    p.muted {
                        "As of " (page.local(page.at, "%Y-%m-%d %H:%M %Z"))
                        ", from the calendars last read. This page reloads every minute."
                    }
                }
                main {
                    @for q in &page.queues {
                        (queue_section(page, q))
                    }
                    (history_section(page))
                }
            }
        }
    };
    markup.into_string()
}

fn queue_section(page: &Page, q: &QueuePage) -> Markup {
    let gaps = q.coverage.gaps();
    html! {
        section.queue id={ "queue-" (q.queue.as_str()) } {
            h2 { "Queue " (q.queue.as_str()) " " (q.name) }
            p {
                strong { "Now: " }
                @if q.now.is_empty() {
                    span.gap { "nobody" }
                } @else {
                    (q.now.join(", "))
                    @if q.level_now == Level::FallbackOnly { " (fallback)" }
                }
            }
            @if !q.changes.is_empty() {
                p { strong { "Next changes:" } }
                ul.changes {
                    @for c in &q.changes {
                        li {
                            time datetime=(c.at.to_rfc3339_opts(SecondsFormat::Secs, true)) { (page.local(c.at, "%a %d %b %H:%M")) }
                            ": "
                            @if !c.join.is_empty() { "in " (c.join.join(", ")) }
                            @if !c.join.is_empty() && !c.leave.is_empty() { "; " }
                            @if !c.leave.is_empty() { "out " (c.leave.join(", ")) }
                        }
                    }
                }
            }
            div.timeline { (timeline(page, &q.coverage)) }
            @if gaps.is_empty() {
                p.muted { "No gaps in the days shown." }
            } @else {
                p { strong.gap { "Gaps (nobody in the queue):" } }
                ul.gaps {
                    @for (from, to) in &gaps {
                        li { (page.local(*from, "%a %d %b %H:%M")) " – " (page.local(*to, "%a %d %b %H:%M")) }
                    }
                }
            }
        }
    }
}

/// Equal cells side by side: first cell, count, level (`None`: past or not known).
type Run = (usize, usize, Option<Level>);

/// Seven days of coverage as SVG: one row per local day, one column per 15-minute cell, runs
/// of equal cells drawn as one rectangle. Scales with the page (viewBox, width 100%).
fn timeline(page: &Page, cov: &QueueCoverage) -> Markup {
    let tz = page.timezone;
    let today = page.at.with_timezone(&tz).date_naive();
    let label_w = 64;
    let cell_w = 6;
    let row_h = 18;
    let width = label_w + 100 * cell_w;
    let height = row_h * DAYS as usize + 16;
    let title = format!("Coverage of queue {} over {DAYS} days", cov.queue);
    let rows: Vec<(String, Vec<Run>)> = (0..DAYS)
        .filter_map(|n| today.checked_add_days(chrono::Days::new(n.into())))
        .map(|date| {
            let mut runs: Vec<Run> = Vec::new();
            for (i, level) in cov.day_cells(date, tz, page.at).into_iter().enumerate() {
                match runs.last_mut() {
                    Some(r) if r.2 == level => r.1 += 1,
                    _ => runs.push((i, 1, level)),
                }
            }
            (date.format("%a %d").to_string(), runs)
        })
        .collect();
    html! {
        // Never narrower than 40rem, so its labels stay legible on a phone and grow with the
        // browser's text size; a narrower screen scrolls the timeline sideways.
        div.scroll {
            svg xmlns="http://www.w3.org/2000/svg" viewBox={ "0 0 " (width) " " (height) } role="img" aria-label=(title) {
                title { (title) }
                @for h in (0..24).step_by(6) {
                    text x=(label_w + h * 4 * cell_w) y="11" font-size="10" fill="#555" { (format!("{h:02}:00")) }
                }
                @for (r, (label, runs)) in rows.iter().enumerate() {
                    g transform={ "translate(0," (16 + r * row_h) ")" } {
                        text x="0" y="12" font-size="11" fill="#1a1a1a" { (label) }
                        @for (start, len, level) in runs {
                            rect x=(label_w + start * cell_w) y="1" width=(len * cell_w) height=(row_h - 3) fill=(colour(*level)) {}
                        }
                    }
                }
            }
        }
        p.legend.muted {
            @for level in [Some(Level::Many), Some(Level::One), Some(Level::FallbackOnly), Some(Level::Gap), None] {
                span {
                    span.swatch style={ "background:" (colour(level)) } {}
                    (level.map_or("past or not known", Level::describe))
                }
            }
        }
    }
}

fn history_section(page: &Page) -> Markup {
    html! {
        section.history {
            h2 { "The last 24 hours" }
            @if page.history.is_empty() {
                p.muted { "Nothing was written or refused." }
            } @else {
                div.scroll {
                    table {
                        thead { tr { th { "When" } th { "Queue" } th { "What" } th { "Who" } th { "Outcome" } th { "Why" } } }
                        tbody {
                            @for e in &page.history {
                                tr {
                                    td { time datetime=(e.at.to_rfc3339_opts(SecondsFormat::Secs, true)) { (page.local(e.at, "%a %H:%M")) } }
                                    td { (e.queue.as_str()) }
                                    td { (e.action) }
                                    td { (e.member.as_ref().map_or("-".to_owned(), |m| page.name(m))) }
                                    td {
                                        (e.outcome.text())
                                        @if let Some(d) = &e.detail { ": " (page.text(d)) }
                                    }
                                    td.reason { (page.text(&e.reason)) }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

#[derive(Clone)]
struct WebState {
    cfg: Arc<Config>,
}

/// Serves the page on `addr` until `cancel`. Returns the bound address (port 0 in tests).
pub async fn serve(
    addr: SocketAddr,
    cfg: Arc<Config>,
    cancel: CancellationToken,
) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = Router::new()
        .route("/", get(page_handler))
        .with_state(WebState { cfg });
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { cancel.cancelled().await })
            .await;
    });
    Ok(bound)
}

/// Headers that keep the page inert even if something slipped through the escaping: no
/// script, no plugin, no framing, no referrer carrying the internal address.
const HEADERS: [(header::HeaderName, &str); 5] = [
    (header::CONTENT_TYPE, "text/html; charset=utf-8"),
    (
        header::CONTENT_SECURITY_POLICY,
        "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
    ),
    (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    (header::REFERRER_POLICY, "no-referrer"),
    (header::CACHE_CONTROL, "no-store"),
];

async fn page_handler(State(s): State<WebState>) -> Response {
    let now = Utc::now();
    let result = match Store::open(&s.cfg.state, OpenMode::ReadOnly).await {
        Ok(store) => {
            let page = gather(&s.cfg, &store, now).await;
            store.close().await;
            page
        }
        Err(e) => Err(e.to_string()),
    };
    match result {
        Ok(page) => (StatusCode::OK, HEADERS, render(&page)).into_response(),
        Err(e) => {
            let body = html! {
                (DOCTYPE)
                html lang="en" {
                    head { meta charset="utf-8"; meta http-equiv="refresh" content=(REFRESH_SECS); title { "rooster: unavailable" } }
                    body { p { "The status cannot be shown right now: " (sanitize(&e, 300)) } }
                }
            };
            (StatusCode::SERVICE_UNAVAILABLE, HEADERS, body.into_string()).into_response()
        }
    }
}
