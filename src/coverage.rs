//! Coverage (SPEC §4 "History and coverage"): how well each queue is staffed over a period,
//! as intervals of constant desired membership, with the gaps (nobody desired) and the
//! intervals covered by `fallback` alone. The `coverage` command, the daemon's gap alerts
//! and the status page all read it from here.
//!
//! Pure: built from a [`Schedule`] and the config; no HTTP, SQL or clock (the instants come
//! in as arguments). It walks the schedule's own boundaries, so it agrees with
//! [`Schedule::desired_at`] at every instant, not only on a grid.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, Duration, NaiveDate, Utc};
use chrono_tz::Tz;
use serde::Serialize;

use crate::config::{Config, QueueConfig};
use crate::model::{Member, QueueNo};
use crate::schedule::{Schedule, local_midnight};

/// The resolution `coverage` draws at (SPEC §4: 15-minute cells).
pub const CELL: Duration = Duration::minutes(15);

/// How a queue is covered at an instant, worst first (so `min` of two is the worse).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Level {
    /// Nobody desired: calls to the queue ring nowhere.
    Gap,
    /// Only the queue's `fallback` members (SPEC §2: nobody else was desired).
    FallbackOnly,
    /// One member.
    One,
    /// Two or more members.
    Many,
}

impl Level {
    /// The level of a desired member set of queue `q`. A set equal to the queue's fallback
    /// (and no static members, without which fallback never applies) counts as fallback
    /// only, whatever put those members there: the phones that ring are the same.
    pub fn of(q: &QueueConfig, set: &BTreeSet<Member>) -> Level {
        if set.is_empty() {
            Level::Gap
        } else if q.static_members.is_empty()
            && !q.fallback.is_empty()
            && set.len() == q.fallback.iter().collect::<BTreeSet<_>>().len()
            && q.fallback.iter().all(|m| set.contains(m))
        {
            Level::FallbackOnly
        } else if set.len() == 1 {
            Level::One
        } else {
            Level::Many
        }
    }

    /// The character `coverage` draws it with (ASCII, so any terminal shows it).
    pub fn glyph(self) -> char {
        match self {
            Level::Gap => '!',
            Level::FallbackOnly => 'f',
            Level::One => '-',
            Level::Many => '#',
        }
    }

    /// The words for a legend.
    pub fn describe(self) -> &'static str {
        match self {
            Level::Gap => "nobody (gap)",
            Level::FallbackOnly => "fallback only",
            Level::One => "one member",
            Level::Many => "two or more members",
        }
    }
}

/// An interval `[from, to)` in which a queue's desired set does not change.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Span {
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub level: Level,
    pub members: BTreeSet<Member>,
}

impl Span {
    pub fn seconds(&self) -> i64 {
        (self.to - self.from).num_seconds()
    }
}

/// One queue's coverage over `[from, to)`: spans in order, without holes, each differing
/// from the one before in its members.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct QueueCoverage {
    pub queue: QueueNo,
    pub name: String,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub spans: Vec<Span>,
}

impl QueueCoverage {
    /// The level at `t`, `None` outside `[from, to)`.
    pub fn level_at(&self, t: DateTime<Utc>) -> Option<Level> {
        let i = self.spans.partition_point(|s| s.to <= t);
        self.spans
            .get(i)
            .filter(|s| s.from <= t && t < s.to)
            .map(|s| s.level)
    }

