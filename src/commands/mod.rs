//! The commands of SPEC §4 as library functions: each loads what it needs, does its work and
//! returns an exit code or a [`CommandError`] that `main` prints as one sentence. Thin glue:
//! decisions live in `schedule`/`plan`, I/O in the adapters, the loop in `daemon`.

pub mod doctor;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use chrono_tz::Tz;
use tracing::warn;

use crate::config::{Config, ConfigError, Secrets};
use crate::cycle::{Observation, Reconciler, SystemClock};
use crate::graph::GraphClient;
use crate::model::{QueueNo, sanitize};
use crate::store::{OpenMode, Store, StoreError};
use crate::tring::{KnownMembers, TringClient};

mod calendar;
mod check_config;
pub mod coverage;
mod explain;
pub mod history;
mod plan;
mod queue;
mod run;
mod sim;
mod status;

pub use calendar::{CalendarArgs, calendar};
pub use check_config::check_config;
pub use explain::explain;
pub use plan::{PlanReport, plan};
pub use queue::{QueueCall, agent_queues, configured_mobile, queue};
pub use run::{once, run};
pub use sim::{demo, sim};
pub use status::{StatusReport, status, status_report};

/// Exit codes of SPEC §4.
pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_USAGE: u8 = 2;

/// A command that could not do its work. `exit_code` says which of SPEC §4's codes.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// Bad config or a missing secret: nothing was touched.
    #[error("{0}")]
    Config(#[from] ConfigError),
    /// Unreadable, locked or corrupt state: nothing was written to TRiNG.
    #[error("{0}")]
    Store(#[from] StoreError),
    /// A bad argument (time, queue, member).
    #[error("{0}")]
    Usage(String),
    /// The command ran but its work failed (TRiNG or Graph refused, unreachable).
    #[error("{0}")]
    Failed(String),
}

impl CommandError {
    pub fn exit_code(&self) -> u8 {
        match self {
            CommandError::Failed(_) => EXIT_FAILED,
            _ => EXIT_USAGE,
        }
    }
}

/// What a command found: shown as text, or with `--json` as one JSON object from the same
/// values (never text re-parsed, never JSON indexed to make text).
pub trait Report: serde::Serialize {
    fn render(&self, out: &mut dyn Write) -> std::io::Result<()>;
}

/// Prints `report` as text or JSON.
pub fn emit(report: &impl Report, json: bool, out: &mut dyn Write) -> Result<(), CommandError> {
    let written = if json {
        serde_json::to_writer(&mut *out, report)
            .map_err(std::io::Error::other)
            .and_then(|()| writeln!(out))
    } else {
        report.render(out)
    };
    written.map_err(out_err)
}

/// Instants in `--json` output as `to_rfc3339()` writes them (`…+00:00`), as SPEC §4's
/// examples show.
pub(crate) mod rfc3339 {
    use chrono::{DateTime, Utc};
    use serde::Serializer;

    pub fn serialize<S: Serializer>(t: &DateTime<Utc>, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&t.to_rfc3339())
    }

    pub mod option {
        use super::*;
        pub fn serialize<S: Serializer>(
            t: &Option<DateTime<Utc>>,
            s: S,
        ) -> Result<S::Ok, S::Error> {
            match t {
                Some(t) => s.serialize_str(&t.to_rfc3339()),
                None => s.serialize_none(),
            }
        }
    }
}

/// Config plus secrets, loaded and validated; secret-file warnings are logged.
pub fn load(path: &Path) -> Result<(Config, Secrets), CommandError> {
    let cfg = Config::load(path)?;
    let (secrets, warnings) = cfg.load_secrets()?;
    for w in warnings {
        warn!("{w}");
    }
    Ok((cfg, secrets))
}

fn clients(cfg: &Config, secrets: &Secrets) -> Result<(GraphClient, TringClient), CommandError> {
    let graph = GraphClient::new(&cfg.graph, secrets.graph_client_secret.clone())
        .map_err(|e| CommandError::Failed(e.to_string()))?;
    let tring = TringClient::new(&cfg.tring, secrets.tring_key.clone())
        .map_err(|e| CommandError::Failed(e.to_string()))?
        .with_known_members(KnownMembers::from_config(cfg));
    Ok((graph, tring))
}

