//! Every decision about the shape of TRiNG's answers lives here: one function per call,
//! turning a response body into a typed result or a typed error (tring-api.md "What rooster
//! must do about the uncertainty"). Pure: no HTTP, no clock, no logging.
//!
//! The rule that matters most: an answer that is not one of the known shapes is
//! [`TringError::Unparseable`] — a list is never guessed to be empty, and one entry that
//! cannot become a valid [`Member`] spoils the whole list (SPEC §3 safety rule 2).

use serde_json::Value;

use super::{RejectReason, TringError, WriteOutcome};
use crate::model::{Extension, Member, Mobile, QueueNo, sanitize};

/// How much of an unparseable body goes into an error (and so into a log line).
const EXCERPT_CHARS: usize = 120;
/// How much of an `Error|…|` message is kept.
const MESSAGE_CHARS: usize = 200;

fn unparseable(body: &str) -> TringError {
    TringError::Unparseable {
        body_excerpt: sanitize(body.trim(), EXCERPT_CHARS),
    }
}

/// A plain-text answer split at its status word: `Success|a|b|` → `("Success", ["a", "b"])`.
/// The trailing empty field after the final `|` is dropped.
fn status_line(line: &str) -> Option<(&str, Vec<&str>)> {
    let line = line.trim();
    let (word, rest) = line.split_once('|')?;
    let mut fields: Vec<&str> = rest.split('|').collect();
    if fields.last() == Some(&"") {
        fields.pop();
    }
    Some((word, fields))
}

/// Classifies an `Error|message|` answer. `None` when the body is not one.
fn rejection(body: &str) -> Option<TringError> {
    let first = body.trim().lines().next()?;
    let (word, fields) = status_line(first)?;
    if !word.eq_ignore_ascii_case("error") {
        return None;
    }
    let message = sanitize(fields.join("|").trim(), MESSAGE_CHARS);
    Some(TringError::Rejected {
        reason: reject_reason(&message),
        message,
    })
}

fn reject_reason(message: &str) -> RejectReason {
    let m = message.to_lowercase();
    if m.contains("permission") || m.contains("read-only") || m.contains("read only") {
        RejectReason::PermissionDenied
    } else if m.contains("key") {
        RejectReason::InvalidKey
    } else if m.contains("tenant") {
        RejectReason::InvalidTenant
    } else if m.contains("custom destination") && m.contains("not found") {
        RejectReason::CustomDestinationNotFound
    } else if m.starts_with("queue") && m.contains("not found") {
        RejectReason::QueueNotFound
    } else if m.contains("invalid extension") {
        RejectReason::InvalidExtension
    } else {
        RejectReason::Other
    }
}

