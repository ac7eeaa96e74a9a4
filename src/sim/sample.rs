//! Sample rota data that the demo and `rooster sim` put into the Graph simulator beside their
//! own events: a normal on-call week in a shared rota mailbox, so that `rooster coverage` and
//! the status page have a week to show, with one evening that nobody took.
//!
//! Pure: instants and the zone come in as arguments; no clock, no I/O. The demo's tests check
//! what the demo prints against the rota as described here in words (hand-overs at 08:00 and
//! 18:00, the evening of the chosen day uncovered from 18:00 to 22:00), not against this code.

use chrono::{DateTime, Duration, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;

use crate::model::{Event, EventKind, EventTime, Sensitivity, ShowAs};

/// The local hours at which the watch is handed over: the day watch runs 08:00–18:00 and the
/// night watch 18:00–08:00.
const HANDOVERS: [u32; 2] = [8, 18];

/// On the uncovered day, the night watch starts at this local hour instead of 18:00: nobody
/// took 18:00–22:00.
const UNCOVERED_UNTIL: u32 = 22;

/// `hour`:00 local time on `date`. A time a DST change skips is taken at the first minute
/// that exists after it (never the case for the hours used here in Europe).
fn local_time(date: NaiveDate, hour: u32, tz: Tz) -> DateTime<Utc> {
    crate::schedule::first_local_instant(date.and_hms_opt(hour, 0, 0).unwrap_or_default(), tz)
}

/// The first hand-over ([`HANDOVERS`]) strictly after `t`.
pub fn next_handover(t: DateTime<Utc>, tz: Tz) -> DateTime<Utc> {
    let today = t.with_timezone(&tz).date_naive();
    today
        .iter_days()
        .take(3)
        .flat_map(|d| HANDOVERS.map(|h| local_time(d, h, tz)))
        .find(|h| *h > t)
        .unwrap_or(t + Duration::hours(12))
}

/// On-call watches as events of a shared rota mailbox (subject "Piket NAME", so a rule with
/// `who = "subject"` finds the person): from `from` (a hand-over) to local midnight at the
/// end of `last_day`, `people` taking turns watch by watch, the first watch `people[0]`'s.
/// The night watch of `uncovered` starts at [`UNCOVERED_UNTIL`] instead of 18:00.
pub fn on_call_week(
    from: DateTime<Utc>,
    last_day: NaiveDate,
    uncovered: NaiveDate,
    people: &[&str],
    tz: Tz,
) -> Vec<Event> {
    let until = local_time(last_day + Duration::days(1), 0, tz);
    let mut out = Vec::new();
    let mut start = from;
    while start < until && !people.is_empty() {
        let end = next_handover(start, tz).min(until);
        let local = start.with_timezone(&tz);
        let begins = if local.date_naive() == uncovered && local.hour() == HANDOVERS[1] {
            local_time(uncovered, UNCOVERED_UNTIL, tz)
        } else {
            start
        };
        let n = out.len();
        out.push(watch(
            &format!("piket-week-{n}"),
            people[n % people.len()],
            begins,
            end,
        ));
        start = end;
    }
    out
}

/// One watch of `name` as a plain busy event.
pub fn watch(id: &str, name: &str, start: DateTime<Utc>, end: DateTime<Utc>) -> Event {
    Event {
        id: id.to_owned(),
        subject: format!("Piket {name}"),
        when: EventTime::Timed { start, end },
        is_cancelled: false,
        show_as: ShowAs::Busy,
        categories: Vec::new(),
        sensitivity: Sensitivity::Normal,
        organizer: None,
        attendees: Vec::new(),
        kind: EventKind::SingleInstance,
        series_master_id: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;
    use chrono_tz::Europe::Amsterdam;

    fn at(s: &str) -> DateTime<Utc> {
        Amsterdam
            .from_local_datetime(
                &chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").expect("test time"),
            )
            .earliest()
            .expect("test time exists")
            .with_timezone(&Utc)
    }

    fn span(e: &Event) -> (DateTime<Utc>, DateTime<Utc>) {
        match e.when {
            EventTime::Timed { start, end } => (start, end),
            EventTime::AllDay { .. } => panic!("watches are timed"),
        }
    }

    #[test]
    fn hand_overs_are_at_eight_and_six_local_across_a_dst_change() {
        assert_eq!(
            next_handover(at("2026-03-28 19:00"), Amsterdam),
            at("2026-03-29 08:00")
        );
        assert_eq!(
            next_handover(at("2026-03-29 08:00"), Amsterdam),
            at("2026-03-29 18:00")
        );
        // 2026-03-29 has 23 hours: the night watch before it is an hour shorter.
        assert_eq!(
            at("2026-03-29 08:00") - at("2026-03-28 18:00"),
            Duration::hours(13)
        );
    }

    #[test]
    fn the_week_takes_turns_and_leaves_one_evening_uncovered() {
        let day = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date");
        let w = on_call_week(
            at("2026-11-30 18:00"),
            day("2026-12-03"),
            day("2026-12-02"),
            &["A", "B"],
            Amsterdam,
        );
        // Watches: 30th night, 1st day and night, 2nd day and night, 3rd day and night.
        assert_eq!(w.len(), 7);
        assert_eq!(w[0].subject, "Piket A");
        assert_eq!(w[1].subject, "Piket B");
        assert_eq!(
            span(&w[0]),
            (at("2026-11-30 18:00"), at("2026-12-01 08:00"))
        );
        // The 2nd's night watch starts at 22:00; the day watch before it ends at 18:00.
        assert_eq!(span(&w[3]).1, at("2026-12-02 18:00"));
        assert_eq!(
            span(&w[4]),
            (at("2026-12-02 22:00"), at("2026-12-03 08:00"))
        );
        assert_eq!(span(&w[6]).1, at("2026-12-04 00:00"));
        for pair in w.windows(2).filter(|p| p[1].id != w[4].id) {
            assert_eq!(span(&pair[0]).1, span(&pair[1]).0, "no other hole");
        }
    }
}
