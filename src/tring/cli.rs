//! The ops commands `rooster queue list|add|del|clean` and `rooster agent queues` (SPEC §4),
//! as library functions the binary calls with a client and an output stream. Human-readable
//! text by default, one JSON object with `json`. Manual commands never touch ownership or the
//! state database: they talk to TRiNG and print, nothing else.

use std::io::Write;

use serde_json::json;

use super::client::TringClient;
use super::{TringError, WriteOutcome};
use crate::model::{Extension, Member, QueueNo};

/// What `queue clean` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CleanOutcome {
    /// Without `--yes`: nothing was sent but a `list`; the caller exits 2 (SPEC §4).
    NotConfirmed { would_remove: usize },
    /// TRiNG cleaned the queue; its message.
    Cleaned { message: String },
}

fn emit(out: &mut impl Write, text: impl std::fmt::Display) -> Result<(), TringError> {
    writeln!(out, "{text}").map_err(|e| TringError::OutputFailed {
        detail: e.to_string(),
    })
}

fn members_json(members: &[Member]) -> Vec<String> {
    members.iter().map(ToString::to_string).collect()
}

/// `queue list QUEUE`: one member per line (`ext:201`, `cu:0612345678`).
pub async fn queue_list(
    client: &TringClient,
    q: &QueueNo,
    json: bool,
    out: &mut impl Write,
) -> Result<(), TringError> {
    let members = client.list(q).await?;
    if json {
        return emit(
            out,
            json!({ "queue": q.as_str(), "members": members_json(&members) }),
        );
    }
    match members.len() {
        0 => emit(out, format_args!("queue {q}: no members")),
        n => {
            emit(
                out,
                format_args!("queue {q}: {n} member{}", if n == 1 { "" } else { "s" }),
            )?;
            members
                .iter()
                .try_for_each(|m| emit(out, format_args!("  {m}")))
        }
    }
}

async fn queue_write(
    client: &TringClient,
    action: &'static str,
    q: &QueueNo,
    member: &Member,
    json: bool,
    out: &mut impl Write,
) -> Result<WriteOutcome, TringError> {
    let outcome = if action == "add" {
        client.add(q, member).await?
    } else {
        client.del(q, member).await?
    };
    if json {
        let outcome_word = match outcome {
            WriteOutcome::Applied => "applied",
            WriteOutcome::AlreadyInState => "already_in_state",
        };
        emit(
            out,
            json!({
                "queue": q.as_str(),
                "action": action,
                "member": member.to_string(),
                "outcome": outcome_word,
            }),
        )?;
    } else {
        let text = match (action, outcome) {
            ("add", WriteOutcome::Applied) => format!("queue {q}: added {member}"),
            ("add", WriteOutcome::AlreadyInState) => {
                format!("queue {q}: {member} already was a member")
            }
            (_, WriteOutcome::Applied) => format!("queue {q}: removed {member}"),
            (_, WriteOutcome::AlreadyInState) => format!("queue {q}: {member} was not a member"),
        };
        emit(out, text)?;
    }
    Ok(outcome)
}

/// `queue add QUEUE MEMBER` (`cu:` members are sent with `type=CU`).
pub async fn queue_add(
    client: &TringClient,
    q: &QueueNo,
    member: &Member,
    json: bool,
    out: &mut impl Write,
) -> Result<WriteOutcome, TringError> {
    queue_write(client, "add", q, member, json, out).await
}

/// `queue del QUEUE MEMBER`.
pub async fn queue_del(
    client: &TringClient,
    q: &QueueNo,
    member: &Member,
    json: bool,
    out: &mut impl Write,
) -> Result<WriteOutcome, TringError> {
    queue_write(client, "del", q, member, json, out).await
}

/// `queue clean QUEUE [--yes]`. Without `yes` it only lists the queue and says what it would
/// remove; no write is sent (SPEC §4: the caller exits 2).
pub async fn queue_clean(
    client: &TringClient,
    q: &QueueNo,
    yes: bool,
    json: bool,
    out: &mut impl Write,
) -> Result<CleanOutcome, TringError> {
    if !yes {
        let members = client.list(q).await?;
        let n = members.len();
        if json {
            emit(
                out,
                json!({
                    "queue": q.as_str(),
                    "action": "clean",
                    "confirmed": false,
                    "would_remove": members_json(&members),
                }),
            )?;
        } else {
            emit(
                out,
                format_args!(
                    "queue {q}: clean would remove {n} member{}{}; nothing sent, add --yes to do it",
                    if n == 1 { "" } else { "s" },
                    if n == 0 {
                        String::new()
                    } else {
                        format!(" ({})", members_json(&members).join(", "))
                    }
                ),
            )?;
        }
        return Ok(CleanOutcome::NotConfirmed { would_remove: n });
    }
    let message = client.clean(q).await?;
    if json {
        emit(
            out,
            json!({ "queue": q.as_str(), "action": "clean", "confirmed": true, "message": message }),
        )?;
    } else {
        emit(out, format_args!("queue {q}: cleaned ({message})"))?;
    }
    Ok(CleanOutcome::Cleaned { message })
}

/// `agent queues EXT`: the queues an extension is in (TRiNG `listqueues`).
pub async fn agent_queues(
    client: &TringClient,
    ext: &Extension,
    json: bool,
    out: &mut impl Write,
) -> Result<(), TringError> {
    let queues = client.list_queues(ext).await?;
    let numbers: Vec<&str> = queues.iter().map(QueueNo::as_str).collect();
    if json {
        return emit(out, json!({ "extension": ext.as_str(), "queues": numbers }));
    }
    if numbers.is_empty() {
        emit(out, format_args!("extension {ext} is in no queue"))
    } else {
        emit(
            out,
            format_args!("extension {ext} is in queues {}", numbers.join(", ")),
        )
    }
}
