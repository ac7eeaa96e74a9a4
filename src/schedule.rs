//! From calendars to desired membership (SPEC §2): events + rules + an instant → the members
//! each managed queue must have, why, and the next instant at which that changes.
//!
//! Pure: no HTTP, SQL, clock or logging. Everything comes in as values (the config, the events
//! read per calendar, the instant) and goes out as values; skipped events are returned as
//! [`ScheduleWarning`]s for the caller to log. Calendar text only ever *chooses* among persons
//! and queues the config names: extensions and mobiles come from the config alone (SPEC §2).

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;

use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, TimeZone, Utc};
use chrono_tz::Tz;
use serde::Serialize;
use unicode_normalization::UnicodeNormalization;
use unicode_normalization::char::is_combining_mark;

use crate::config::{Effect, MemberAs, Person, QueueConfig, Rule, RuleCalendar, Who};
use crate::model::{CalendarRef, Event, EventTime, Member, QueueNo, ShowAs, sanitize};
use crate::roster::Roster;

/// The events read, per calendar. Calendars that a rule needs but that are missing here simply
/// contribute nothing; whether a read was complete is the plan's business (SPEC §3 rule 1).
pub type CalendarEvents = BTreeMap<CalendarRef, Vec<Event>>;

/// Where a desired member comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum WhyKind {
    /// An active calendar event matched by a rule.
    Event,
    /// The queue's `static` list: always a member.
    Static,
    /// The queue's `fallback` list: nobody else was desired.
    Fallback,
}

/// One reason a member is desired: the rule and the event (for `explain`, logs, `plan --json`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Why {
    pub kind: WhyKind,
    /// The rule's name; `"static"` or `"fallback"` for those kinds.
    pub rule: String,
    /// The calendar the event was read from (`jan@acme.nl`); empty for static/fallback.
    pub calendar: String,
    /// [`Event::display_subject`]: `"private event"` for private ones; empty for static/fallback.
    pub subject: String,
    /// The event's own start and end (all-day: local midnights), without lead or lag, because
    /// that is what a person recognises from their calendar. For static/fallback both are the
    /// instant asked about.
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
}

impl Why {
    fn fixed(kind: WhyKind, at: DateTime<Utc>) -> Why {
        let rule = match kind {
            WhyKind::Static => "static",
            WhyKind::Fallback => "fallback",
            WhyKind::Event => "event",
        };
        Why {
            kind,
            rule: rule.to_owned(),
            calendar: String::new(),
            subject: String::new(),
            from: at,
            to: at,
        }
    }

    /// One human sentence, times in the configured zone:
    /// `rule "support shifts": "Support" in jan@acme.nl 2026-03-30 09:00–17:00`.
    pub fn describe(&self, tz: Tz) -> String {
        match self.kind {
            WhyKind::Static => "static member of the queue".to_owned(),
            WhyKind::Fallback => "fallback: no other member desired".to_owned(),
            WhyKind::Event => {
                let from = self.from.with_timezone(&tz);
                let to = self.to.with_timezone(&tz);
                let span = if from.date_naive() == to.date_naive() {
                    format!("{}–{}", from.format("%Y-%m-%d %H:%M"), to.format("%H:%M"))
                } else {
                    format!(
                        "{}–{}",
                        from.format("%Y-%m-%d %H:%M"),
                        to.format("%Y-%m-%d %H:%M")
                    )
                };
                format!(
                    "rule \"{}\": \"{}\" in {} {}",
                    sanitize(&self.rule, 80),
                    self.subject,
                    self.calendar,
                    span
                )
            }
        }
    }
}

/// A member a queue must have, with the person it stands for and every reason.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DesiredMember {
    pub member: Member,
    /// The person's name (several joined by ", " if they share the member); `None` for
    /// static and fallback members.
    pub person: Option<String>,
    /// Sorted, never empty.
    pub why: Vec<Why>,
}

/// The desired membership of every managed queue at one instant.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Desired {
    /// Every queue in the config, including those that must be empty.
    pub queues: BTreeMap<QueueNo, BTreeMap<Member, DesiredMember>>,
    /// Events a rule matched but that could not be used, one per (rule, event), for events
    /// not yet over at the instant asked about (active now or coming up in the read window).
    pub warnings: Vec<ScheduleWarning>,
}

/// An event a rule matched but skipped. `Display` is one sanitised sentence naming the rule and
/// the event (calendar, subject, start) so an operator can find and fix it (SPEC §2).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ScheduleWarning {
    /// A shared-calendar event that names no configured person.
    UnknownPerson {
        rule: String,
        calendar: String,
        subject: String,
        start: DateTime<Utc>,
    },
    /// A shared-calendar event whose subject names a phrase that two or more persons share.
    AmbiguousName {
        rule: String,
        calendar: String,
        subject: String,
        start: DateTime<Utc>,
        /// The shared name or alias as it matched (case- and accent-folded).
        name: String,
        persons: Vec<String>,
    },
    /// An `as = "mobile"` rule selected a person who has no `mobile` in the config.
    NoMobile {
        rule: String,
        person: String,
        calendar: String,
        subject: String,
        start: DateTime<Utc>,
    },
}

impl fmt::Display for ScheduleWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let start_fmt = |s: &DateTime<Utc>| s.format("%Y-%m-%d %H:%MZ").to_string();
        match self {
            ScheduleWarning::UnknownPerson {
                rule,
                calendar,
                subject,
                start,
            } => write!(
                f,
                "rule \"{}\": event \"{}\" in {} starting {} names no configured person; skipped",
                sanitize(rule, 80),
                sanitize(subject, 120),
                sanitize(calendar, 120),
                start_fmt(start)
            ),
            ScheduleWarning::AmbiguousName {
                rule,
                calendar,
                subject,
                start,
                name,
                persons,
            } => write!(
                f,
                "rule \"{}\": event \"{}\" in {} starting {} names \"{}\", which is shared by {}; skipped",
                sanitize(rule, 80),
                sanitize(subject, 120),
                sanitize(calendar, 120),
                start_fmt(start),
                sanitize(name, 80),
                sanitize(&persons.join(" and "), 200)
            ),
            ScheduleWarning::NoMobile {
                rule,
                person,
                calendar,
                subject,
                start,
            } => write!(
                f,
                "rule \"{}\": event \"{}\" in {} starting {} selects {}, who has no mobile configured; skipped",
                sanitize(rule, 80),
                sanitize(subject, 120),
                sanitize(calendar, 120),
                start_fmt(start),
                sanitize(person, 80)
            ),
        }
    }
}

/// Every calendar some rule reads: each person's own calendar when any rule uses `"own"`,
/// plus each shared calendar. Sorted, without duplicates.
pub fn calendars_needed(roster: &Roster) -> Vec<CalendarRef> {
    let mut out = BTreeSet::new();
    // The persons' calendars once, not once per `own` rule: with a rule per queue that was
    // rules × persons clones.
    if roster.rules.iter().any(|r| r.calendar == RuleCalendar::Own) {
        out = own_calendars(roster);
    }
    for rule in roster.rules {
        if let RuleCalendar::Shared(c) = &rule.calendar {
            out.insert(c.clone());
        }
    }
    out.into_iter().collect()
}

/// Which calendars feed one managed queue, through member rules and absence rules alike: if
/// one of them was not read completely, that queue gets no dels (SPEC §3 rule 1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Feeds {
    /// Some `own` rule touches the queue: every person's own calendar feeds it. Kept as a
    /// flag rather than a copy of those calendars per queue (2,000 persons × 200 queues).
    pub own: bool,
    /// The shared calendars of the rules touching it.
    pub shared: BTreeSet<CalendarRef>,
}

/// [`Feeds`] of every configured queue (empty when no rule touches it).
pub fn queue_feeds(roster: &Roster) -> BTreeMap<QueueNo, Feeds> {
    let mut out: BTreeMap<QueueNo, Feeds> = BTreeMap::new();
    for q in roster.queues {
        out.entry(q.number.clone()).or_default();
    }
    for rule in roster.rules {
        for qi in rule_queues(*roster, rule) {
            // A queue number configured twice shares one entry.
            let feeds = out.entry(roster.queues[qi].number.clone()).or_default();
            match &rule.calendar {
                RuleCalendar::Own => feeds.own = true,
                RuleCalendar::Shared(c) => {
                    feeds.shared.insert(c.clone());
                }
            }
        }
    }
    out
}

/// Which calendars feed each managed queue, spelled out ([`queue_feeds`] with the persons'
/// calendars in place of the `own` flag). Every configured queue has an entry.
pub fn calendars_feeding(roster: &Roster) -> BTreeMap<QueueNo, BTreeSet<CalendarRef>> {
    let own = own_calendars(roster);
    queue_feeds(roster)
        .into_iter()
        .map(|(q, f)| {
            let mut set = if f.own { own.clone() } else { BTreeSet::new() };
            set.extend(f.shared);
            (q, set)
        })
        .collect()
}

/// Every person's own (default) calendar, sorted.
pub fn own_calendars(roster: &Roster) -> BTreeSet<CalendarRef> {
    roster
        .persons
        .iter()
        .filter_map(|p| p.mailbox.clone().map(CalendarRef::default_of))
        .collect()
}

/// The span calendars are read over: `now − max(1 day, largest lag) .. now + window` (SPEC §2).
/// Looking back covers events that started earlier but are still active through their lag.
pub fn read_window(roster: &Roster, now: DateTime<Utc>) -> (DateTime<Utc>, DateTime<Utc>) {
    let day = TimeDelta::days(1);
    let back = roster
        .rules
        .iter()
        .map(|r| delta(r.lag))
        .fold(day, TimeDelta::max);
    (sat_sub(now, back), sat_add(now, delta(roster.window)))
}

/// The desired members of every managed queue at `t` (SPEC §2):
/// `static ∪ members of active member-rules − persons absent`, else `fallback` when empty.
///
/// Builds a [`Schedule`] for this one call; a caller asking about several instants of the
/// same events should build the schedule once and ask it.
pub fn desired_at(roster: &Roster, events: &CalendarEvents, t: DateTime<Utc>) -> Desired {
    Schedule::new(roster, events).desired_at(roster, t)
}

/// The first instant strictly after `after` at which some queue's desired *member set*
/// changes (provenance alone does not count), or `None` when nothing in the events read
/// changes it again. The daemon wakes at it (SPEC §5).
///
/// Builds a [`Schedule`] for this one call; see [`Schedule::next_boundary`].
pub fn next_boundary(
    roster: &Roster,
    events: &CalendarEvents,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    Schedule::new(roster, events).next_boundary(roster, after)
}

