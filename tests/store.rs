//! Tests of the SQLite state (`src/store.rs`) on temporary databases: round-trips of every
//! table, crash-safety of the intent journal (SPEC §3 rule 7), the single-writer lock
//! (SPEC §3 rule 8), read-only opens, and the errors for broken state files (SPEC §4).

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use rooster::model::{
    CalendarRef, Event, EventKind, EventTime, Mailbox, Member, QueueNo, Sensitivity, ShowAs,
};
use rooster::store::{
    CalendarRead, CycleRecord, Intent, OpenMode, Outcome, RefusalNote, Store, StoreError,
    WriteAction, lock_path,
};
use sqlx::Connection;

/// Every await in these tests goes through here: a hang is a failure with a message.
async fn within<T>(what: &str, f: impl Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(20), f)
        .await
        .unwrap_or_else(|_| {
            panic!("{what} did not finish within 20 s: the store is stuck on a lock")
        })
}

fn at(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn q(s: &str) -> QueueNo {
    QueueNo::parse(s).unwrap()
}

fn m(s: &str) -> Member {
    s.parse().unwrap()
}

fn members(list: &[&str]) -> BTreeSet<Member> {
    list.iter().map(|s| m(s)).collect()
}

fn intent(queue: &str, member: &str, action: WriteAction, when: &str) -> Intent {
    Intent {
        queue: q(queue),
        member: m(member),
        action,
        person: Some("Jan de Vries".to_owned()),
        reason: "rule support shifts: Support (jan@acme.nl) 09:00–17:00".to_owned(),
        at: at(when),
    }
}

fn event(id: &str, subject: &str) -> Event {
    Event {
        id: id.to_owned(),
        subject: subject.to_owned(),
        when: EventTime::Timed {
            start: at("2025-03-03T08:00:00Z"),
            end: at("2025-03-03T16:00:00Z"),
        },
        is_cancelled: false,
        show_as: ShowAs::Busy,
        categories: vec!["Support".to_owned()],
        sensitivity: Sensitivity::Normal,
        organizer: Some("jan@acme.nl".to_owned()),
        attendees: vec![],
        kind: EventKind::SingleInstance,
        series_master_id: None,
    }
}

fn all_day(id: &str) -> Event {
    Event {
        when: EventTime::AllDay {
            start: NaiveDate::from_ymd_opt(2025, 3, 30).unwrap(),
            end: NaiveDate::from_ymd_opt(2025, 3, 31).unwrap(),
        },
        show_as: ShowAs::Oof,
        sensitivity: Sensitivity::Private,
        ..event(id, "verlof")
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    db: PathBuf,
}

fn fixture() -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("rooster.db");
    Fixture { _dir: dir, db }
}

async fn writer(db: &Path) -> Store {
    within("opening the writer", Store::open(db, OpenMode::Writer))
        .await
        .expect("writer opens")
}

async fn reader(db: &Path) -> Store {
    within("opening a reader", Store::open(db, OpenMode::ReadOnly))
        .await
        .expect("reader opens")
}

async fn open_err(db: &Path, mode: OpenMode) -> StoreError {
    within("opening the store", Store::open(db, mode))
        .await
        .expect_err("open must fail")
}

/// A raw connection for poking at the file behind the store's back.
async fn raw(db: &Path) -> sqlx::SqliteConnection {
    let opts = sqlx::sqlite::SqliteConnectOptions::new().filename(db);
    within("raw connect", sqlx::SqliteConnection::connect_with(&opts))
        .await
        .unwrap()
}

/// True when the process can write a file whatever its mode bits (root): then the
/// permission tests cannot observe a refusal and are skipped with a note.
fn ignores_permissions(file: &Path) -> bool {
    std::fs::OpenOptions::new().write(true).open(file).is_ok()
}

#[tokio::test]
async fn applied_add_marks_owned_and_applied_del_unowns() {
    let f = fixture();
    let store = writer(&f.db).await;

    let add = intent("600", "ext:201", WriteAction::Add, "2025-03-03T07:58:00Z");
    let id = within("intent", store.record_intent(&add)).await.unwrap();
    // An intent alone owns nothing: the write may not have happened yet.
    assert!(
        within("owned", store.owned(&q("600")))
            .await
            .unwrap()
            .is_empty()
    );

    within(
        "outcome",
        store.record_outcome(id, &Outcome::Applied, at("2025-03-03T07:58:01Z")),
    )
    .await
    .unwrap();
    assert_eq!(
        within("owned", store.owned(&q("600"))).await.unwrap(),
        members(&["ext:201"])
    );
    assert!(
        within("open", store.open_intents())
            .await
            .unwrap()
            .is_empty()
    );

    let del = intent("600", "ext:201", WriteAction::Del, "2025-03-03T16:00:00Z");
    let id = within("intent", store.record_intent(&del)).await.unwrap();
    within(
        "outcome",
        store.record_outcome(id, &Outcome::Applied, at("2025-03-03T16:00:01Z")),
    )
    .await
    .unwrap();
    assert!(
        within("owned", store.owned(&q("600")))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Records an intent and its outcome, as the cycle does around one write.
async fn write_recorded(
    store: &Store,
    queue: &str,
    member: &str,
    action: WriteAction,
    outcome: Outcome,
) {
    let t = at("2025-03-03T08:00:00Z");
    let id = within(
        "intent",
        store.record_intent(&intent(queue, member, action, "2025-03-03T08:00:00Z")),
    )
    .await
    .unwrap();
    within("outcome", store.record_outcome(id, &outcome, t))
        .await
        .unwrap();
}

#[tokio::test]
async fn only_writes_that_took_effect_change_ownership() {
    // SPEC §3 (additive): "a desired member that is already live but not owned stays
    // unowned". An add answered "already a member" met a member put there by hand after the
    // cycle's `list`: it must not become rooster's, or rooster would later remove it.
    let f = fixture();
    let store = writer(&f.db).await;
    use WriteAction::{Add, Del};
    write_recorded(&store, "600", "ext:201", Add, Outcome::Applied).await;
    write_recorded(&store, "600", "cu:0612345678", Add, Outcome::AlreadyInState).await;
    let refused = Outcome::Failed("queue 700: add refused: unknown extension".into());
    write_recorded(&store, "700", "ext:202", Add, refused).await;
    let want = BTreeMap::from([(q("600"), members(&["ext:201"]))]);
    assert_eq!(within("owned_all", store.owned_all()).await.unwrap(), want);

    // A drift re-add of a member rooster owns, answered "already a member", keeps it owned.
    write_recorded(&store, "600", "ext:201", Add, Outcome::AlreadyInState).await;
    assert_eq!(within("owned_all", store.owned_all()).await.unwrap(), want);

    // A second outcome for the same intent is a caller bug, refused, and changes nothing.
    let t = at("2025-03-03T08:00:00Z");
    let id = within(
        "intent",
        store.record_intent(&intent("600", "ext:203", Add, "2025-03-03T08:00:00Z")),
    )
    .await
    .unwrap();
    within(
        "outcome",
        store.record_outcome(id, &Outcome::Failed("refused".into()), t),
    )
    .await
    .unwrap();
    let err = within(
        "outcome again",
        store.record_outcome(id, &Outcome::Applied, t),
    )
    .await
    .expect_err("an intent has one outcome");
    assert!(matches!(err, StoreError::IntentNotOpen { .. }), "{err}");
    assert_eq!(within("owned_all", store.owned_all()).await.unwrap(), want);

    // A del answered "not a member" found the member gone: it is no longer owned.
    write_recorded(&store, "600", "ext:201", Del, Outcome::AlreadyInState).await;
    assert!(
        within("owned_all", store.owned_all())
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn intent_without_outcome_survives_a_crash_and_is_settled_on_restart() {
    let f = fixture();
    let add = intent("600", "ext:201", WriteAction::Add, "2025-03-03T07:58:00Z");
    let del = intent("600", "ext:305", WriteAction::Del, "2025-03-03T07:58:00Z");
    let (add_id, del_id) = {
        let store = writer(&f.db).await;
        // ext:305 is owned from an earlier cycle.
        let id = within(
            "intent",
            store.record_intent(&intent(
                "600",
                "ext:305",
                WriteAction::Add,
                "2025-03-02T07:00:00Z",
            )),
        )
        .await
        .unwrap();
        within(
            "outcome",
            store.record_outcome(id, &Outcome::Applied, at("2025-03-02T07:00:01Z")),
        )
        .await
        .unwrap();
        let a = within("intent", store.record_intent(&add)).await.unwrap();
        let d = within("intent", store.record_intent(&del)).await.unwrap();
        // Crash: the store is dropped without outcomes and without close().
        (a, d)
    };

    let store = writer(&f.db).await;
    let open = within("open intents", store.open_intents()).await.unwrap();
    assert_eq!(open, vec![(add_id, add), (del_id, del)]);

    // Start-up found ext:201 live (the add reached TRiNG) and ext:305 still live (the del
    // did not): the add is owned, the del changes nothing.
    let t = at("2025-03-03T08:05:00Z");
    within(
        "settle",
        store.settle_intent(add_id, true, "found live at start-up", t),
    )
    .await
    .unwrap();
    within(
        "settle",
        store.settle_intent(del_id, false, "still live at start-up", t),
    )
    .await
    .unwrap();
    assert_eq!(
        within("owned", store.owned(&q("600"))).await.unwrap(),
        members(&["ext:201", "ext:305"])
    );
    assert!(
        within("open", store.open_intents())
            .await
            .unwrap()
            .is_empty()
    );

    let journal = within("journal", store.journal(at("2025-03-03T00:00:00Z"), 10))
        .await
        .unwrap();
    assert_eq!(journal.len(), 2, "only the two intents of 3 March");
    assert_eq!(journal[0].id, del_id, "newest first");
    let settled = journal[1].settlement.as_ref().expect("settled");
    assert!(settled.applied);
    assert_eq!(settled.note, "found live at start-up");
    assert_eq!(settled.at, t);
    assert_eq!(journal[1].outcome, None);
}

#[tokio::test]
async fn uncertain_outcome_stays_open_until_settled() {
    let f = fixture();
    let store = writer(&f.db).await;
    let del_owned = intent("600", "ext:201", WriteAction::Add, "2025-03-03T07:00:00Z");
    let id = within("intent", store.record_intent(&del_owned))
        .await
        .unwrap();
    within(
        "outcome",
        store.record_outcome(id, &Outcome::Applied, at("2025-03-03T07:00:01Z")),
    )
    .await
    .unwrap();

    let del = intent("600", "ext:201", WriteAction::Del, "2025-03-03T16:00:00Z");
    let id = within("intent", store.record_intent(&del)).await.unwrap();
    let t = at("2025-03-03T16:00:10Z");
    within(
        "outcome",
        store.record_outcome(id, &Outcome::Uncertain("timed out after 10 s".into()), t),
    )
    .await
    .unwrap();
    assert_eq!(
        within("owned", store.owned(&q("600"))).await.unwrap(),
        members(&["ext:201"]),
        "an uncertain del un-owns nothing yet"
    );
    assert_eq!(
        within("open", store.open_intents()).await.unwrap(),
        vec![(id, del)]
    );

    // Settled: the del did reach TRiNG (member not live any more).
    within(
        "settle",
        store.settle_intent(id, true, "not live at start-up", t),
    )
    .await
    .unwrap();
    assert!(
        within("owned", store.owned(&q("600")))
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        within("open", store.open_intents())
            .await
            .unwrap()
            .is_empty()
    );
    let row = &within("journal", store.journal(t, 1)).await.unwrap();
    assert!(row.is_empty(), "the intent was recorded before t");
    let row = &within("journal", store.journal(at("2025-03-03T16:00:00Z"), 1))
        .await
        .unwrap()[0];
    assert_eq!(
        row.outcome,
        Some((Outcome::Uncertain("timed out after 10 s".into()), t))
    );
    assert!(row.settlement.as_ref().unwrap().applied);

    let err = within("settle again", store.settle_intent(id, false, "x", t))
        .await
        .expect_err("settled once");
    assert!(matches!(err, StoreError::IntentNotOpen { .. }), "{err}");
}

#[tokio::test]
async fn forget_owned_drops_only_that_member() {
    let f = fixture();
    let store = writer(&f.db).await;
    for member in ["ext:201", "ext:202"] {
        let id = within(
            "intent",
            store.record_intent(&intent(
                "600",
                member,
                WriteAction::Add,
                "2025-03-03T07:00:00Z",
            )),
        )
        .await
        .unwrap();
        within(
            "outcome",
            store.record_outcome(id, &Outcome::Applied, at("2025-03-03T07:00:01Z")),
        )
        .await
        .unwrap();
    }
    assert!(
        within("forget", store.forget_owned(&q("600"), &m("ext:201")))
            .await
            .unwrap()
    );
    assert!(
        !within("forget", store.forget_owned(&q("600"), &m("ext:201")))
            .await
            .unwrap()
    );
    assert_eq!(
        within("owned", store.owned(&q("600"))).await.unwrap(),
        members(&["ext:202"])
    );
}

#[tokio::test]
async fn second_writer_in_the_same_process_is_refused_with_our_pid() {
    let f = fixture();
    let first = writer(&f.db).await;
    let err = open_err(&f.db, OpenMode::Writer).await;
    assert!(
        matches!(err, StoreError::Locked { pid: Some(p), .. } if p == std::process::id()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        format!(
            "state {} is in use by another rooster (pid {})",
            f.db.display(),
            std::process::id()
        )
    );

    // Released with the store: a crash or a clean stop frees it alike.
    drop(first);
    let again = writer(&f.db).await;
    within("close", again.close()).await;
}

#[tokio::test]
async fn writer_lock_is_seen_by_another_process() {
    if Command::new("flock").arg("--version").output().is_err() {
        eprintln!("skipped: flock(1) is not installed");
        return;
    }
    let f = fixture();
    let lock = lock_path(&f.db);

    // Another process holds the lock (flock(1) uses flock(2), like std's File::try_lock
    // on Linux) and writes its pid, as a rooster would.
    let mut child = Command::new("flock")
        .arg("--nonblock")
        .arg(&lock)
        .args(["sh", "-c", "echo $$ > \"$0\"; echo ready $$; read _"])
        .arg(&lock)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let ready = within(
        "waiting for the lock-holding child",
        tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            BufReader::new(stdout).read_line(&mut line).map(|_| line)
        }),
    )
    .await
    .unwrap()
    .unwrap();
    let holder: u32 = match ready.trim().strip_prefix("ready ") {
        Some(pid) => pid.parse().unwrap(),
        None => panic!("the child could not take the lock: {ready:?}"),
    };

    let err = open_err(&f.db, OpenMode::Writer).await;
    // flock(1) runs `sh` as its child, so the holder is the shell, whose pid it wrote.
    match &err {
        StoreError::Locked { pid: Some(p), .. } => assert_eq!(*p, holder),
        other => panic!("expected Locked, got {other:?}"),
    }
    assert!(
        err.to_string().ends_with(&format!("(pid {holder})")),
        "{err}"
    );

    // The child ends: the OS releases the lock, and a writer gets in.
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin).unwrap();
    drop(stdin);
    let status = within(
        "waiting for the child to exit",
        tokio::task::spawn_blocking(move || child.wait()),
    )
    .await
    .unwrap()
    .unwrap();
    assert!(status.success());
    let store = writer(&f.db).await;

    // And the other way round: while we hold it, another process cannot take it.
    let out = Command::new("flock")
        .arg("--nonblock")
        .arg(&lock)
        .arg("true")
        .output()
        .unwrap();
    assert!(!out.status.success(), "flock took a lock rooster holds");
    within("close", store.close()).await;
}

#[tokio::test]
async fn reader_works_while_a_writer_holds_the_lock_and_never_writes() {
    let f = fixture();
    let w = writer(&f.db).await;
    let id = within(
        "intent",
        w.record_intent(&intent(
            "600",
            "ext:201",
            WriteAction::Add,
            "2025-03-03T07:00:00Z",
        )),
    )
    .await
    .unwrap();
    within(
        "outcome",
        w.record_outcome(id, &Outcome::Applied, at("2025-03-03T07:00:01Z")),
    )
    .await
    .unwrap();

    let r = reader(&f.db).await;
    assert_eq!(
        within("owned", r.owned(&q("600"))).await.unwrap(),
        members(&["ext:201"])
    );
    let err = within("forget", r.forget_owned(&q("600"), &m("ext:201")))
        .await
        .expect_err("a reader must not write");
    assert!(matches!(err, StoreError::OpenedReadOnly { .. }), "{err}");
    let err = within("cycle", r.start_cycle(at("2025-03-03T07:00:00Z")))
        .await
        .expect_err("a reader must not write");
    assert!(matches!(err, StoreError::OpenedReadOnly { .. }), "{err}");

    // The writer's later commits are visible to the open reader (WAL).
    within("forget", w.forget_owned(&q("600"), &m("ext:201")))
        .await
        .unwrap();
    assert!(
        within("owned", r.owned(&q("600")))
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn database_is_in_wal_mode_and_readable_after_the_writer_closed() {
    let f = fixture();
    let w = writer(&f.db).await;
    within("cycle", w.start_cycle(at("2025-03-03T07:00:00Z")))
        .await
        .unwrap();
    within("close", w.close()).await;

    let mut conn = raw(&f.db).await;
    let mode: String = within(
        "pragma",
        sqlx::query_scalar("PRAGMA journal_mode").fetch_one(&mut conn),
    )
    .await
    .unwrap();
    assert_eq!(mode, "wal");
    within("close raw", conn.close()).await.unwrap();

    let r = reader(&f.db).await;
    assert_eq!(within("last cycle", r.last_cycle()).await.unwrap(), None);
}

#[tokio::test]
async fn reader_refuses_missing_or_unmigrated_state() {
    let f = fixture();
    let err = open_err(&f.db, OpenMode::ReadOnly).await;
    assert!(matches!(err, StoreError::FileMissing { .. }), "{err}");
    assert!(
        err.to_string().contains(&f.db.display().to_string()),
        "{err}"
    );
    assert!(!f.db.exists(), "a reader must not create the database");

    // An empty file is a valid but empty SQLite database: migrations are pending.
    std::fs::write(&f.db, b"").unwrap();
    let err = open_err(&f.db, OpenMode::ReadOnly).await;
    assert!(
        matches!(err, StoreError::MigrationPending { version: 1, .. }),
        "{err}"
    );
    assert!(
        err.to_string()
            .starts_with(&format!("state {} needs migration 1", f.db.display()))
    );
}

#[tokio::test]
async fn missing_state_directory_is_named_not_created() {
    let f = fixture();
    let db = f.db.parent().unwrap().join("absent").join("rooster.db");
    for mode in [OpenMode::Writer, OpenMode::ReadOnly] {
        let err = open_err(&db, mode).await;
        assert!(matches!(err, StoreError::DirectoryMissing { .. }), "{err}");
        assert!(
            err.to_string()
                .contains(&db.parent().unwrap().display().to_string())
        );
    }
    assert!(!db.parent().unwrap().exists());
}

#[tokio::test]
async fn state_from_a_newer_rooster_is_refused() {
    let f = fixture();
    within("close", writer(&f.db).await.close()).await;
    let mut conn = raw(&f.db).await;
    within(
        "insert",
        sqlx::query(
            "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
             VALUES (999, 'future', 1, x'00', 0)",
        )
        .execute(&mut conn),
    )
    .await
    .unwrap();
    within("close raw", conn.close()).await.unwrap();

    for mode in [OpenMode::Writer, OpenMode::ReadOnly] {
        let err = open_err(&f.db, mode).await;
        assert!(
            matches!(err, StoreError::SchemaTooNew { version: 999, .. }),
            "{mode:?}: {err}"
        );
    }
}

#[tokio::test]
async fn garbage_file_is_reported_as_not_sqlite() {
    let f = fixture();
    std::fs::write(
        &f.db,
        b"this is not a database, just some text that happens to be here\n",
    )
    .unwrap();
    for mode in [OpenMode::Writer, OpenMode::ReadOnly] {
        let err = open_err(&f.db, mode).await;
        assert!(
            matches!(err, StoreError::NotSqlite { .. }),
            "{mode:?}: {err:?}"
        );
        assert_eq!(
            err.to_string(),
            format!(
                "state {} is not a SQLite database or is damaged",
                f.db.display()
            )
        );
    }
}

#[tokio::test]
async fn damaged_sqlite_file_is_reported_as_not_sqlite() {
    // Right header, garbage after it: SQLite itself must notice, and the error says so.
    let f = fixture();
    let mut bytes = b"SQLite format 3\0".to_vec();
    bytes.extend(std::iter::repeat_n(0xA5u8, 8192));
    std::fs::write(&f.db, bytes).unwrap();
    let err = open_err(&f.db, OpenMode::Writer).await;
    assert!(matches!(err, StoreError::NotSqlite { .. }), "{err:?}");
}

/// Makes a file immutable (`chattr +i`) for as long as it lives: the one write protection
/// root cannot ignore. `None` where chattr is missing or the filesystem has no such flag.
struct Immutable(PathBuf);

impl Immutable {
    fn set(file: &Path) -> Option<Immutable> {
        let ok = Command::new("chattr")
            .arg("+i")
            .arg(file)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        ok.then(|| Immutable(file.to_owned()))
    }
}

impl Drop for Immutable {
    fn drop(&mut self) {
        // Without this the temporary directory could not be removed.
        let _ = Command::new("chattr").arg("-i").arg(&self.0).status();
    }
}

#[tokio::test]
async fn read_only_file_is_refused_for_the_writer() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    within("close", writer(&f.db).await.close()).await;
    std::fs::set_permissions(&f.db, std::fs::Permissions::from_mode(0o444)).unwrap();
    let mut _guard = None;
    if ignores_permissions(&f.db) {
        // Running as root: mode 0444 does not stop root, but the immutable flag does.
        _guard = Immutable::set(&f.db);
        if _guard.is_none() || ignores_permissions(&f.db) {
            eprintln!("skipped: running as root and chattr +i is unavailable here");
            return;
        }
    }
    let err = open_err(&f.db, OpenMode::Writer).await;
    assert!(matches!(err, StoreError::ReadOnly { .. }), "{err:?}");
    assert_eq!(
        err.to_string(),
        format!(
            "state {} is read-only, but rooster needs to write it",
            f.db.display()
        )
    );
    // Reading it is fine.
    let r = reader(&f.db).await;
    assert_eq!(
        within("owned", r.owned_all()).await.unwrap(),
        BTreeMap::new()
    );
    within("close", r.close()).await;
}

#[tokio::test]
async fn unreadable_file_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let f = fixture();
    within("close", writer(&f.db).await.close()).await;
    std::fs::set_permissions(&f.db, std::fs::Permissions::from_mode(0o000)).unwrap();
    if std::fs::File::open(&f.db).is_ok() {
        eprintln!("skipped: running as root, file modes do not restrict reads");
        return;
    }
    for mode in [OpenMode::Writer, OpenMode::ReadOnly] {
        let err = open_err(&f.db, mode).await;
        assert!(matches!(err, StoreError::Unreadable { .. }), "{err:?}");
        assert!(
            err.to_string()
                .starts_with(&format!("state {} could not be read", f.db.display()))
        );
    }
}

#[tokio::test]
async fn unparsable_row_is_corrupt_not_a_panic() {
    let f = fixture();
    let store = writer(&f.db).await;
    let mut conn = raw(&f.db).await;
    within(
        "insert",
        sqlx::query("INSERT INTO owned (queue, member, since_ms) VALUES ('600', 'ext:20x', 0)")
            .execute(&mut conn),
    )
    .await
    .unwrap();
    within("close raw", conn.close()).await.unwrap();

    for err in [
        within("owned", store.owned(&q("600"))).await.unwrap_err(),
        within("owned_all", store.owned_all()).await.unwrap_err(),
    ] {
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("owned 600/ext:20x"), "{err}");
    }
}

#[tokio::test]
async fn calendar_reads_keep_last_events_through_failures() {
    let f = fixture();
    let store = writer(&f.db).await;
    let own = CalendarRef::default_of(Mailbox::parse("jan@acme.nl").unwrap());
    let rota = CalendarRef {
        mailbox: Mailbox::parse("piket@acme.nl").unwrap(),
        name: Some("Rooster".to_owned()),
    };
    let jan_events = vec![event("AAA", "Support"), all_day("BBB")];
    let rota_events = vec![event("CCC", "piket Jan")];

    let t1 = at("2025-03-03T07:00:00Z");
    within(
        "read",
        store.record_calendar_read(&own, t1, Ok(&jan_events)),
    )
    .await
    .unwrap();
    within(
        "read",
        store.record_calendar_read(&rota, t1, Ok(&rota_events)),
    )
    .await
    .unwrap();

    // Graph is down for the rota: its events stay, the error is recorded.
    let t2 = at("2025-03-03T07:02:00Z");
    within("read", store.record_calendar_read(&own, t2, Ok(&[])))
        .await
        .unwrap();
    within(
        "read",
        store.record_calendar_read(&rota, t2, Err("calendarView failed: 503")),
    )
    .await
    .unwrap();

    let last = within("last events", store.last_events()).await.unwrap();
    assert_eq!(
        last,
        BTreeMap::from([(own.clone(), vec![]), (rota.clone(), rota_events.clone())])
    );
    let states = within("states", store.calendar_states()).await.unwrap();
    assert_eq!(states.len(), 2);
    assert_eq!(states[0].calendar, own);
    assert_eq!(states[0].last_good_read, Some(t2));
    assert_eq!(states[0].last_error, None);
    assert_eq!(states[1].calendar, rota);
    assert_eq!(states[1].last_good_read, Some(t1));
    assert_eq!(
        states[1].last_error.as_deref(),
        Some("calendarView failed: 503")
    );
    assert_eq!(states[1].last_error_at, Some(t2));

    // A calendar that never read well has an error and no events.
    let room = CalendarRef::default_of(Mailbox::parse("zaal@acme.nl").unwrap());
    within(
        "read",
        store.record_calendar_read(&room, t2, Err("403 Access to OData is disabled")),
    )
    .await
    .unwrap();
    assert!(
        !within("last events", store.last_events())
            .await
            .unwrap()
            .contains_key(&room)
    );

    // Recovery clears the error and stores the new events, round-tripped exactly.
    let t3 = at("2025-03-03T07:04:00Z");
    within(
        "read",
        store.record_calendar_read(&rota, t3, Ok(&jan_events)),
    )
    .await
    .unwrap();
    let states = within("states", store.calendar_states()).await.unwrap();
    let rota_state = states.iter().find(|s| s.calendar == rota).unwrap();
    assert_eq!(rota_state.last_good_read, Some(t3));
    assert_eq!(rota_state.last_error, None);
    assert_eq!(rota_state.last_error_at, None);
    assert_eq!(
        within("last events", store.last_events()).await.unwrap()[&rota],
        jan_events
    );
}

#[tokio::test]
async fn cycles_record_and_report_the_last_finished_one() {
    let f = fixture();
    let store = writer(&f.db).await;
    assert_eq!(within("last", store.last_cycle()).await.unwrap(), None);
    assert_eq!(within("good", store.last_good_cycle()).await.unwrap(), None);

    let good = within("start", store.start_cycle(at("2025-03-03T07:00:00Z")))
        .await
        .unwrap();
    within(
        "finish",
        store.finish_cycle(
            good,
            &CycleRecord {
                ended: at("2025-03-03T07:00:02.250Z"),
                adds: 2,
                dels: 1,
                refused: 0,
                errors: vec![],
                dry_run: false,
            },
        ),
    )
    .await
    .unwrap();
    let bad = within("start", store.start_cycle(at("2025-03-03T07:02:00Z")))
        .await
        .unwrap();
    let errors = vec!["calendar piket@acme.nl: calendarView failed: 503".to_owned()];
    within(
        "finish",
        store.finish_cycle(
            bad,
            &CycleRecord {
                ended: at("2025-03-03T07:02:01Z"),
                adds: 0,
                dels: 0,
                refused: 3,
                errors: errors.clone(),
                dry_run: true,
            },
        ),
    )
    .await
    .unwrap();
    // A cycle still running (or cut short by a crash) is not "the last cycle".
    within("start", store.start_cycle(at("2025-03-03T07:04:00Z")))
        .await
        .unwrap();

    let last = within("last", store.last_cycle()).await.unwrap().unwrap();
    assert_eq!(last.id, bad);
    assert_eq!(last.started, at("2025-03-03T07:02:00Z"));
    assert_eq!(last.ended, at("2025-03-03T07:02:01Z"));
    assert_eq!((last.adds, last.dels, last.refused), (0, 0, 3));
    assert_eq!(last.errors, errors);
    assert!(last.dry_run);
    assert_eq!(
        within("good", store.last_good_cycle()).await.unwrap(),
        Some(at("2025-03-03T07:00:02.250Z"))
    );

    let err = within(
        "finish unknown",
        store.finish_cycle(
            rooster::store::CycleId(12345),
            &CycleRecord {
                ended: at("2025-03-03T07:02:01Z"),
                adds: 0,
                dels: 0,
                refused: 0,
                errors: vec![],
                dry_run: false,
            },
        ),
    )
    .await
    .expect_err("no such cycle");
    assert!(matches!(err, StoreError::CycleUnknown { .. }), "{err}");
}

#[tokio::test]
async fn refusals_are_replaced_per_queue() {
    let f = fixture();
    let store = writer(&f.db).await;
    let keep_last =
        vec!["queue 600: keep_last: ext:201 stays, the queue would be empty".to_owned()];
    let cap = vec!["queue 700: removal cap 20 reached, 3 dels postponed".to_owned()];
    within("set", store.set_refusals(&q("600"), &keep_last))
        .await
        .unwrap();
    within("set", store.set_refusals(&q("700"), &["old".to_owned()]))
        .await
        .unwrap();
    within("set", store.set_refusals(&q("700"), &cap))
        .await
        .unwrap();
    assert_eq!(
        within("get", store.refusals()).await.unwrap(),
        BTreeMap::from([(q("600"), keep_last), (q("700"), cap.clone())])
    );
    within("clear", store.set_refusals(&q("600"), &[]))
        .await
        .unwrap();
    assert_eq!(
        within("get", store.refusals()).await.unwrap(),
        BTreeMap::from([(q("700"), cap)])
    );
}

#[tokio::test]
async fn pruning_drops_old_decided_rows_but_keeps_open_intents() {
    let f = fixture();
    let store = writer(&f.db).await;

    let old_done = within(
        "intent",
        store.record_intent(&intent(
            "600",
            "ext:201",
            WriteAction::Add,
            "2024-11-01T08:00:00Z",
        )),
    )
    .await
    .unwrap();
    within(
        "outcome",
        store.record_outcome(old_done, &Outcome::Applied, at("2024-11-01T08:00:01Z")),
    )
    .await
    .unwrap();
    let old_open = within(
        "intent",
        store.record_intent(&intent(
            "600",
            "ext:202",
            WriteAction::Add,
            "2024-11-01T08:00:00Z",
        )),
    )
    .await
    .unwrap();
    let old_uncertain = within(
        "intent",
        store.record_intent(&intent(
            "600",
            "ext:203",
            WriteAction::Add,
            "2024-11-01T08:00:00Z",
        )),
    )
    .await
    .unwrap();
    within(
        "outcome",
        store.record_outcome(
            old_uncertain,
            &Outcome::Uncertain("timeout".into()),
            at("2024-11-01T08:00:11Z"),
        ),
    )
    .await
    .unwrap();
    let recent = within(
        "intent",
        store.record_intent(&intent(
            "600",
            "ext:204",
            WriteAction::Add,
            "2025-03-01T08:00:00Z",
        )),
    )
    .await
    .unwrap();
    within(
        "outcome",
        store.record_outcome(
            recent,
            &Outcome::Failed("refused".into()),
            at("2025-03-01T08:00:01Z"),
        ),
    )
    .await
    .unwrap();
    let old_cycle = within("cycle", store.start_cycle(at("2024-11-01T08:00:00Z")))
        .await
        .unwrap();
    let new_cycle = within("cycle", store.start_cycle(at("2025-03-01T08:00:00Z")))
        .await
        .unwrap();

    // now = 2025-03-03, minus 90 days.
    let cutoff = at("2025-03-03T08:00:00Z") - chrono::Duration::days(90);
    let pruned = within("prune", store.prune_journal(cutoff)).await.unwrap();
    assert_eq!((pruned.journal_rows, pruned.cycles), (1, 1));

    let ids: Vec<_> = within("journal", store.journal(at("2000-01-01T00:00:00Z"), 100))
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(ids, vec![recent, old_uncertain, old_open]);
    // Pruning the journal never touches ownership.
    assert_eq!(
        within("owned", store.owned(&q("600"))).await.unwrap(),
        members(&["ext:201"])
    );
    // The newer cycle is still there to be finished.
    within(
        "finish",
        store.finish_cycle(
            new_cycle,
            &CycleRecord {
                ended: at("2025-03-01T08:00:01Z"),
                adds: 0,
                dels: 0,
                refused: 0,
                errors: vec![],
                dry_run: false,
            },
        ),
    )
    .await
    .unwrap();
    let err = within(
        "finish pruned",
        store.finish_cycle(
            old_cycle,
            &CycleRecord {
                ended: at("2024-11-01T08:00:01Z"),
                adds: 0,
                dels: 0,
                refused: 0,
                errors: vec![],
                dry_run: false,
            },
        ),
    )
    .await
    .expect_err("pruned");
    assert!(matches!(err, StoreError::CycleUnknown { .. }), "{err}");
}

#[tokio::test]
async fn journal_limit_and_since_are_honoured() {
    let f = fixture();
    let store = writer(&f.db).await;
    let mut ids = vec![];
    for (i, member) in ["ext:201", "ext:202", "ext:203"].into_iter().enumerate() {
        let when = format!("2025-03-03T0{}:00:00Z", 7 + i);
        ids.push(
            within(
                "intent",
                store.record_intent(&intent("600", member, WriteAction::Add, &when)),
            )
            .await
            .unwrap(),
        );
    }
    let rows = within("journal", store.journal(at("2025-03-03T08:00:00Z"), 10))
        .await
        .unwrap();
    assert_eq!(
        rows.iter().map(|r| r.id).collect::<Vec<_>>(),
        vec![ids[2], ids[1]]
    );
    assert_eq!(
        rows[1].intent,
        intent("600", "ext:202", WriteAction::Add, "2025-03-03T08:00:00Z")
    );
    let rows = within("journal", store.journal(at("2025-03-03T00:00:00Z"), 1))
        .await
        .unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].id, ids[2]);
}

