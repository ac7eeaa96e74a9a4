//! rooster's SQLite state (SPEC §4 "State"): the members rooster owns, the intent/outcome
//! journal of every TRiNG write (SPEC §3 rule 7), per-calendar sync state with the last
//! events read, per-cycle records and the refusals `status` shows. It also enforces one
//! writer per state database (SPEC §3 rule 8).
//!
//! This is an adapter: it stores and returns values and decides nothing about membership.
//! It never talks to TRiNG or Graph and never reads the clock — every instant comes in as an
//! argument. Schema changes only through new files in `migrations/`.
//!
//! Storage conventions (also written at the top of `migrations/0001_initial.sql`):
//! instants are INTEGER unix milliseconds UTC (sub-millisecond precision is dropped), members
//! are their written form (`ext:201`, `cu:0612345678`) and are parsed back through
//! [`Member::from_str`]; a row that fails to parse is a [`StoreError::Corrupt`], never a panic.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use serde::Serialize;
use sqlx::migrate::{MigrateError, Migration, MigrationType, Migrator};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteRow,
};
use sqlx::{AssertSqlSafe, FromRow, Row, SqlSafeStr};

use crate::model::{CalendarRef, Event, Mailbox, Member, QueueNo};
use crate::roster::Roster;
use crate::schedule::{Schedule, ScheduleBuilder};

/// How long a statement waits for another connection's lock before failing. Readers
/// (`status` while the daemon writes) and the writer only meet during a WAL checkpoint.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The migrations, embedded at build time. `sqlx::migrate!` needs sqlx's `macros` feature,
/// which the crate does not enable, so the list is spelled out: add each new file here.
/// Every file in `migrations/`, in order; `every_migration_file_is_applied` in tests/store.rs
/// fails when one is left out.
const MIGRATIONS: [(i64, &str, &str); 3] = [
    (1, "initial", include_str!("../migrations/0001_initial.sql")),
    (
        2,
        "held writes",
        include_str!("../migrations/0002_held_writes.sql"),
    ),
    (3, "history", include_str!("../migrations/0003_history.sql")),
];

fn migrator() -> Migrator {
    let migrations = MIGRATIONS
        .iter()
        .map(|&(version, description, sql)| {
            Migration::new(
                version,
                description.into(),
                MigrationType::Simple,
                AssertSqlSafe(sql).into_sql_str(),
                false,
            )
        })
        .collect();
    Migrator::with_migrations(migrations)
}

/// Whether a [`Store`] may write. Only `run` and `once` open as writer (SPEC §4).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OpenMode {
    /// Takes the single-writer lock, creates the database if needed, runs migrations.
    Writer,
    /// For `plan`, `status`, `explain`: no lock, no migrations, never writes, so it works
    /// while a daemon runs.
    ReadOnly,
}

/// What went wrong with the state database. Every message is one sentence naming the
/// state path first (SPEC §4: a user-caused error is one clear sentence).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error(
        "state directory {} does not exist (systemd's StateDirectory= creates it)",
        dir.display()
    )]
    DirectoryMissing { dir: PathBuf },
    #[error(
        "state {} does not exist yet: run `rooster once` or `rooster run` to create it",
        path.display()
    )]
    FileMissing { path: PathBuf },
    #[error(
        "state {} is in use by another rooster ({})",
        path.display(),
        match pid { Some(p) => format!("pid {p}"), None => "pid unknown".to_owned() }
    )]
    Locked { path: PathBuf, pid: Option<u32> },
    #[error("state lock {} could not be taken: {source}", path.display())]
    LockFailed { path: PathBuf, source: io::Error },
    #[error("state {} could not be read: {source}", path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    #[error("state {} is read-only, but rooster needs to write it", path.display())]
    ReadOnly { path: PathBuf },
    #[error("state {} was opened read-only and must not be written", path.display())]
    OpenedReadOnly { path: PathBuf },
    #[error("state {} is not a SQLite database or is damaged", path.display())]
    NotSqlite { path: PathBuf },
    #[error(
        "state {} needs migration {version} ({description}): run `rooster once` or `rooster run` to upgrade it",
        path.display()
    )]
    MigrationPending {
        path: PathBuf,
        version: i64,
        description: String,
    },
    #[error(
        "state {} needs migration {version} ({description}), but the running daemon{} still uses the older rooster: restart the service (`systemctl restart rooster`) to upgrade it",
        path.display(), pid.map(|p| format!(" (pid {p})")).unwrap_or_default()
    )]
    MigrationPendingDaemonRunning {
        path: PathBuf,
        version: i64,
        description: String,
        pid: Option<u32>,
    },
    #[error(
        "state {} was written by a newer rooster (it has migration {version}, unknown to this one)",
        path.display()
    )]
    SchemaTooNew { path: PathBuf, version: i64 },
    #[error("state {} could not be migrated: {source}", path.display())]
    MigrationFailed { path: PathBuf, source: MigrateError },
    #[error("state {} could not be opened: {source}", path.display())]
    OpenFailed { path: PathBuf, source: sqlx::Error },
    #[error("state {}: {step} failed: {source}", path.display())]
    QueryFailed {
        path: PathBuf,
        step: &'static str,
        source: sqlx::Error,
    },
    #[error("state {}: {row} is corrupt: {detail}", path.display())]
    Corrupt {
        path: PathBuf,
        row: String,
        detail: String,
    },
    #[error("state {}: {what} could not be encoded: {source}", path.display())]
    EncodeFailed {
        path: PathBuf,
        what: &'static str,
        source: serde_json::Error,
    },
    #[error("state {}: intent {id} does not exist or already has an outcome", path.display())]
    IntentNotOpen { path: PathBuf, id: IntentId },
    #[error("state {}: cycle {id} does not exist", path.display())]
    CycleUnknown { path: PathBuf, id: CycleId },
}

/// A journal row's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct IntentId(pub i64);

impl fmt::Display for IntentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// A cycle record's id.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct CycleId(pub i64);

impl fmt::Display for CycleId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// The TRiNG write an intent is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WriteAction {
    Add,
    Del,
}

impl WriteAction {
    pub fn as_str(self) -> &'static str {
        match self {
            WriteAction::Add => "add",
            WriteAction::Del => "del",
        }
    }
}

impl fmt::Display for WriteAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A write TRiNG refused for a reason retrying cannot fix, held back (SPEC §3 rule 9).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct HeldWrite {
    pub queue: QueueNo,
    pub member: Member,
    pub action: WriteAction,
    pub person: Option<String>,
    /// TRiNG's answer, sanitised.
    pub answer: String,
    /// Fingerprint of the config and the calendars feeding the queue when it was refused:
    /// when it differs, the write is tried again.
    #[serde(skip)]
    pub basis: u64,
    pub since: DateTime<Utc>,
}

/// A write rooster is about to make, recorded before it is sent (SPEC §3 rule 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Intent {
    pub queue: QueueNo,
    pub member: Member,
    pub action: WriteAction,
    /// Display name of the configured person, if the member is one.
    pub person: Option<String>,
    /// Why (rule, event subject, calendar, from–to), already sanitised.
    pub reason: String,
    pub at: DateTime<Utc>,
}

/// What came of a write, recorded right after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// TRiNG confirmed the write.
    Applied,
    /// TRiNG said the member already was (add: it stays unowned, SPEC §3) or already was
    /// not (del) in the queue.
    AlreadyInState,
    /// TRiNG refused the write; nothing changed.
    Failed(String),
    /// No usable reply (timeout, shutdown): the write may or may not have reached TRiNG.
    /// The intent stays open until [`Store::settle_intent`] decides it against live.
    Uncertain(String),
}

