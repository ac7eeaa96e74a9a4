//! Graph calendarView JSON → [`model::Event`](crate::model::Event).
//! SPEC §2, graph-notes B4–B7.
//!
//! Pure: no HTTP, no clock. Times are read as UTC (we never send `Prefer: outlook.timezone`);
//! all-day events keep only the date part of `start`/`end` (graph-notes B5). An event that
//! cannot be understood fails the page with an error naming its id: a silently dropped event
//! would look like a shift that ended, and SPEC §3 rule 1 would then not protect the queue.

use std::collections::HashMap;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeZone, Utc};
use serde::Deserialize;

use crate::model::{Event, EventKind, EventTime, Sensitivity, ShowAs, sanitize};

/// Why a page or an event from Graph could not be normalised. The event id comes first so
/// an operator can find the event; ids and values are sanitised (they are untrusted text).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NormalizeError {
    #[error("calendar page not understood: {detail}")]
    PageMalformed { detail: String },
    #[error("event {id:?}: not understood: {detail}")]
    EventMalformed { id: String, detail: String },
    #[error("event {id:?}: {which} time missing")]
    TimeMissing { id: String, which: &'static str },
    #[error("event {id:?}: {which} time {value:?} is not a date-time")]
    DateTimeInvalid {
        id: String,
        which: &'static str,
        value: String,
    },
    #[error("event {id:?}: time zone {zone:?} is not supported (rooster reads times as UTC)")]
    TimeZoneUnsupported { id: String, zone: String },
    #[error("event {id:?}: ends before it starts")]
    EndedBeforeStart { id: String },
}

/// Graph's `dateTimeTimeZone`: an offset-less `dateTime` and a zone name.
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphDateTime {
    pub date_time: String,
    #[serde(default)]
    pub time_zone: Option<String>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphEmailAddress {
    #[serde(default)]
    pub address: Option<String>,
    #[serde(default)]
    pub name: Option<String>,
}

/// Graph's `recipient` / `attendee` (only the address is used).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphRecipient {
    #[serde(default)]
    pub email_address: Option<GraphEmailAddress>,
}

/// The fields of Graph's `event` that rooster `$select`s. Unknown fields are ignored.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct GraphEvent {
    pub id: String,
    #[serde(default)]
    pub subject: Option<String>,
    #[serde(default)]
    pub start: Option<GraphDateTime>,
    #[serde(default)]
    pub end: Option<GraphDateTime>,
    #[serde(default)]
    pub is_all_day: Option<bool>,
    #[serde(default)]
    pub is_cancelled: Option<bool>,
    #[serde(default)]
    pub show_as: Option<String>,
    #[serde(default)]
    pub categories: Option<Vec<String>>,
    #[serde(default)]
    pub sensitivity: Option<String>,
    #[serde(default)]
    pub organizer: Option<GraphRecipient>,
    #[serde(default)]
    pub attendees: Option<Vec<GraphRecipient>>,
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    #[serde(default)]
    pub series_master_id: Option<String>,
}

/// One page of a Graph collection. `value` stays raw JSON so a bad event can be named by id.
#[derive(Debug, Deserialize)]
struct RawPage {
    value: Vec<serde_json::Value>,
    #[serde(default, rename = "@odata.nextLink")]
    next_link: Option<String>,
}

fn short(s: &str) -> String {
    sanitize(s, 80)
}

/// Parses one calendarView page: its events and its `@odata.nextLink`, if any. The first
/// event that cannot be normalised fails the whole page.
pub fn normalize_page(json: &[u8]) -> Result<(Vec<Event>, Option<String>), NormalizeError> {
    let page: RawPage =
        serde_json::from_slice(json).map_err(|e| NormalizeError::PageMalformed {
            detail: e.to_string(),
        })?;
    let events = page
        .value
        .iter()
        .map(normalize_event)
        .collect::<Result<Vec<_>, _>>()?;
    Ok((events, page.next_link))
}

