-- rooster state, first schema (SPEC §4 "State", §3 rules 7–8).
--
-- Conventions for every table:
-- * Instants are INTEGER unix milliseconds UTC (columns ending in `_ms`); sub-millisecond
--   precision is dropped. Read them by hand with `datetime(at_ms / 1000, 'unixepoch')`.
-- * Queues are their number as text (`600`); members their written form (`ext:201`,
--   `cu:0612345678`), parsed back through `Member::from_str` on every read.
-- * A calendar is (mailbox, calendar_name); calendar_name '' stands for the default calendar,
--   so the pair can be a primary key (NULLs would not be unique).
-- Numbered migrations are never edited once landed: schema changes go in a new file.

-- The members rooster itself added and has not removed since (SPEC §1 "owned", §3).
CREATE TABLE owned (
    -- queue number, e.g. '600'
    queue TEXT NOT NULL,
    -- member in written form, e.g. 'ext:201' or 'cu:0612345678'
    member TEXT NOT NULL,
    -- when the member became owned (unix ms)
    since_ms INTEGER NOT NULL,
    -- the journal row whose outcome or settlement made it owned; informational only, no
    -- foreign key so that pruning the journal never touches ownership
    intent_id INTEGER,
    PRIMARY KEY (queue, member)
) WITHOUT ROWID;

-- The intent/outcome journal of every TRiNG write (SPEC §3 rule 7), kept 90 days.
-- A row is written as an intent before the write; its outcome columns are filled after it,
-- in the same transaction as the ownership change the outcome implies.
CREATE TABLE journal (
    -- intent id, never reused (AUTOINCREMENT) so a pruned id cannot come back
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- when the intent was recorded (unix ms)
    at_ms INTEGER NOT NULL,
    -- queue number the write is for
    queue TEXT NOT NULL,
    -- member in written form
    member TEXT NOT NULL,
    -- 'add' or 'del'
    action TEXT NOT NULL CHECK (action IN ('add', 'del')),
    -- display name of the configured person the member belongs to, if any
    person TEXT,
    -- why the write was planned (rule, event subject, calendar, from–to), already sanitised
    reason TEXT NOT NULL,
    -- NULL while the write has no outcome yet; else 'applied', 'already_in_state', 'failed'
    -- or 'uncertain' (no reply: the write may or may not have reached TRiNG)
    outcome TEXT CHECK (outcome IN ('applied', 'already_in_state', 'failed', 'uncertain')),
    -- the error text for 'failed' and 'uncertain', NULL otherwise
    outcome_detail TEXT,
    -- when the outcome was recorded (unix ms)
    outcome_at_ms INTEGER,
    -- NULL until settled at start-up against live (SPEC §3 rule 7): 'applied' when the write
    -- was found to have reached TRiNG, 'not_applied' otherwise
    settled TEXT CHECK (settled IN ('applied', 'not_applied')),
    -- how the settlement was decided, for the log and `status`
    settled_note TEXT,
    -- when the intent was settled (unix ms)
    settled_at_ms INTEGER
);

-- Pruning by age and reading the journal from an instant on.
CREATE INDEX journal_at ON journal (at_ms);

-- Per-calendar sync state and the last events read (SPEC §4, §5: boundaries keep working
-- while Graph is unreachable).
CREATE TABLE calendar_state (
    -- mailbox address, lower-cased
    mailbox TEXT NOT NULL,
    -- named calendar within the mailbox; '' for the mailbox's default calendar
    calendar_name TEXT NOT NULL,
    -- when the calendar was last read completely (unix ms); NULL if never
    last_good_read_ms INTEGER,
    -- the events of that read: JSON array of model::Event; NULL if never read completely
    last_events TEXT,
    -- the error of the last failed read, NULL once a read succeeds again
    last_error TEXT,
    -- when that read failed (unix ms)
    last_error_at_ms INTEGER,
    -- Graph delta link, reserved: SPEC §5 rules out calendarView/delta for now
    delta_link TEXT,
    PRIMARY KEY (mailbox, calendar_name)
) WITHOUT ROWID;

-- One row per reconcile cycle (SPEC §4 `status`, /healthz).
CREATE TABLE cycles (
    -- cycle id
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- when the cycle started (unix ms)
    started_ms INTEGER NOT NULL,
    -- when it ended (unix ms); NULL while running or if the process died during it
    ended_ms INTEGER,
    -- TRiNG adds applied
    adds INTEGER NOT NULL DEFAULT 0,
    -- TRiNG dels applied
    dels INTEGER NOT NULL DEFAULT 0,
    -- actions refused by the safety rules (SPEC §3)
    refused INTEGER NOT NULL DEFAULT 0,
    -- JSON array of error sentences (calendars, queues, writes that failed); '[]' when none
    errors TEXT NOT NULL DEFAULT '[]',
    -- 1 when the cycle was a dry run (wrote nothing to TRiNG), else 0
    dry_run INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX cycles_started ON cycles (started_ms);

-- The refusals of the last cycle per queue, shown by `status` (SPEC §3 rules 3–4).
CREATE TABLE refusals (
    -- queue number
    queue TEXT PRIMARY KEY NOT NULL,
    -- JSON array of refusal sentences, replaced each cycle (the cycle's time is in `cycles`)
    refusals TEXT NOT NULL
) WITHOUT ROWID;
