//! Model events rendered as Microsoft Graph `event` JSON, for the Graph simulator and the
//! property tests. Written from Microsoft's documented shapes, not from rooster's parser:
//! nothing here may use `crate::graph`, so a misreading in `graph::normalize` cannot be
//! mirrored here and pass unnoticed.
//!
//! Sources (the shapes Graph sends without `Prefer: outlook.timezone`):
//! - event resource, its properties and enum spellings (`showAs`, `sensitivity`, `type`):
//!   <https://learn.microsoft.com/en-us/graph/api/resources/event>
//! - calendarView answers a collection of events; without `Prefer: outlook.timezone` start
//!   and end are UTC: <https://learn.microsoft.com/en-us/graph/api/user-list-calendarview>
//! - `dateTimeTimeZone`: an offset-less `dateTime` with seven fractional digits
//!   (`2017-08-29T04:00:00.0000000`) and a zone name:
//!   <https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone>; the beta page
//!   gives the same property without a fraction (`2019-04-16T09:00:00`):
//!   <https://learn.microsoft.com/en-us/graph/api/resources/datetimetimezone?view=graph-rest-beta>
//! - occurrences and exceptions with `seriesMasterId`, `type`, `@odata.etag`, `"recurrence":
//!   null` and UTC times, and `id`/`@odata.etag` returned next to a `$select`:
//!   <https://learn.microsoft.com/en-us/graph/api/event-list-instances>
//! - `organizer`/`attendees[]` as `emailAddress{name,address}`, attendee `type` and `status`
//!   (`{"response":"none","time":"0001-01-01T00:00:00Z"}` before any answer), `body`,
//!   `location`, `locations`, addresses in their owner's letter case:
//!   <https://learn.microsoft.com/en-us/graph/api/event-get>,
//!   <https://learn.microsoft.com/en-us/graph/api/resources/attendee>
//! - all-day events: `isAllDay` with start and end at midnight (graph-notes B5).
//!
//! Pure: no I/O, no clock.

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use serde_json::{Map, Value, json};

use crate::model::{Event, EventKind, EventTime, Sensitivity, ShowAs};

/// How many fractional digits a `dateTime` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fraction {
    /// `2026-03-30T07:00:00.0000000`: what v1.0 answers show (100 ns ticks).
    #[default]
    Seven,
    /// `2026-03-30T07:00:00`: the beta `dateTimeTimeZone` page's example. Sub-second parts
    /// are dropped, so use it with whole-second events.
    None,
}

/// How the simulator writes events. The default is the lean shape rooster asks for; the
/// switches add what real Graph may send and the parser must still read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GraphRendering {
    /// Also send the properties Graph returns without `$select` (`body`, `location`,
    /// `webLink`, `responseStatus`, …), properties rooster has never heard of, and addresses
    /// in mixed case. `$select` is then ignored, as if Graph had not honoured it.
    pub extras: bool,
    pub fraction: Fraction,
}

/// The documented spellings (event resource page), kept apart from the model's own tables.
fn show_as(s: ShowAs) -> &'static str {
    match s {
        ShowAs::Free => "free",
        ShowAs::Tentative => "tentative",
        ShowAs::Busy => "busy",
        ShowAs::Oof => "oof",
        ShowAs::WorkingElsewhere => "workingElsewhere",
        ShowAs::Unknown => "unknown",
    }
}

fn sensitivity(s: Sensitivity) -> &'static str {
    match s {
        Sensitivity::Normal => "normal",
        Sensitivity::Personal => "personal",
        Sensitivity::Private => "private",
        Sensitivity::Confidential => "confidential",
    }
}

fn event_type(k: EventKind) -> &'static str {
    match k {
        EventKind::SingleInstance => "singleInstance",
        EventKind::Occurrence => "occurrence",
        EventKind::Exception => "exception",
        EventKind::SeriesMaster => "seriesMaster",
    }
}

/// `dateTimeTimeZone` in UTC: no offset in `dateTime`, the zone named beside it.
fn date_time_time_zone(t: DateTime<Utc>, fraction: Fraction) -> Value {
    let whole = t.format("%Y-%m-%dT%H:%M:%S").to_string();
    let date_time = match fraction {
        // 100 ns ticks; `nanosecond()` can exceed 1e9 only on a leap second, which Graph
        // does not have.
        Fraction::Seven => format!("{whole}.{:07}", (t.nanosecond() % 1_000_000_000) / 100),
        Fraction::None => whole,
    };
    json!({ "dateTime": date_time, "timeZone": "UTC" })
}

fn midnight(d: NaiveDate) -> DateTime<Utc> {
    d.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc()
}