/// Normalises one raw Graph event.
pub fn normalize_event(raw: &serde_json::Value) -> Result<Event, NormalizeError> {
    let id_of = || {
        raw.get("id")
            .and_then(|v| v.as_str())
            .map(short)
            .unwrap_or_else(|| "(no id)".to_owned())
    };
    let ev: GraphEvent =
        GraphEvent::deserialize(raw).map_err(|e| NormalizeError::EventMalformed {
            id: id_of(),
            detail: e.to_string(),
        })?;
    from_graph(ev)
}

/// Normalises one typed Graph event.
pub fn from_graph(ev: GraphEvent) -> Result<Event, NormalizeError> {
    let id = ev.id;
    let start = ev.start.ok_or_else(|| NormalizeError::TimeMissing {
        id: short(&id),
        which: "start",
    })?;
    let end = ev.end.ok_or_else(|| NormalizeError::TimeMissing {
        id: short(&id),
        which: "end",
    })?;
    let when = if ev.is_all_day.unwrap_or(false) {
        // graph-notes B5: all-day is midnight to midnight in every zone; take the dates and
        // ignore the zone. The schedule expands them in the configured zone (SPEC §2).
        let s = parse_date(&id, "start", &start.date_time)?;
        let e = parse_date(&id, "end", &end.date_time)?;
        if e <= s {
            return Err(NormalizeError::EndedBeforeStart { id: short(&id) });
        }
        EventTime::AllDay { start: s, end: e }
    } else {
        let s = parse_instant(&id, "start", &start)?;
        let e = parse_instant(&id, "end", &end)?;
        // A zero-length event is legal in Outlook; one that ends before it starts is not.
        if e < s {
            return Err(NormalizeError::EndedBeforeStart { id: short(&id) });
        }
        EventTime::Timed { start: s, end: e }
    };
    let address = |r: &GraphRecipient| {
        r.email_address
            .as_ref()
            .and_then(|a| a.address.as_deref())
            .map(|a| a.trim().to_lowercase())
            .filter(|a| !a.is_empty())
    };
    Ok(Event {
        subject: ev.subject.unwrap_or_default(),
        when,
        is_cancelled: ev.is_cancelled.unwrap_or(false),
        // Unknown spellings count as `unknown`, which SPEC §2 treats as busy.
        show_as: ev
            .show_as
            .as_deref()
            .and_then(ShowAs::parse)
            .unwrap_or(ShowAs::Unknown),
        categories: ev.categories.unwrap_or_default(),
        sensitivity: parse_sensitivity(ev.sensitivity.as_deref()),
        organizer: ev.organizer.as_ref().and_then(address),
        attendees: ev
            .attendees
            .unwrap_or_default()
            .iter()
            .filter_map(address)
            .collect(),
        kind: parse_kind(ev.kind.as_deref()),
        series_master_id: ev.series_master_id,
        id,
    })
}

/// An unknown sensitivity is treated as private: describing a private event by its subject
/// is the worse mistake (graph-notes B7).
fn parse_sensitivity(s: Option<&str>) -> Sensitivity {
    match s.map(str::to_ascii_lowercase).as_deref() {
        None | Some("normal") => Sensitivity::Normal,
        Some("personal") => Sensitivity::Personal,
        Some("confidential") => Sensitivity::Confidential,
        Some(_) => Sensitivity::Private,
    }
}

fn parse_kind(s: Option<&str>) -> EventKind {
    match s.map(str::to_ascii_lowercase).as_deref() {
        Some("occurrence") => EventKind::Occurrence,
        Some("exception") => EventKind::Exception,
        Some("seriesmaster") => EventKind::SeriesMaster,
        _ => EventKind::SingleInstance,
    }
}

fn parse_naive(id: &str, which: &'static str, s: &str) -> Result<NaiveDateTime, NormalizeError> {
    NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f").map_err(|_| {
        NormalizeError::DateTimeInvalid {
            id: short(id),
            which,
            value: short(s),
        }
    })
}

fn parse_date(id: &str, which: &'static str, s: &str) -> Result<NaiveDate, NormalizeError> {
    // Tolerate an offset or `Z` on all-day values: only the date part counts.
    let date_part = s.get(..10).unwrap_or(s);
    NaiveDate::parse_from_str(date_part, "%Y-%m-%d").map_err(|_| NormalizeError::DateTimeInvalid {
        id: short(id),
        which,
        value: short(s),
    })
}