/// How an open intent was decided against live at start-up (SPEC §3 rule 7).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Settlement {
    pub applied: bool,
    pub note: String,
    pub at: DateTime<Utc>,
}

/// One journal entry as `status` and `explain` show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JournalRow {
    pub id: IntentId,
    pub intent: Intent,
    /// `None` while the write has no outcome (in flight, or the process died).
    pub outcome: Option<(Outcome, DateTime<Utc>)>,
    pub settlement: Option<Settlement>,
}

/// One calendar's read, as [`Store::record_calendar_reads`] records it.
#[derive(Clone, Copy, Debug)]
pub enum CalendarRead<'a> {
    /// Read completely; these events differ from the ones stored.
    Changed(&'a [Event]),
    /// Read completely; the same events as stored (only the time of the good read moves).
    Unchanged,
    /// The read failed: the error is recorded, the last events are kept.
    Failed(&'a str),
}

/// Sync state of one calendar.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CalendarState {
    pub calendar: CalendarRef,
    /// When the calendar was last read completely.
    pub last_good_read: Option<DateTime<Utc>>,
    /// The error of the latest failed read; cleared by the next good read.
    pub last_error: Option<String>,
    pub last_error_at: Option<DateTime<Utc>>,
}

/// What a finished cycle did, written by [`Store::finish_cycle`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CycleRecord {
    pub ended: DateTime<Utc>,
    pub adds: u32,
    pub dels: u32,
    pub refused: u32,
    /// One sentence per failed calendar, queue or write.
    pub errors: Vec<String>,
    pub dry_run: bool,
}

/// A cycle as `status` shows it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CycleSummary {
    pub id: CycleId,
    pub started: DateTime<Utc>,
    pub ended: DateTime<Utc>,
    pub adds: u32,
    pub dels: u32,
    pub refused: u32,
    pub errors: Vec<String>,
    pub dry_run: bool,
}

/// What [`Store::prune_journal`] removed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Pruned {
    pub journal_rows: u64,
    pub cycles: u64,
    /// Closed refusal-log rows.
    pub refusals: u64,
}

/// The state database. Cheap to clone; clones share the connection pool and the writer lock,
/// which is released when the last clone is dropped.
#[derive(Clone)]
pub struct Store {
    pool: SqlitePool,
    path: PathBuf,
    mode: OpenMode,
    /// The locked lock file (writer only). Held, never read, for the Store's lifetime:
    /// the OS releases the advisory lock when the last handle closes, even on a crash.
    _lock: Option<Arc<File>>,
}

impl fmt::Debug for Store {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Store")
            .field("path", &self.path)
            .field("mode", &self.mode)
            .finish()
    }
}