#[tokio::test]
async fn batched_calendar_reads_rewrite_events_only_when_changed() {
    let f = fixture();
    let store = writer(&f.db).await;
    let a = CalendarRef::default_of(Mailbox::parse("a@acme.nl").unwrap());
    let b = CalendarRef::default_of(Mailbox::parse("b@acme.nl").unwrap());
    let first = vec![event("e1", "Support")];
    within(
        "first reads",
        store.record_calendar_reads(
            at("2026-03-30T07:00:00Z"),
            &[
                (a.clone(), CalendarRead::Changed(&first)),
                (b.clone(), CalendarRead::Changed(&first)),
            ],
        ),
    )
    .await
    .unwrap();
    // Unchanged moves the good-read time and keeps the events; Failed keeps them too.
    within(
        "second reads",
        store.record_calendar_reads(
            at("2026-03-30T07:02:00Z"),
            &[
                (a.clone(), CalendarRead::Unchanged),
                (
                    b.clone(),
                    CalendarRead::Failed("calendar b@acme.nl: throttled"),
                ),
            ],
        ),
    )
    .await
    .unwrap();
    let last = within("last events", store.last_events()).await.unwrap();
    assert_eq!(last[&a], first);
    assert_eq!(last[&b], first);
    // One calendar's, as the daemon asks for a calendar whose read just failed.
    let one = within("one calendar's events", store.calendar_events(&b)).await;
    assert_eq!(one.unwrap(), Some(first.clone()));
    let never = CalendarRef::default_of(Mailbox::parse("never@acme.nl").unwrap());
    let none = within("a calendar never read", store.calendar_events(&never)).await;
    assert_eq!(none.unwrap(), None);
    let states = within("states", store.calendar_states()).await.unwrap();
    let state = |c: &CalendarRef| states.iter().find(|s| &s.calendar == c).unwrap().clone();
    assert_eq!(state(&a).last_good_read, Some(at("2026-03-30T07:02:00Z")));
    assert_eq!(state(&a).last_error, None);
    assert_eq!(state(&b).last_good_read, Some(at("2026-03-30T07:00:00Z")));
    assert_eq!(
        state(&b).last_error.as_deref(),
        Some("calendar b@acme.nl: throttled")
    );
    // Changed replaces the events and clears the error.
    let second = vec![event("e2", "Sales")];
    within(
        "third reads",
        store.record_calendar_reads(
            at("2026-03-30T07:04:00Z"),
            &[(b.clone(), CalendarRead::Changed(&second))],
        ),
    )
    .await
    .unwrap();
    let last = within("last events", store.last_events()).await.unwrap();
    assert_eq!(last[&b], second);
    let states = within("states", store.calendar_states()).await.unwrap();
    assert!(states.iter().all(|s| s.last_error.is_none()));
}