/// Every rule matched against one set of events, once: the activations (a matched event's
/// effect from `start − lead` until `end + lag`) and the warnings for events matched but
/// skipped. Build it once per calendar read and ask it about as many instants as needed;
/// it holds indices into the config it was built from, so always pass that same config.
///
/// Built by a [`ScheduleBuilder`], one calendar at a time, so a caller reading thousands of
/// calendars never holds all their events at once. Each event's categories and subject are
/// folded once and only the rules that read its calendar and name one of its categories (or
/// name none) are tried. What is kept per activation is small and fixed (instants and
/// indices, about 50 bytes): persons are indices, members are made from the config when
/// asked, and subjects are kept once however many events share them, so memory grows with
/// the number of activations and little else. `Schedule::default()` is the empty one: no events, nothing desired
/// but static and fallback members.
#[derive(Debug, Clone, Default)]
pub struct Schedule {
    /// Sorted by rule, then calendar as the rule lists them (person order for `own`), then
    /// event: persons sharing a member are named in this order.
    acts: Vec<Activation>,
    /// The persons of every activation, indices into `roster.persons`; an activation holds a
    /// range of it.
    persons: Vec<u32>,
    /// Per rule: what activations need from it.
    rules: Vec<RuleInfo>,
    /// Per queue (index into `roster.queues`): the activations touching it, in `acts` order.
    queue_acts: Vec<Vec<u32>>,
    /// Every activation's `from` and `to`, sorted by instant: the only instants at which a
    /// desired set can change.
    edges: Vec<(DateTime<Utc>, u32)>,
    /// Each with the instant after which it no longer matters.
    warnings: Vec<(DateTime<Utc>, ScheduleWarning)>,
    /// The calendars read, as text (`Why::calendar`); activations hold an index.
    calendars: Vec<String>,
    /// Each distinct [`Event::display_subject`] of an event a rule matched, once; activations
    /// hold an index.
    subjects: Vec<Box<str>>,
}

/// What the schedule needs of one rule.
#[derive(Debug, Clone)]
struct RuleInfo {
    /// Indices into `roster.queues` it touches (absence without queues: all).
    queues: Vec<usize>,
    /// `effect = "member"` (else `absent`).
    member: bool,
    member_as: MemberAs,
    lead: TimeDelta,
    lag: TimeDelta,
}

/// Builds a [`Schedule`] from one calendar's events at a time ([`add_calendar`]), then
/// [`finish`]. The result does not depend on the order the calendars are added in.
///
/// [`add_calendar`]: ScheduleBuilder::add_calendar
/// [`finish`]: ScheduleBuilder::finish
pub struct ScheduleBuilder<'c> {
    roster: Roster<'c>,
    names: NameIndex<'c>,
    mailboxes: MailboxIndex,
    rules: Vec<RuleInfo>,
    /// Rules by the categories they ask for (lower-cased, SPEC §2: case-insensitive).
    by_category: HashMap<String, Vec<usize>>,
    /// Rules without a category criterion: candidates for every event.
    uncategorised: Vec<usize>,
    /// Each rule's subject criterion, lower-cased.
    rule_subjects: Vec<Option<String>>,
    /// Who reads which calendar. An `own` rule reads every person's calendar, in person
    /// order (the position sorts the activations); a shared rule reads its one calendar.
    owners: HashMap<CalendarRef, Vec<usize>>,
    shared: HashMap<&'c CalendarRef, Vec<usize>>,
    acts: Vec<Activation>,
    persons: Vec<u32>,
    warnings: Vec<(DateTime<Utc>, ScheduleWarning)>,
    calendars: Vec<String>,
    subjects: HashMap<Box<str>, u32>,
    /// Scratch space, reused from event to event.
    candidates: Vec<usize>,
    folded: Vec<String>,
}

impl<'c> ScheduleBuilder<'c> {
    pub fn new(roster: &Roster<'c>) -> Self {
        let roster = *roster;
        let rules = roster
            .rules
            .iter()
            .map(|r| RuleInfo {
                queues: rule_queues(roster, r).collect(),
                member: r.effect == Effect::Member,
                member_as: r.member_as,
                lead: delta(r.lead),
                lag: delta(r.lag),
            })
            .collect();
        let mut by_category: HashMap<String, Vec<usize>> = HashMap::new();
        let mut uncategorised: Vec<usize> = Vec::new();
        for (r, rule) in roster.rules.iter().enumerate() {
            if rule.matcher.categories.is_empty() {
                uncategorised.push(r);
            }
            for c in &rule.matcher.categories {
                by_category.entry(c.to_lowercase()).or_default().push(r);
            }
        }
        let rule_subjects = roster
            .rules
            .iter()
            .map(|r| r.matcher.subject.as_ref().map(|s| s.to_lowercase()))
            .collect();
        let mut owners: HashMap<CalendarRef, Vec<usize>> = HashMap::new();
        for (p, person) in roster.persons.iter().enumerate() {
            if let Some(mb) = &person.mailbox {
                owners
                    .entry(CalendarRef::default_of(mb.clone()))
                    .or_default()
                    .push(p);
            }
        }
        let mut shared: HashMap<&CalendarRef, Vec<usize>> = HashMap::new();
        for (r, rule) in roster.rules.iter().enumerate() {
            if let RuleCalendar::Shared(c) = &rule.calendar {
                shared.entry(c).or_default().push(r);
            }
        }
        ScheduleBuilder {
            roster,
            names: NameIndex::new(roster.persons),
            mailboxes: MailboxIndex::new(roster.persons),
            rules,
            by_category,
            uncategorised,
            rule_subjects,
            owners,
            shared,
            acts: Vec::new(),
            persons: Vec::new(),
            warnings: Vec::new(),
            calendars: Vec::new(),
            subjects: HashMap::new(),
            candidates: Vec::new(),
            folded: Vec::new(),
        }
    }

    /// Room for about `activations` activations: a caller rebuilding the schedule knows how
    /// many the last one had, and growing a large vector by doubling costs twice its size.
    pub fn with_capacity(mut self, activations: usize) -> Self {
        self.acts.reserve_exact(activations);
        self.persons.reserve_exact(activations);
        self
    }

    /// Matches every rule reading `cal` against its events. Adding one calendar twice counts
    /// its events twice; callers add each calendar once.
    pub fn add_calendar(&mut self, cal: &CalendarRef, evs: &[Event]) {
        let roster = self.roster;
        let own_positions = self.owners.get(cal).map(Vec::as_slice).unwrap_or_default();
        let shared_rules = self.shared.get(cal).map(Vec::as_slice).unwrap_or_default();
        if own_positions.is_empty() && shared_rules.is_empty() {
            return; // no rule reads this calendar
        }
        let calendar = cal.to_string();
        let calendar_ix = ix(self.calendars.len());
        let owner_persons = self.mailboxes.persons(cal.mailbox.as_str());
        for (e, ev) in evs.iter().enumerate() {
            if ev.is_cancelled {
                continue; // SPEC §2: never counts, whatever the rule
            }
            self.folded.clear();
            self.folded
                .extend(ev.categories.iter().map(|c| c.to_lowercase()));
            self.candidates.clear();
            self.candidates.extend_from_slice(&self.uncategorised);
            for c in &self.folded {
                if let Some(rs) = self.by_category.get(c) {
                    self.candidates.extend_from_slice(rs);
                }
            }
            self.candidates.sort_unstable();
            self.candidates.dedup();
            let mut subject_lower: Option<String> = None;
            let mut subject: Option<(Box<str>, u32)> = None;
            for &r in &self.candidates {
                let rule = &roster.rules[r];
                let positions: &[usize] = match rule.calendar {
                    RuleCalendar::Own => own_positions,
                    RuleCalendar::Shared(_) if shared_rules.contains(&r) => &[0],
                    RuleCalendar::Shared(_) => &[],
                };
                if positions.is_empty() {
                    continue;
                }
                let criterion = self.rule_subjects[r].as_deref();
                if !other_criteria_match(rule, criterion, ev, &mut subject_lower) {
                    continue;
                }
                let (subject_text, subject_ix) = subject.get_or_insert_with(|| {
                    let text: Box<str> = ev.display_subject().into();
                    let next = ix(self.subjects.len());
                    let id = *self.subjects.entry(text.clone()).or_insert(next);
                    (text, id)
                });
                let Some(act) = activation(
                    &roster,
                    &self.names,
                    &self.mailboxes,
                    Matched {
                        rule: r,
                        calendar: &calendar,
                        subject: subject_text,
                        owners: &owner_persons,
                        ev,
                    },
                    &mut self.warnings,
                ) else {
                    continue;
                };
                let first = ix(self.persons.len());
                self.persons.extend(act.persons.iter().map(|&p| ix(p)));
                // A mailbox two persons share is read once per person, as it always was.
                for &pos in positions {
                    self.acts.push(Activation {
                        from: act.from,
                        to: act.to,
                        rule: ix(r),
                        calendar: calendar_ix,
                        subject: *subject_ix,
                        first,
                        count: ix(act.persons.len()),
                        pos: ix(pos),
                        event: ix(e),
                    });
                }
            }
        }
        self.calendars.push(calendar);
    }

    /// Sorts and indexes what was added.
    pub fn finish(self) -> Schedule {
        let mut acts = self.acts;
        // Rule-major, then calendar in the rule's order, then event: the order activations
        // always had, which decides how persons sharing a member are named. The key is
        // unique per activation, so the unstable sort is deterministic.
        acts.sort_unstable_by_key(|a| (a.rule, a.pos, a.event));
        acts.shrink_to_fit();
        let mut queue_acts: Vec<Vec<u32>> = vec![Vec::new(); self.roster.queues.len()];
        let mut edges = Vec::with_capacity(acts.len() * 2);
        for (i, a) in acts.iter().enumerate() {
            for &qi in &self.rules[a.rule as usize].queues {
                queue_acts[qi].push(ix(i));
            }
            edges.push((a.from, ix(i)));
            edges.push((a.to, ix(i)));
        }
        edges.sort_unstable();
        for list in &mut queue_acts {
            list.shrink_to_fit();
        }
        let mut subjects: Vec<Box<str>> = vec![Box::default(); self.subjects.len()];
        for (text, id) in self.subjects {
            subjects[id as usize] = text;
        }
        let mut persons = self.persons;
        persons.shrink_to_fit();
        Schedule {
            acts,
            persons,
            rules: self.rules,
            queue_acts,
            edges,
            warnings: self.warnings,
            calendars: self.calendars,
            subjects,
        }
    }
}

impl Schedule {
    /// Matches every rule of `roster` against `events`.
    pub fn new(roster: &Roster, events: &CalendarEvents) -> Schedule {
        let mut builder = ScheduleBuilder::new(roster);
        for (cal, evs) in events {
            builder.add_calendar(cal, evs);
        }
        builder.finish()
    }

    /// How many activations (matched events, once per queue-touching rule) it holds.
    pub fn len(&self) -> usize {
        self.acts.len()
    }

    pub fn is_empty(&self) -> bool {
        self.acts.is_empty()
    }

    /// Per rule, in config order: how many events it turned into activations. `rooster doctor`
    /// warns about a rule at 0 (a category or subject typo, SPEC §4 "Doctor").
    pub fn activations_per_rule(&self, roster: &Roster) -> Vec<usize> {
        let mut counts = vec![0; roster.rules.len()];
        for a in &self.acts {
            if let Some(c) = counts.get_mut(a.rule as usize) {
                *c += 1;
            }
        }
        counts
    }

    /// Every event a rule matched but skipped, whenever it ends (sorted, no duplicates).
    pub fn all_warnings(&self) -> Vec<ScheduleWarning> {
        let set: BTreeSet<&ScheduleWarning> = self.warnings.iter().map(|(_, w)| w).collect();
        set.into_iter().cloned().collect()
    }