/// FNV-1a: a stable digest for made-up etags and iCalUIds (std's hasher may change).
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// "jan.de.vries@acme.nl" → "Jan De Vries": Graph sends a display name next to every
/// address; the model keeps only the address.
fn display_name(address: &str) -> String {
    let local = address.split('@').next().unwrap_or(address);
    local
        .split(['.', '_', '-'])
        .filter(|w| !w.is_empty())
        .map(|w| {
            let mut c = w.chars();
            c.next()
                .map(|f| f.to_uppercase().chain(c).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn email_address(address: &str, extras: bool) -> Value {
    // event-get shows addresses as their owner typed them ("IrvinS@M365x214355…"). Only an
    // ASCII letter is raised: lower-casing it again gives back exactly the model's address.
    let mut shown = address.to_owned();
    if extras && let Some(first) = shown.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    json!({ "name": display_name(address), "address": shown })
}

/// One event as a calendarView item. With `extras` off, the properties rooster selects
/// plus `@odata.etag` and `iCalUId`.
pub fn render_event(ev: &Event, r: &GraphRendering) -> Value {
    let (start, end, all_day) = match ev.when {
        EventTime::Timed { start, end } => (start, end, false),
        // All-day events are midnight to midnight; without a Prefer header they come in UTC.
        EventTime::AllDay { start, end } => (midnight(start), midnight(end), true),
    };
    let mut v = json!({
        "id": ev.id,
        "iCalUId": format!(
            "040000008200E00074C5B7101A82E00800000000{:016X}",
            fnv(ev.id.as_bytes())
        ),
        "subject": ev.subject,
        "start": date_time_time_zone(start, r.fraction),
        "end": date_time_time_zone(end, r.fraction),
        "isAllDay": all_day,
        "isCancelled": ev.is_cancelled,
        "showAs": show_as(ev.show_as),
        "categories": ev.categories,
        "sensitivity": sensitivity(ev.sensitivity),
        "attendees": ev.attendees.iter().map(|a| json!({
            "type": "required",
            "status": { "response": "none", "time": "0001-01-01T00:00:00Z" },
            "emailAddress": email_address(a, r.extras),
        })).collect::<Vec<_>>(),
        "type": event_type(ev.kind),
        "seriesMasterId": ev.series_master_id,
    });
    if let Some(o) = &ev.organizer {
        v["organizer"] = json!({ "emailAddress": email_address(o, r.extras) });
    }
    // A weak etag that changes whenever what Graph shows of the event does, like changeKey.
    let digest = fnv(&serde_json::to_vec(&v).unwrap_or_default());
    v["@odata.etag"] = json!(format!("W/\"{digest:016x}\""));
    if r.extras {
        add_extras(&mut v, ev);
    }
    v
}

/// What a request without `$select` also gets (event resource, event-get), and properties
/// newer than rooster, which it must ignore.
fn add_extras(v: &mut Value, ev: &Event) {
    let Some(obj) = v.as_object_mut() else {
        return;
    };
    let id: String = url::form_urlencoded::byte_serialize(ev.id.as_bytes()).collect();
    let extras = json!({
        "createdDateTime": "2025-12-01T09:00:00.1234567Z",
        "lastModifiedDateTime": "2025-12-02T10:30:00.7654321Z",
        "changeKey": "DwAAABYAAAA",
        "reminderMinutesBeforeStart": 15,
        "isReminderOn": true,
        "hasAttachments": false,
        "bodyPreview": "",
        "importance": "normal",
        "isOrganizer": false,
        "responseRequested": true,
        "allowNewTimeProposals": true,
        "isOnlineMeeting": false,
        "onlineMeetingProvider": "unknown",
        "onlineMeeting": null,
        "onlineMeetingUrl": null,
        "hideAttendees": false,
        "originalStartTimeZone": "W. Europe Standard Time",
        "originalEndTimeZone": "W. Europe Standard Time",
        "recurrence": null,
        "responseStatus": { "response": "none", "time": "0001-01-01T00:00:00Z" },
        "webLink": format!("https://outlook.office365.com/owa/?itemid={id}&exvsurl=1&path=/calendar/item"),
        "body": {
            "contentType": "html",
            "content": "<html><head><meta http-equiv=\"Content-Type\" content=\"text/html; charset=utf-8\"></head><body>Rota</body></html>",
        },
        "location": {
            "displayName": "Conf Room Rainier",
            "locationType": "default",
            "uniqueId": "Conf Room Rainier",
            "uniqueIdType": "private",
        },
        "locations": [{
            "displayName": "Conf Room Rainier",
            "locationType": "default",
            "uniqueId": "",
            "uniqueIdType": "unknown",
        }],
        "calendar@odata.navigationLink": "https://graph.microsoft.com/v1.0/users('sim')/calendars('AAMkSIM-default')",
        // Not in any documented shape: stands for properties Graph adds after rooster ships.
        "futureProperty": { "nested": [1, "two", null], "flag": true },
    });
    if let Value::Object(more) = extras {
        obj.extend(more);
    }
}

/// Keeps what a `$select=a,b,c` request gets: the named properties plus `id` and
/// `@odata.etag`, which event-list-instances shows Graph adding on its own.
pub fn select(v: Value, fields: &str) -> Value {
    let Value::Object(all) = v else {
        return v;
    };
    let wanted: Vec<&str> = fields.split(',').map(str::trim).collect();
    let kept: Map<String, Value> = all
        .into_iter()
        .filter(|(k, _)| k == "id" || k == "@odata.etag" || wanted.contains(&k.as_str()))
        .collect();
    Value::Object(kept)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test instant")
            .with_timezone(&Utc)
    }

    #[test]
    fn date_times_carry_seven_or_no_fractional_digits() {
        let t = at("2026-03-30T07:00:00.1234567Z");
        assert_eq!(
            date_time_time_zone(t, Fraction::Seven),
            json!({"dateTime": "2026-03-30T07:00:00.1234567", "timeZone": "UTC"})
        );
        assert_eq!(
            date_time_time_zone(t, Fraction::None),
            json!({"dateTime": "2026-03-30T07:00:00", "timeZone": "UTC"})
        );
    }

    #[test]
    fn display_name_is_made_from_the_local_part() {
        assert_eq!(display_name("jan.de.vries@acme.nl"), "Jan De Vries");
        assert_eq!(display_name("piket@acme.nl"), "Piket");
    }

    #[test]
    fn select_keeps_the_named_properties_id_and_etag() {
        let v = json!({"@odata.etag": "e", "id": "i", "subject": "s", "body": {}, "type": "t"});
        assert_eq!(
            select(v, "subject,type"),
            json!({"@odata.etag": "e", "id": "i", "subject": "s", "type": "t"})
        );
    }
}
