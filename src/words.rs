//! How the plan's data is put into words for people: the sentences the log lines (SPEC §4
//! "Logging"), `plan`, `explain`, `status` and `history` show for an action, a refusal or a
//! warning.
//!
//! The plan (`crate::plan`) decides with members, rules and kinds and returns them as data;
//! naming the person behind a member and writing an event's times in the configured zone
//! happen here, at the edge, from the [`Roster`]. One home for every sentence, so the log and
//! `plan --json` cannot say different things about the same decision.

use std::fmt;

use crate::config::Person;
use crate::model::{Member, QueueNo};
use crate::plan::{Action, ActionKind, PlanWarning, RefusalKind};
use crate::roster::Roster;

/// The roster's names and zone, lent to the sentences.
#[derive(Debug, Clone, Copy)]
pub struct Words<'a> {
    roster: Roster<'a>,
}

impl<'a> Words<'a> {
    pub fn new(roster: Roster<'a>) -> Self {
        Words { roster }
    }

    /// The person an action is about: the one the schedule named for an add, the configured
    /// person(s) behind the member for a del.
    pub fn person(&self, a: &Action) -> Option<String> {
        a.person
            .clone()
            .or_else(|| person_of(self.roster.persons, &a.member))
    }

    /// The configured person(s) behind a member, if any.
    pub fn person_of(&self, m: &Member) -> Option<String> {
        person_of(self.roster.persons, m)
    }

    /// One sentence for an action, naming rule and event for adds:
    /// `rule "support shifts": "Support" in jan@acme.nl 2026-03-30 09:00–17:00`.
    pub fn action(&self, a: &Action) -> String {
        match a.kind {
            ActionKind::Add => {
                let why = a
                    .why
                    .iter()
                    .map(|w| w.describe(self.roster.timezone))
                    .collect::<Vec<_>>()
                    .join("; ");
                if a.drift {
                    format!("re-added after drift: {why}")
                } else {
                    why
                }
            }
            ActionKind::Del if a.unowned => {
                "not desired: no active rule, static or fallback names it (exclusive queue)"
                    .to_owned()
            }
            ActionKind::Del => {
                "not desired: no active rule, static or fallback names it".to_owned()
            }
        }
    }

    /// The sentence for a del held back by `kind` (or, for
    /// [`RefusalKind::UnreadableQueue`], the whole queue), as the log, `status` and
    /// `plan --json` show it.
    pub fn refusal(&self, queue: &QueueNo, kind: RefusalKind, member: Option<&Member>) -> String {
        let m = member.map(ToString::to_string).unwrap_or_default();
        match kind {
            RefusalKind::IncompleteRead => format!(
                "queue {queue}: not removing {m}: a calendar feeding the queue was not read \
                 completely this cycle"
            ),
            RefusalKind::KeepLast => format!(
                "queue {queue}: not removing {m}: it is the last member and nobody replaces it \
                 (keep_last)"
            ),
            RefusalKind::RemovalCap => {
                // A plan exists only for a configured queue, so the lookup cannot miss.
                let cap = self
                    .roster
                    .queue(queue)
                    .map_or_else(|| "max_removals".to_owned(), |q| q.max_removals.to_string());
                format!(
                    "queue {queue}: removal of {m} postponed: at most {cap} removal(s) per \
                     cycle (max_removals)"
                )
            }
            RefusalKind::UnreadableQueue => format!(
                "queue {queue}: live membership could not be read; queue left alone this cycle"
            ),
        }
    }
}

/// The configured person(s) a member stands for, if any (by extension or mobile); several
/// names are joined with ", ".
pub fn person_of(persons: &[Person], m: &Member) -> Option<String> {
    let names: Vec<&str> = persons
        .iter()
        .filter(|p| match m {
            Member::Agent(e) => &p.extension == e,
            Member::Custom(c) => p.mobile.as_ref() == Some(c),
        })
        .map(|p| p.name.as_str())
        .collect();
    (!names.is_empty()).then(|| names.join(", "))
}