/// `Error|…|` messages that mean the queue already is as asked (tring-api.md, idempotent
/// cases): `already a member` on add, `not a member` on del.
fn is_already_in_state(message: &str) -> bool {
    let m = message.to_lowercase();
    [
        "already a member",
        "already member",
        "already in queue",
        "not a member",
        "not member",
        "not in queue",
        "not found in queue",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// `add` / `del`: `OK`, `Success|…|` → applied; the idempotent `Error|…|` messages →
/// already in state; any other `Error|…|` → rejected; anything else → unparseable.
pub fn parse_write(body: &str) -> Result<WriteOutcome, TringError> {
    let trimmed = body.trim();
    if trimmed.eq_ignore_ascii_case("ok") {
        return Ok(WriteOutcome::Applied);
    }
    if let Some(err) = rejection(trimmed) {
        if let TringError::Rejected { message, .. } = &err
            && is_already_in_state(message)
        {
            return Ok(WriteOutcome::AlreadyInState);
        }
        return Err(err);
    }
    match status_line(trimmed) {
        Some((word, _)) if word.eq_ignore_ascii_case("success") && !trimmed.contains('\n') => {
            Ok(WriteOutcome::Applied)
        }
        _ => Err(unparseable(body)),
    }
}

/// `clean`: `Success|message|` or `OK` → TRiNG's message (sanitised).
pub fn parse_clean(body: &str) -> Result<String, TringError> {
    let trimmed = body.trim();
    if trimmed.eq_ignore_ascii_case("ok") {
        return Ok("OK".to_owned());
    }
    if let Some(err) = rejection(trimmed) {
        return Err(err);
    }
    match status_line(trimmed) {
        Some((word, fields)) if word.eq_ignore_ascii_case("success") && !trimmed.contains('\n') => {
            Ok(sanitize(fields.join("|").trim(), MESSAGE_CHARS))
        }
        _ => Err(unparseable(body)),
    }
}

/// `list`: the members of a queue. Accepts, in this order: `Error|…|` (rejected); JSON
/// `null` / `[]` (empty); a JSON array of strings (`"201-ACME"`, `"SIP/201-ACME"`,
/// `"Local/0612345678@ACME-custom"`); a JSON array of member objects (`extension`,
/// `interface`, `type`); the plain `Success|…|` line followed by one interface per line.
pub fn parse_list(body: &str, tenant: &str) -> Result<Vec<Member>, TringError> {
    let trimmed = body.trim();
    if let Some(err) = rejection(trimmed) {
        return Err(err);
    }
    if trimmed.starts_with(['[', '{', 'n']) {
        // tring-api.md: ask for JSON, fall back to plain when the JSON does not parse.
        if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
            return list_from_json(&value, tenant).ok_or_else(|| unparseable(body));
        }
    }
    list_from_plain(trimmed, tenant).ok_or_else(|| unparseable(body))
}

fn list_from_json(value: &Value, tenant: &str) -> Option<Vec<Member>> {
    match value {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::String(s) => member_from_entry(s, tenant),
                Value::Object(_) => member_from_object(item, tenant),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The object variant: `{"extension":"201","interface":"SIP/201-ACME","type":"agent",…}`.
/// The kind comes from `type`; without one, from the interface (tring-api.md).
fn member_from_object(item: &Value, tenant: &str) -> Option<Member> {
    let text = |k: &str| match item.get(k) {
        None | Some(Value::Null) => Some(None),
        Some(Value::String(s)) => Some(Some(s.trim().to_owned())),
        Some(Value::Number(n)) => Some(Some(n.to_string())),
        Some(_) => None,
    };
    let extension = text("extension")?.filter(|s| !s.is_empty());
    let interface = text("interface")?.filter(|s| !s.is_empty());
    let kind = text("type")?.filter(|s| !s.is_empty());
    match kind.as_deref().map(str::to_ascii_lowercase).as_deref() {
        Some("cu") => {
            let id = match (&extension, &interface) {
                (Some(e), _) => strip_tenant(e, tenant).to_owned(),
                (None, Some(i)) => custom_number(i)?.to_owned(),
                (None, None) => return None,
            };
            Mobile::parse(&id).ok().map(Member::Custom)
        }
        // MiRTA's agent kinds (NF, AD, NFR, ADR) are agents too.
        Some("agent" | "nf" | "ad" | "nfr" | "adr") => match (&extension, &interface) {
            (Some(e), _) => agent(strip_tenant(e, tenant)),
            (None, Some(i)) => match member_from_entry(i, tenant)? {
                m @ Member::Agent(_) => Some(m),
                Member::Custom(_) => None,
            },
            (None, None) => None,
        },
        Some(_) => None,
        None => match (&interface, &extension) {
            (Some(i), _) => member_from_entry(i, tenant),
            (None, Some(e)) => member_from_entry(e, tenant),
            (None, None) => None,
        },
    }
}

/// The plain form: `Success|2 members in queue 600|` then one interface per line. When the
/// message states a count, it must match the lines (a cut-off body is not a shorter queue).
fn list_from_plain(body: &str, tenant: &str) -> Option<Vec<Member>> {
    let mut lines = body.lines().map(str::trim).filter(|l| !l.is_empty());
    let (word, fields) = status_line(lines.next()?)?;
    if !word.eq_ignore_ascii_case("success") {
        return None;
    }
    let members: Vec<Member> = lines
        .map(|l| member_from_entry(l, tenant))
        .collect::<Option<_>>()?;
    if let Some(stated) = fields.first().and_then(|m| stated_count(m))
        && stated != members.len()
    {
        return None;
    }
    Some(members)
}

/// `"2 members in queue 600"` → 2.
fn stated_count(message: &str) -> Option<usize> {
    let mut words = message.split_whitespace();
    let n = words.next()?.parse().ok()?;
    words
        .next()
        .filter(|w| w.to_ascii_lowercase().starts_with("member"))
        .map(|_| n)
}

/// One list entry as a string: `201`, `201-ACME`, `SIP/201-ACME`, `PJSIP/201`,
/// `Local/201@ACME-agents` (agents) or `Local/0612345678@ACME-custom` (custom destination).
fn member_from_entry(entry: &str, tenant: &str) -> Option<Member> {
    let entry = entry.trim();
    if let Some(rest) = strip_prefix_ci(entry, "local/") {
        let (number, context) = rest.split_once('@')?;
        return if context.to_ascii_lowercase().ends_with("-custom") {
            Mobile::parse(number).ok().map(Member::Custom)
        } else {
            agent(strip_tenant(number, tenant))
        };
    }
    let bare = match entry.split_once('/') {
        Some((tech, rest)) if tech.chars().all(|c| c.is_ascii_alphabetic()) => rest,
        Some(_) => return None,
        None => entry,
    };
    agent(strip_tenant(bare, tenant))
}

fn custom_number(interface: &str) -> Option<&str> {
    let rest = strip_prefix_ci(interface.trim(), "local/")?;
    let (number, context) = rest.split_once('@')?;
    context
        .to_ascii_lowercase()
        .ends_with("-custom")
        .then_some(number)
}

fn agent(id: &str) -> Option<Member> {
    Extension::parse(id).ok().map(Member::Agent)
}

/// `201-ACME` → `201` when the suffix is our tenant (case-insensitive). A suffix naming
/// another tenant is left on, so the entry fails validation instead of being guessed.
fn strip_tenant<'a>(id: &'a str, tenant: &str) -> &'a str {
    match id.rsplit_once('-') {
        Some((bare, suffix)) if !tenant.is_empty() && suffix.eq_ignore_ascii_case(tenant) => bare,
        _ => id,
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

/// `listqueues`: the queues an extension is in. Accepts `Error|…|` (rejected); JSON `null` /
/// `[]`; a JSON array of objects with `number` (string or number) or of plain numbers; the
/// plain `Success|600,700|`. An empty body also means "in no queue" here (tring-api.md:
/// "an extension in no queue returns an empty array or an `Error|` / empty body") — this
/// call only feeds the `agent queues` command, never a removal.
pub fn parse_listqueues(body: &str) -> Result<Vec<QueueNo>, TringError> {
    let trimmed = body.trim();
    if trimmed.is_empty() {
        return Ok(Vec::new());
    }
    if let Some(err) = rejection(trimmed) {
        return Err(err);
    }
    if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
        return queues_from_json(&value).ok_or_else(|| unparseable(body));
    }
    match status_line(trimmed) {
        Some((word, fields)) if word.eq_ignore_ascii_case("success") && !trimmed.contains('\n') => {
            let list = fields.first().copied().unwrap_or("").trim();
            if list.is_empty() {
                return Ok(Vec::new());
            }
            list.split(',')
                .map(|q| QueueNo::parse(q.trim()).ok())
                .collect::<Option<_>>()
                .ok_or_else(|| unparseable(body))
        }
        _ => Err(unparseable(body)),
    }
}

fn queues_from_json(value: &Value) -> Option<Vec<QueueNo>> {
    let number = |v: &Value| match v {
        Value::String(s) => QueueNo::parse(s.trim()).ok(),
        Value::Number(n) => QueueNo::parse(&n.to_string()).ok(),
        _ => None,
    };
    match value {
        Value::Null => Some(Vec::new()),
        Value::Array(items) => items
            .iter()
            .map(|item| match item {
                Value::Object(o) => o.get("number").and_then(number),
                other => number(other),
            })
            .collect(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ext(s: &str) -> Member {
        Member::Agent(Extension::parse(s).unwrap())
    }
    fn cu(s: &str) -> Member {
        Member::Custom(Mobile::parse(s).unwrap())
    }

    #[test]
    fn entries_in_every_known_spelling_become_members() {
        for (entry, want) in [
            ("201", ext("201")),
            ("201-ACME", ext("201")),
            ("201-acme", ext("201")),
            ("SIP/201-ACME", ext("201")),
            ("PJSIP/201", ext("201")),
            ("Local/201@ACME-agents", ext("201")),
            ("Local/0612345678@ACME-custom", cu("0612345678")),
        ] {
            assert_eq!(member_from_entry(entry, "ACME"), Some(want), "{entry}");
        }
    }

    #[test]
    fn entries_of_another_tenant_or_odd_form_are_refused() {
        for entry in [
            "201-OTHER",
            "",
            "abc",
            "SIP/",
            "Local/201",
            "Local/06@X-custom",
            "x1/201",
        ] {
            assert_eq!(member_from_entry(entry, "ACME"), None, "{entry:?}");
        }
    }

    #[test]
    fn one_bad_entry_spoils_the_list() {
        let err = parse_list(r#"["201-ACME","oops"]"#, "ACME").unwrap_err();
        assert!(matches!(err, TringError::Unparseable { .. }), "{err:?}");
    }

    #[test]
    fn plain_list_with_wrong_stated_count_is_unparseable() {
        let body = "Success|3 members in queue 600|\nSIP/201-ACME\nSIP/202-ACME\n";
        assert!(matches!(
            parse_list(body, "ACME"),
            Err(TringError::Unparseable { .. })
        ));
    }

    #[test]
    fn rejections_are_classified() {
        for (body, want) in [
            ("Error|Invalid key|", RejectReason::InvalidKey),
            ("Error|Invalid tenant|", RejectReason::InvalidTenant),
            ("Error|Queue 601 not found|", RejectReason::QueueNotFound),
            (
                "Error|Permission denied: read-only key|",
                RejectReason::PermissionDenied,
            ),
            (
                "Error|Custom destination 0699999999 not found|",
                RejectReason::CustomDestinationNotFound,
            ),
            ("Error|Invalid extension|", RejectReason::InvalidExtension),
            ("Error|Something else|", RejectReason::Other),
        ] {
            match parse_write(body) {
                Err(TringError::Rejected { reason, .. }) => assert_eq!(reason, want, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn excerpts_are_sanitised_and_short() {
        let body = format!("<html>\x1b[31m{}</html>", "x".repeat(500));
        match parse_list(&body, "ACME") {
            Err(TringError::Unparseable { body_excerpt }) => {
                assert!(!body_excerpt.contains('\x1b'));
                assert!(body_excerpt.chars().count() <= EXCERPT_CHARS + 1);
            }
            other => panic!("{other:?}"),
        }
    }
}