fn parse_instant(
    id: &str,
    which: &'static str,
    dt: &GraphDateTime,
) -> Result<DateTime<Utc>, NormalizeError> {
    // A value with its own offset (never sent by Graph without Prefer, but unambiguous).
    if let Ok(t) = DateTime::parse_from_rfc3339(&dt.date_time) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = parse_naive(id, which, &dt.date_time)?;
    let zone = dt.time_zone.as_deref().unwrap_or("UTC");
    if matches!(zone, "UTC" | "Etc/UTC" | "tzone://Microsoft/Utc") {
        return Ok(naive.and_utc());
    }
    // An IANA zone can be converted correctly; anything else (Windows names, custom zones)
    // is refused rather than guessed (graph-notes B4).
    let unsupported = || NormalizeError::TimeZoneUnsupported {
        id: short(id),
        zone: short(zone),
    };
    let tz: chrono_tz::Tz = zone.parse().map_err(|_| unsupported())?;
    match tz.from_local_datetime(&naive) {
        chrono::LocalResult::Single(t) => Ok(t.with_timezone(&Utc)),
        _ => Err(unsupported()),
    }
}

/// Collapses events with the same id, keeping the last one seen and the position of the
/// first (calendarView pages with `$skip`; an event can show up twice, graph-notes B2).
pub fn dedupe(events: Vec<Event>) -> Vec<Event> {
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut out: Vec<Event> = Vec::with_capacity(events.len());
    for ev in events {
        match index.get(&ev.id) {
            Some(&i) => out[i] = ev,
            None => {
                index.insert(ev.id.clone(), out.len());
                out.push(ev);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PAGE: &str = include_str!("../../tests/fixtures/graph/calendarview_page1.json");
    const BAD: &str = include_str!("../../tests/fixtures/graph/bad_event.json");

    fn utc(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test instant")
            .with_timezone(&Utc)
    }

    fn page() -> (Vec<Event>, Option<String>) {
        normalize_page(PAGE.as_bytes()).expect("fixture page normalises")
    }

    fn by_id<'a>(events: &'a [Event], id: &str) -> &'a Event {
        events
            .iter()
            .find(|e| e.id == id)
            .unwrap_or_else(|| panic!("event {id} missing"))
    }

    #[test]
    fn page_keeps_every_event_and_its_next_link() {
        let (events, next) = page();
        assert_eq!(events.len(), 8);
        assert!(next.expect("nextLink").contains("$skip=8"));
    }

    #[test]
    fn single_event_is_read_as_utc_with_lowercased_organizer() {
        let (events, _) = page();
        let e = by_id(&events, "AAMkAGI2-single");
        assert_eq!(
            e.when,
            EventTime::Timed {
                start: utc("2026-11-24T08:00:00Z"),
                end: utc("2026-11-24T16:00:00Z")
            }
        );
        assert_eq!(e.organizer.as_deref(), Some("jan@acme.nl"));
        assert_eq!(e.categories, vec!["Support".to_owned()]);
        assert_eq!(e.show_as, ShowAs::Busy);
        assert_eq!(e.kind, EventKind::SingleInstance);
    }

    #[test]
    fn recurring_occurrence_and_exception_keep_their_master() {
        let (events, _) = page();
        let occ = by_id(&events, "AAMkAGI2-occ-1");
        assert_eq!(occ.kind, EventKind::Occurrence);
        assert_eq!(occ.series_master_id.as_deref(), Some("AAMkAGI2-master"));
        assert_eq!(occ.attendees, vec!["ans@acme.nl".to_owned()]);
        assert_eq!(occ.show_as, ShowAs::Tentative);
        let exc = by_id(&events, "AAMkAGI2-exc-1");
        assert_eq!(exc.kind, EventKind::Exception);
        assert_eq!(
            exc.when,
            EventTime::Timed {
                start: utc("2026-12-02T09:30:00Z"),
                end: utc("2026-12-02T13:30:00Z")
            }
        );
    }

    #[test]
    fn cancelled_event_is_marked_cancelled() {
        let (events, _) = page();
        assert!(by_id(&events, "AAMkAGI2-cancelled").is_cancelled);
        assert!(!by_id(&events, "AAMkAGI2-single").is_cancelled);
    }

    #[test]
    fn multi_day_all_day_event_becomes_dates_with_exclusive_end() {
        let (events, _) = page();
        let e = by_id(&events, "AAMkAGI2-allday");
        assert_eq!(
            e.when,
            EventTime::AllDay {
                start: NaiveDate::from_ymd_opt(2026, 11, 27).expect("date"),
                end: NaiveDate::from_ymd_opt(2026, 11, 30).expect("date"),
            }
        );
        assert_eq!(e.show_as, ShowAs::Oof);
    }

    #[test]
    fn all_day_event_ignores_its_time_zone() {
        let raw = json!({"id": "x", "isAllDay": true,
            "start": {"dateTime": "2026-11-27T00:00:00.0000000", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-11-28T00:00:00.0000000", "timeZone": "W. Europe Standard Time"}});
        let e = normalize_event(&raw).expect("all-day ignores zone");
        assert!(matches!(e.when, EventTime::AllDay { .. }));
    }

    #[test]
    fn private_event_is_private_and_never_described_by_subject() {
        let (events, _) = page();
        let e = by_id(&events, "AAMkAGI2-private");
        assert!(e.is_private());
        assert_eq!(e.display_subject(), "private event");
        assert_eq!(e.show_as, ShowAs::WorkingElsewhere);
    }

    #[test]
    fn dst_switch_day_shifts_stay_utc_instants() {
        let (events, _) = page();
        // 09:00–17:00 Amsterdam is 07:00–15:00 UTC after the spring switch (CEST) and
        // 08:00–16:00 UTC after the autumn one (CET); Graph already did the expansion.
        assert_eq!(
            by_id(&events, "AAMkAGI2-dst-spring").when,
            EventTime::Timed {
                start: utc("2026-03-29T07:00:00Z"),
                end: utc("2026-03-29T15:00:00Z")
            }
        );
        assert_eq!(
            by_id(&events, "AAMkAGI2-dst-autumn").when,
            EventTime::Timed {
                start: utc("2026-10-25T08:00:00Z"),
                end: utc("2026-10-25T16:00:00Z")
            }
        );
    }

    #[test]
    fn unknown_show_as_is_unknown_and_missing_sensitivity_is_normal() {
        let (events, _) = page();
        let e = by_id(&events, "AAMkAGI2-dst-spring");
        assert_eq!(e.show_as, ShowAs::Unknown);
        assert_eq!(e.sensitivity, Sensitivity::Normal);
    }

    #[test]
    fn event_without_start_fails_the_page_naming_the_event() {
        let err = normalize_page(BAD.as_bytes()).expect_err("a broken event must fail the page");
        assert_eq!(
            err,
            NormalizeError::TimeMissing {
                id: "AAMkAGI2-nostart".into(),
                which: "start"
            }
        );
        assert!(err.to_string().contains("AAMkAGI2-nostart"));
    }

    #[test]
    fn bad_date_and_end_before_start_are_errors() {
        let bad_date = json!({"id": "d", "start": {"dateTime": "24-11-2026 08:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-24T09:00:00", "timeZone": "UTC"}});
        assert!(matches!(
            normalize_event(&bad_date),
            Err(NormalizeError::DateTimeInvalid { .. })
        ));
        let backwards = json!({"id": "b", "start": {"dateTime": "2026-11-24T09:00:00", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-24T08:00:00", "timeZone": "UTC"}});
        assert_eq!(
            normalize_event(&backwards),
            Err(NormalizeError::EndedBeforeStart { id: "b".into() })
        );
        let no_id = json!({"subject": "x"});
        assert!(matches!(
            normalize_event(&no_id),
            Err(NormalizeError::EventMalformed { .. })
        ));
    }

    #[test]
    fn windows_zone_is_refused_and_iana_zone_is_converted() {
        let windows = json!({"id": "w", "start": {"dateTime": "2026-11-24T09:00:00", "timeZone": "W. Europe Standard Time"},
            "end": {"dateTime": "2026-11-24T10:00:00", "timeZone": "W. Europe Standard Time"}});
        assert!(matches!(
            normalize_event(&windows),
            Err(NormalizeError::TimeZoneUnsupported { .. })
        ));
        let iana = json!({"id": "i", "start": {"dateTime": "2026-11-24T09:00:00", "timeZone": "Europe/Amsterdam"},
            "end": {"dateTime": "2026-11-24T10:00:00", "timeZone": "Europe/Amsterdam"}});
        let e = normalize_event(&iana).expect("IANA zone converts");
        assert_eq!(
            e.when,
            EventTime::Timed {
                start: utc("2026-11-24T08:00:00Z"),
                end: utc("2026-11-24T09:00:00Z")
            }
        );
    }

    #[test]
    fn garbage_page_is_an_error() {
        assert!(matches!(
            normalize_page(b"<html>oops</html>"),
            Err(NormalizeError::PageMalformed { .. })
        ));
        assert!(matches!(
            normalize_page(b"{\"no_value\": []}"),
            Err(NormalizeError::PageMalformed { .. })
        ));
    }

    #[test]
    fn duplicate_ids_collapse_keeping_the_last() {
        let (events, _) = page();
        let mut later = events[0].clone();
        later.subject = "edited".into();
        let mut all = events.clone();
        all.push(later);
        let deduped = dedupe(all);
        assert_eq!(deduped.len(), events.len());
        assert_eq!(deduped[0].subject, "edited");
    }

    #[test]
    fn model_events_round_trip_through_graph_json() {
        // Rendered by the simulator's own writer (written from Microsoft's docs, not from
        // this parser), lean and with everything real Graph may add.
        use crate::sim::graph_event::{GraphRendering, render_event};
        let (events, _) = page();
        for extras in [false, true] {
            let r = GraphRendering {
                extras,
                ..GraphRendering::default()
            };
            for e in &events {
                let json = render_event(e, &r);
                assert_eq!(
                    &normalize_event(&json).expect("round trip"),
                    e,
                    "extras {extras}"
                );
            }
        }
    }

    #[test]
    fn custom_original_zone_is_ignored_but_a_custom_start_zone_fails_naming_the_event() {
        // graph-notes: `originalStartTimeZone` can be `tzone://Microsoft/Custom` (a legacy
        // desktop-Outlook zone). Without a Prefer header Graph still sends start/end in UTC,
        // so such an event is read as usual: rooster never looks at the original zone.
        let custom_original = json!({"id": "AAMkAGI2-custom-orig", "subject": "Support",
            "originalStartTimeZone": "tzone://Microsoft/Custom",
            "originalEndTimeZone": "tzone://Microsoft/Custom",
            "start": {"dateTime": "2026-11-24T08:00:00.0000000", "timeZone": "UTC"},
            "end": {"dateTime": "2026-11-24T16:00:00.0000000", "timeZone": "UTC"}});
        let e = normalize_event(&custom_original).expect("original zone is not read");
        assert_eq!(
            e.when,
            EventTime::Timed {
                start: utc("2026-11-24T08:00:00Z"),
                end: utc("2026-11-24T16:00:00Z")
            }
        );

        // A custom zone on start/end itself cannot be converted: refused, not guessed, and
        // the page fails with the event's id rather than dropping it (SPEC §3 rule 1).
        let custom_start = json!({"id": "AAMkAGI2-custom-start", "subject": "Support",
            "start": {"dateTime": "2026-11-24T09:00:00.0000000", "timeZone": "tzone://Microsoft/Custom"},
            "end": {"dateTime": "2026-11-24T17:00:00.0000000", "timeZone": "tzone://Microsoft/Custom"}});
        let want = NormalizeError::TimeZoneUnsupported {
            id: "AAMkAGI2-custom-start".into(),
            zone: "tzone://Microsoft/Custom".into(),
        };
        assert_eq!(normalize_event(&custom_start), Err(want.clone()));
        let page = json!({"value": [custom_original, custom_start]});
        let err = normalize_page(page.to_string().as_bytes())
            .expect_err("an unreadable event fails its page");
        assert_eq!(err, want);
        assert!(
            err.to_string().starts_with(
                "event \"AAMkAGI2-custom-start\": time zone \"tzone://Microsoft/Custom\""
            ),
            "{err}"
        );
    }
}
