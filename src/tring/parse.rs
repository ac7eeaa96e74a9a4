//! Every decision about the shape of TRiNG's answers lives here: one function per call,
//! turning a response body into a typed result or a typed error (tring-api.md "What rooster
//! must do about the uncertainty"). Pure: no HTTP, no clock, no logging.
//!
//! The rule that matters most: an answer that is not one of the known shapes is
//! [`TringError::Unparseable`] — a list is never guessed to be empty, and one entry that
//! cannot become a valid [`Member`] spoils the whole list (SPEC §3 safety rule 2).
//!
//! What kind a listed member is (agent or custom destination) is decided here too, with the
//! configured persons' numbers as [`KnownMembers`] (tring-api.md "Recognising a member
//! whatever the shape"), so that a member rooster added as `cu:X` reads back as `cu:X`.

use std::collections::BTreeSet;

use serde_json::Value;

use super::{RejectReason, TringError, WriteOutcome};
use crate::config::{Config, Person};
use crate::model::{Extension, Member, Mobile, QueueNo, sanitize};
use crate::plan::ActionKind;

/// The numbers the config names: every person's mobile and extension (and the `ext:`/`cu:`
/// members of queues' `static` and `fallback`). They decide the kind of a listed member whose
/// answer does not say it (tring-api.md "Recognising a member whatever the shape"): in the
/// observed string array a custom destination may be a bare `"0612345678"`, which reads as an
/// extension unless we know it is a person's mobile. Config validation refuses a number that
/// is both a mobile and an extension, so the order of the checks never matters for a valid
/// config. [`KnownMembers::default`] knows nobody: kinds then come from the answer alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KnownMembers {
    mobiles: BTreeSet<Mobile>,
    extensions: BTreeSet<Extension>,
}

impl KnownMembers {
    pub fn new(
        mobiles: impl IntoIterator<Item = Mobile>,
        extensions: impl IntoIterator<Item = Extension>,
    ) -> Self {
        Self {
            mobiles: mobiles.into_iter().collect(),
            extensions: extensions.into_iter().collect(),
        }
    }

    /// Every person's extension and (optional) mobile.
    pub fn from_persons(persons: &[Person]) -> Self {
        Self::new(
            persons.iter().filter_map(|p| p.mobile.clone()),
            persons.iter().map(|p| p.extension.clone()),
        )
    }

    /// The persons' numbers plus the members the queues name in `static` and `fallback`.
    pub fn from_config(cfg: &Config) -> Self {
        let mut known = Self::from_persons(&cfg.persons);
        for m in cfg
            .queues
            .iter()
            .flat_map(|q| q.static_members.iter().chain(&q.fallback))
        {
            match m {
                Member::Agent(e) => known.extensions.insert(e.clone()),
                Member::Custom(c) => known.mobiles.insert(c.clone()),
            };
        }
        known
    }

    pub fn mobiles(&self) -> &BTreeSet<Mobile> {
        &self.mobiles
    }

    pub fn extensions(&self) -> &BTreeSet<Extension> {
        &self.extensions
    }

    /// The kind of a listed number that the answer did not state, in tring-api.md's order:
    /// a configured mobile → `cu:`; a configured extension → `ext:`; else the interface hint
    /// (`custom_hint`: a `Local/…@…-custom` interface) → `cu:`; else `ext:`. `None` when the
    /// chosen kind cannot hold `digits` (so the whole list becomes unparseable).
    fn recognise(&self, digits: &str, custom_hint: bool) -> Option<Member> {
        if let Ok(m) = Mobile::parse(digits)
            && self.mobiles.contains(&m)
        {
            return Some(Member::Custom(m));
        }
        if let Ok(e) = Extension::parse(digits)
            && self.extensions.contains(&e)
        {
            return Some(Member::Agent(e));
        }
        if custom_hint {
            Mobile::parse(digits).ok().map(Member::Custom)
        } else {
            Extension::parse(digits).ok().map(Member::Agent)
        }
    }
}

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

/// The idempotent `Error|…|` messages (tring-api.md, idempotent cases), as
/// `(already a member, not a member)`: the first answers an add that found the member there,
/// the second a del that found it gone.
fn idempotent_phrases(message: &str) -> (bool, bool) {
    let m = message.to_lowercase();
    let says = |phrases: &[&str]| phrases.iter().any(|p| m.contains(p));
    (
        says(&["already a member", "already member", "already in queue"]),
        says(&[
            "not a member",
            "not member",
            "not in queue",
            "not found in queue",
        ]),
    )
}