impl fmt::Display for PlanWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanWarning::Drift {
                queue,
                member,
                person,
            } => {
                write!(f, "queue {queue}: {member}")?;
                if let Some(p) = person {
                    write!(f, " ({p})")?;
                }
                write!(
                    f,
                    " was removed outside rooster while still desired; adding it again"
                )
            }
            PlanWarning::IncompleteRead { queue, postponed } => write!(
                f,
                "queue {queue}: a calendar feeding it was not read completely; \
                 adds only, {postponed} removal(s) postponed"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono_tz::Europe::Amsterdam;

    use super::*;
    use crate::config::{Ownership, QueueConfig};
    use crate::testkit::{jan_and_piet, member as m, person, support_shift as shift};

    struct Team {
        persons: Vec<Person>,
        queues: Vec<QueueConfig>,
    }

    impl Team {
        fn new() -> Self {
            Team {
                persons: [
                    jan_and_piet(),
                    vec![person(
                        "Anna Smit",
                        "anna@acme.nl",
                        "203",
                        Some("0612345678"),
                    )],
                ]
                .concat(),
                queues: vec![QueueConfig {
                    number: QueueNo::parse("600").expect("valid"),
                    name: "Support".into(),
                    ownership: Ownership::Additive,
                    keep_last: true,
                    max_removals: 3,
                    fallback: Vec::new(),
                    static_members: Vec::new(),
                }],
            }
        }

        fn words(&self) -> Words<'_> {
            Words::new(Roster {
                timezone: Amsterdam,
                window: std::time::Duration::from_secs(86_400),
                persons: &self.persons,
                queues: &self.queues,
                rules: &[],
            })
        }
    }

    fn action(kind: ActionKind, member: &str) -> Action {
        Action {
            kind,
            member: m(member),
            person: None,
            why: Vec::new(),
            drift: false,
            unowned: false,
        }
    }

    #[test]
    fn an_add_names_rule_event_and_local_times() {
        let team = Team::new();
        let words = team.words();
        let add = Action {
            person: Some("Jan de Vries".into()),
            why: vec![shift()],
            ..action(ActionKind::Add, "ext:201")
        };
        assert_eq!(
            words.action(&add),
            "rule \"support shifts\": \"Support\" in jan@acme.nl 2026-03-30 09:00–17:00"
        );
        assert_eq!(words.person(&add).as_deref(), Some("Jan de Vries"));
        let again = Action { drift: true, ..add };
        assert_eq!(
            words.action(&again),
            "re-added after drift: rule \"support shifts\": \"Support\" in jan@acme.nl \
             2026-03-30 09:00–17:00"
        );
    }

    #[test]
    fn a_del_is_named_from_the_roster() {
        let team = Team::new();
        let words = team.words();
        let del = action(ActionKind::Del, "ext:202");
        assert_eq!(words.person(&del).as_deref(), Some("Piet Bakker"));
        assert_eq!(
            words.action(&del),
            "not desired: no active rule, static or fallback names it"
        );
        let by_hand = Action {
            unowned: true,
            ..action(ActionKind::Del, "ext:299")
        };
        assert_eq!(words.person(&by_hand), None, "nobody configured has 299");
        assert!(words.action(&by_hand).ends_with("(exclusive queue)"));
        // A shared mobile names everyone who has it.
        let shared = action(ActionKind::Del, "cu:0612345678");
        assert_eq!(
            words.person(&shared).as_deref(),
            Some("Jan de Vries, Anna Smit")
        );
    }

    #[test]
    fn each_refusal_kind_has_its_sentence() {
        let team = Team::new();
        let words = team.words();
        let q = QueueNo::parse("600").expect("valid");
        let member = m("ext:201");
        let said = |kind| words.refusal(&q, kind, Some(&member));
        assert_eq!(
            said(RefusalKind::KeepLast),
            "queue 600: not removing ext:201: it is the last member and nobody replaces it \
             (keep_last)"
        );
        assert_eq!(
            said(RefusalKind::RemovalCap),
            "queue 600: removal of ext:201 postponed: at most 3 removal(s) per cycle \
             (max_removals)"
        );
        assert!(said(RefusalKind::IncompleteRead).contains("not read completely"));
        assert_eq!(
            words.refusal(&q, RefusalKind::UnreadableQueue, None),
            "queue 600: live membership could not be read; queue left alone this cycle"
        );
    }

    #[test]
    fn warnings_name_queue_member_and_person() {
        let drift = PlanWarning::Drift {
            queue: QueueNo::parse("600").expect("valid"),
            member: m("ext:201"),
            person: Some("Jan de Vries".into()),
        };
        assert_eq!(
            drift.to_string(),
            "queue 600: ext:201 (Jan de Vries) was removed outside rooster while still \
             desired; adding it again"
        );
    }
}