/// The lock file next to the database: `rooster.db` → `rooster.db.lock`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// SPEC §3 rule 8: takes the advisory lock on `rooster.db.lock` and writes our pid into it.
/// A second writer finds the lock taken and reads the holder's pid for its error.
// `File::try_lock` is stable since Rust 1.89, newer than the crate's declared rust-version;
// std is the only way to lock without `unsafe` or a new dependency.
#[allow(clippy::incompatible_msrv)]
fn take_writer_lock(db: &Path) -> Result<File, StoreError> {
    let path = lock_path(db);
    let failed = |source| StoreError::LockFailed {
        path: path.clone(),
        source,
    };
    let mut file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(failed)?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            // The holder may be between locking and writing its pid: then the pid is unknown.
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            return Err(StoreError::Locked {
                path: db.to_owned(),
                pid,
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(failed(e)),
    }
    file.set_len(0).map_err(failed)?;
    write!(file, "{}", std::process::id()).map_err(failed)?;
    file.flush().map_err(failed)?;
    Ok(file)
}

/// SQLite's primary result code of a database error, if it is one.
fn sqlite_code(e: &sqlx::Error) -> Option<i32> {
    let code = e.as_database_error()?.code()?;
    code.parse::<i32>().ok().map(|c| c & 0xff)
}

const SQLITE_READONLY: i32 = 8;
const SQLITE_CORRUPT: i32 = 11;
const SQLITE_NOTADB: i32 = 26;

fn to_ms(at: DateTime<Utc>) -> i64 {
    at.timestamp_millis()
}

impl Store {
    /// Opens the state at `path` (SPEC §4 "State"). A writer takes the single-writer lock
    /// first (SPEC §3 rule 8), creates the database if missing, switches it to WAL and runs
    /// pending migrations. A reader needs an existing, fully migrated database and writes
    /// nothing. The state directory itself is never created: systemd's StateDirectory= does.
    pub async fn open(path: &Path, mode: OpenMode) -> Result<Store, StoreError> {
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        if !dir.is_dir() {
            return Err(StoreError::DirectoryMissing {
                dir: dir.to_owned(),
            });
        }
        let lock = match mode {
            OpenMode::Writer => Some(Arc::new(take_writer_lock(path)?)),
            OpenMode::ReadOnly => None,
        };
        check_file(path, mode)?;

        let mut options = SqliteConnectOptions::new()
            .filename(path)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        options = match mode {
            OpenMode::Writer => options
                .create_if_missing(true)
                .journal_mode(SqliteJournalMode::Wal),
            OpenMode::ReadOnly => options.read_only(true),
        };
        // One connection for the writer: its transactions never wait on each other (no
        // SQLITE_BUSY between them); the cycle's queue writers take turns on it, and each of
        // their transactions is one short row.
        let max = match mode {
            OpenMode::Writer => 1,
            OpenMode::ReadOnly => 2,
        };
        let pool = SqlitePoolOptions::new()
            .max_connections(max)
            .connect_with(options)
            .await
            .map_err(|e| open_error(path, e))?;
        let store = Store {
            pool,
            path: path.to_owned(),
            mode,
            _lock: lock,
        };
        match mode {
            OpenMode::Writer => store.migrate().await?,
            OpenMode::ReadOnly => store.check_migrated().await?,
        }
        Ok(store)
    }

    /// The database path, for messages.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Closes the connections, then releases the writer lock (if this is the last clone).
    pub async fn close(self) {
        self.pool.close().await;
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        self.back_up_before_migrating().await?;
        migrator().run(&self.pool).await.map_err(|e| match e {
            MigrateError::Execute(e) | MigrateError::ExecuteMigration(e, _) => {
                open_error(&self.path, e)
            }
            MigrateError::VersionMissing(version) => StoreError::SchemaTooNew {
                path: self.path.clone(),
                version,
            },
            source => StoreError::MigrationFailed {
                path: self.path.clone(),
                source,
            },
        })
    }

    /// A reader cannot migrate, so it refuses a database that lacks a migration this
    /// build knows, or has one it does not know.
    async fn check_migrated(&self) -> Result<(), StoreError> {
        let has_table: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| open_error(&self.path, e))?;
        let applied: BTreeSet<i64> = if has_table == 0 {
            BTreeSet::new()
        } else {
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| open_error(&self.path, e))?
                .into_iter()
                .collect()
        };
        let migrator = migrator();
        if let Some(m) = migrator.iter().find(|m| !applied.contains(&m.version)) {
            // A lock file that cannot be read or locked names no daemon.
            if let Some(pid) = writer_lock_holder(&self.path).ok().flatten() {
                return Err(StoreError::MigrationPendingDaemonRunning {
                    path: self.path.clone(),
                    version: m.version,
                    description: m.description.to_string(),
                    pid,
                });
            }
            return Err(StoreError::MigrationPending {
                path: self.path.clone(),
                version: m.version,
                description: m.description.to_string(),
            });
        }
        if let Some(&version) = applied.iter().find(|v| !migrator.version_exists(**v)) {
            return Err(StoreError::SchemaTooNew {
                path: self.path.clone(),
                version,
            });
        }
        Ok(())
    }

    fn writable(&self) -> Result<(), StoreError> {
        match self.mode {
            OpenMode::Writer => Ok(()),
            OpenMode::ReadOnly => Err(StoreError::OpenedReadOnly {
                path: self.path.clone(),
            }),
        }
    }

    fn query_failed(&self, step: &'static str) -> impl FnOnce(sqlx::Error) -> StoreError + '_ {
        move |source| match sqlite_code(&source) {
            Some(SQLITE_NOTADB | SQLITE_CORRUPT) => StoreError::NotSqlite {
                path: self.path.clone(),
            },
            Some(SQLITE_READONLY) => StoreError::ReadOnly {
                path: self.path.clone(),
            },
            _ => StoreError::QueryFailed {
                path: self.path.clone(),
                step,
                source,
            },
        }
    }

    fn corrupt(&self, row: String, detail: impl fmt::Display) -> StoreError {
        StoreError::Corrupt {
            path: self.path.clone(),
            row,
            detail: detail.to_string(),
        }
    }

    fn time(&self, row: impl Fn() -> String, ms: i64) -> Result<DateTime<Utc>, StoreError> {
        DateTime::from_timestamp_millis(ms)
            .ok_or_else(|| self.corrupt(row(), format!("instant {ms} is out of range")))
    }

    fn opt_time(
        &self,
        row: impl Fn() -> String,
        ms: Option<i64>,
    ) -> Result<Option<DateTime<Utc>>, StoreError> {
        ms.map(|ms| self.time(row, ms)).transpose()
    }

    fn queue(&self, row: impl Fn() -> String, s: &str) -> Result<QueueNo, StoreError> {
        QueueNo::parse(s).map_err(|e| self.corrupt(row(), e))
    }

    fn member(&self, row: impl Fn() -> String, s: &str) -> Result<Member, StoreError> {
        Member::from_str(s).map_err(|e| self.corrupt(row(), e))
    }

    /// A stored write action (`add` or `del`, as [`WriteAction::as_str`] writes it).
    fn action(&self, row: impl Fn() -> String, s: &str) -> Result<WriteAction, StoreError> {
        match s {
            "add" => Ok(WriteAction::Add),
            "del" => Ok(WriteAction::Del),
            other => Err(self.corrupt(row(), format!("action {other:?}"))),
        }
    }

    fn count(&self, row: impl Fn() -> String, n: i64) -> Result<u32, StoreError> {
        u32::try_from(n).map_err(|_| self.corrupt(row(), format!("count {n} is out of range")))
    }

    fn encode<T: Serialize + ?Sized>(
        &self,
        what: &'static str,
        value: &T,
    ) -> Result<String, StoreError> {
        serde_json::to_string(value).map_err(|source| StoreError::EncodeFailed {
            path: self.path.clone(),
            what,
            source,
        })
    }

    // ---- owned members (SPEC §1 "owned", §3) ----

    /// The members rooster owns in `queue`.
    pub async fn owned(&self, queue: &QueueNo) -> Result<BTreeSet<Member>, StoreError> {
        let rows: Vec<String> = sqlx::query_scalar("SELECT member FROM owned WHERE queue = ?")
            .bind(queue.as_str())
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_failed("reading owned members"))?;
        rows.iter()
            .map(|m| self.member(|| format!("owned {queue}/{m}"), m))
            .collect()
    }

    /// The members rooster owns, per queue; queues without owned members are absent.
    pub async fn owned_all(&self) -> Result<BTreeMap<QueueNo, BTreeSet<Member>>, StoreError> {
        let rows: Vec<OwnedRecord> = sqlx::query_as("SELECT queue, member FROM owned")
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_failed("reading owned members"))?;
        let mut out: BTreeMap<QueueNo, BTreeSet<Member>> = BTreeMap::new();
        for OwnedRecord { queue, member } in &rows {
            let row = || format!("owned {queue}/{member}");
            let member = self.member(row, member)?;
            out.entry(self.queue(row, queue)?)
                .or_default()
                .insert(member);
        }
        Ok(out)
    }

    /// Drops `member` from what rooster owns in `queue` (SPEC §3: an owned member gone from
    /// live and no longer desired). Returns whether it was owned.
    pub async fn forget_owned(&self, queue: &QueueNo, member: &Member) -> Result<bool, StoreError> {
        self.writable()?;
        let done = sqlx::query("DELETE FROM owned WHERE queue = ? AND member = ?")
            .bind(queue.as_str())
            .bind(member.to_string())
            .execute(&self.pool)
            .await
            .map_err(self.query_failed("forgetting an owned member"))?;
        Ok(done.rows_affected() > 0)
    }

    // ---- intent/outcome journal (SPEC §3 rule 7) ----

    /// Records that `intent` is about to be sent. Call before the TRiNG write.
    pub async fn record_intent(&self, intent: &Intent) -> Result<IntentId, StoreError> {
        self.writable()?;
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO journal (at_ms, queue, member, action, person, reason) \
             VALUES (?, ?, ?, ?, ?, ?) RETURNING id",
        )
        .bind(to_ms(intent.at))
        .bind(intent.queue.as_str())
        .bind(intent.member.to_string())
        .bind(intent.action.as_str())
        .bind(intent.person.as_deref())
        .bind(&intent.reason)
        .fetch_one(&self.pool)
        .await
        .map_err(self.query_failed("recording an intent"))?;
        Ok(IntentId(id))
    }

    /// Records what came of intent `id`. An applied (or already-in-state) add marks the
    /// member owned and a del un-owns it, in the same transaction as the outcome, so a crash
    /// never leaves one without the other. Failed and uncertain outcomes change no ownership;
    /// an uncertain intent stays in [`Store::open_intents`] until settled.
    pub async fn record_outcome(
        &self,
        id: IntentId,
        outcome: &Outcome,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.writable()?;
        let (kind, detail) = match outcome {
            Outcome::Applied => ("applied", None),
            Outcome::AlreadyInState => ("already_in_state", None),
            Outcome::Failed(e) => ("failed", Some(e.as_str())),
            Outcome::Uncertain(e) => ("uncertain", Some(e.as_str())),
        };
        let step = "recording an outcome";
        let mut tx = self.pool.begin().await.map_err(self.query_failed(step))?;
        let target: Option<WriteTarget> = sqlx::query_as(
            "UPDATE journal SET outcome = ?, outcome_detail = ?, outcome_at_ms = ? \
             WHERE id = ? AND outcome IS NULL AND settled IS NULL \
             RETURNING queue, member, action",
        )
        .bind(kind)
        .bind(detail)
        .bind(to_ms(at))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(self.query_failed(step))?;
        let Some(WriteTarget {
            queue,
            member,
            action,
        }) = target
        else {
            return Err(StoreError::IntentNotOpen {
                path: self.path.clone(),
                id,
            });
        };
        // SPEC §3: "a desired member that is already live but not owned stays unowned". An
        // add answered "already a member" found the member there (put in by hand after this
        // cycle's `list`), so it takes no ownership; a member rooster already owned stays
        // owned. A del answered "not a member" found it gone, so it is no longer owned.
        let changes_ownership = match outcome {
            Outcome::Applied => true,
            Outcome::AlreadyInState => action != "add",
            Outcome::Failed(_) | Outcome::Uncertain(_) => false,
        };
        if changes_ownership {
            apply_ownership(&mut tx, id, &queue, &member, &action, at)
                .await
                .map_err(self.query_failed(step))?;
        }
        tx.commit().await.map_err(self.query_failed(step))?;
        Ok(())
    }

    /// Intents without a decided outcome, oldest first: those the process died during,
    /// and those whose outcome was [`Outcome::Uncertain`]. Settle each at start-up.
    pub async fn open_intents(&self) -> Result<Vec<(IntentId, Intent)>, StoreError> {
        let rows: Vec<IntentRecord> = sqlx::query_as(
            "SELECT id, at_ms, queue, member, action, person, reason FROM journal \
             WHERE settled IS NULL AND (outcome IS NULL OR outcome = 'uncertain') \
             ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_failed("reading open intents"))?;
        rows.into_iter()
            .map(|r| Ok((IntentId(r.id), self.intent(r)?)))
            .collect()
    }

    /// Settles open intent `id` against live (SPEC §3 rule 7). `applied` says the write
    /// reached TRiNG (an add found live, a del found not live): the ownership change it implies
    /// is made in the same transaction. Not applied changes no ownership. `note` says how it
    /// was decided, for the journal.
    pub async fn settle_intent(
        &self,
        id: IntentId,
        applied: bool,
        note: &str,
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.writable()?;
        let step = "settling an intent";
        let mut tx = self.pool.begin().await.map_err(self.query_failed(step))?;
        let target: Option<WriteTarget> = sqlx::query_as(
            "UPDATE journal SET settled = ?, settled_note = ?, settled_at_ms = ? \
             WHERE id = ? AND settled IS NULL AND (outcome IS NULL OR outcome = 'uncertain') \
             RETURNING queue, member, action",
        )
        .bind(if applied { "applied" } else { "not_applied" })
        .bind(note)
        .bind(to_ms(at))
        .bind(id.0)
        .fetch_optional(&mut *tx)
        .await
        .map_err(self.query_failed(step))?;
        let Some(WriteTarget {
            queue,
            member,
            action,
        }) = target
        else {
            return Err(StoreError::IntentNotOpen {
                path: self.path.clone(),
                id,
            });
        };
        if applied {
            apply_ownership(&mut tx, id, &queue, &member, &action, at)
                .await
                .map_err(self.query_failed(step))?;
        }
        tx.commit().await.map_err(self.query_failed(step))?;
        Ok(())
    }

    /// The journal from `since` on, newest first, at most `limit` rows.
    pub async fn journal(
        &self,
        since: DateTime<Utc>,
        limit: u32,
    ) -> Result<Vec<JournalRow>, StoreError> {
        let rows: Vec<JournalRecord> = sqlx::query_as(
            "SELECT id, at_ms, queue, member, action, person, reason, \
                    outcome, outcome_detail, outcome_at_ms, settled, settled_note, settled_at_ms \
             FROM journal WHERE at_ms >= ? ORDER BY id DESC LIMIT ?",
        )
        .bind(to_ms(since))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_failed("reading the journal"))?;
        let mut out = Vec::with_capacity(rows.len());
        for r in rows {
            let id = r.intent.id;
            let row = || format!("journal row {id}");
            let intent = self.intent(r.intent)?;
            let outcome = match (r.outcome.as_deref(), r.outcome_at_ms) {
                (None, _) => None,
                (Some(kind), Some(at)) => {
                    let detail = r.outcome_detail.unwrap_or_default();
                    let outcome = match kind {
                        "applied" => Outcome::Applied,
                        "already_in_state" => Outcome::AlreadyInState,
                        "failed" => Outcome::Failed(detail),
                        "uncertain" => Outcome::Uncertain(detail),
                        other => return Err(self.corrupt(row(), format!("outcome {other:?}"))),
                    };
                    Some((outcome, self.time(row, at)?))
                }
                (Some(_), None) => return Err(self.corrupt(row(), "outcome without time")),
            };
            let settlement = match (r.settled.as_deref(), r.settled_at_ms) {
                (None, _) => None,
                (Some(kind @ ("applied" | "not_applied")), Some(at)) => Some(Settlement {
                    applied: kind == "applied",
                    note: r.settled_note.unwrap_or_default(),
                    at: self.time(row, at)?,
                }),
                (Some(kind), _) => {
                    return Err(self.corrupt(row(), format!("settlement {kind:?}")));
                }
            };
            out.push(JournalRow {
                id: IntentId(id),
                intent,
                outcome,
                settlement,
            });
        }
        Ok(out)
    }

    /// Removes journal rows and cycle records from before `before` (SPEC §4: the journal is
    /// kept 90 days; the caller passes now − 90 days). Open intents are kept whatever their
    /// age: they still have to be settled.
    pub async fn prune_journal(&self, before: DateTime<Utc>) -> Result<Pruned, StoreError> {
        self.writable()?;
        let step = "pruning the journal";
        let mut tx = self.pool.begin().await.map_err(self.query_failed(step))?;
        let journal = sqlx::query(
            "DELETE FROM journal WHERE at_ms < ? \
             AND (settled IS NOT NULL OR (outcome IS NOT NULL AND outcome <> 'uncertain'))",
        )
        .bind(to_ms(before))
        .execute(&mut *tx)
        .await
        .map_err(self.query_failed(step))?;
        let cycles = sqlx::query("DELETE FROM cycles WHERE started_ms < ?")
            .bind(to_ms(before))
            .execute(&mut *tx)
            .await
            .map_err(self.query_failed(step))?;
        // A refusal that stopped before `before` is history `history` no longer shows.
        let refusals = sqlx::query("DELETE FROM refusal_log WHERE open = 0 AND last_ms < ?")
            .bind(to_ms(before))
            .execute(&mut *tx)
            .await
            .map_err(self.query_failed(step))?;
        tx.commit().await.map_err(self.query_failed(step))?;
        Ok(Pruned {
            journal_rows: journal.rows_affected(),
            cycles: cycles.rows_affected(),
            refusals: refusals.rows_affected(),
        })
    }

    fn intent(&self, r: IntentRecord) -> Result<Intent, StoreError> {
        let IntentRecord {
            id,
            at_ms,
            queue,
            member,
            action,
            person,
            reason,
        } = r;
        let row = || format!("journal row {id}");
        Ok(Intent {
            queue: self.queue(row, &queue)?,
            member: self.member(row, &member)?,
            action: self.action(row, &action)?,
            person,
            reason,
            at: self.time(row, at_ms)?,
        })
    }

    // ---- per-calendar sync state (SPEC §4 "State", §5) ----

    /// Records a read of `calendar`. A good read replaces the stored events and clears the
    /// last error; a failed one only records the error, keeping the previous events so
    /// boundaries and `status` keep working while Graph is down (SPEC §5).
    pub async fn record_calendar_read(
        &self,
        calendar: &CalendarRef,
        at: DateTime<Utc>,
        result: Result<&[Event], &str>,
    ) -> Result<(), StoreError> {
        let read = match result {
            Ok(events) => CalendarRead::Changed(events),
            Err(error) => CalendarRead::Failed(error),
        };
        self.record_calendar_reads(at, &[(calendar.clone(), read)])
            .await
    }

    /// Records one cycle's calendar reads in a single transaction (one disk sync for the
    /// whole cycle, not one per calendar). Events are only rewritten when they changed.
    pub async fn record_calendar_reads(
        &self,
        at: DateTime<Utc>,
        reads: &[(CalendarRef, CalendarRead<'_>)],
    ) -> Result<(), StoreError> {
        self.writable()?;
        let step = "recording calendar reads";
        let mut tx = self.pool.begin().await.map_err(self.query_failed(step))?;
        for (calendar, read) in reads {
            let name = calendar.name.as_deref().unwrap_or("");
            let query = match read {
                CalendarRead::Changed(events) => sqlx::query(
                    "INSERT INTO calendar_state \
                        (mailbox, calendar_name, last_good_read_ms, last_events) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (mailbox, calendar_name) DO UPDATE SET \
                        last_good_read_ms = excluded.last_good_read_ms, \
                        last_events = excluded.last_events, \
                        last_error = NULL, last_error_at_ms = NULL",
                )
                .bind(calendar.mailbox.as_str())
                .bind(name)
                .bind(to_ms(at))
                .bind(self.encode("events", events)?),
                CalendarRead::Unchanged => sqlx::query(
                    "UPDATE calendar_state SET last_good_read_ms = ?, \
                        last_error = NULL, last_error_at_ms = NULL \
                     WHERE mailbox = ? AND calendar_name = ?",
                )
                .bind(to_ms(at))
                .bind(calendar.mailbox.as_str())
                .bind(name),
                CalendarRead::Failed(error) => sqlx::query(
                    "INSERT INTO calendar_state \
                        (mailbox, calendar_name, last_error, last_error_at_ms) VALUES (?, ?, ?, ?) \
                     ON CONFLICT (mailbox, calendar_name) DO UPDATE SET \
                        last_error = excluded.last_error, \
                        last_error_at_ms = excluded.last_error_at_ms",
                )
                .bind(calendar.mailbox.as_str())
                .bind(name)
                .bind(error.to_string())
                .bind(to_ms(at)),
            };
            query
                .execute(&mut *tx)
                .await
                .map_err(self.query_failed(step))?;
        }
        tx.commit().await.map_err(self.query_failed(step))?;
        Ok(())
    }

    /// Sync state of every calendar ever read, in calendar order.
    pub async fn calendar_states(&self) -> Result<Vec<CalendarState>, StoreError> {
        let rows: Vec<CalendarStateRecord> = sqlx::query_as(
            "SELECT mailbox, calendar_name, last_good_read_ms, last_error, last_error_at_ms \
                 FROM calendar_state",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_failed("reading calendar states"))?;
        let mut out = rows
            .into_iter()
            .map(|r| {
                let calendar = self.calendar(&r.mailbox, r.calendar_name)?;
                let row = || format!("calendar {calendar}");
                Ok(CalendarState {
                    last_good_read: self.opt_time(row, r.last_good_read_ms)?,
                    last_error: r.last_error,
                    last_error_at: self.opt_time(row, r.last_error_at_ms)?,
                    calendar,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        out.sort_by(|a, b| a.calendar.cmp(&b.calendar));
        Ok(out)
    }

    /// The events of each calendar's last good read.
    pub async fn last_events(&self) -> Result<BTreeMap<CalendarRef, Vec<Event>>, StoreError> {
        let mut out = BTreeMap::new();
        self.each_last_events(|calendar, events| {
            out.insert(calendar, events);
        })
        .await?;
        Ok(out)
    }

    /// Hands each calendar's last good read to `each`, one calendar at a time, so a large
    /// tenant's events are never all in memory at once ([`Store::stored_schedule`] builds its
    /// schedule this way).
    pub async fn each_last_events(
        &self,
        mut each: impl FnMut(CalendarRef, Vec<Event>),
    ) -> Result<(), StoreError> {
        let step = "reading the last events";
        let mut rows = sqlx::query_as::<_, LastEventsRecord>(
            "SELECT mailbox, calendar_name, last_events FROM calendar_state \
             WHERE last_events IS NOT NULL",
        )
        .fetch(&self.pool);
        while let Some(r) = rows.try_next().await.map_err(self.query_failed(step))? {
            let calendar = self.calendar(&r.mailbox, r.calendar_name)?;
            let events = self.decode_events(&calendar, &r.last_events)?;
            each(calendar, events);
        }
        Ok(())
    }

    /// The schedule built from each calendar's last good read (what `status`, `coverage` and
    /// the status page show). It is built one stored calendar at a time, so memory holds one
    /// calendar's events plus the schedule, never every calendar's events at once.
    pub async fn stored_schedule(&self, roster: &Roster<'_>) -> Result<Schedule, StoreError> {
        let mut builder = ScheduleBuilder::new(roster);
        self.each_last_events(|calendar, events| builder.add_calendar(&calendar, &events))
            .await?;
        Ok(builder.finish())
    }

    /// The events of one calendar's last good read, `None` when it was never read well. The
    /// daemon asks for the calendars whose read just failed, one at a time, instead of keeping
    /// every calendar's events in memory between reads.
    pub async fn calendar_events(
        &self,
        calendar: &CalendarRef,
    ) -> Result<Option<Vec<Event>>, StoreError> {
        let json: Option<String> = sqlx::query_scalar(
            "SELECT last_events FROM calendar_state \
             WHERE mailbox = ? AND calendar_name = ? AND last_events IS NOT NULL",
        )
        .bind(calendar.mailbox.as_str())
        .bind(calendar.name.as_deref().unwrap_or(""))
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query_failed("reading the last events"))?;
        json.map(|json| self.decode_events(calendar, &json))
            .transpose()
    }

    /// A calendar's stored events, as `record_calendar_reads` encoded them.
    fn decode_events(&self, calendar: &CalendarRef, json: &str) -> Result<Vec<Event>, StoreError> {
        serde_json::from_str(json)
            .map_err(|e| self.corrupt(format!("events of calendar {calendar}"), e))
    }

    fn calendar(&self, mailbox: &str, name: String) -> Result<CalendarRef, StoreError> {
        let mailbox = Mailbox::parse(mailbox)
            .map_err(|e| self.corrupt(format!("calendar {mailbox:?}"), e))?;
        Ok(CalendarRef {
            mailbox,
            name: (!name.is_empty()).then_some(name),
        })
    }

    // ---- cycles (SPEC §4 `status`, metrics) ----

    /// Records that a cycle started at `at`.
    pub async fn start_cycle(&self, at: DateTime<Utc>) -> Result<CycleId, StoreError> {
        self.writable()?;
        let id: i64 = sqlx::query_scalar("INSERT INTO cycles (started_ms) VALUES (?) RETURNING id")
            .bind(to_ms(at))
            .fetch_one(&self.pool)
            .await
            .map_err(self.query_failed("recording a cycle start"))?;
        Ok(CycleId(id))
    }

    /// Records what cycle `id` did.
    pub async fn finish_cycle(&self, id: CycleId, record: &CycleRecord) -> Result<(), StoreError> {
        self.writable()?;
        let done = sqlx::query(
            "UPDATE cycles SET ended_ms = ?, adds = ?, dels = ?, refused = ?, errors = ?, \
             dry_run = ? WHERE id = ?",
        )
        .bind(to_ms(record.ended))
        .bind(record.adds)
        .bind(record.dels)
        .bind(record.refused)
        .bind(self.encode("cycle errors", &record.errors)?)
        .bind(record.dry_run)
        .bind(id.0)
        .execute(&self.pool)
        .await
        .map_err(self.query_failed("recording a cycle end"))?;
        if done.rows_affected() == 0 {
            return Err(StoreError::CycleUnknown {
                path: self.path.clone(),
                id,
            });
        }
        Ok(())
    }

    /// The latest finished cycle (one still running, or cut short by a crash, is skipped).
    pub async fn last_cycle(&self) -> Result<Option<CycleSummary>, StoreError> {
        let record: Option<CycleRecordRow> = sqlx::query_as(
            "SELECT id, started_ms, ended_ms, adds, dels, refused, errors, dry_run FROM cycles \
             WHERE ended_ms IS NOT NULL ORDER BY id DESC LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await
        .map_err(self.query_failed("reading the last cycle"))?;
        let Some(r) = record else {
            return Ok(None);
        };
        let row = || format!("cycle {}", r.id);
        Ok(Some(CycleSummary {
            id: CycleId(r.id),
            started: self.time(row, r.started_ms)?,
            ended: self.time(row, r.ended_ms)?,
            adds: self.count(row, r.adds)?,
            dels: self.count(row, r.dels)?,
            refused: self.count(row, r.refused)?,
            errors: serde_json::from_str(&r.errors).map_err(|e| self.corrupt(row(), e))?,
            dry_run: r.dry_run,
        }))
    }

    /// When the latest cycle without errors ended. `/healthz` and `status` judge from
    /// `health::HealthFacts` instead; the store tests use this to pin what a good cycle is.
    pub async fn last_good_cycle(&self) -> Result<Option<DateTime<Utc>>, StoreError> {
        let ended: Option<i64> = sqlx::query_scalar(
            "SELECT max(ended_ms) FROM cycles WHERE ended_ms IS NOT NULL AND errors = '[]'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(self.query_failed("reading the last good cycle"))?;
        self.opt_time(|| "cycles".to_owned(), ended)
    }

    // ---- refusals (SPEC §3 rules 3–4, shown by `status`) ----

    /// Replaces the refusals shown for `queue` with this cycle's; an empty list clears them.
    pub async fn set_refusals(
        &self,
        queue: &QueueNo,
        refusals: &[String],
    ) -> Result<(), StoreError> {
        self.writable()?;
        let step = "recording refusals";
        let query = if refusals.is_empty() {
            sqlx::query("DELETE FROM refusals WHERE queue = ?").bind(queue.as_str())
        } else {
            sqlx::query(
                "INSERT INTO refusals (queue, refusals) VALUES (?, ?) \
                 ON CONFLICT (queue) DO UPDATE SET refusals = excluded.refusals",
            )
            .bind(queue.as_str())
            .bind(self.encode("refusals", refusals)?)
        };
        query
            .execute(&self.pool)
            .await
            .map_err(self.query_failed(step))?;
        Ok(())
    }

    /// SPEC §3 rule 9: remembers that TRiNG refused this write for good (replacing an
    /// earlier hold of the same queue, member and action).
    pub async fn hold_write(&self, held: &HeldWrite) -> Result<(), StoreError> {
        self.writable()?;
        sqlx::query(
            "INSERT INTO held_writes (queue, member, action, person, answer, basis, since_ms) \
             VALUES (?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (queue, member, action) DO UPDATE SET person = excluded.person, \
             answer = excluded.answer, basis = excluded.basis, since_ms = excluded.since_ms",
        )
        .bind(held.queue.as_str())
        .bind(held.member.to_string())
        .bind(held.action.as_str())
        .bind(held.person.as_deref())
        .bind(&held.answer)
        .bind(i64::from_ne_bytes(held.basis.to_ne_bytes()))
        .bind(held.since.timestamp_millis())
        .execute(&self.pool)
        .await
        .map_err(self.query_failed("recording a held write"))?;
        Ok(())
    }

    /// Forgets one hold: the write was accepted, or the plan no longer wants it.
    pub async fn release_held_write(
        &self,
        queue: &QueueNo,
        member: &Member,
        action: WriteAction,
    ) -> Result<(), StoreError> {
        self.writable()?;
        sqlx::query("DELETE FROM held_writes WHERE queue = ? AND member = ? AND action = ?")
            .bind(queue.as_str())
            .bind(member.to_string())
            .bind(action.as_str())
            .execute(&self.pool)
            .await
            .map_err(self.query_failed("releasing a held write"))?;
        Ok(())
    }

    /// Every write held back by SPEC §3 rule 9, by queue, member and action.
    pub async fn held_writes(&self) -> Result<Vec<HeldWrite>, StoreError> {
        let rows: Vec<HeldWriteRecord> = sqlx::query_as(
            "SELECT queue, member, action, person, answer, basis, since_ms FROM held_writes \
             ORDER BY queue, member, action",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_failed("reading held writes"))?;
        rows.into_iter()
            .map(|r| {
                let row = || format!("held_writes {} {} {}", r.queue, r.member, r.action);
                Ok(HeldWrite {
                    queue: self.queue(row, &r.queue)?,
                    member: self.member(row, &r.member)?,
                    action: self.action(row, &r.action)?,
                    person: r.person,
                    answer: r.answer,
                    basis: u64::from_ne_bytes(r.basis.to_ne_bytes()),
                    since: self.time(row, r.since_ms)?,
                })
            })
            .collect()
    }

    /// The refusals of the last cycle, per queue; queues without refusals are absent.
    pub async fn refusals(&self) -> Result<BTreeMap<QueueNo, Vec<String>>, StoreError> {
        let rows: Vec<RefusalsRecord> = sqlx::query_as("SELECT queue, refusals FROM refusals")
            .fetch_all(&self.pool)
            .await
            .map_err(self.query_failed("reading refusals"))?;
        rows.into_iter()
            .map(|r| {
                let row = || format!("refusals of queue {}", r.queue);
                let list = serde_json::from_str(&r.refusals).map_err(|e| self.corrupt(row(), e))?;
                Ok((self.queue(row, &r.queue)?, list))
            })
            .collect()
    }

    // ---- history (SPEC §4 "History and coverage") ----

    /// Records the refusals and held-back writes of `queue` in this cycle (SPEC §4
    /// `history`). A refusal the queue's previous cycle also made extends that row; one no
    /// longer made is closed. Closed rows are pruned with the journal ([`Store::prune_journal`]).
    pub async fn log_refusals(
        &self,
        queue: &QueueNo,
        notes: &[RefusalNote],
        at: DateTime<Utc>,
    ) -> Result<(), StoreError> {
        self.writable()?;
        let step = "recording refusal history";
        let mut tx = self.pool.begin().await.map_err(self.query_failed(step))?;
        let mut kept: Vec<i64> = Vec::with_capacity(notes.len());
        for n in notes {
            let member = n.member.as_ref().map(Member::to_string).unwrap_or_default();
            let open: Option<i64> = sqlx::query_scalar(
                "UPDATE refusal_log SET last_ms = ?, last_cycle_id = (SELECT max(id) FROM cycles) \
                 WHERE open = 1 AND queue = ? AND member = ? AND kind = ? AND reason = ? \
                 RETURNING id",
            )
            .bind(to_ms(at))
            .bind(queue.as_str())
            .bind(&member)
            .bind(&n.kind)
            .bind(&n.reason)
            .fetch_optional(&mut *tx)
            .await
            .map_err(self.query_failed(step))?;
            let id = match open {
                Some(id) => id,
                None => sqlx::query_scalar(
                    "INSERT INTO refusal_log (queue, member, kind, person, reason, \
                        first_cycle_id, first_ms, last_cycle_id, last_ms) \
                     VALUES (?, ?, ?, ?, ?, (SELECT max(id) FROM cycles), ?, \
                        (SELECT max(id) FROM cycles), ?) RETURNING id",
                )
                .bind(queue.as_str())
                .bind(&member)
                .bind(&n.kind)
                .bind(n.person.as_deref())
                .bind(&n.reason)
                .bind(to_ms(at))
                .bind(to_ms(at))
                .fetch_one(&mut *tx)
                .await
                .map_err(self.query_failed(step))?,
            };
            kept.push(id);
        }
        let standing: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM refusal_log WHERE open = 1 AND queue = ?")
                .bind(queue.as_str())
                .fetch_all(&mut *tx)
                .await
                .map_err(self.query_failed(step))?;
        for id in standing.into_iter().filter(|id| !kept.contains(id)) {
            sqlx::query("UPDATE refusal_log SET open = 0 WHERE id = ?")
                .bind(id)
                .execute(&mut *tx)
                .await
                .map_err(self.query_failed(step))?;
        }
        tx.commit().await.map_err(self.query_failed(step))?;
        Ok(())
    }

    /// The refusals that stood at some time in `[since, until]`, oldest first.
    pub async fn refusal_history(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<RefusalRecord>, StoreError> {
        let rows: Vec<RefusalLogRecord> = sqlx::query_as(
            "SELECT id, queue, member, kind, person, reason, first_cycle_id, first_ms, \
                    last_cycle_id, last_ms, open \
             FROM refusal_log WHERE last_ms >= ? AND first_ms <= ? ORDER BY first_ms, id",
        )
        .bind(to_ms(since))
        .bind(to_ms(until))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_failed("reading refusal history"))?;
        rows.into_iter()
            .map(|r| {
                let row = || format!("refusal_log row {}", r.id);
                Ok(RefusalRecord {
                    queue: self.queue(row, &r.queue)?,
                    note: RefusalNote {
                        member: match r.member.as_str() {
                            "" => None,
                            m => Some(self.member(row, m)?),
                        },
                        kind: r.kind,
                        person: r.person,
                        reason: r.reason,
                    },
                    first_cycle: r.first_cycle_id.map(CycleId),
                    first: self.time(row, r.first_ms)?,
                    last_cycle: r.last_cycle_id.map(CycleId),
                    last: self.time(row, r.last_ms)?,
                    standing: r.open,
                })
            })
            .collect()
    }

    /// The journal rows recorded in `[since, until]`, oldest first, each with the cycle that
    /// recorded it (`None` for rows older than the history migration).
    pub async fn journal_history(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<(Option<CycleId>, JournalRow)>, StoreError> {
        let cycles: BTreeMap<i64, Option<i64>> = sqlx::query_as::<_, (i64, Option<i64>)>(
            "SELECT id, cycle_id FROM journal WHERE at_ms >= ? AND at_ms <= ?",
        )
        .bind(to_ms(since))
        .bind(to_ms(until))
        .fetch_all(&self.pool)
        .await
        .map_err(self.query_failed("reading the journal"))?
        .into_iter()
        .collect();
        let mut rows: Vec<_> = self
            .journal(since, u32::MAX)
            .await?
            .into_iter()
            .filter_map(|r| Some((cycles.get(&r.id.0)?.map(CycleId), r)))
            .collect();
        rows.reverse();
        Ok(rows)
    }
}

/// A refusal or held-back write of one cycle, as the executor reports it for `history`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RefusalNote {
    /// `incomplete_read`, `keep_last`, `removal_cap`, `unreadable_queue` (SPEC §4 `plan
    /// --json` names) or `held` (SPEC §3 rule 9).
    pub kind: String,
    /// `None` when the refusal concerns the whole queue.
    pub member: Option<Member>,
    pub person: Option<String>,
    /// The refusal's sentence; for `held`, TRiNG's answer. Already sanitised.
    pub reason: String,
}

/// A refusal as the history keeps it: from the first cycle that made it to the last.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusalRecord {
    pub queue: QueueNo,
    pub note: RefusalNote,
    pub first_cycle: Option<CycleId>,
    pub first: DateTime<Utc>,
    pub last_cycle: Option<CycleId>,
    pub last: DateTime<Utc>,
    /// The queue's latest cycle still made it.
    pub standing: bool,
}

// ---- rows as stored, read by column name ----
//
// Each record is one query's columns, read with `Row::try_get("column")` so a reordered
// SELECT or a new column cannot shift a value into the wrong field. Parsing into model types
// (and reporting a row that fails to parse as corrupt) stays in the `Store` methods.
// `FromRow` is implemented by hand: the derive needs sqlx's `derive` feature, which would
// add sqlx's proc-macro crates to every build for a few small impls.

/// Implements `FromRow` for a record whose fields are named after its columns.
macro_rules! record {
    ($(#[$doc:meta])* struct $name:ident { $($field:ident: $ty:ty),* $(,)? }) => {
        $(#[$doc])*
        struct $name {
            $($field: $ty),*
        }

        impl FromRow<'_, SqliteRow> for $name {
            fn from_row(r: &SqliteRow) -> Result<Self, sqlx::Error> {
                Ok($name {
                    $($field: r.try_get(stringify!($field))?),*
                })
            }
        }
    };
}

record! {
    /// A row of `owned`.
    struct OwnedRecord { queue: String, member: String }
}

record! {
    /// The write a journal `UPDATE … RETURNING` touched.
    struct WriteTarget { queue: String, member: String, action: String }
}

record! {
    /// The intent columns of a `journal` row.
    struct IntentRecord {
        id: i64,
        at_ms: i64,
        queue: String,
        member: String,
        action: String,
        person: Option<String>,
        reason: String,
    }
}

/// A whole `journal` row: its intent, outcome and settlement.
struct JournalRecord {
    intent: IntentRecord,
    outcome: Option<String>,
    outcome_detail: Option<String>,
    outcome_at_ms: Option<i64>,
    settled: Option<String>,
    settled_note: Option<String>,
    settled_at_ms: Option<i64>,
}

impl FromRow<'_, SqliteRow> for JournalRecord {
    fn from_row(r: &SqliteRow) -> Result<Self, sqlx::Error> {
        Ok(JournalRecord {
            intent: IntentRecord::from_row(r)?,
            outcome: r.try_get("outcome")?,
            outcome_detail: r.try_get("outcome_detail")?,
            outcome_at_ms: r.try_get("outcome_at_ms")?,
            settled: r.try_get("settled")?,
            settled_note: r.try_get("settled_note")?,
            settled_at_ms: r.try_get("settled_at_ms")?,
        })
    }
}

record! {
    /// A row of `calendar_state`, without its events.
    struct CalendarStateRecord {
        mailbox: String,
        calendar_name: String,
        last_good_read_ms: Option<i64>,
        last_error: Option<String>,
        last_error_at_ms: Option<i64>,
    }
}

record! {
    /// A calendar's last good events (`calendar_state` rows that have them).
    struct LastEventsRecord { mailbox: String, calendar_name: String, last_events: String }
}

record! {
    /// A finished row of `cycles`.
    struct CycleRecordRow {
        id: i64,
        started_ms: i64,
        ended_ms: i64,
        adds: i64,
        dels: i64,
        refused: i64,
        errors: String,
        dry_run: bool,
    }
}

record! {
    /// A row of `refusals`.
    struct RefusalsRecord { queue: String, refusals: String }
}

record! {
    /// A row of `refusal_log`.
    struct RefusalLogRecord {
        id: i64,
        queue: String,
        member: String,
        kind: String,
        person: Option<String>,
        reason: String,
        first_cycle_id: Option<i64>,
        first_ms: i64,
        last_cycle_id: Option<i64>,
        last_ms: i64,
        open: bool,
    }
}

record! {
    /// A row of `held_writes`.
    struct HeldWriteRecord {
        queue: String,
        member: String,
        action: String,
        person: Option<String>,
        answer: String,
        basis: i64,
        since_ms: i64,
    }
}

/// The ownership change a write that reached TRiNG implies: an add makes the member owned,
/// a del un-owns it. Runs inside the caller's transaction.
async fn apply_ownership(
    tx: &mut sqlx::Transaction<'static, sqlx::Sqlite>,
    id: IntentId,
    queue: &str,
    member: &str,
    action: &str,
    at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    if action == "add" {
        sqlx::query(
            "INSERT INTO owned (queue, member, since_ms, intent_id) VALUES (?, ?, ?, ?) \
             ON CONFLICT (queue, member) DO NOTHING",
        )
        .bind(queue.to_owned())
        .bind(member.to_owned())
        .bind(to_ms(at))
        .bind(id.0)
        .execute(&mut **tx)
        .await?;
    } else {
        sqlx::query("DELETE FROM owned WHERE queue = ? AND member = ?")
            .bind(queue.to_owned())
            .bind(member.to_owned())
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

/// Checks the database file before SQLite sees it, so the common faults get a sentence of
/// their own: missing (reader), unreadable, read-only (writer), not SQLite at all.
fn check_file(path: &Path, mode: OpenMode) -> Result<(), StoreError> {
    let mut file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return match mode {
                OpenMode::Writer => Ok(()),
                OpenMode::ReadOnly => Err(StoreError::FileMissing {
                    path: path.to_owned(),
                }),
            };
        }
        Err(source) => {
            return Err(StoreError::Unreadable {
                path: path.to_owned(),
                source,
            });
        }
    };
    // An empty file is a valid, new SQLite database; anything else starts with this header.
    const HEADER: &[u8; 16] = b"SQLite format 3\0";
    let mut head = Vec::with_capacity(16);
    (&mut file)
        .take(16)
        .read_to_end(&mut head)
        .map_err(|source| StoreError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
    if !head.is_empty() && head != HEADER {
        return Err(StoreError::NotSqlite {
            path: path.to_owned(),
        });
    }
    if mode == OpenMode::Writer {
        match OpenOptions::new().read(true).write(true).open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::PermissionDenied => {
                return Err(StoreError::ReadOnly {
                    path: path.to_owned(),
                });
            }
            Err(source) => {
                return Err(StoreError::Unreadable {
                    path: path.to_owned(),
                    source,
                });
            }
        }
    }
    Ok(())
}

/// Maps an error met while opening or migrating to the file fault it stands for.
fn open_error(path: &Path, source: sqlx::Error) -> StoreError {
    match sqlite_code(&source) {
        Some(SQLITE_NOTADB | SQLITE_CORRUPT) => StoreError::NotSqlite {
            path: path.to_owned(),
        },
        Some(SQLITE_READONLY) => StoreError::ReadOnly {
            path: path.to_owned(),
        },
        _ => StoreError::OpenFailed {
            path: path.to_owned(),
            source,
        },
    }
}

// ---- upgrades: a copy before each migration, and who holds the lock ----

/// Backups of the state kept before migrations (`rooster.db.pre-<version>`), newest last.
const BACKUPS_KEPT: usize = 2;

impl Store {
    /// Before a migration is applied to an existing state, copies it to
    /// `rooster.db.pre-<version>` (the first migration about to run), keeping the last two:
    /// an upgrade that goes wrong can be undone by putting the copy back.
    async fn back_up_before_migrating(&self) -> Result<(), StoreError> {
        let has_table: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
        )
        .fetch_one(&self.pool)
        .await
        .map_err(|e| open_error(&self.path, e))?;
        if has_table == 0 {
            return Ok(()); // a new state: nothing to keep
        }
        let applied: BTreeSet<i64> =
            sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success = 1")
                .fetch_all(&self.pool)
                .await
                .map_err(|e| open_error(&self.path, e))?
                .into_iter()
                .collect();
        let migrator = migrator();
        let Some(next) = migrator.iter().find(|m| !applied.contains(&m.version)) else {
            return Ok(());
        };
        let mut name = self.path.as_os_str().to_owned();
        name.push(format!(".pre-{}", next.version));
        let copy = PathBuf::from(name);
        let failed = |source| StoreError::LockFailed {
            path: copy.clone(),
            source,
        };
        match std::fs::remove_file(&copy) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(failed(e)),
            _ => {}
        }
        // VACUUM INTO writes a consistent copy, WAL included, through SQLite itself.
        sqlx::query("VACUUM INTO ?")
            .bind(copy.to_string_lossy().into_owned())
            .execute(&self.pool)
            .await
            .map_err(self.query_failed("copying the state before a migration"))?;
        tracing::info!(copy = %copy.display(), migration = next.version, "state copied before migrating");
        prune_backups(&self.path, BACKUPS_KEPT).map_err(failed)
    }
}

/// Removes all but the `keep` newest `<db>.pre-<version>` copies (by version).
fn prune_backups(db: &Path, keep: usize) -> io::Result<()> {
    let dir = match db.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let Some(base) = db
        .file_name()
        .map(|n| format!("{}.pre-", n.to_string_lossy()))
    else {
        return Ok(());
    };
    let mut copies: Vec<(i64, PathBuf)> = std::fs::read_dir(dir)?
        .filter_map(|e| {
            let e = e.ok()?;
            let name = e.file_name().to_string_lossy().into_owned();
            let version = name.strip_prefix(&base)?.parse().ok()?;
            Some((version, e.path()))
        })
        .collect();
    copies.sort();
    let excess = copies.len().saturating_sub(keep);
    for (_, path) in copies.into_iter().take(excess) {
        std::fs::remove_file(path)?;
    }
    Ok(())
}

/// `Some(pid)` when another process (a daemon) holds the writer lock of `db` (SPEC §3 rule 8),
/// `pid` being what it wrote into the lock file, if readable; `None` when nobody does (or no
/// writer ever ran). It takes a shared lock for an instant, which cannot be had while the
/// writer's is held, and never writes the file; a daemon starting in that same instant would
/// find the lock taken and say so. `doctor` reports this; a read-only open that finds a
/// migration pending names the daemon from it.
// `File::try_lock_shared` is stable since Rust 1.89, as in `take_writer_lock`.
#[allow(clippy::incompatible_msrv)]
pub fn writer_lock_holder(db: &Path) -> io::Result<Option<Option<u32>>> {
    let mut file = match File::open(lock_path(db)) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    match file.try_lock_shared() {
        Ok(()) => {
            file.unlock()?;
            Ok(None)
        }
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let pid = file
                .read_to_string(&mut text)
                .ok()
                .and_then(|_| text.trim().parse().ok());
            Ok(Some(pid))
        }
        Err(std::fs::TryLockError::Error(e)) => Err(e),
    }
}