/// Every file in `migrations/` is applied to a new database: a file left out of the list the
/// store embeds would otherwise never run. The expected versions come from the directory
/// listing, read at test time.
#[tokio::test]
async fn every_migration_file_is_applied() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    let mut files: Vec<i64> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.ends_with(".sql"))
        .map(|name| {
            let digits: String = name.chars().take_while(char::is_ascii_digit).collect();
            digits
                .parse()
                .unwrap_or_else(|_| panic!("migration {name:?} does not start with a version"))
        })
        .collect();
    files.sort_unstable();
    assert!(
        !files.is_empty(),
        "no migrations found in {}",
        dir.display()
    );

    let f = fixture();
    within("close", writer(&f.db).await.close()).await;
    let mut conn = raw(&f.db).await;
    let applied: Vec<i64> = within(
        "read applied migrations",
        sqlx::query_scalar(
            "SELECT version FROM _sqlx_migrations WHERE success = 1 ORDER BY version",
        )
        .fetch_all(&mut conn),
    )
    .await
    .unwrap();
    within("close raw", conn.close()).await.unwrap();
    assert_eq!(
        applied,
        files,
        "applied migrations vs files in {}",
        dir.display()
    );
}

/// A state as the previous release left it: migration 2 not yet applied.
async fn state_before_migration_2(db: &Path) {
    let w = writer(db).await;
    within("closing the writer", w.close()).await;
    let mut conn = raw(db).await;
    for sql in [
        "DROP TABLE held_writes",
        "DELETE FROM _sqlx_migrations WHERE version = 2",
    ] {
        within("rolling back", sqlx::query(sql).execute(&mut conn))
            .await
            .expect(sql);
    }
    within("close raw", conn.close()).await.unwrap();
}