/// `add` / `del`, read for the write that was sent: `OK`, `Success|…|` → applied; the
/// idempotent `Error|…|` message *of that action* → already in state (`already a member`
/// answering an add, `not a member` answering a del); any other `Error|…|` → rejected;
/// anything else → unparseable.
///
/// An idempotent message answering the other action (`not a member` to an add, `already a
/// member` to a del) is `Rejected { reason: Other }`, not success: it is a clear `Error|…|`
/// answer, so TRiNG did not make the change asked for (the write is not uncertain), yet the
/// queue is not known to be as wanted either. `Other` keeps it out of the permanent refusals
/// (SPEC §3 rule 9): the next cycle lists the queue again and decides afresh.
pub fn parse_write(body: &str, action: ActionKind) -> Result<WriteOutcome, TringError> {
    let trimmed = body.trim();
    if trimmed.eq_ignore_ascii_case("ok") {
        return Ok(WriteOutcome::Applied);
    }
    if let Some(err) = rejection(trimmed) {
        let TringError::Rejected { message, .. } = &err else {
            return Err(err);
        };
        let (already, absent) = idempotent_phrases(message);
        let in_state = match action {
            ActionKind::Add => already && !absent,
            ActionKind::Del => absent && !already,
        };
        if in_state {
            return Ok(WriteOutcome::AlreadyInState);
        }
        if already || absent {
            return Err(TringError::Rejected {
                reason: RejectReason::Other,
                message: message.clone(),
            });
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
/// `"Local/0612345678@ACME-custom"`, `"0612345678"`, `"0612345678-ACME"`); a JSON array of
/// member objects (`extension`, `interface`, `type`); the plain `Success|N members in queue
/// Q|` line followed by one interface per line; the plain pipe-separated line
/// `Success|SIP/201-ACME|Local/0612345678@ACME-custom|`.
///
/// Where the answer does not state a member's kind, `known` decides it (see
/// [`KnownMembers`]); pass [`KnownMembers::default`] to go by the answer alone.
pub fn parse_list(
    body: &str,
    tenant: &str,
    known: &KnownMembers,
) -> Result<Vec<Member>, TringError> {
    let trimmed = body.trim();
    if let Some(err) = rejection(trimmed) {
        return Err(err);
    }
    let read = Reader { tenant, known };
    if trimmed.starts_with(['[', '{', 'n']) {
        // tring-api.md: ask for JSON, fall back to plain when the JSON does not parse.
        if let Ok(value) = serde_json::from_str::<Value>(trimmed) {
            return read.json(&value).ok_or_else(|| unparseable(body));
        }
    }
    read.plain(trimmed).ok_or_else(|| unparseable(body))
}

/// What reading list entries needs besides the entry: our tenant (to strip `-ACME`) and the
/// configured numbers (to tell a bare mobile from an extension).
#[derive(Clone, Copy)]
struct Reader<'a> {
    tenant: &'a str,
    known: &'a KnownMembers,
}

impl Reader<'_> {
    fn json(self, value: &Value) -> Option<Vec<Member>> {
        match value {
            Value::Null => Some(Vec::new()),
            Value::Array(items) => items
                .iter()
                .map(|item| match item {
                    Value::String(s) => self.entry(s),
                    Value::Object(_) => self.object(item),
                    _ => None,
                })
                .collect(),
            _ => None,
        }
    }

    /// The object variant: `{"extension":"201","interface":"SIP/201-ACME","type":"agent",…}`.
    /// An explicit `type` decides the kind; without one, the interface (or else the
    /// extension) is read like a string entry (tring-api.md "Recognising a member").
    fn object(self, item: &Value) -> Option<Member> {
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
                    (Some(e), _) => strip_tenant(e, self.tenant).to_owned(),
                    (None, Some(i)) => custom_number(i)?.to_owned(),
                    (None, None) => return None,
                };
                Mobile::parse(&id).ok().map(Member::Custom)
            }
            // MiRTA's agent kinds (NF, AD, NFR, ADR) are agents too.
            Some("agent" | "nf" | "ad" | "nfr" | "adr") => match (&extension, &interface) {
                (Some(e), _) => agent(strip_tenant(e, self.tenant)),
                (None, Some(i)) => match split_entry(i, self.tenant)? {
                    // The type and the interface disagree: refuse rather than pick one.
                    (_, true) => None,
                    (digits, false) => agent(digits),
                },
                (None, None) => None,
            },
            Some(_) => None,
            None => match (&interface, &extension) {
                (Some(i), _) => self.entry(i),
                (None, Some(e)) => self.entry(e),
                (None, None) => None,
            },
        }
    }

    /// The plain forms (tring-api.md "Example answers"):
    /// - `Success|2 members in queue 600|` then one interface per line; the stated count must
    ///   match the lines (a cut-off body is not a shorter queue), and `0 members` is the only
    ///   plain empty queue;
    /// - one line `Success|SIP/201-ACME|Local/0612345678@ACME-custom|`, every field an
    ///   interface.
    ///
    /// Anything else — a `Success|…|` line without a count whose fields are not all
    /// interfaces, a count followed by more fields, lines after a line without a count — is
    /// no list (SPEC §3 rule 2: never read as an empty queue).
    fn plain(self, body: &str) -> Option<Vec<Member>> {
        let mut lines = body.lines().map(str::trim).filter(|l| !l.is_empty());
        let (word, fields) = status_line(lines.next()?)?;
        if !word.eq_ignore_ascii_case("success") {
            return None;
        }
        let rest: Vec<&str> = lines.collect();
        if let [message] = fields.as_slice()
            && let Some(stated) = stated_count(message)
        {
            let members: Vec<Member> = rest.iter().map(|l| self.entry(l)).collect::<Option<_>>()?;
            return (members.len() == stated).then_some(members);
        }
        if !rest.is_empty() || fields.is_empty() {
            return None;
        }
        fields
            .iter()
            .map(|f| {
                if is_interface(f, self.tenant) {
                    self.entry(f)
                } else {
                    None
                }
            })
            .collect()
    }

    /// One list entry as a string: `201`, `201-ACME`, `SIP/201-ACME`, `PJSIP/201`,
    /// `Local/201@ACME-agents`, `Local/0612345678@ACME-custom`, `0612345678`,
    /// `0612345678-ACME`. Its digits are read by [`KnownMembers::recognise`].
    fn entry(self, entry: &str) -> Option<Member> {
        let (digits, custom_hint) = split_entry(entry, self.tenant)?;
        self.known.recognise(digits, custom_hint)
    }
}

