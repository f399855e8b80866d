-- Console accounts and sessions; the device API's check-in state, outbox
-- records and log bundles; enrollment-code hints and revocation.
-- Same conventions as 001: BIGINT UTC microseconds, JSON as TEXT, flags as
-- INTEGER 0/1 (the one boolean spelling both engines scan alike), and
-- {{blob}} for binary data (see dialect.go).

CREATE TABLE accounts (
    id             TEXT PRIMARY KEY,
    username       TEXT NOT NULL UNIQUE,
    role           TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),
    password_hash  TEXT NOT NULL,
    disabled       INTEGER NOT NULL DEFAULT 0,
    created_at     BIGINT NOT NULL,
    last_login     BIGINT
);

-- Only a hash of the session token is kept, like enrollment codes.
CREATE TABLE sessions (
    token_hash  TEXT PRIMARY KEY,
    account_id  TEXT NOT NULL REFERENCES accounts (id) ON DELETE CASCADE,
    csrf_token  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    last_seen   BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL
);
CREATE INDEX sessions_account ON sessions (account_id);
CREATE INDEX sessions_expires ON sessions (expires_at);

-- hint is the code's last characters, shown so people can tell codes
-- apart; revoked_at ends a code before its expiry.
ALTER TABLE enrollment_codes ADD COLUMN hint TEXT NOT NULL DEFAULT '';
ALTER TABLE enrollment_codes ADD COLUMN revoked_at BIGINT;
CREATE INDEX enrollment_codes_created ON enrollment_codes (created_at);

-- What the last check-in said beyond 001's columns. roomd_version is
-- versions->roomd kept in its own column so the console's version filter
-- is an indexed equality on both engines.
ALTER TABLE devices ADD COLUMN inventory TEXT NOT NULL DEFAULT '{}';
ALTER TABLE devices ADD COLUMN problems TEXT NOT NULL DEFAULT '[]';
ALTER TABLE devices ADD COLUMN roomd_version TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN profile_applied TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN profile_last_version TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN profile_status TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN profile_reason TEXT NOT NULL DEFAULT '';
CREATE INDEX devices_last_checkin ON devices (last_checkin);
CREATE INDEX devices_health ON devices (health);
CREATE INDEX devices_roomd_version ON devices (roomd_version);

-- The devices' outbox records: events and command results, each stored
-- once per (device, key) however often it is sent.
CREATE TABLE device_events (
    id           {{serial}},
    device_id    TEXT NOT NULL REFERENCES devices (id),
    record_key   TEXT NOT NULL,
    at           BIGINT NOT NULL,
    received_at  BIGINT NOT NULL,
    type         TEXT NOT NULL,
    message      TEXT NOT NULL,
    details      TEXT,
    command_id   TEXT NOT NULL DEFAULT ''
);
CREATE UNIQUE INDEX device_events_key ON device_events (device_id, record_key);
CREATE INDEX device_events_device ON device_events (device_id, id);
CREATE INDEX device_events_received ON device_events (received_at);

CREATE INDEX commands_device_created ON commands (device_id, created_at);

-- One log bundle per collect-logs command; a new upload replaces it.
CREATE TABLE log_bundles (
    command_id   TEXT PRIMARY KEY REFERENCES commands (id),
    device_id    TEXT NOT NULL REFERENCES devices (id),
    size         BIGINT NOT NULL,
    sha256       TEXT NOT NULL,
    uploaded_at  BIGINT NOT NULL,
    data         {{blob}} NOT NULL
);
CREATE INDEX log_bundles_device ON log_bundles (device_id);