#[tokio::test]
async fn a_migration_is_preceded_by_a_copy_of_the_state_and_two_copies_are_kept() {
    let f = fixture();
    state_before_migration_2(&f.db).await;
    let dir = f.db.parent().expect("dir").to_owned();
    // Copies from two earlier upgrades.
    for old in ["rooster.db.pre-0", "rooster.db.pre-1"] {
        std::fs::write(dir.join(old), b"older copy").unwrap();
    }
    let w = writer(&f.db).await;
    within("closing the writer", w.close()).await;
    let mut copies: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let n = e.ok()?.file_name().to_string_lossy().into_owned();
            n.contains(".pre-").then_some(n)
        })
        .collect();
    copies.sort();
    assert_eq!(copies, ["rooster.db.pre-1", "rooster.db.pre-2"]);
    // The copy is the state before migration 2: a database without held_writes.
    let mut conn = raw(&dir.join("rooster.db.pre-2")).await;
    let tables: i64 = within(
        "reading the copy",
        sqlx::query_scalar(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'held_writes'",
        )
        .fetch_one(&mut conn),
    )
    .await
    .unwrap();
    assert_eq!(tables, 0);
    within("close raw", conn.close()).await.unwrap();
    // A state already current is not copied again.
    let w = writer(&f.db).await;
    within("closing the writer", w.close()).await;
    assert!(!dir.join("rooster.db.pre-3").exists());
}

