//! `rooster queue list|add|del|clean` and `rooster agent queues` (SPEC §4): the TRiNG calls by
//! hand, validated like the config (a `cu:` member must be a configured person's mobile);
//! they never mark anything owned. The output itself is `tring::cli`'s.

use std::io::Write;

use super::{CommandError, EXIT_OK, EXIT_USAGE};
use crate::config::{Config, Secrets};
use crate::model::{Extension, Member, QueueNo};
use crate::tring::{KnownMembers, TringClient, TringError, cli as t};

/// What `queue` was asked to do.
pub enum QueueCall<'a> {
    List,
    Add(&'a str),
    Del(&'a str),
    /// `clean` sends nothing without `yes` (and exits 2).
    Clean {
        yes: bool,
    },
}

fn tring_client(cfg: &Config, secrets: &Secrets) -> Result<TringClient, CommandError> {
    Ok(TringClient::new(&cfg.tring, secrets.tring_key.clone())
        .map_err(|e| CommandError::Failed(e.to_string()))?
        .with_known_members(KnownMembers::from_config(cfg)))
}

fn usage(e: impl std::fmt::Display) -> CommandError {
    CommandError::Usage(e.to_string())
}

fn failed(e: TringError) -> CommandError {
    CommandError::Failed(e.to_string())
}

/// `queue …`.
pub async fn queue(
    cfg: &Config,
    secrets: &Secrets,
    queue: &str,
    call: QueueCall<'_>,
    json: bool,
    mut out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let client = tring_client(cfg, secrets)?;
    let q = QueueNo::parse(queue).map_err(usage)?;
    match call {
        QueueCall::List => t::queue_list(&client, &q, json, &mut out)
            .await
            .map_err(failed)?,
        QueueCall::Add(member) => {
            let m: Member = member.parse().map_err(usage)?;
            configured_mobile(cfg, &m)?;
            t::queue_add(&client, &q, &m, json, &mut out)
                .await
                .map_err(failed)?;
        }
        QueueCall::Del(member) => {
            let m: Member = member.parse().map_err(usage)?;
            t::queue_del(&client, &q, &m, json, &mut out)
                .await
                .map_err(failed)?;
        }
        QueueCall::Clean { yes } => {
            if let t::CleanOutcome::NotConfirmed { .. } =
                t::queue_clean(&client, &q, yes, json, &mut out)
                    .await
                    .map_err(failed)?
            {
                return Ok(EXIT_USAGE);
            }
        }
    }
    Ok(EXIT_OK)
}

/// `agent queues EXT`.
pub async fn agent_queues(
    cfg: &Config,
    secrets: &Secrets,
    ext: &str,
    json: bool,
    mut out: &mut dyn Write,
) -> Result<u8, CommandError> {
    let client = tring_client(cfg, secrets)?;
    let ext = Extension::parse(ext).map_err(usage)?;
    t::agent_queues(&client, &ext, json, &mut out)
        .await
        .map_err(failed)?;
    Ok(EXIT_OK)
}

/// Members named by hand are validated like config members: a custom destination must be a
/// configured person's mobile (SPEC §2: a mobile can only be added if it is configured).
pub fn configured_mobile(cfg: &Config, m: &Member) -> Result<(), CommandError> {
    if let Member::Custom(mobile) = m
        && !cfg
            .persons
            .iter()
            .any(|p| p.mobile.as_ref() == Some(mobile))
    {
        return Err(CommandError::Usage(format!(
            "{m} is no configured person's mobile; rooster only adds configured mobiles"
        )));
    }
    Ok(())
}