    /// The desired members of every managed queue at `t` (SPEC §2):
    /// `static ∪ members of active member-rules − persons absent`, else `fallback` when empty.
    /// `roster` must be the config the schedule was built from.
    pub fn desired_at(&self, roster: &Roster, t: DateTime<Utc>) -> Desired {
        // The activations live at `t`, handed to their queues once (in `acts` order).
        let mut active: Vec<Vec<usize>> = vec![Vec::new(); roster.queues.len()];
        for (i, a) in self.acts.iter().enumerate() {
            if a.covers(t) {
                for &qi in self.queues_of(a) {
                    if let Some(list) = active.get_mut(qi) {
                        list.push(i);
                    }
                }
            }
        }
        let mut queues = BTreeMap::new();
        for (q, live) in roster.queues.iter().zip(&active) {
            let mut members: BTreeMap<Member, DesiredMember> = BTreeMap::new();
            let absent = self.absent_persons(live);
            for act in live.iter().map(|&i| &self.acts[i]) {
                for (p, member) in self.members_of(roster, act) {
                    if absent.contains(&p) {
                        continue;
                    }
                    let name = &roster.persons[p].name;
                    let entry = members
                        .entry(member.clone())
                        .or_insert_with(|| DesiredMember {
                            member,
                            person: None,
                            why: Vec::new(),
                        });
                    entry.person = Some(match entry.person.take() {
                        None => name.clone(),
                        Some(prev) if prev.split(", ").any(|n| n == name) => prev,
                        Some(prev) => format!("{prev}, {name}"),
                    });
                    entry.why.push(self.why(roster, act));
                }
            }
            // Static members stay whatever absences say: "static" means always (SPEC §2).
            for m in &q.static_members {
                members
                    .entry(m.clone())
                    .or_insert_with(|| DesiredMember {
                        member: m.clone(),
                        person: None,
                        why: Vec::new(),
                    })
                    .why
                    .push(Why::fixed(WhyKind::Static, t));
            }
            if members.is_empty() {
                for m in &q.fallback {
                    members.insert(
                        m.clone(),
                        DesiredMember {
                            member: m.clone(),
                            person: None,
                            why: vec![Why::fixed(WhyKind::Fallback, t)],
                        },
                    );
                }
            }
            for dm in members.values_mut() {
                dm.why.sort();
                dm.why.dedup();
            }
            queues.insert(q.number.clone(), members);
        }
        let warnings = self
            .warnings
            .iter()
            .filter(|(until, _)| *until > t)
            .map(|(_, w)| w.clone())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        Desired { queues, warnings }
    }

    /// The first instant strictly after `after` at which some queue's desired *member set*
    /// changes (provenance alone does not count), or `None` when nothing in the events read
    /// changes it again. The daemon wakes at it (SPEC §5). `roster` must be the config the
    /// schedule was built from.
    ///
    /// Desired sets are piecewise constant between activation edges (`start − lead`,
    /// `end + lag`, all-day local midnights included), so only those edges are looked at, in
    /// order. At each, only the queues of the activations starting or ending there can
    /// change: their member sets just before and at the edge are compared, from the
    /// activations live per queue, which are kept up to date edge by edge.
    pub fn next_boundary(&self, roster: &Roster, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let nq = roster.queues.len();
        let mut live: Vec<Vec<usize>> = vec![Vec::new(); nq];
        for (qi, acts) in self.queue_acts.iter().enumerate().take(nq) {
            live[qi].extend(
                acts.iter()
                    .map(|&i| i as usize)
                    .filter(|&i| self.acts[i].covers(after)),
            );
        }
        let mut touched: Vec<usize> = Vec::new();
        let mut seen = vec![false; nq];
        let first = self.edges.partition_point(|(t, _)| *t <= after);
        let mut k = first;
        while k < self.edges.len() {
            let at = self.edges[k].0;
            let end = k + self.edges[k..].partition_point(|(t, _)| *t == at);
            let here = &self.edges[k..end];
            touched.clear();
            for &(_, i) in here {
                for &qi in self.queues_of(&self.acts[i as usize]) {
                    if qi < nq && !seen[qi] {
                        seen[qi] = true;
                        touched.push(qi);
                    }
                }
            }
            let before: Vec<BTreeSet<Member>> = touched
                .iter()
                .map(|&qi| self.member_set(roster, &roster.queues[qi], &live[qi]))
                .collect();
            for &(_, i) in here {
                let i = i as usize;
                let starts = self.acts[i].from == at;
                for &qi in self.queues_of(&self.acts[i]) {
                    if qi >= nq {
                        continue;
                    }
                    if starts {
                        live[qi].push(i);
                    } else {
                        live[qi].retain(|&j| j != i);
                    }
                }
            }
            let changed = touched
                .iter()
                .zip(&before)
                .any(|(&qi, was)| self.member_set(roster, &roster.queues[qi], &live[qi]) != *was);
            if changed {
                return Some(at);
            }
            for &qi in &touched {
                seen[qi] = false;
            }
            k = end;
        }
        None
    }

    /// The reason an activation gives: its rule, calendar and event. The event's own span is
    /// the activation's without lead and lag (both at most 7 days, so never saturated).
    fn why(&self, roster: &Roster, a: &Activation) -> Why {
        let rule = self.rule(a);
        Why {
            kind: WhyKind::Event,
            rule: roster
                .rules
                .get(a.rule as usize)
                .map(|r| r.name.clone())
                .unwrap_or_default(),
            calendar: self
                .calendars
                .get(a.calendar as usize)
                .cloned()
                .unwrap_or_default(),
            subject: self
                .subjects
                .get(a.subject as usize)
                .map(|s| s.to_string())
                .unwrap_or_default(),
            from: sat_add(a.from, rule.map_or(TimeDelta::zero(), |r| r.lead)),
            to: sat_sub(a.to, rule.map_or(TimeDelta::zero(), |r| r.lag)),
        }
    }

    fn rule(&self, a: &Activation) -> Option<&RuleInfo> {
        self.rules.get(a.rule as usize)
    }

    fn queues_of(&self, a: &Activation) -> &[usize] {
        self.rule(a).map_or(&[], |r| r.queues.as_slice())
    }

    /// The persons an activation is about, as indices into `roster.persons`.
    fn persons_of(&self, a: &Activation) -> impl Iterator<Item = usize> + '_ {
        let from = a.first as usize;
        self.persons
            .get(from..from + a.count as usize)
            .unwrap_or_default()
            .iter()
            .map(|&p| p as usize)
    }

    /// The members a member-rule activation makes of its persons (none for absences). The
    /// builder only kept persons who have what the rule needs.
    fn members_of<'a>(
        &'a self,
        roster: &Roster<'a>,
        a: &Activation,
    ) -> impl Iterator<Item = (usize, Member)> + 'a {
        let roster = *roster;
        let rule = self.rule(a).filter(|r| r.member);
        let persons = rule.map(|_| self.persons_of(a)).into_iter().flatten();
        persons.filter_map(move |p| {
            let person = roster.persons.get(p)?;
            let member = match rule?.member_as {
                MemberAs::Mobile => Member::Custom(person.mobile.clone()?),
                MemberAs::Agent => Member::Agent(person.extension.clone()),
            };
            Some((p, member))
        })
    }

    /// The persons the absence activations among `live` name.
    fn absent_persons(&self, live: &[usize]) -> BTreeSet<usize> {
        live.iter()
            .map(|&i| &self.acts[i])
            .filter(|a| self.rule(a).is_some_and(|r| !r.member))
            .flat_map(|a| self.persons_of(a))
            .collect()
    }

    /// A queue's desired member set (no provenance) from the activations `live` on it.
    fn member_set(&self, roster: &Roster, q: &QueueConfig, live: &[usize]) -> BTreeSet<Member> {
        let absent = self.absent_persons(live);
        let mut set: BTreeSet<Member> = live
            .iter()
            .flat_map(|&i| self.members_of(roster, &self.acts[i]))
            .filter(|(p, _)| !absent.contains(p))
            .map(|(_, m)| m)
            .collect();
        set.extend(q.static_members.iter().cloned());
        if set.is_empty() {
            set.extend(q.fallback.iter().cloned());
        }
        set
    }
}

// ---------------------------------------------------------------------------------------------
// Internals

/// One matched event's effect: from `start − lead` until `end + lag`, on the rule's queues,
/// for some persons. Indices and instants only (52 bytes): a large tenant has 100,000.
#[derive(Debug, Clone, Copy)]
struct Activation {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// Index into `roster.rules`.
    rule: u32,
    /// Index into `Schedule::calendars`.
    calendar: u32,
    /// Index into `Schedule::subjects`.
    subject: u32,
    /// The persons: `Schedule::persons[first..first + count]`.
    first: u32,
    count: u32,
    /// The sort key after the rule: the calendar's position in the rule's order, and the
    /// event's position in its calendar.
    pos: u32,
    event: u32,
}

impl Activation {
    fn covers(&self, t: DateTime<Utc>) -> bool {
        self.from <= t && t < self.to
    }
}

/// An index as stored in the schedule. Four billion activations, persons or subjects are
/// far beyond any calendar read (Graph pages are finite and the window is weeks).
fn ix(i: usize) -> u32 {
    u32::try_from(i).unwrap_or(u32::MAX)
}

/// An event a rule matched, with what is known about its calendar.
struct Matched<'a> {
    rule: usize,
    /// The calendar as text, for warnings.
    calendar: &'a str,
    /// The event's display subject, for warnings.
    subject: &'a str,
    /// The persons whose mailbox the calendar is in.
    owners: &'a [usize],
    ev: &'a Event,
}

/// What a matched event does, before it is stored as an [`Activation`].
struct Matching {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    /// The persons it is about who can be made what the rule makes them.
    persons: Vec<usize>,
}

/// The activation of a matched event, or `None` when it is never active or names nobody
/// usable (then with a warning pushed, kept until the activation would have ended).
fn activation(
    roster: &Roster,
    names: &NameIndex,
    mailboxes: &MailboxIndex,
    m: Matched,
    warnings: &mut Vec<(DateTime<Utc>, ScheduleWarning)>,
) -> Option<Matching> {
    let rule = &roster.rules[m.rule];
    let ev = m.ev;
    let (start, end) = event_span(ev, roster.timezone);
    let from = sat_sub(start, delta(rule.lead));
    let to = sat_add(end, delta(rule.lag));
    if to <= from {
        return None; // never active
    }
    let persons = match who_is_it(names, mailboxes, rule, m.owners, ev) {
        Ok(p) => p,
        Err(Unresolved::Nobody) => {
            warnings.push((
                to,
                ScheduleWarning::UnknownPerson {
                    rule: rule.name.clone(),
                    calendar: m.calendar.to_owned(),
                    subject: m.subject.to_owned(),
                    start,
                },
            ));
            return None;
        }
        Err(Unresolved::Ambiguous { name, persons }) => {
            warnings.push((
                to,
                ScheduleWarning::AmbiguousName {
                    rule: rule.name.clone(),
                    calendar: m.calendar.to_owned(),
                    subject: m.subject.to_owned(),
                    start,
                    name,
                    persons,
                },
            ));
            return None;
        }
    };
    let mut usable = Vec::with_capacity(persons.len());
    for &p in persons.iter() {
        let person = &roster.persons[p];
        if rule.effect == Effect::Member
            && rule.member_as == MemberAs::Mobile
            && person.mobile.is_none()
        {
            warnings.push((
                to,
                ScheduleWarning::NoMobile {
                    rule: rule.name.clone(),
                    person: person.name.clone(),
                    calendar: m.calendar.to_owned(),
                    subject: m.subject.to_owned(),
                    start,
                },
            ));
            continue;
        }
        usable.push(p);
    }
    if usable.is_empty() {
        return None;
    }
    Some(Matching {
        from,
        to,
        persons: usable,
    })
}