#[tokio::test]
async fn a_pending_migration_while_a_daemon_holds_the_lock_says_to_restart_the_service() {
    let f = fixture();
    state_before_migration_2(&f.db).await;
    // The old daemon still runs: it holds the writer lock with its pid in the file.
    let mut lock = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(rooster::store::lock_path(&f.db))
        .unwrap();
    lock.try_lock().expect("lock free");
    write!(lock, "4242").unwrap();
    let err = open_err(&f.db, OpenMode::ReadOnly).await;
    assert_eq!(
        err.to_string(),
        format!(
            "state {} needs migration 2 (held writes), but the running daemon (pid 4242) still uses the older rooster: restart the service (`systemctl restart rooster`) to upgrade it",
            f.db.display()
        )
    );
    drop(lock);
    // No daemon: the usual advice.
    let err = open_err(&f.db, OpenMode::ReadOnly).await;
    assert!(
        matches!(err, StoreError::MigrationPending { version: 2, .. }),
        "{err}"
    );
}

#[tokio::test]
async fn pruning_drops_refusals_that_stopped_before_the_cutoff_and_keeps_standing_ones() {
    let f = fixture();
    let store = writer(&f.db).await;
    let note = |member: &str| RefusalNote {
        kind: "keep_last".into(),
        member: Some(member.parse().unwrap()),
        person: None,
        reason: "it is the last member".into(),
    };
    let q600 = QueueNo::parse("600").unwrap();
    let q610 = QueueNo::parse("610").unwrap();
    let (long_ago, recently) = (at("2024-11-01T08:00:00Z"), at("2025-03-01T08:00:00Z"));
    // 600: refused long ago, then no longer. 610: refused long ago and still now.
    within(
        "log",
        store.log_refusals(&q600, &[note("ext:201")], long_ago),
    )
    .await
    .unwrap();
    within("log", store.log_refusals(&q600, &[], long_ago))
        .await
        .unwrap();
    within(
        "log",
        store.log_refusals(&q610, &[note("ext:202")], long_ago),
    )
    .await
    .unwrap();
    within(
        "log",
        store.log_refusals(&q610, &[note("ext:202")], recently),
    )
    .await
    .unwrap();

    let cutoff = at("2025-03-03T08:00:00Z") - chrono::Duration::days(90);
    let pruned = within("prune", store.prune_journal(cutoff)).await.unwrap();
    assert_eq!(pruned.refusals, 1);
    let left = within(
        "history",
        store.refusal_history(at("2000-01-01T00:00:00Z"), at("2030-01-01T00:00:00Z")),
    )
    .await
    .unwrap();
    let queues: Vec<&str> = left.iter().map(|r| r.queue.as_str()).collect();
    assert_eq!(queues, ["610"], "{left:?}");
    assert!(left[0].standing);
}