/// The state for read-only commands: `None` before the first `once`/`run` created it, so
/// `plan` works on a fresh install (nothing owned yet).
async fn read_only_store(path: &Path) -> Result<Option<Store>, CommandError> {
    match Store::open(path, OpenMode::ReadOnly).await {
        Ok(s) => Ok(Some(s)),
        Err(StoreError::FileMissing { .. }) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// `TIME` of SPEC §4: RFC 3339, or `YYYY-MM-DD HH:MM` in the configured zone.
pub fn parse_time(s: &str, tz: Tz) -> Result<DateTime<Utc>, CommandError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    let naive = NaiveDateTime::parse_from_str(s.trim(), "%Y-%m-%d %H:%M").map_err(|_| {
        CommandError::Usage(format!(
            "time {:?} is not RFC 3339 (2026-03-30T09:00:00+02:00) or \"YYYY-MM-DD HH:MM\"",
            sanitize(s, 40)
        ))
    })?;
    tz.from_local_datetime(&naive)
        .earliest()
        .map(|t| t.with_timezone(&Utc))
        .ok_or_else(|| {
            CommandError::Usage(format!("time {s:?} does not exist in {tz} (a DST gap)"))
        })
}

fn local(t: DateTime<Utc>, tz: Tz) -> String {
    t.with_timezone(&tz)
        .format("%Y-%m-%d %H:%M:%S %Z")
        .to_string()
}

fn out_err(e: std::io::Error) -> CommandError {
    CommandError::Failed(format!("output could not be written: {e}"))
}

/// The reconciler `run`, `once`, `plan` and `explain` drive.
pub(super) async fn reconciler(
    cfg: Config,
    secrets: &Secrets,
    dry_run: bool,
) -> Result<Reconciler<GraphClient, TringClient, SystemClock>, CommandError> {
    // SPEC §3 rule 8: `run`/`once` take the writer lock before anything else; a dry run
    // writes nothing, so it only reads the state (and works beside a running daemon).
    let store = if dry_run {
        read_only_store(&cfg.state).await?
    } else {
        Some(Store::open(&cfg.state, OpenMode::Writer).await?)
    };
    let (graph, tring) = clients(&cfg, secrets)?;
    Ok(Reconciler::new(Arc::new(cfg), graph, tring, SystemClock, store, dry_run).await?)
}

/// One observation for `plan` and `explain`, as a dry run: nothing is written.
pub(super) async fn observe_now(
    cfg: Config,
    secrets: &Secrets,
) -> Result<
    (
        Reconciler<GraphClient, TringClient, SystemClock>,
        Observation,
    ),
    CommandError,
> {
    let mut rec = reconciler(cfg, secrets, true).await?;
    let obs = rec.observe(true).await?;
    Ok((rec, obs))
}

/// A queue number given on the command line: valid, and one the config names.
pub(super) fn queue_arg(cfg: &Config, q: &str) -> Result<QueueNo, CommandError> {
    let number = QueueNo::parse(q).map_err(|e| CommandError::Usage(e.to_string()))?;
    if cfg.queue(&number).is_none() {
        return Err(CommandError::Usage(format!(
            "queue {number} is not in the config; rooster only manages queues the config names"
        )));
    }
    Ok(number)
}

/// Writes `text` to `path` readable by its owner only, from the moment the file exists (it is
/// created with mode 0600, and an existing file is narrowed to it before it is written).
pub(crate) fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(false);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut file = opts.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    file.set_len(0)?;
    file.write_all(text.as_bytes())
}

/// Where the config comes from (SPEC §4): `--config`, else `$ROOSTER_CONFIG`, else
/// `/etc/rooster/rooster.toml`.
pub fn config_path(flag: Option<PathBuf>) -> PathBuf {
    flag.or_else(|| std::env::var_os("ROOSTER_CONFIG").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from("/etc/rooster/rooster.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_local_minutes() {
        let tz = chrono_tz::Europe::Amsterdam;
        let a = parse_time("2026-03-30 09:00", tz).unwrap();
        assert_eq!(a.to_rfc3339(), "2026-03-30T07:00:00+00:00");
        let b = parse_time("2026-03-30T09:00:00+02:00", tz).unwrap();
        assert_eq!(a, b);
        assert!(parse_time("tomorrow", tz).is_err());
        // 02:30 does not exist on the spring-forward day.
        assert!(parse_time("2026-03-29 02:30", tz).is_err());
    }

    #[cfg(unix)]
    #[test]
    fn private_files_are_the_owners_alone_new_or_old() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let new = dir.path().join("new");
        write_private(&new, "secret\n").unwrap();
        assert_eq!(mode(&new), 0o600);
        let old = dir.path().join("old");
        std::fs::write(&old, "a much longer earlier text\n").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        write_private(&old, "secret\n").unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "secret\n");
    }
}
