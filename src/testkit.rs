//! Values the unit tests of the pure core share: configured persons and a shift, built from a
//! few strings so a test reads as its situation. Test-only.

use chrono::{DateTime, Utc};

use crate::config::Person;
use crate::model::{Extension, Mailbox, Member, Mobile};
use crate::schedule::{Why, WhyKind};

pub fn member(s: &str) -> Member {
    s.parse().expect("test member is valid")
}

pub fn person(name: &str, mailbox: &str, ext: &str, mobile: Option<&str>) -> Person {
    Person {
        name: name.to_owned(),
        mailbox: Some(Mailbox::parse(mailbox).expect("valid")),
        extension: Extension::parse(ext).expect("valid"),
        mobile: mobile.map(|s| Mobile::parse(s).expect("valid")),
        aliases: Vec::new(),
    }
}

/// Jan de Vries (201, with a mobile) and Piet Bakker (202).
pub fn jan_and_piet() -> Vec<Person> {
    vec![
        person("Jan de Vries", "jan@acme.nl", "201", Some("0612345678")),
        person("Piet Bakker", "piet@acme.nl", "202", None),
    ]
}

/// Rule "support shifts" matched "Support" in Jan's calendar, 09:00–17:00 Amsterdam time on
/// 2026-03-30 (summer time: 07:00–15:00 UTC).
pub fn support_shift() -> Why {
    let t = |s: &str| {
        DateTime::parse_from_rfc3339(s)
            .expect("valid")
            .with_timezone(&Utc)
    };
    Why {
        kind: WhyKind::Event,
        rule: "support shifts".into(),
        calendar: "jan@acme.nl".into(),
        subject: "Support".into(),
        from: t("2026-03-30T07:00:00Z"),
        to: t("2026-03-30T15:00:00Z"),
    }
}