/// An entry's number with channel prefix (`SIP/`, `PJSIP/`, `Local/`), `@context` (only on
/// `Local/`) and our tenant suffix removed, and whether the interface says "custom
/// destination" (`Local/…@…-custom`). `None` for a form we do not know.
fn split_entry<'a>(entry: &'a str, tenant: &str) -> Option<(&'a str, bool)> {
    let entry = entry.trim();
    if let Some(rest) = strip_prefix_ci(entry, "local/") {
        let (number, context) = rest.split_once('@')?;
        let custom = context.to_ascii_lowercase().ends_with("-custom");
        return Some((strip_tenant(number, tenant), custom));
    }
    let bare = match entry.split_once('/') {
        Some((tech, rest)) if is_channel_tech(tech) => rest,
        Some(_) => return None,
        None => entry,
    };
    Some((strip_tenant(bare, tenant), false))
}

fn is_channel_tech(tech: &str) -> bool {
    !tech.is_empty() && tech.chars().all(|c| c.is_ascii_alphabetic())
}

/// Whether a field of a pipe-separated plain list names a member by its interface: a
/// channel (`SIP/…`, `Local/…`) or our tenant suffix (`201-ACME`). A bare number or a
/// sentence is not taken for a member there: without a stated count, a `Success|600|` or
/// `Success|Queue 600|` must stay unparseable rather than become a one-member queue.
fn is_interface(field: &str, tenant: &str) -> bool {
    let field = field.trim();
    let channel = field
        .split_once('/')
        .is_some_and(|(tech, _)| is_channel_tech(tech));
    channel || strip_tenant(field, tenant) != field
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

/// `MANAGEDB&object=CUSTOM&action=list` (**[assumed]** shape, tring-api.md "Evidence from
/// public client code": the records carry the number in `cu_param1`): `Error|…|` (rejected);
/// JSON `null` / `[]` (none); a JSON array of records, or an object of records keyed by id,
/// each with `cu_param1` (string or number). Returns each number's digits (a leading `+`
/// kept). Anything else is `Unparseable`, so `rooster doctor` says it cannot check.
pub fn parse_custom_list(body: &str) -> Result<Vec<String>, TringError> {
    let trimmed = body.trim();
    if let Some(err) = rejection(trimmed) {
        return Err(err);
    }
    let value: Value = serde_json::from_str(trimmed).map_err(|_| unparseable(body))?;
    let number = |record: &Value| -> Option<String> {
        let raw = match record.get("cu_param1")? {
            Value::String(s) => s.trim().to_owned(),
            Value::Number(n) => n.to_string(),
            _ => return None,
        };
        let plus = raw.starts_with('+');
        let digits: String = raw.chars().filter(char::is_ascii_digit).collect();
        (!digits.is_empty() && digits.len() <= 20)
            .then(|| if plus { format!("+{digits}") } else { digits })
    };
    let records: Vec<&Value> = match &value {
        Value::Null => Vec::new(),
        Value::Array(items) => items.iter().collect(),
        Value::Object(o) => o.values().collect(),
        _ => return Err(unparseable(body)),
    };
    records
        .into_iter()
        .map(number)
        .collect::<Option<Vec<String>>>()
        .ok_or_else(|| unparseable(body))
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
    /// Jan: extension 201, mobile 0612345678; Piet: extension 202, no mobile.
    fn known() -> KnownMembers {
        KnownMembers::new(
            [Mobile::parse("0612345678").unwrap()],
            ["201", "202"].map(|e| Extension::parse(e).unwrap()),
        )
    }
    fn entry(e: &str, known: &KnownMembers) -> Option<Member> {
        Reader {
            tenant: "ACME",
            known,
        }
        .entry(e)
    }
    fn list(body: &str) -> Result<Vec<Member>, TringError> {
        parse_list(body, "ACME", &known())
    }

    #[test]
    fn entries_in_every_known_spelling_become_members() {
        for (e, want) in [
            ("201", ext("201")),
            ("201-ACME", ext("201")),
            ("201-acme", ext("201")),
            ("SIP/201-ACME", ext("201")),
            ("PJSIP/201", ext("201")),
            ("Local/201@ACME-agents", ext("201")),
            ("Local/0612345678@ACME-custom", cu("0612345678")),
            ("0612345678", cu("0612345678")),
            ("0612345678-ACME", cu("0612345678")),
            ("SIP/0612345678-ACME", cu("0612345678")),
            ("Local/0612345678@ACME-agents", cu("0612345678")),
        ] {
            assert_eq!(entry(e, &known()), Some(want), "{e}");
        }
    }

    #[test]
    fn a_configured_number_decides_before_the_interface_hint() {
        // tring-api.md order: configured mobile, configured extension, then the hint.
        assert_eq!(
            entry("Local/201@ACME-custom", &known()),
            Some(ext("201")),
            "a configured extension stays an agent whatever the context says"
        );
        assert_eq!(entry("0699999999", &known()), Some(ext("0699999999")));
        assert_eq!(
            entry("Local/0699999999@ACME-custom", &known()),
            Some(cu("0699999999"))
        );
    }

    #[test]
    fn without_known_members_a_bare_number_is_an_extension() {
        let nobody = KnownMembers::default();
        assert_eq!(entry("0612345678", &nobody), Some(ext("0612345678")));
        assert_eq!(
            entry("Local/0612345678@ACME-custom", &nobody),
            Some(cu("0612345678"))
        );
    }

    #[test]
    fn entries_of_another_tenant_or_odd_form_are_refused() {
        for e in [
            "201-OTHER",
            "",
            "abc",
            "SIP/",
            "/201",
            "Local/201",
            "Local/06@X-custom",
            "x1/201",
            "201@ACME-agents",
            "0612345678-OTHER",
            "123456789012",
        ] {
            assert_eq!(entry(e, &known()), None, "{e:?}");
        }
    }

    #[test]
    fn a_typed_object_is_read_by_its_type() {
        for (body, want) in [
            (
                r#"[{"extension":"0612345678","type":"agent"}]"#,
                Some(ext("0612345678")),
            ),
            (r#"[{"extension":"201","type":"agent"}]"#, Some(ext("201"))),
            (
                r#"[{"extension":"0612345678-ACME","type":"CU"}]"#,
                Some(cu("0612345678")),
            ),
            (
                r#"[{"interface":"Local/0612345678@ACME-custom","type":"cu"}]"#,
                Some(cu("0612345678")),
            ),
            (
                r#"[{"interface":"Local/0612345678@ACME-custom","type":"agent"}]"#,
                None,
            ),
            (r#"[{"extension":"0612345678","type":"robot"}]"#, None),
            (r#"[{"extension":"0612345678"}]"#, Some(cu("0612345678"))),
            (
                r#"[{"extension":"202-ACME","name":"Piet"}]"#,
                Some(ext("202")),
            ),
        ] {
            assert_eq!(list(body).ok().map(|mut v| v.remove(0)), want, "{body}");
        }
    }

    #[test]
    fn one_bad_entry_spoils_the_list() {
        let err = list(r#"["201-ACME","oops"]"#).unwrap_err();
        assert!(matches!(err, TringError::Unparseable { .. }), "{err:?}");
    }

    #[test]
    fn plain_pipe_list_of_interfaces_is_a_list() {
        assert_eq!(
            list("Success|SIP/201-ACME|SIP/202-ACME|"),
            Ok(vec![ext("201"), ext("202")])
        );
        assert_eq!(
            list("Success|SIP/201-ACME|Local/0612345678@ACME-custom|\n"),
            Ok(vec![ext("201"), cu("0612345678")])
        );
        assert_eq!(
            list("Success|201-ACME|0612345678-ACME"),
            Ok(vec![ext("201"), cu("0612345678")])
        );
    }

    #[test]
    fn plain_answers_that_are_no_list_are_unparseable_never_empty() {
        for body in [
            "Success|",
            "Success||",
            "Success|Queue 600|",
            "Success|600|",
            "Success|Agent 201 added to queue 600|",
            "Success|SIP/201-ACME|oops|",
            "Success|SIP/201-ACME|SIP/202-OTHER|",
            "Success|SIP/201-ACME|\nSIP/202-ACME",
            "Success|members of queue 600|\nSIP/201-ACME",
            "Success|2 members in queue 600|SIP/201-ACME|SIP/202-ACME|",
            "Success|3 members in queue 600|\nSIP/201-ACME\nSIP/202-ACME\n",
            "Success|1 member in queue 600|",
            "OK",
        ] {
            assert!(
                matches!(list(body), Err(TringError::Unparseable { .. })),
                "{body:?}: {:?}",
                list(body)
            );
        }
    }

    #[test]
    fn plain_list_with_a_count_is_read_line_by_line() {
        assert_eq!(list("Success|0 members in queue 600|"), Ok(vec![]));
        assert_eq!(
            list("Success|1 member in queue 600|\n0612345678\n"),
            Ok(vec![cu("0612345678")])
        );
    }

    #[test]
    fn writes_are_read_for_the_action_sent() {
        use ActionKind::{Add, Del};
        let already = "Error|Extension 201 is already a member of queue 600|";
        let not_member = "Error|Extension 201 is not a member of queue 600|";
        assert_eq!(parse_write(already, Add), Ok(WriteOutcome::AlreadyInState));
        assert_eq!(
            parse_write(not_member, Del),
            Ok(WriteOutcome::AlreadyInState)
        );
        for (body, action) in [(not_member, Add), (already, Del)] {
            match parse_write(body, action) {
                Err(
                    e @ TringError::Rejected {
                        reason: RejectReason::Other,
                        ..
                    },
                ) => {
                    assert!(!e.is_permanent(), "{e}");
                }
                other => panic!("{body} answering {action:?}: {other:?}"),
            }
        }
        // A "not found in queue" message that starts with "Queue" is still no unknown queue.
        assert!(matches!(
            parse_write("Error|Queue 600: 201 not found in queue|", Add),
            Err(TringError::Rejected {
                reason: RejectReason::Other,
                ..
            })
        ));
        for action in [Add, Del] {
            assert_eq!(parse_write("OK", action), Ok(WriteOutcome::Applied));
        }
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
            match parse_write(body, ActionKind::Add) {
                Err(TringError::Rejected { reason, .. }) => assert_eq!(reason, want, "{body}"),
                other => panic!("{body}: {other:?}"),
            }
        }
    }

    #[test]
    fn excerpts_are_sanitised_and_short() {
        let body = format!("<html>\x1b[31m{}</html>", "x".repeat(500));
        match list(&body) {
            Err(TringError::Unparseable { body_excerpt }) => {
                assert!(!body_excerpt.contains('\x1b'));
                assert!(body_excerpt.chars().count() <= EXCERPT_CHARS + 1);
            }
            other => panic!("{other:?}"),
        }
    }
}