/// The managed queues a rule touches, as indices into `roster.queues`. An absence rule without
/// queues touches them all; queues not in the config are never touched (SPEC §1).
fn rule_queues<'c>(roster: Roster<'c>, rule: &'c Rule) -> impl Iterator<Item = usize> + 'c {
    roster
        .queues
        .iter()
        .enumerate()
        .filter(|(_, q)| {
            rule.queues.contains(&q.number)
                || (rule.effect == Effect::Absent && rule.queues.is_empty())
        })
        .map(|(i, _)| i)
}

/// SPEC §2, for an event already known not cancelled and to carry one of the rule's
/// categories (or the rule names none): `free` only when the match names it; then the rest
/// of the AND. `subject` is the rule's subject criterion lower-cased; the event's subject is
/// lower-cased into `subject_lower` the first time a rule needs it.
fn other_criteria_match(
    rule: &Rule,
    subject: Option<&str>,
    ev: &Event,
    subject_lower: &mut Option<String>,
) -> bool {
    let m = &rule.matcher;
    if ev.show_as == ShowAs::Free && !m.show_as.contains(&ShowAs::Free) {
        return false;
    }
    if let Some(s) = subject
        && !subject_lower
            .get_or_insert_with(|| ev.subject.to_lowercase())
            .contains(s)
    {
        return false;
    }
    if let Some(re) = &m.subject_regex
        && !re.is_match(&ev.subject)
    {
        return false;
    }
    if !m.show_as.is_empty() && !m.show_as.contains(&ev.show_as) {
        return false;
    }
    true
}

/// The event's own span in UTC. All-day events run local midnight to local midnight in the
/// configured zone, so a DST day lasts 23 or 25 hours (SPEC §2, graph-notes B5).
fn event_span(ev: &Event, tz: Tz) -> (DateTime<Utc>, DateTime<Utc>) {
    match ev.when {
        EventTime::Timed { start, end } => (start, end),
        EventTime::AllDay { start, end } => (local_midnight(start, tz), local_midnight(end, tz)),
    }
}

/// The first instant of `date` in `tz`. Where local midnight is ambiguous (clocks turned back
/// over it) that is the earlier one; where it does not exist (clocks jumped over it, or a whole
/// day was skipped as in Pacific/Apia 2011) it is the first valid instant after the gap.
pub fn local_midnight(date: NaiveDate, tz: Tz) -> DateTime<Utc> {
    first_local_instant(date.and_hms_opt(0, 0, 0).unwrap_or_default(), tz)
}

/// The wall-clock time `wall` in `tz`: its earliest instant when it occurs twice, the first
/// minute that exists after it when a DST change skips it.
pub fn first_local_instant(wall: NaiveDateTime, tz: Tz) -> DateTime<Utc> {
    // Gaps are whole minutes and at most a day long; step through them minute by minute.
    for minutes in 0..=(26 * 60) {
        let local = wall + TimeDelta::minutes(minutes);
        if let Some(t) = tz.from_local_datetime(&local).earliest() {
            return t.with_timezone(&Utc);
        }
    }
    // Unreachable for real zones; reading the time as UTC is the least surprising fallback.
    Utc.from_utc_datetime(&wall)
}

enum Unresolved {
    Nobody,
    Ambiguous { name: String, persons: Vec<String> },
}

/// Who an event is about (SPEC §2 "Who the event is about"), as indices into `roster.persons`.
/// `owners` are the persons whose mailbox holds the calendar read.
fn who_is_it<'a>(
    names: &NameIndex,
    mailboxes: &MailboxIndex,
    rule: &Rule,
    owners: &'a [usize],
    ev: &Event,
) -> Result<Cow<'a, [usize]>, Unresolved> {
    let found: Cow<[usize]> = match (&rule.calendar, rule.who) {
        // An own-calendar event is about the calendar's owner.
        (RuleCalendar::Own, _) => Cow::Borrowed(owners),
        (RuleCalendar::Shared(_), Who::Subject) => Cow::Owned(names.persons_in(&ev.subject)?),
        (RuleCalendar::Shared(_), Who::Attendees) => {
            let mut found: BTreeSet<usize> = BTreeSet::new();
            for a in &ev.attendees {
                found.extend(mailboxes.persons(a));
            }
            Cow::Owned(found.into_iter().collect())
        }
        (RuleCalendar::Shared(_), Who::Organizer) => Cow::Owned(
            ev.organizer
                .as_deref()
                .map(|o| mailboxes.persons(o))
                .unwrap_or_default(),
        ),
    };
    if found.is_empty() {
        Err(Unresolved::Nobody)
    } else {
        Ok(found)
    }
}

/// The persons by mailbox address, compared ASCII case-insensitively (addresses are ASCII).
struct MailboxIndex {
    by_address: HashMap<String, Vec<usize>>,
}

impl MailboxIndex {
    fn new(persons: &[Person]) -> Self {
        let mut by_address: HashMap<String, Vec<usize>> = HashMap::new();
        for (i, p) in persons.iter().enumerate() {
            if let Some(mb) = &p.mailbox {
                by_address
                    .entry(mb.as_str().to_ascii_lowercase())
                    .or_default()
                    .push(i);
            }
        }
        MailboxIndex { by_address }
    }

    /// The persons (in config order) whose mailbox is `addr`.
    fn persons(&self, addr: &str) -> Vec<usize> {
        self.by_address
            .get(&addr.to_ascii_lowercase())
            .cloned()
            .unwrap_or_default()
    }
}
/// Every person's name and aliases, folded for matching, with the persons each phrase names.
struct NameIndex<'c> {
    persons: &'c [Person],
    phrases: BTreeMap<String, BTreeSet<usize>>,
}

impl<'c> NameIndex<'c> {
    fn new(persons: &'c [Person]) -> Self {
        let mut phrases: BTreeMap<String, BTreeSet<usize>> = BTreeMap::new();
        for (i, p) in persons.iter().enumerate() {
            for phrase in std::iter::once(&p.name).chain(p.aliases.iter()) {
                let folded = fold(phrase);
                // A phrase with no letter or digit would match between any two words.
                if folded.chars().any(char::is_alphanumeric) {
                    phrases.entry(folded).or_default().insert(i);
                }
            }
        }
        NameIndex { persons, phrases }
    }

    /// The persons a subject names as whole phrases. A phrase found inside a longer phrase
    /// that also matched ("Jan" inside "Jan de Vries") does not count on its own, so a full
    /// name settles what a shared first name leaves open. Distinct persons named by their own
    /// distinct phrases are all returned ("Jan + Piet" is a plausible rota entry); a phrase
    /// shared by two persons makes the whole event ambiguous: never guessed (SPEC §2).
    fn persons_in(&self, subject: &str) -> Result<Vec<usize>, Unresolved> {
        let text = fold(subject);
        let mut hits: Vec<(usize, usize, &str)> = Vec::new();
        for phrase in self.phrases.keys() {
            hits.extend(
                whole_phrase_matches(&text, phrase)
                    .into_iter()
                    .map(|(s, e)| (s, e, phrase.as_str())),
            );
        }
        let longest: Vec<&(usize, usize, &str)> = hits
            .iter()
            .filter(|(s, e, _)| {
                !hits
                    .iter()
                    .any(|(s2, e2, _)| s2 <= s && e <= e2 && (e2 - s2) > (e - s))
            })
            .collect();
        let mut found = BTreeSet::new();
        for (_, _, phrase) in longest {
            let owners = &self.phrases[*phrase];
            if owners.len() > 1 {
                return Err(Unresolved::Ambiguous {
                    name: (*phrase).to_owned(),
                    persons: owners
                        .iter()
                        .map(|i| self.persons[*i].name.clone())
                        .collect(),
                });
            }
            found.extend(owners.iter().copied());
        }
        Ok(found.into_iter().collect())
    }
}

/// Byte spans of `phrase` in `text` bounded on both sides by a non-letter/digit or the ends.
fn whole_phrase_matches(text: &str, phrase: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(pos) = text[from..].find(phrase) {
        let start = from + pos;
        let end = start + phrase.len();
        let before_ok = text[..start]
            .chars()
            .next_back()
            .is_none_or(|c| !c.is_alphanumeric());
        let after_ok = text[end..]
            .chars()
            .next()
            .is_none_or(|c| !c.is_alphanumeric());
        if before_ok && after_ok {
            out.push((start, end));
        }
        // Step one character on, so overlapping candidates are considered too.
        from = start + text[start..].chars().next().map_or(1, char::len_utf8);
    }
    out
}

/// Case- and accent-insensitive form: NFKD, combining marks dropped, lower-cased, runs of
/// white space collapsed to one space ("José  Özil" → "jose ozil").
fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut space = true;
    for c in s.nfkd().filter(|c| !is_combining_mark(*c)) {
        for l in c.to_lowercase() {
            if l.is_whitespace() {
                if !space {
                    out.push(' ');
                }
                space = true;
            } else {
                out.push(l);
                space = false;
            }
        }
    }
    if out.ends_with(' ') {
        out.pop();
    }
    out
}

fn delta(d: std::time::Duration) -> TimeDelta {
    TimeDelta::from_std(d).unwrap_or(TimeDelta::MAX)
}

fn sat_add(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_add_signed(d).unwrap_or(DateTime::<Utc>::MAX_UTC)
}

