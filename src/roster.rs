//! The roster: what the pure core (SPEC §2 `schedule`, §3 `plan`) needs of the config — the
//! time zone, the read window, the persons, the queues and the rules — and nothing of Graph,
//! TRiNG, secrets, URLs or files. A borrowed view, so the config stays the one owner and a
//! test of the core builds a roster from a few values.

use std::time::Duration;

use chrono_tz::Tz;

use crate::config::{Config, Person, QueueConfig, Rule};

/// SPEC §1's persons, queues and rules, with the zone that all-day events and display use
/// and the window calendars are read over.
#[derive(Debug, Clone, Copy)]
pub struct Roster<'a> {
    pub timezone: Tz,
    pub window: Duration,
    pub persons: &'a [Person],
    pub queues: &'a [QueueConfig],
    pub rules: &'a [Rule],
}

impl Roster<'_> {
    /// The configured queue with this number.
    pub fn queue(&self, number: &crate::model::QueueNo) -> Option<&QueueConfig> {
        self.queues.iter().find(|q| &q.number == number)
    }
}

impl Config {
    /// The part of the config the pure core reads.
    pub fn roster(&self) -> Roster<'_> {
        Roster {
            timezone: self.timezone,
            window: self.window,
            persons: &self.persons,
            queues: &self.queues,
            rules: &self.rules,
        }
    }
}