    /// Maximal intervals at `level`, in order (adjacent spans of that level joined).
    pub fn intervals(&self, level: Level) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        let mut out: Vec<(DateTime<Utc>, DateTime<Utc>)> = Vec::new();
        for s in self.spans.iter().filter(|s| s.level == level) {
            match out.last_mut() {
                Some(last) if last.1 == s.from => last.1 = s.to,
                _ => out.push((s.from, s.to)),
            }
        }
        out
    }

    /// The gaps: intervals with nobody desired.
    pub fn gaps(&self) -> Vec<(DateTime<Utc>, DateTime<Utc>)> {
        self.intervals(Level::Gap)
    }

    /// Seconds of gap in `[from, to)`.
    pub fn gap_seconds(&self) -> i64 {
        self.spans
            .iter()
            .filter(|s| s.level == Level::Gap)
            .map(Span::seconds)
            .sum()
    }

    /// The 15-minute cells of `[from, to)` from `from` on, each with the level at its start.
    pub fn cells(
        &self,
        from: DateTime<Utc>,
        to: DateTime<Utc>,
    ) -> Vec<(DateTime<Utc>, Option<Level>)> {
        let mut out = Vec::new();
        let mut t = from;
        while t < to {
            out.push((t, self.level_at(t)));
            t += CELL;
        }
        out
    }

    /// The cells of local day `date` in `tz`, midnight to midnight (92 or 100 of them on a
    /// DST day), as `coverage` and the status page draw a day: `None` before `now` or past
    /// what the events read cover.
    pub fn day_cells(&self, date: NaiveDate, tz: Tz, now: DateTime<Utc>) -> Vec<Option<Level>> {
        let start = local_midnight(date, tz);
        let end = date
            .succ_opt()
            .map_or(start + Duration::days(1), |d| local_midnight(d, tz));
        self.cells(start, end)
            .into_iter()
            .map(|(t, level)| if t < now { None } else { level })
            .collect()
    }
}

/// Every configured queue's coverage over `[from, to)` (config order), from the events the
/// schedule was built from. Empty spans lists when `from >= to`.
pub fn coverage(
    schedule: &Schedule,
    roster: &Config,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Vec<QueueCoverage> {
    let mut out: Vec<QueueCoverage> = roster
        .queues
        .iter()
        .map(|q| QueueCoverage {
            queue: q.number.clone(),
            name: q.name.clone(),
            from,
            to,
            spans: Vec::new(),
        })
        .collect();
    let mut t = from;
    while t < to {
        let desired = schedule.desired_at(&roster.roster(), t);
        let next = schedule
            .next_boundary(&roster.roster(), t)
            .filter(|b| *b < to)
            .unwrap_or(to);
        for (qc, cov) in roster.queues.iter().zip(out.iter_mut()) {
            let set: BTreeSet<Member> = desired
                .queues
                .get(&qc.number)
                .map(|m| m.keys().cloned().collect())
                .unwrap_or_default();
            match cov.spans.last_mut() {
                Some(last) if last.members == set => last.to = next,
                _ => cov.spans.push(Span {
                    from: t,
                    to: next,
                    level: Level::of(qc, &set),
                    members: set,
                }),
            }
        }
        t = next;
    }
    out
}

/// Per queue, the start of the first gap in `[now, now + horizon)` and the seconds of gap in
/// it: what the daemon exports and warns about, and `status` shows.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct GapOutlook {
    pub next_gap: Option<(DateTime<Utc>, DateTime<Utc>)>,
    pub gap_seconds: i64,
    /// The end of the period looked at (`now + horizon`): a gap ending there may go on
    /// beyond it.
    #[serde(skip)]
    pub until: DateTime<Utc>,
}

pub fn gap_outlook(
    schedule: &Schedule,
    roster: &Config,
    now: DateTime<Utc>,
    horizon: Duration,
) -> BTreeMap<QueueNo, GapOutlook> {
    coverage(schedule, roster, now, now + horizon)
        .into_iter()
        .map(|c| {
            let outlook = GapOutlook {
                next_gap: c.gaps().first().copied(),
                gap_seconds: c.gap_seconds(),
                until: now + horizon,
            };
            (c.queue, outlook)
        })
        .collect()
}

/// Says once per queue when a gap starting within `warn_within` is first seen (SPEC §4: "one
/// WARN per queue the first time"), and again only when that gap changes.
#[derive(Debug, Default)]
pub struct GapWatch {
    warned: BTreeMap<QueueNo, NearGap>,
}

/// A gap to warn about: from `from` to `to`, or to beyond the period looked at when `to` is
/// `None` (its end there moves with every cycle, so it is not part of what the gap is).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NearGap {
    pub queue: QueueNo,
    pub from: DateTime<Utc>,
    pub to: Option<DateTime<Utc>>,
}

