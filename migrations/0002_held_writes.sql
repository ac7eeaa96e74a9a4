-- Writes TRiNG refused for a reason retrying cannot fix (SPEC §3 rule 9: unknown custom
-- destination, invalid extension, read-only key, permission denied). Such a write is not sent
-- again for the same queue, member and action until the config or the calendars feeding the
-- queue change (`basis` differs) or an hour has passed since `since_ms`. Kept in the state,
-- not in memory, so `once` run from a timer does not send it every run either.
CREATE TABLE held_writes (
    -- queue number, e.g. '700'
    queue TEXT NOT NULL,
    -- member in written form, e.g. 'cu:0612345678'
    member TEXT NOT NULL,
    -- 'add' or 'del'
    action TEXT NOT NULL CHECK (action IN ('add', 'del')),
    -- display name of the configured person the member belongs to, if any
    person TEXT,
    -- TRiNG's answer, sanitised (never a URL, never the key)
    answer TEXT NOT NULL,
    -- fingerprint of the config and of the calendars feeding the queue when TRiNG refused
    basis INTEGER NOT NULL,
    -- when TRiNG refused it (unix ms)
    since_ms INTEGER NOT NULL,
    PRIMARY KEY (queue, member, action)
) WITHOUT ROWID;
