-- What `rooster history` needs from the journal (SPEC §4 "History and coverage"): the cycle
-- each write belongs to, and the refusals and held-back writes of every cycle, kept 90 days.
-- Conventions as in 0001_initial.sql (instants in unix ms, members in written form).

-- The cycle that recorded the intent; NULL for rows written before this migration.
ALTER TABLE journal ADD COLUMN cycle_id INTEGER;

-- Every intent is recorded inside a cycle, after that cycle's row was inserted, and only one
-- process writes the state (SPEC §3 rule 8): the newest cycle row is the one running. Filled
-- here so the executor, which does not know its cycle's id, need not carry it.
CREATE TRIGGER journal_cycle AFTER INSERT ON journal
FOR EACH ROW WHEN NEW.cycle_id IS NULL
BEGIN
    UPDATE journal SET cycle_id = (SELECT max(id) FROM cycles) WHERE id = NEW.id;
END;

-- Refusals (SPEC §3 rules 1-4) and writes held back (rule 9), as intervals: a refusal that
-- stands cycle after cycle is one row whose `last_*` columns move on, not one row per cycle,
-- so a day's history stays readable and 90 days stay small.
CREATE TABLE refusal_log (
    -- row id, never reused
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    -- queue number
    queue TEXT NOT NULL,
    -- member in written form; '' when the refusal concerns the whole queue (unreadable)
    member TEXT NOT NULL,
    -- 'incomplete_read', 'keep_last', 'removal_cap', 'unreadable_queue' or 'held'
    kind TEXT NOT NULL,
    -- display name of the configured person the member belongs to, if any
    person TEXT,
    -- the refusal's sentence (for 'held': TRiNG's answer), already sanitised
    reason TEXT NOT NULL,
    -- the cycle that first refused it, and when (unix ms)
    first_cycle_id INTEGER,
    first_ms INTEGER NOT NULL,
    -- the latest cycle that still refused it, and when (unix ms)
    last_cycle_id INTEGER,
    last_ms INTEGER NOT NULL,
    -- 1 while the refusal stands (the queue's latest cycle refused it), else 0
    open INTEGER NOT NULL DEFAULT 1 CHECK (open IN (0, 1))
);

-- Reading the history of a period and pruning by age.
CREATE INDEX refusal_log_last ON refusal_log (last_ms);
-- Finding a queue's standing refusals each cycle.
CREATE INDEX refusal_log_open ON refusal_log (queue) WHERE open = 1;