fn sat_sub(t: DateTime<Utc>, d: TimeDelta) -> DateTime<Utc> {
    t.checked_sub_signed(d).unwrap_or(DateTime::<Utc>::MIN_UTC)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use chrono_tz::Europe::Amsterdam;
    use proptest::prelude::*;
    use regex::Regex;

    use super::*;
    use crate::config::{Match, Ownership, QueueConfig};
    use crate::model::{EventKind, Extension, Mailbox, Mobile, Sensitivity};

    // ---- fixture builders ------------------------------------------------------------------

    fn ts(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s)
            .expect("test timestamp is RFC 3339")
            .with_timezone(&Utc)
    }

    fn mailbox(s: &str) -> Mailbox {
        Mailbox::parse(s).expect("test mailbox is valid")
    }

    fn ext(s: &str) -> Member {
        Member::Agent(Extension::parse(s).expect("test extension is valid"))
    }

    fn cu(s: &str) -> Member {
        Member::Custom(Mobile::parse(s).expect("test mobile is valid"))
    }

    fn q(s: &str) -> QueueNo {
        QueueNo::parse(s).expect("test queue is valid")
    }

    fn own_cal(s: &str) -> CalendarRef {
        CalendarRef::default_of(mailbox(s))
    }

    const PIKET: &str = "piket@acme.nl";

    fn person(name: &str, mb: &str, extension: &str) -> Person {
        Person {
            name: name.to_owned(),
            mailbox: Some(mailbox(mb)),
            extension: Extension::parse(extension).expect("test extension is valid"),
            mobile: None,
            aliases: Vec::new(),
        }
    }

    fn jan() -> Person {
        Person {
            mobile: Some(Mobile::parse("0612345678").expect("valid")),
            aliases: vec!["Jan".into(), "JdV".into()],
            ..person("Jan de Vries", "jan@acme.nl", "201")
        }
    }

    fn piet() -> Person {
        Person {
            aliases: vec!["Piet".into()],
            ..person("Piet Bakker", "piet@acme.nl", "202")
        }
    }

    fn queue(n: &str) -> QueueConfig {
        QueueConfig {
            number: q(n),
            name: format!("queue {n}"),
            ownership: Ownership::Additive,
            keep_last: true,
            max_removals: 20,
            fallback: Vec::new(),
            static_members: Vec::new(),
        }
    }

    fn rule(name: &str, calendar: RuleCalendar) -> Rule {
        Rule {
            name: name.to_owned(),
            calendar,
            who: Who::Subject,
            matcher: Match {
                categories: Vec::new(),
                subject: None,
                subject_regex: None,
                show_as: Vec::new(),
            },
            queues: vec![q("600")],
            effect: Effect::Member,
            member_as: MemberAs::Agent,
            lead: Duration::ZERO,
            lag: Duration::ZERO,
        }
    }

    /// "support shifts": own calendars, category Support, queue 600.
    fn shifts() -> Rule {
        rule("support shifts", RuleCalendar::Own).categories(&["support"])
    }

    /// "on call": the piket@ shared calendar, who = subject, subject "piket", queue 700.
    fn on_call() -> Rule {
        rule("on call", RuleCalendar::Shared(own_cal(PIKET)))
            .subject("piket")
            .queues(&["700"])
    }

    /// "away": own calendars, show as oof, absent from every queue.
    fn away() -> Rule {
        Rule {
            effect: Effect::Absent,
            queues: Vec::new(),
            ..rule("away", RuleCalendar::Own).show_as(&[ShowAs::Oof])
        }
    }

    trait RuleExt: Sized {
        fn categories(self, c: &[&str]) -> Self;
        fn subject(self, s: &str) -> Self;
        fn show_as(self, s: &[ShowAs]) -> Self;
        fn queues(self, qs: &[&str]) -> Self;
        fn who(self, w: Who) -> Self;
        fn mobile(self) -> Self;
        fn lead_lag(self, lead_min: u64, lag_min: u64) -> Self;
    }

    impl RuleExt for Rule {
        fn categories(mut self, c: &[&str]) -> Self {
            self.matcher.categories = c.iter().map(|s| s.to_lowercase()).collect();
            self
        }
        fn subject(mut self, s: &str) -> Self {
            self.matcher.subject = Some(s.to_lowercase());
            self
        }
        fn show_as(mut self, s: &[ShowAs]) -> Self {
            self.matcher.show_as = s.to_vec();
            self
        }
        fn queues(mut self, qs: &[&str]) -> Self {
            self.queues = qs.iter().map(|s| q(s)).collect();
            self
        }
        fn who(mut self, w: Who) -> Self {
            self.who = w;
            self
        }
        fn mobile(mut self) -> Self {
            self.member_as = MemberAs::Mobile;
            self
        }
        fn lead_lag(mut self, lead_min: u64, lag_min: u64) -> Self {
            self.lead = Duration::from_secs(lead_min * 60);
            self.lag = Duration::from_secs(lag_min * 60);
            self
        }
    }

    /// What a schedule test needs: persons, queues and rules, nothing of Graph or TRiNG.
    #[derive(Clone)]
    struct Team {
        persons: Vec<Person>,
        queues: Vec<QueueConfig>,
        rules: Vec<Rule>,
    }

    impl Team {
        fn roster(&self) -> Roster<'_> {
            Roster {
                timezone: Amsterdam,
                window: Duration::from_secs(14 * 86_400),
                persons: &self.persons,
                queues: &self.queues,
                rules: &self.rules,
            }
        }
    }

    fn config() -> Team {
        Team {
            persons: vec![jan(), piet()],
            queues: vec![queue("600"), queue("700")],
            rules: vec![shifts(), on_call(), away()],
        }
    }

    trait ConfigExt: Sized {
        fn persons(self, p: Vec<Person>) -> Self;
        fn rules(self, r: Vec<Rule>) -> Self;
        fn queue_with(self, n: &str, f: impl FnOnce(&mut QueueConfig)) -> Self;
    }

    impl ConfigExt for Team {
        fn persons(mut self, p: Vec<Person>) -> Self {
            self.persons = p;
            self
        }
        fn rules(mut self, r: Vec<Rule>) -> Self {
            self.rules = r;
            self
        }
        fn queue_with(mut self, n: &str, f: impl FnOnce(&mut QueueConfig)) -> Self {
            let qc = self
                .queues
                .iter_mut()
                .find(|qc| qc.number == q(n))
                .expect("queue is in the test config");
            f(qc);
            self
        }
    }

    fn event(subject: &str, start: &str, end: &str) -> Event {
        Event {
            id: format!("{subject}@{start}"),
            subject: subject.to_owned(),
            when: EventTime::Timed {
                start: ts(start),
                end: ts(end),
            },
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

    fn all_day(subject: &str, start: &str, end: &str) -> Event {
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date");
        Event {
            when: EventTime::AllDay {
                start: date(start),
                end: date(end),
            },
            ..event(subject, "2000-01-01T00:00:00Z", "2000-01-01T00:00:00Z")
        }
    }

    /// Jan's 09:00–17:00 (CEST) support shift on Monday 30 March 2026.
    fn support_shift() -> Event {
        event("Support", "2026-03-30T07:00:00Z", "2026-03-30T15:00:00Z").category("Support")
    }

    trait EventExt: Sized {
        fn category(self, c: &str) -> Self;
        fn show(self, s: ShowAs) -> Self;
        fn cancelled(self) -> Self;
        fn private(self) -> Self;
        fn organizer(self, o: &str) -> Self;
        fn attendees(self, a: &[&str]) -> Self;
    }

    impl EventExt for Event {
        fn category(mut self, c: &str) -> Self {
            self.categories.push(c.to_owned());
            self
        }
        fn show(mut self, s: ShowAs) -> Self {
            self.show_as = s;
            self
        }
        fn cancelled(mut self) -> Self {
            self.is_cancelled = true;
            self
        }
        fn private(mut self) -> Self {
            self.sensitivity = Sensitivity::Private;
            self
        }
        fn organizer(mut self, o: &str) -> Self {
            self.organizer = Some(o.to_owned());
            self
        }
        fn attendees(mut self, a: &[&str]) -> Self {
            self.attendees = a.iter().map(|s| s.to_string()).collect();
            self
        }
    }

    fn events(list: Vec<(&str, Vec<Event>)>) -> CalendarEvents {
        list.into_iter()
            .map(|(mb, evs)| (own_cal(mb), evs))
            .collect()
    }

    fn members(d: &Desired, queue: &str) -> Vec<Member> {
        d.queues[&q(queue)].keys().cloned().collect()
    }

    fn members_at(cfg: &Roster, evs: &CalendarEvents, queue: &str, t: &str) -> Vec<Member> {
        members(&desired_at(cfg, evs, ts(t)), queue)
    }

    // ---- activity, matching ----------------------------------------------------------------

    #[test]
    fn own_calendar_shift_makes_its_owner_an_agent_member() {
        let cfg = config();
        let evs = events(vec![("jan@acme.nl", vec![support_shift()])]);
        let d = desired_at(&cfg.roster(), &evs, ts("2026-03-30T08:00:00Z"));
        assert_eq!(members(&d, "600"), vec![ext("201")]);
        assert_eq!(members(&d, "700"), Vec::<Member>::new());
        let dm = &d.queues[&q("600")][&ext("201")];
        assert_eq!(dm.person.as_deref(), Some("Jan de Vries"));
        assert_eq!(
            dm.why,
            vec![Why {
                kind: WhyKind::Event,
                rule: "support shifts".into(),
                calendar: "jan@acme.nl".into(),
                subject: "Support".into(),
                from: ts("2026-03-30T07:00:00Z"),
                to: ts("2026-03-30T15:00:00Z"),
            }]
        );
        assert_eq!(
            dm.why[0].describe(Amsterdam),
            "rule \"support shifts\": \"Support\" in jan@acme.nl 2026-03-30 09:00–17:00"
        );
        assert!(d.warnings.is_empty(), "{:?}", d.warnings);
    }

    #[test]
    fn active_from_start_minus_lead_until_end_plus_lag_exclusive() {
        let cfg = config().rules(vec![shifts().lead_lag(2, 5)]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift()])]);
        let cases = [
            ("2026-03-30T06:57:59Z", false, "before lead"),
            ("2026-03-30T06:58:00Z", true, "at start − lead"),
            ("2026-03-30T15:04:59Z", true, "inside lag"),
            ("2026-03-30T15:05:00Z", false, "at end + lag (exclusive)"),
        ];
        for (t, active, situation) in cases {
            let got = !members_at(&cfg.roster(), &evs, "600", t).is_empty();
            assert_eq!(got, active, "{situation} at {t}");
        }
    }

    #[test]
    fn events_that_do_not_count() {
        let cfg = config();
        let t = "2026-03-30T08:00:00Z";
        let cases = [
            ("cancelled", support_shift().cancelled()),
            ("free", support_shift().show(ShowAs::Free)),
            (
                "other category",
                event("Support", "2026-03-30T07:00:00Z", "2026-03-30T15:00:00Z").category("Lunch"),
            ),
            (
                "no category",
                event("Support", "2026-03-30T07:00:00Z", "2026-03-30T15:00:00Z"),
            ),
            (
                "zero length",
                event("Support", "2026-03-30T08:00:00Z", "2026-03-30T08:00:00Z")
                    .category("Support"),
            ),
        ];
        for (situation, ev) in cases {
            let evs = events(vec![("jan@acme.nl", vec![ev])]);
            assert!(
                members_at(&cfg.roster(), &evs, "600", t).is_empty(),
                "{situation}"
            );
        }
    }

    #[test]
    fn busy_states_other_than_free_all_count() {
        // Only the shift rule: an oof shift would otherwise also trigger "away", which wins.
        let cfg = config().rules(vec![shifts()]);
        for s in [
            ShowAs::Busy,
            ShowAs::Tentative,
            ShowAs::Oof,
            ShowAs::WorkingElsewhere,
            ShowAs::Unknown,
        ] {
            let evs = events(vec![("jan@acme.nl", vec![support_shift().show(s)])]);
            assert_eq!(
                members_at(&cfg.roster(), &evs, "600", "2026-03-30T08:00:00Z"),
                vec![ext("201")],
                "{s:?}"
            );
        }
    }

    #[test]
    fn free_event_counts_when_the_match_names_free() {
        let cfg = config().rules(vec![shifts().show_as(&[ShowAs::Free, ShowAs::Busy])]);
        let evs = events(vec![(
            "jan@acme.nl",
            vec![support_shift().show(ShowAs::Free)],
        )]);
        assert_eq!(
            members_at(&cfg.roster(), &evs, "600", "2026-03-30T08:00:00Z"),
            vec![ext("201")]
        );
    }

    #[test]
    fn match_is_an_and_of_its_criteria() {
        let mut r = shifts().subject("DIENST").show_as(&[ShowAs::Busy]);
        r.matcher.subject_regex = Some(Regex::new(r"^Support").expect("test regex"));
        let cfg = config().rules(vec![r]);
        let t = "2026-03-30T08:00:00Z";
        let base = |subject: &str| {
            event(subject, "2026-03-30T07:00:00Z", "2026-03-30T15:00:00Z").category("SUPPORT")
        };
        let cases = [
            ("all criteria hold", base("Support dienst"), true),
            ("subject substring missing", base("Support shift"), false),
            ("regex fails", base("Late dienst Support"), false),
            (
                "show_as differs",
                base("Support dienst").show(ShowAs::Tentative),
                false,
            ),
        ];
        for (situation, ev, want) in cases {
            let evs = events(vec![("jan@acme.nl", vec![ev])]);
            assert_eq!(
                !members_at(&cfg.roster(), &evs, "600", t).is_empty(),
                want,
                "{situation}"
            );
        }
    }

    #[test]
    fn private_event_is_described_as_private_event() {
        let cfg = config();
        let evs = events(vec![(
            "jan@acme.nl",
            vec![
                event(
                    "Support + dentist",
                    "2026-03-30T07:00:00Z",
                    "2026-03-30T15:00:00Z",
                )
                .category("Support")
                .private(),
            ],
        )]);
        let d = desired_at(&cfg.roster(), &evs, ts("2026-03-30T08:00:00Z"));
        let why = &d.queues[&q("600")][&ext("201")].why[0];
        assert_eq!(why.subject, "private event");
        assert!(!why.describe(Amsterdam).contains("dentist"));
    }

    #[test]
    fn events_in_calendars_no_rule_reads_are_ignored() {
        let cfg = config();
        let evs = events(vec![("someone@else.nl", vec![support_shift()])]);
        assert!(members_at(&cfg.roster(), &evs, "600", "2026-03-30T08:00:00Z").is_empty());
    }

    // ---- all-day and DST -------------------------------------------------------------------

    #[test]
    fn all_day_events_run_local_midnight_to_local_midnight() {
        let cases = [
            // (situation, date, next date, UTC start, UTC end, hours)
            (
                "ordinary winter day",
                "2026-01-15",
                "2026-01-16",
                "2026-01-14T23:00:00Z",
                "2026-01-15T23:00:00Z",
                24,
            ),
            (
                "spring forward: 23 hours",
                "2026-03-29",
                "2026-03-30",
                "2026-03-28T23:00:00Z",
                "2026-03-29T22:00:00Z",
                23,
            ),
            (
                "fall back: 25 hours",
                "2026-10-25",
                "2026-10-26",
                "2026-10-24T22:00:00Z",
                "2026-10-25T23:00:00Z",
                25,
            ),
        ];
        for (situation, d0, d1, from, to, hours) in cases {
            let cfg = config().rules(vec![shifts()]);
            let evs = events(vec![(
                "jan@acme.nl",
                vec![all_day("Support", d0, d1).category("Support")],
            )]);
            let (from, to) = (ts(from), ts(to));
            assert_eq!((to - from).num_hours(), hours, "{situation}");
            let before = from - TimeDelta::seconds(1);
            let last = to - TimeDelta::seconds(1);
            assert!(
                desired_at(&cfg.roster(), &evs, before).queues[&q("600")].is_empty(),
                "{situation}: before"
            );
            assert!(
                !desired_at(&cfg.roster(), &evs, from).queues[&q("600")].is_empty(),
                "{situation}: first instant"
            );
            assert!(
                !desired_at(&cfg.roster(), &evs, last).queues[&q("600")].is_empty(),
                "{situation}: last instant"
            );
            assert!(
                desired_at(&cfg.roster(), &evs, to).queues[&q("600")].is_empty(),
                "{situation}: end"
            );
            assert_eq!(
                next_boundary(&cfg.roster(), &evs, before),
                Some(from),
                "{situation}: boundary in"
            );
            assert_eq!(
                next_boundary(&cfg.roster(), &evs, from),
                Some(to),
                "{situation}: boundary out"
            );
        }
    }

    #[test]
    fn local_midnight_that_does_not_exist_or_repeats_is_handled() {
        use chrono_tz::America::Havana;
        use chrono_tz::Pacific::Apia;
        let date = |s: &str| NaiveDate::parse_from_str(s, "%Y-%m-%d").expect("test date");
        // Samoa skipped 30 December 2011 entirely: its "midnight" is the first instant of the 31st.
        assert_eq!(
            local_midnight(date("2011-12-30"), Apia),
            ts("2011-12-30T10:00:00Z")
        );
        // Cuba springs forward at midnight (00:00 → 01:00): the day starts at 01:00 CDT.
        let spring = local_midnight(date("2026-03-08"), Havana);
        assert_eq!(spring, ts("2026-03-08T05:00:00Z"));
        // Cuba falls back at 01:00 CDT to 00:00 CST: midnight happens twice; take the earlier.
        let fall = local_midnight(date("2026-11-01"), Havana);
        assert_eq!(fall, ts("2026-11-01T04:00:00Z"));
    }

    // ---- who: subject, attendees, organizer ------------------------------------------------

    fn piket(subject: &str) -> Event {
        event(subject, "2026-03-30T16:00:00Z", "2026-03-31T06:00:00Z")
    }

    const NIGHT: &str = "2026-03-30T20:00:00Z";

    fn on_call_members(cfg: &Roster, subject: &str) -> (Vec<Member>, Vec<ScheduleWarning>) {
        let evs = events(vec![(PIKET, vec![piket(subject)])]);
        let d = desired_at(cfg, &evs, ts(NIGHT));
        (members(&d, "700"), d.warnings)
    }

    #[test]
    fn subject_names_persons_by_whole_phrase() {
        let jose = Person {
            aliases: vec!["Özil".into()],
            ..person("José Álvarez", "jose@acme.nl", "203")
        };
        let cfg = config().persons(vec![jan(), piet(), jose]);
        let cases: &[(&str, &str, &[&str])] = &[
            ("alias in subject", "Piket Jan", &["201"]),
            ("full name, other case", "PIKET jan de vries", &["201"]),
            ("alias with punctuation around", "piket (JdV)", &["201"]),
            (
                "accent in config, none in subject",
                "piket jose alvarez",
                &["203"],
            ),
            ("accent in subject, none in alias", "piket Özil", &["203"]),
            ("no accent on either side", "piket ozil", &["203"]),
            ("extra white space", "piket José   Álvarez", &["203"]),
            (
                "two persons by their own names",
                "Piket Jan + Piet",
                &["201", "202"],
            ),
            ("name inside a longer word", "Piket Janneke", &[]),
            ("name glued to digits", "Piket Jan2", &[]),
            ("url syntax selects nothing", "piket 201&action=clean", &[]),
            ("an extension is not a name", "piket 202", &[]),
        ];
        for (situation, subject, want) in cases {
            let (got, warnings) = on_call_members(&cfg.roster(), subject);
            let want: Vec<Member> = want.iter().map(|e| ext(e)).collect();
            assert_eq!(got, want, "{situation}: {subject}");
            let unknown = warnings
                .iter()
                .any(|w| matches!(w, ScheduleWarning::UnknownPerson { .. }));
            assert_eq!(unknown, want.is_empty(), "{situation}: unknown warning");
        }
    }

    #[test]
    fn alias_shared_by_two_persons_skips_the_event_with_a_warning() {
        let jan_jansen = Person {
            aliases: vec!["Jan".into()],
            ..person("Jan Jansen", "jjansen@acme.nl", "204")
        };
        let cfg = config().persons(vec![jan(), piet(), jan_jansen]);
        let (got, warnings) = on_call_members(&cfg.roster(), "Piket Jan");
        assert!(got.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let ScheduleWarning::AmbiguousName { name, persons, .. } = &warnings[0] else {
            panic!("expected an ambiguity warning, got {warnings:?}");
        };
        assert_eq!(name, "jan");
        assert_eq!(
            persons,
            &["Jan de Vries".to_owned(), "Jan Jansen".to_owned()]
        );
        let text = warnings[0].to_string();
        for part in [
            "on call",
            "Piket Jan",
            PIKET,
            "2026-03-30 16:00Z",
            "Jan Jansen",
        ] {
            assert!(text.contains(part), "{text:?} lacks {part:?}");
        }
        // The full name settles what the shared first name leaves open.
        let (got, warnings) = on_call_members(&cfg.roster(), "Piket Jan Jansen");
        assert_eq!(got, vec![ext("204")]);
        assert!(warnings.is_empty(), "{warnings:?}");
    }

    #[test]
    fn unknown_person_warns_once_per_event_and_names_it() {
        let cfg = config();
        let (got, warnings) = on_call_members(&cfg.roster(), "Piket Klaas\n\x1b[31m");
        assert!(got.is_empty());
        assert_eq!(warnings.len(), 1, "{warnings:?}");
        let text = warnings[0].to_string();
        assert!(text.contains("piket@acme.nl"), "{text}");
        assert!(text.contains("Piket Klaas"), "{text}");
        assert!(
            !text.contains('\n') && !text.contains('\x1b'),
            "unsanitised: {text:?}"
        );
    }

    #[test]
    fn warnings_cover_events_not_yet_over_only() {
        let cfg = config();
        let evs = events(vec![(PIKET, vec![piket("Piket Klaas")])]);
        let cases = [
            ("before the event", "2026-03-30T10:00:00Z", 1),
            ("during the event", NIGHT, 1),
            ("after the event", "2026-03-31T07:00:00Z", 0),
        ];
        for (situation, t, n) in cases {
            assert_eq!(
                desired_at(&cfg.roster(), &evs, ts(t)).warnings.len(),
                n,
                "{situation}"
            );
        }
    }

    #[test]
    fn attendees_and_organizer_name_persons_by_mailbox() {
        let by = |who| config().rules(vec![on_call().who(who)]);
        let ev = piket("Piket")
            .organizer("piet@acme.nl")
            .attendees(&["jan@acme.nl", "stranger@x.nl"]);
        let evs = events(vec![(PIKET, vec![ev])]);
        let at = |cfg: &Roster| members(&desired_at(cfg, &evs, ts(NIGHT)), "700");
        assert_eq!(at(&by(Who::Attendees).roster()), vec![ext("201")]);
        assert_eq!(at(&by(Who::Organizer).roster()), vec![ext("202")]);
        let nobody = events(vec![(PIKET, vec![piket("Piket Jan")])]);
        let d = desired_at(&by(Who::Organizer).roster(), &nobody, ts(NIGHT));
        assert!(
            members(&d, "700").is_empty(),
            "subject is not read for who = organizer"
        );
        assert_eq!(d.warnings.len(), 1);
    }

    #[test]
    fn mobile_members_come_from_the_config_only() {
        let cfg = config().rules(vec![on_call().mobile()]);
        let (got, warnings) = on_call_members(&cfg.roster(), "Piket Jan 0699999999");
        assert_eq!(got, vec![cu("0612345678")]);
        assert!(warnings.is_empty());
        // Piet has no mobile: skipped, with a warning naming him and the event.
        let (got, warnings) = on_call_members(&cfg.roster(), "Piket Piet 0699999999");
        assert!(got.is_empty());
        assert_eq!(warnings.len(), 1);
        assert!(
            matches!(&warnings[0], ScheduleWarning::NoMobile { person, .. } if person == "Piet Bakker")
        );
        assert!(warnings[0].to_string().contains("Piet Bakker"));
    }

    // ---- absence, static, fallback ---------------------------------------------------------

    fn jan_away() -> Event {
        all_day("Vakantie", "2026-03-30", "2026-03-31").show(ShowAs::Oof)
    }

    #[test]
    fn absence_beats_membership_in_every_queue_and_as_every_member() {
        let cfg = config().rules(vec![shifts(), on_call().mobile(), on_call(), away()]);
        let evs = events(vec![
            ("jan@acme.nl", vec![support_shift(), jan_away()]),
            ("piet@acme.nl", vec![support_shift()]),
            (PIKET, vec![piket("Piket Jan")]),
        ]);
        let d = desired_at(&cfg.roster(), &evs, ts("2026-03-30T08:00:00Z"));
        assert_eq!(
            members(&d, "600"),
            vec![ext("202")],
            "Jan absent, Piet stays"
        );
        let d = desired_at(&cfg.roster(), &evs, ts(NIGHT));
        assert!(
            members(&d, "700").is_empty(),
            "neither Jan's agent nor his mobile"
        );
        // The next day the absence is over and the night shift (till 08:00 CEST) counts again.
        let d = desired_at(&cfg.roster(), &evs, ts("2026-03-30T22:30:00Z"));
        assert_eq!(members(&d, "700"), vec![ext("201"), cu("0612345678")]);
    }

    #[test]
    fn absence_limited_to_its_queues() {
        let away_from_700 = away().queues(&["700"]);
        let cfg = config().rules(vec![shifts(), away_from_700]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift(), jan_away()])]);
        assert_eq!(
            members_at(&cfg.roster(), &evs, "600", "2026-03-30T08:00:00Z"),
            vec![ext("201")]
        );
    }

    #[test]
    fn an_activation_stays_small() {
        // A large tenant has one per event occurrence (docs/BENCHMARKS.md has the sizes):
        // instants and indices only, no strings, no vectors.
        assert!(
            std::mem::size_of::<Activation>() <= 52,
            "{} bytes",
            std::mem::size_of::<Activation>()
        );
    }

    #[test]
    fn the_order_calendars_are_added_in_does_not_change_the_schedule() {
        // Calendars arrive in whatever order their reads complete. Jan and Piet share
        // extension 201, so the desired member's name list shows the activations' order.
        let piet = Person {
            extension: Extension::parse("201").expect("valid"),
            ..piet()
        };
        let cfg = config().persons(vec![jan(), piet]);
        let mut events = CalendarEvents::new();
        events.insert(own_cal("jan@acme.nl"), vec![support_shift()]);
        events.insert(
            own_cal("piet@acme.nl"),
            vec![
                support_shift(),
                event("Support", "2026-03-30T15:00:00Z", "2026-03-30T18:00:00Z")
                    .category("Support"),
            ],
        );
        events.insert(
            own_cal(PIKET),
            vec![
                event("Piket Piet", "2026-03-30T17:00:00Z", "2026-03-31T07:00:00Z"),
                event("Piket Jan", "2026-03-30T06:00:00Z", "2026-03-30T17:00:00Z"),
            ],
        );
        let forward = Schedule::new(&cfg.roster(), &events);
        let mut builder = ScheduleBuilder::new(&cfg.roster());
        for (cal, evs) in events.iter().rev() {
            builder.add_calendar(cal, evs);
        }
        let backward = builder.finish();
        assert_eq!(forward.len(), backward.len());
        for t in [
            "2026-03-30T06:30:00Z",
            "2026-03-30T08:00:00Z",
            "2026-03-30T16:00:00Z",
            "2026-03-30T20:00:00Z",
        ] {
            let t = ts(t);
            assert_eq!(
                forward.desired_at(&cfg.roster(), t),
                backward.desired_at(&cfg.roster(), t),
                "{t}"
            );
            assert_eq!(
                forward.next_boundary(&cfg.roster(), t),
                backward.next_boundary(&cfg.roster(), t),
                "{t}"
            );
        }
        let at_nine = backward.desired_at(&cfg.roster(), ts("2026-03-30T08:00:00Z"));
        assert_eq!(
            at_nine.queues[&q("600")][&ext("201")].person.as_deref(),
            Some("Jan de Vries, Piet Bakker"),
            "persons sharing a member are named in config order"
        );
    }

    #[test]
    fn static_members_stay_even_when_their_person_is_absent() {
        let cfg = config().queue_with("600", |qc| qc.static_members = vec![ext("201"), ext("299")]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift(), jan_away()])]);
        let d = desired_at(&cfg.roster(), &evs, ts("2026-03-30T08:00:00Z"));
        assert_eq!(members(&d, "600"), vec![ext("201"), ext("299")]);
        let why = &d.queues[&q("600")][&ext("201")].why;
        assert_eq!(
            why.len(),
            1,
            "the absent person's rule is not a reason: {why:?}"
        );
        assert_eq!(why[0].kind, WhyKind::Static);
        assert_eq!(why[0].rule, "static");
    }

    #[test]
    fn static_member_also_desired_by_a_rule_lists_both_reasons() {
        let cfg = config().queue_with("600", |qc| qc.static_members = vec![ext("201")]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift()])]);
        let d = desired_at(&cfg.roster(), &evs, ts("2026-03-30T08:00:00Z"));
        let kinds: Vec<WhyKind> = d.queues[&q("600")][&ext("201")]
            .why
            .iter()
            .map(|w| w.kind)
            .collect();
        assert_eq!(kinds, vec![WhyKind::Event, WhyKind::Static]);
    }

    #[test]
    fn fallback_only_when_nothing_else_is_desired() {
        let cfg = config().queue_with("600", |qc| qc.fallback = vec![ext("200")]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift()])]);
        let cases = [
            ("during the shift", "2026-03-30T08:00:00Z", vec![ext("201")]),
            (
                "outside the shift",
                "2026-03-30T18:00:00Z",
                vec![ext("200")],
            ),
        ];
        for (situation, t, want) in cases {
            assert_eq!(
                members_at(&cfg.roster(), &evs, "600", t),
                want,
                "{situation}"
            );
        }
        let d = desired_at(&cfg.roster(), &evs, ts("2026-03-30T18:00:00Z"));
        assert_eq!(
            d.queues[&q("600")][&ext("200")].why[0].kind,
            WhyKind::Fallback
        );
        // Absence empties the queue, so the fallback steps in.
        let evs = events(vec![("jan@acme.nl", vec![support_shift(), jan_away()])]);
        assert_eq!(
            members_at(&cfg.roster(), &evs, "600", "2026-03-30T08:00:00Z"),
            vec![ext("200")]
        );
    }

    // ---- calendars, window -----------------------------------------------------------------

    #[test]
    fn calendars_needed_lists_own_and_shared_once_sorted() {
        let cfg = config();
        assert_eq!(
            calendars_needed(&cfg.roster()),
            vec![
                own_cal("jan@acme.nl"),
                own_cal("piet@acme.nl"),
                own_cal(PIKET)
            ]
        );
        let only_shared = config().rules(vec![on_call(), on_call()]);
        assert_eq!(
            calendars_needed(&only_shared.roster()),
            vec![own_cal(PIKET)]
        );
    }

    #[test]
    fn calendars_feeding_counts_member_and_absence_rules() {
        let cfg = config().rules(vec![on_call(), away()]);
        let feeding = calendars_feeding(&cfg.roster());
        let own: BTreeSet<CalendarRef> = [own_cal("jan@acme.nl"), own_cal("piet@acme.nl")].into();
        assert_eq!(feeding[&q("600")], own, "only the absence rule touches 600");
        let mut all = own.clone();
        all.insert(own_cal(PIKET));
        assert_eq!(feeding[&q("700")], all);
        let none = config().rules(vec![]);
        assert!(calendars_feeding(&none.roster())[&q("600")].is_empty());
    }

    #[test]
    fn read_window_looks_back_a_day_or_the_largest_lag() {
        let now = ts("2026-03-30T12:00:00Z");
        let cfg = config();
        assert_eq!(
            read_window(&cfg.roster(), now),
            (ts("2026-03-29T12:00:00Z"), ts("2026-04-13T12:00:00Z"))
        );
        let cfg = config().rules(vec![shifts().lead_lag(0, 36 * 60)]);
        assert_eq!(
            read_window(&cfg.roster(), now).0,
            ts("2026-03-29T00:00:00Z")
        );
    }

    // ---- boundaries ------------------------------------------------------------------------

    #[test]
    fn next_boundary_is_the_next_change_of_any_member_set() {
        let cfg = config().rules(vec![shifts().lead_lag(2, 0), away()]);
        let evs = events(vec![
            (
                "jan@acme.nl",
                vec![
                    support_shift(),
                    // Back to back with the first: no change at 15:00Z.
                    event("Support", "2026-03-30T15:00:00Z", "2026-03-30T16:00:00Z")
                        .category("Support"),
                ],
            ),
            (
                "piet@acme.nl",
                vec![
                    // Starts and ends while Piet is away all day: never changes anything.
                    event("Support", "2026-03-31T08:00:00Z", "2026-03-31T09:00:00Z")
                        .category("Support"),
                    all_day("Ziek", "2026-03-31", "2026-04-01").show(ShowAs::Oof),
                ],
            ),
        ]);
        let cases = [
            (
                "before the shift: lead applies",
                "2026-03-30T06:00:00Z",
                Some("2026-03-30T06:58:00Z"),
            ),
            (
                "at the boundary itself: strictly after",
                "2026-03-30T06:58:00Z",
                Some("2026-03-30T16:00:00Z"),
            ),
            (
                "across a seamless hand-over",
                "2026-03-30T10:00:00Z",
                Some("2026-03-30T16:00:00Z"),
            ),
            (
                "nothing that changes anything later",
                "2026-03-30T16:00:00Z",
                None,
            ),
        ];
        for (situation, after, want) in cases {
            assert_eq!(
                next_boundary(&cfg.roster(), &evs, ts(after)),
                want.map(ts),
                "{situation}"
            );
        }
        assert_eq!(
            next_boundary(&cfg.roster(), &CalendarEvents::new(), ts(NIGHT)),
            None
        );
    }

    #[test]
    fn boundary_ignores_changes_of_provenance_only() {
        let cfg = config().queue_with("600", |qc| qc.static_members = vec![ext("201")]);
        let evs = events(vec![("jan@acme.nl", vec![support_shift()])]);
        assert_eq!(
            next_boundary(&cfg.roster(), &evs, ts("2026-03-30T00:00:00Z")),
            None
        );
    }

    #[test]
    fn next_boundary_over_a_busy_fortnight_of_unchanging_shifts() {
        // 3000 back-to-back quarter-hour shifts for Jan: his membership never changes until
        // the last one ends, so every edge in between must be looked at and passed over.
        let cfg = config().rules(vec![shifts()]);
        let base = ts("2026-03-30T00:00:00Z");
        let shifts: Vec<Event> = (0..3000)
            .map(|i| {
                let s = base + TimeDelta::minutes(15 * i);
                let e = s + TimeDelta::minutes(15);
                event("Support", &s.to_rfc3339(), &e.to_rfc3339()).category("Support")
            })
            .collect();
        let evs = events(vec![("jan@acme.nl", shifts)]);
        assert_eq!(
            next_boundary(&cfg.roster(), &evs, base),
            Some(base + TimeDelta::minutes(15 * 3000))
        );
    }

    /// The benchmark's world (docs/BENCHMARKS.md) at its largest: 2000 persons with 50
    /// shifts each (100,000 events) over 200 queues with one category rule per queue, plus
    /// an absence rule over every queue and an on-call rule naming persons by subject.
    fn big_world() -> (Team, CalendarEvents, DateTime<Utc>) {
        const PERSONS: usize = 2000;
        const QUEUES: usize = 200;
        const EVENTS: usize = 50;
        let base = ts("2026-03-30T00:00:00Z");
        let mut seed: u64 = 0x5eed;
        let mut next = move |n: u64| {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            (seed >> 33) % n
        };
        let persons: Vec<Person> = (0..PERSONS)
            .map(|i| {
                person(
                    &format!("Person {i}"),
                    &format!("p{i}@acme.nl"),
                    &format!("{}", 10_000 + i),
                )
            })
            .collect();
        let queues: Vec<QueueConfig> = (0..QUEUES)
            .map(|k| queue(&format!("{}", 600 + k)))
            .collect();
        let mut rules: Vec<Rule> = (0..QUEUES)
            .map(|k| {
                rule(&format!("queue {k}"), RuleCalendar::Own)
                    .categories(&[&format!("Q{k}")])
                    .queues(&[&format!("{}", 600 + k)])
            })
            .collect();
        rules.push(away());
        rules.push(on_call().queues(&["600", "601"]));
        let mut evs = CalendarEvents::new();
        for (i, p) in persons.iter().enumerate() {
            let homes = [i % QUEUES, (i * 7 + 3) % QUEUES];
            let list: Vec<Event> = (0..EVENTS)
                .map(|_| {
                    let s = base + TimeDelta::minutes(15 * next(15 * 96) as i64);
                    let e = s + TimeDelta::minutes(60 * (1 + next(4) as i64));
                    let mut ev = event("Shift", &s.to_rfc3339(), &e.to_rfc3339());
                    match next(4) {
                        0 => {
                            ev = ev
                                .category(&format!("Q{}", homes[0]))
                                .category(&format!("q{}", homes[1]))
                        }
                        1 => ev = ev.category(&format!("q{}", homes[1])),
                        _ => ev = ev.category(&format!("Q{}", homes[0])),
                    }
                    if next(50) == 0 {
                        ev = ev.show(ShowAs::Oof);
                    }
                    ev
                })
                .collect();
            let Some(mb) = p.mailbox.clone() else {
                continue;
            };
            evs.insert(CalendarRef::default_of(mb), list);
        }
        let piket: Vec<Event> = (0..200)
            .map(|j| {
                let s = base + TimeDelta::hours(j);
                let e = s + TimeDelta::hours(1);
                event(
                    &format!("Piket Person {}", next(PERSONS as u64 + 20)),
                    &s.to_rfc3339(),
                    &e.to_rfc3339(),
                )
            })
            .collect();
        evs.insert(own_cal(PIKET), piket);
        let cfg = Team {
            persons,
            queues,
            rules,
        };
        (cfg, evs, base)
    }

    /// Release-mode timing of the schedule on the benchmark's largest world; not a timed
    /// assertion. Run: `cargo test --release --lib schedule -- --ignored --nocapture`.
    #[test]
    #[ignore = "timing run on 100,000 events; run in release with --ignored --nocapture"]
    fn schedule_timing_on_a_hundred_thousand_events() {
        use std::hash::{DefaultHasher, Hash, Hasher};
        use std::time::Instant;
        let (cfg, evs, base) = big_world();
        let instants: Vec<DateTime<Utc>> = (0..5)
            .map(|i| base + TimeDelta::minutes(7 + 15 * 37 * i))
            .collect();
        let mut digest = DefaultHasher::new();
        let clock = Instant::now();
        let feeding = calendars_feeding(&cfg.roster());
        println!("calendars_feeding: {:?}", clock.elapsed());
        feeding.len().hash(&mut digest);
        let clock = Instant::now();
        let needed = calendars_needed(&cfg.roster());
        println!("calendars_needed: {:?}", clock.elapsed());
        assert_eq!(
            needed.len(),
            2001,
            "every person's calendar and the shared one"
        );
        let clock = Instant::now();
        let schedule = Schedule::new(&cfg.roster(), &evs);
        println!(
            "Schedule::new: {:?} ({} activations)",
            clock.elapsed(),
            schedule.acts.len()
        );
        for &t in &instants {
            let clock = Instant::now();
            let d = schedule.desired_at(&cfg.roster(), t);
            println!("Schedule::desired_at({t}): {:?}", clock.elapsed());
            format!("{d:?}").hash(&mut digest);
            let clock = Instant::now();
            let b = schedule.next_boundary(&cfg.roster(), t);
            println!(
                "Schedule::next_boundary({t}): {:?} -> {b:?}",
                clock.elapsed()
            );
            b.hash(&mut digest);
        }
        // The wrappers give the same answers (they build the schedule each call).
        let clock = Instant::now();
        assert_eq!(
            desired_at(&cfg.roster(), &evs, instants[0]),
            schedule.desired_at(&cfg.roster(), instants[0])
        );
        println!("desired_at (free function): {:?}", clock.elapsed());
        let clock = Instant::now();
        assert_eq!(
            next_boundary(&cfg.roster(), &evs, instants[0]),
            schedule.next_boundary(&cfg.roster(), instants[0])
        );
        println!("next_boundary (free function): {:?}", clock.elapsed());
        // The longest walk: from before everything to the first change, and then on from the
        // last edge (nothing changes any more).
        let clock = Instant::now();
        let first = schedule.next_boundary(&cfg.roster(), base - TimeDelta::days(1));
        println!(
            "Schedule::next_boundary from a day before: {:?} -> {first:?}",
            clock.elapsed()
        );
        let clock = Instant::now();
        let last = schedule.edges.last().map(|(t, _)| *t).unwrap_or(base);
        assert_eq!(schedule.next_boundary(&cfg.roster(), last), None);
        println!(
            "Schedule::next_boundary after the last edge: {:?}",
            clock.elapsed()
        );
        println!("digest of the results: {:016x}", digest.finish());
    }

    // ---- properties ------------------------------------------------------------------------

    /// Small random worlds: shifts and absences for Jan and Piet on a grid of quarter hours.
    fn arb_events() -> impl Strategy<Value = CalendarEvents> {
        let one = (0usize..2, 0i64..40, 0i64..12, any::<bool>(), any::<bool>());
        proptest::collection::vec(one, 0..12).prop_map(|raw| {
            let base = ts("2026-03-30T06:00:00Z");
            let mut out = CalendarEvents::new();
            for (who, start, len, absent, cancelled) in raw {
                let mb = ["jan@acme.nl", "piet@acme.nl"][who];
                let s = base + TimeDelta::minutes(15 * start);
                let e = s + TimeDelta::minutes(15 * len);
                let mut ev = event("Support", &s.to_rfc3339(), &e.to_rfc3339()).category("Support");
                if absent {
                    ev = ev.show(ShowAs::Oof).category("Vrij");
                    ev.categories.retain(|c| c != "Support");
                }
                ev.is_cancelled = cancelled;
                out.entry(own_cal(mb)).or_default().push(ev);
            }
            out
        })
    }

    proptest! {
        #[test]
        fn next_boundary_is_exactly_the_first_change(evs in arb_events(), after in 0i64..48) {
            let cfg = config()
                .rules(vec![shifts().lead_lag(5, 10), away().queues(&["600"])])
                .queue_with("600", |qc| qc.fallback = vec![ext("200")]);
            let base = ts("2026-03-30T06:00:00Z");
            let after = base + TimeDelta::minutes(15 * after);
            let sets = |t| -> BTreeMap<QueueNo, Vec<Member>> {
                desired_at(&cfg.roster(), &evs, t).queues.into_iter()
                    .map(|(k, v)| (k, v.into_keys().collect())).collect()
            };
            let start = sets(after);
            let b = next_boundary(&cfg.roster(), &evs, after);
            // Every minute up to the boundary (or the end of the world) looks like `after`.
            let horizon = b.unwrap_or(base + TimeDelta::hours(16));
            let mut t = after + TimeDelta::minutes(1);
            while t < horizon {
                prop_assert_eq!(&sets(t), &start, "changed at {} before boundary {:?}", t, b);
                t += TimeDelta::minutes(1);
            }
            if let Some(b) = b {
                prop_assert!(b > after);
                prop_assert_ne!(sets(b), start, "no change at boundary {}", b);
            }
        }

        #[test]
        fn desired_members_are_configured_members_only(evs in arb_events(), t in 0i64..64) {
            let cfg = config().rules(vec![shifts(), away()]);
            let t = ts("2026-03-30T06:00:00Z") + TimeDelta::minutes(15 * t);
            let allowed = [ext("201"), ext("202")];
            for set in desired_at(&cfg.roster(), &evs, t).queues.values() {
                for m in set.keys() {
                    prop_assert!(allowed.contains(m), "{} is no configured member", m);
                }
            }
        }
    }

    // ---- timed events across DST -----------------------------------------------------------

    #[test]
    fn night_shift_across_both_dst_switches_runs_utc_instant_to_utc_instant() {
        // A 22:00–06:00 Amsterdam night shift as Graph delivers it (UTC, no Prefer header):
        // spring forward 28→29 March 2026 makes it 7 h, fall back 24→25 October 2026 9 h.
        // The schedule must take the instants as they are, with no local-time arithmetic.
        let cases = [
            (
                "spring forward: 22:00 CET to 06:00 CEST",
                "2026-03-28T21:00:00Z",
                "2026-03-29T04:00:00Z",
                7,
                "2026-03-28 22:00–2026-03-29 06:00",
            ),
            (
                "fall back: 22:00 CEST to 06:00 CET",
                "2026-10-24T20:00:00Z",
                "2026-10-25T05:00:00Z",
                9,
                "2026-10-24 22:00–2026-10-25 06:00",
            ),
        ];
        let cfg = config().rules(vec![shifts()]);
        let second = TimeDelta::seconds(1);
        for (situation, start, end, hours, local) in cases {
            let (start, end) = (ts(start), ts(end));
            assert_eq!((end - start).num_hours(), hours, "{situation}: fixture");
            let evs = events(vec![(
                "jan@acme.nl",
                vec![
                    event("Nachtdienst", &start.to_rfc3339(), &end.to_rfc3339())
                        .category("Support"),
                ],
            )]);
            // Built once and asked many times, as the daemon does per calendar read.
            let schedule = Schedule::new(&cfg.roster(), &evs);
            let at = |t: DateTime<Utc>| members(&schedule.desired_at(&cfg.roster(), t), "600");
            let instants = [
                (start - second, false, "just before start"),
                (start, true, "at start"),
                (start + TimeDelta::hours(5), true, "across the switch"),
                (end - second, true, "just before end"),
                (end, false, "at end (exclusive)"),
            ];
            for (t, active, when) in instants {
                let want = if active { vec![ext("201")] } else { Vec::new() };
                assert_eq!(at(t), want, "{situation}: {when} ({t})");
            }
            assert_eq!(
                schedule.next_boundary(&cfg.roster(), start - TimeDelta::hours(1)),
                Some(start),
                "{situation}: boundary in"
            );
            assert_eq!(
                schedule.next_boundary(&cfg.roster(), start),
                Some(end),
                "{situation}: boundary out"
            );
            assert_eq!(
                schedule.next_boundary(&cfg.roster(), end),
                None,
                "{situation}: after"
            );
            let d = schedule.desired_at(&cfg.roster(), start);
            assert_eq!(
                d.queues[&q("600")][&ext("201")].why[0].describe(Amsterdam),
                format!("rule \"support shifts\": \"Nachtdienst\" in jan@acme.nl {local}"),
                "{situation}: described in local time"
            );
        }
    }
}