impl GapWatch {
    /// The gaps to warn about now: those within `warn_within` of `now` not warned about in
    /// this form before. A queue whose near gap went away is forgotten, so its next one is
    /// warned about again.
    pub fn check(
        &mut self,
        outlook: &BTreeMap<QueueNo, GapOutlook>,
        now: DateTime<Utc>,
        warn_within: Duration,
    ) -> Vec<NearGap> {
        let mut out = Vec::new();
        for (q, o) in outlook {
            match o.next_gap.filter(|(start, _)| *start < now + warn_within) {
                Some((from, to)) => {
                    let gap = NearGap {
                        queue: q.clone(),
                        from,
                        to: (to < o.until).then_some(to),
                    };
                    // A gap under way keeps its end; its start moves with `now` (the outlook
                    // starts at now), so it is compared by end while it runs.
                    let same = self.warned.get(q).is_some_and(|w| {
                        *w == gap || (gap.from <= now && w.to == gap.to && w.from <= gap.from)
                    });
                    if !same {
                        out.push(gap.clone());
                    }
                    self.warned.insert(q.clone(), gap);
                }
                None => {
                    self.warned.remove(q);
                }
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use chrono::TimeZone;
    use proptest::prelude::*;

    use super::*;
    use crate::model::{CalendarRef, Event, EventKind, EventTime, Mailbox, Sensitivity, ShowAs};
    use crate::schedule::CalendarEvents;

    fn cfg(lead: u32, lag: u32) -> Config {
        let text = format!(
            r#"
timezone = "Europe/Amsterdam"
state = "/tmp/rooster-coverage-test.db"
[tring]
base_url = "https://api.tring.nu/pbx/proxyapi.php"
tenant = "ACME"
key_env = "K"
[graph]
tenant_id = "00000000-0000-0000-0000-000000000000"
client_id = "11111111-1111-1111-1111-111111111111"
client_secret_env = "S"
[[person]]
name = "Jan de Vries"
mailbox = "jan@acme.nl"
extension = "201"
[[person]]
name = "Piet Jansen"
mailbox = "piet@acme.nl"
extension = "202"
[[person]]
name = "Anouk Bakker"
mailbox = "anouk@acme.nl"
extension = "203"
[[queue]]
number = "600"
name = "Support"
[[queue]]
number = "610"
name = "Sales"
fallback = ["ext:200"]
[[rule]]
name = "support"
calendar = "own"
match = {{ categories = ["Support"] }}
queues = ["600"]
lead = "{lead}m"
lag = "{lag}m"
[[rule]]
name = "sales"
calendar = "own"
match = {{ categories = ["Sales"] }}
queues = ["610"]
[[rule]]
name = "away"
calendar = "own"
effect = "absent"
match = {{ show_as = ["oof"] }}
"#
        );
        Config::parse(&text, Path::new("test.toml")).expect("test config parses")
    }

    fn t(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 30, h, m, 0).unwrap()
    }

    fn ev(category: &str, show_as: ShowAs, start: DateTime<Utc>, end: DateTime<Utc>) -> Event {
        Event {
            id: format!("{category}-{start}"),
            subject: category.into(),
            when: EventTime::Timed { start, end },
            is_cancelled: false,
            show_as,
            categories: vec![category.into()],
            sensitivity: Sensitivity::Normal,
            organizer: None,
            attendees: Vec::new(),
            kind: EventKind::SingleInstance,
            series_master_id: None,
        }
    }

    fn own(mb: &str) -> CalendarRef {
        CalendarRef::default_of(Mailbox::parse(mb).unwrap())
    }

    #[test]
    fn a_rota_with_a_hole_at_noon_has_exactly_that_gap() {
        let cfg = cfg(0, 0);
        let mut evs = CalendarEvents::new();
        evs.insert(
            own("jan@acme.nl"),
            vec![ev("Support", ShowAs::Busy, t(7, 0), t(11, 0))],
        );
        evs.insert(
            own("piet@acme.nl"),
            vec![ev("Support", ShowAs::Busy, t(12, 30), t(16, 0))],
        );
        let s = Schedule::new(&cfg.roster(), &evs);
        let cov = coverage(&s, &cfg, t(7, 0), t(16, 0));
        let support = &cov[0];
        assert_eq!(support.gaps(), vec![(t(11, 0), t(12, 30))]);
        assert_eq!(support.gap_seconds(), 90 * 60);
        // Sales: nobody scheduled, so fallback all day and never a gap.
        assert_eq!(cov[1].gaps(), vec![]);
        assert_eq!(
            cov[1].intervals(Level::FallbackOnly),
            vec![(t(7, 0), t(16, 0))]
        );
    }

    /// Each level against literal intervals: two on shift is "two or more", one is "one",
    /// a queue whose only member is its fallback is "fallback only", an absence cuts a shift.
    #[test]
    fn levels_of_a_known_rota() {
        let cfg = cfg(0, 0);
        let mut evs = CalendarEvents::new();
        evs.insert(
            own("jan@acme.nl"),
            vec![
                ev("Support", ShowAs::Busy, t(7, 0), t(11, 0)),
                ev("Sales", ShowAs::Busy, t(13, 0), t(14, 0)),
            ],
        );
        evs.insert(
            own("anouk@acme.nl"),
            vec![
                ev("Support", ShowAs::Busy, t(9, 0), t(16, 0)),
                ev("Vrij", ShowAs::Oof, t(12, 0), t(12, 30)),
            ],
        );
        let s = Schedule::new(&cfg.roster(), &evs);
        let cov = coverage(&s, &cfg, t(7, 0), t(16, 0));
        let support = &cov[0];
        assert_eq!(support.intervals(Level::Many), vec![(t(9, 0), t(11, 0))]);
        assert_eq!(
            support.intervals(Level::One),
            vec![
                (t(7, 0), t(9, 0)),
                (t(11, 0), t(12, 0)),
                (t(12, 30), t(16, 0))
            ]
        );
        assert_eq!(support.gaps(), vec![(t(12, 0), t(12, 30))]);
        let sales = &cov[1];
        assert_eq!(sales.intervals(Level::One), vec![(t(13, 0), t(14, 0))]);
        assert_eq!(
            sales.intervals(Level::FallbackOnly),
            vec![(t(7, 0), t(13, 0)), (t(14, 0), t(16, 0))]
        );
        assert_eq!(support.level_at(t(10, 0)), Some(Level::Many));
        assert_eq!(sales.level_at(t(13, 30)), Some(Level::One));
    }

    #[test]
    fn warns_once_per_gap_and_again_when_it_changes() {
        let mut watch = GapWatch::default();
        let within = Duration::hours(72);
        let outlook = |gap: Option<(DateTime<Utc>, DateTime<Utc>)>| {
            BTreeMap::from([(
                QueueNo::parse("600").unwrap(),
                GapOutlook {
                    next_gap: gap,
                    gap_seconds: 0,
                    until: t(7, 0) + Duration::days(7),
                },
            )])
        };
        let gap = Some((t(11, 0), t(12, 30)));
        assert_eq!(watch.check(&outlook(gap), t(7, 0), within).len(), 1);
        assert_eq!(watch.check(&outlook(gap), t(7, 2), within).len(), 0);
        // Under way: the outlook starts at now, the end is the same: no new warning.
        let running = Some((t(11, 5), t(12, 30)));
        assert_eq!(watch.check(&outlook(running), t(11, 5), within).len(), 0);
        // It changed (ends later): warned again.
        let longer = Some((t(11, 7), t(13, 0)));
        assert_eq!(watch.check(&outlook(longer), t(11, 7), within).len(), 1);
        // Gone, then back: warned again.
        assert_eq!(watch.check(&outlook(None), t(11, 9), within).len(), 0);
        assert_eq!(watch.check(&outlook(gap), t(7, 0), within).len(), 1);
        // Beyond 72 h: not warned.
        let far = Some((t(11, 0) + Duration::days(4), t(12, 0) + Duration::days(4)));
        let mut fresh = GapWatch::default();
        assert_eq!(fresh.check(&outlook(far), t(7, 0), within).len(), 0);
    }

    /// A gap that runs past the 7 days looked at ends, in the outlook, where the period does:
    /// at `now + 7 d`, later with every cycle. That end is not part of what the gap is.
    #[test]
    fn a_gap_running_past_the_horizon_is_warned_once() {
        let mut watch = GapWatch::default();
        let within = Duration::hours(72);
        let q = QueueNo::parse("610").unwrap();
        let at = |now: DateTime<Utc>, from: DateTime<Utc>| {
            let until = now + Duration::days(7);
            BTreeMap::from([(
                q.clone(),
                GapOutlook {
                    next_gap: Some((from, until)),
                    gap_seconds: (until - from).num_seconds(),
                    until,
                },
            )])
        };
        let from = t(11, 0);
        let first = watch.check(&at(t(7, 0), from), t(7, 0), within);
        assert_eq!(
            first,
            [NearGap {
                queue: q.clone(),
                from,
                to: None
            }]
        );
        for minute in 1..=10 {
            let now = t(7, 0) + Duration::minutes(2 * minute);
            assert_eq!(
                watch.check(&at(now, from), now, within),
                [],
                "poll {minute}"
            );
        }
        // Under way, still open-ended: the same gap.
        let now = t(11, 30);
        assert_eq!(watch.check(&at(now, now), now, within), []);
        // Someone covers it from 15:00 on: it now has an end, so it is a changed gap.
        let mut closed = at(now, now);
        closed.get_mut(&q).unwrap().next_gap = Some((now, t(15, 0)));
        assert_eq!(watch.check(&closed, now, within).len(), 1);
    }

    /// Random rotas: shifts and absences of three persons at any minute over a day.
    fn arb_rota() -> impl Strategy<Value = CalendarEvents> {
        let one = (0usize..3, 0usize..3, 0i64..24 * 60, 1i64..8 * 60);
        proptest::collection::vec(one, 0..14).prop_map(|raw| {
            let mut out = CalendarEvents::new();
            for (who, kind, start, len) in raw {
                let mb = ["jan@acme.nl", "piet@acme.nl", "anouk@acme.nl"][who];
                let s = t(0, 0) + Duration::minutes(start);
                let e = s + Duration::minutes(len);
                let event = match kind {
                    0 => ev("Support", ShowAs::Busy, s, e),
                    1 => ev("Sales", ShowAs::Busy, s, e),
                    _ => ev("Vrij", ShowAs::Oof, s, e),
                };
                out.entry(own(mb)).or_default().push(event);
            }
            out
        })
    }

    proptest! {
        #[test]
        fn coverage_agrees_with_desired_at_at_every_cell_boundary(
            evs in arb_rota(),
            lead in 0u32..30,
            lag in 0u32..30,
            offset in 0i64..15,
        ) {
            let cfg = cfg(lead, lag);
            let s = Schedule::new(&cfg.roster(), &evs);
            let from = t(0, 0) + Duration::minutes(offset);
            let to = from + Duration::hours(30);
            for cov in coverage(&s, &cfg, from, to) {
                let qc = cfg.queue(&cov.queue).unwrap();
                // The spans tile [from, to) without holes.
                prop_assert_eq!(cov.spans.first().map(|s| s.from), Some(from));
                prop_assert_eq!(cov.spans.last().map(|s| s.to), Some(to));
                for w in cov.spans.windows(2) {
                    prop_assert_eq!(w[0].to, w[1].from);
                }
                for (at, level) in cov.cells(from, to) {
                    let want: BTreeSet<Member> = s.desired_at(&cfg.roster(), at).queues[&cov.queue]
                        .keys().cloned().collect();
                    prop_assert_eq!(level, Some(Level::of(qc, &want)), "queue {} at {}", cov.queue, at);
                    let span = cov.spans.iter().find(|sp| sp.from <= at && at < sp.to).unwrap();
                    prop_assert_eq!(&span.members, &want, "queue {} at {}", cov.queue, at);
                }
            }
        }
    }
}
