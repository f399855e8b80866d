-- The fleet model. Portable SQL for SQLite and PostgreSQL: times are BIGINT
-- UTC microseconds, JSON is TEXT, ids are TEXT made by the store, and
-- {{serial}} is the one dialect-specific type (see dialect.go).
-- Statements end with a semicolon at the end of a line.

CREATE TABLE organisations (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    created_at  BIGINT NOT NULL
);

CREATE TABLE sites (
    id          TEXT PRIMARY KEY,
    org_id      TEXT NOT NULL REFERENCES organisations (id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (org_id, name)
);

CREATE TABLE rooms (
    id          TEXT PRIMARY KEY,
    site_id     TEXT NOT NULL REFERENCES sites (id),
    name        TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    UNIQUE (site_id, name)
);

CREATE TABLE devices (
    id              TEXT PRIMARY KEY,
    room_id         TEXT NOT NULL REFERENCES rooms (id),
    hardware        TEXT NOT NULL,
    cert_serial     TEXT NOT NULL,
    cert_not_after  BIGINT NOT NULL,
    revoked_at      BIGINT,
    last_checkin    BIGINT,
    health          TEXT NOT NULL DEFAULT '',
    versions        TEXT NOT NULL DEFAULT '{}',
    meeting_state   TEXT NOT NULL DEFAULT '',
    created_at      BIGINT NOT NULL
);
CREATE INDEX devices_room ON devices (room_id);
CREATE UNIQUE INDEX devices_cert_serial ON devices (cert_serial);

-- Only the SHA-256 of a code is kept. A code covers a site or a room,
-- never both.
CREATE TABLE enrollment_codes (
    code_hash   TEXT PRIMARY KEY,
    site_id     TEXT REFERENCES sites (id),
    room_id     TEXT REFERENCES rooms (id),
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT NOT NULL,
    used_at     BIGINT,
    device_id   TEXT REFERENCES devices (id),
    CHECK ((site_id IS NULL) <> (room_id IS NULL))
);

-- Every version of every profile; the current one is the highest version.
CREATE TABLE profiles (
    scope       TEXT NOT NULL CHECK (scope IN ('org', 'site', 'room', 'device')),
    scope_id    TEXT NOT NULL,
    version     BIGINT NOT NULL,
    body        TEXT NOT NULL,
    created_by  TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (scope, scope_id, version)
);

CREATE TABLE audit_log (
    id           {{serial}},
    at           BIGINT NOT NULL,
    actor        TEXT NOT NULL,
    action       TEXT NOT NULL,
    subject      TEXT NOT NULL,
    before_json  TEXT,
    after_json   TEXT
);
CREATE INDEX audit_log_subject ON audit_log (subject, id);

CREATE TABLE commands (
    id               TEXT PRIMARY KEY,
    device_id        TEXT NOT NULL REFERENCES devices (id),
    kind             TEXT NOT NULL,
    args             TEXT NOT NULL,
    idempotency_key  TEXT NOT NULL,
    status           TEXT NOT NULL CHECK (status IN ('queued', 'sent', 'succeeded', 'failed', 'rejected')),
    result           TEXT NOT NULL DEFAULT '',
    created_by       TEXT NOT NULL,
    created_at       BIGINT NOT NULL,
    updated_at       BIGINT NOT NULL,
    UNIQUE (device_id, idempotency_key)
);
CREATE INDEX commands_device_status ON commands (device_id, status);

CREATE TABLE telemetry (
    id         {{serial}},
    device_id  TEXT NOT NULL REFERENCES devices (id),
    at         BIGINT NOT NULL,
    kind       TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX telemetry_at ON telemetry (at);
CREATE INDEX telemetry_device_at ON telemetry (device_id, at);
