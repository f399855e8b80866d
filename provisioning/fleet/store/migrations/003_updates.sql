-- Over-the-air updates: the sites' maintenance windows, each device's
-- latest update status, rollouts and each device's status in a rollout.
-- Same conventions as 001 and 002.

-- "" in both means the default window (fleetapi.DefaultMaintenanceWindow).
ALTER TABLE sites ADD COLUMN window_start TEXT NOT NULL DEFAULT '';
ALTER TABLE sites ADD COLUMN window_end TEXT NOT NULL DEFAULT '';

-- The update status of the device's latest check-in (fleetapi.UpdateStatus
-- as JSON; "" when it never sent one) and when it was stored.
ALTER TABLE devices ADD COLUMN update_status TEXT NOT NULL DEFAULT '';
ALTER TABLE devices ADD COLUMN update_at BIGINT;

-- rings is a JSON array of {name, percent}; ring is the index of the ring
-- open now. accepted_failures is the failure count when a person last
-- resumed it from a halt. site_id NULL covers the whole organisation.
CREATE TABLE rollouts (
    id                 TEXT PRIMARY KEY,
    org_id             TEXT NOT NULL REFERENCES organisations (id),
    site_id            TEXT REFERENCES sites (id),
    target             TEXT NOT NULL,
    version            TEXT NOT NULL,
    rings              TEXT NOT NULL,
    ring               INTEGER NOT NULL,
    ring_opened        BIGINT NOT NULL,
    failure_threshold  INTEGER NOT NULL CHECK (failure_threshold BETWEEN 0 AND 100),
    soak_minutes       INTEGER NOT NULL CHECK (soak_minutes >= 0),
    immediate          INTEGER NOT NULL DEFAULT 0,
    state              TEXT NOT NULL CHECK (state IN ('running', 'paused', 'halted', 'aborted', 'completed')),
    reason             TEXT NOT NULL DEFAULT '',
    accepted_failures  INTEGER NOT NULL DEFAULT 0,
    created_by         TEXT NOT NULL,
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);
CREATE INDEX rollouts_org_created ON rollouts (org_id, created_at);
-- At most one active rollout per organisation, enforced by the database
-- so two concurrent creations cannot both win; the check-in's lookup of
-- the device organisation's rollout uses it too.
CREATE UNIQUE INDEX rollouts_one_active ON rollouts (org_id) WHERE state IN ('running', 'paused', 'halted');

-- The latest status each device reported about a rollout
-- (fleetapi.UpdateStatus as JSON, its state in its own column).
CREATE TABLE rollout_devices (
    rollout_id  TEXT NOT NULL REFERENCES rollouts (id),
    device_id   TEXT NOT NULL REFERENCES devices (id),
    state       TEXT NOT NULL,
    status      TEXT NOT NULL,
    updated_at  BIGINT NOT NULL,
    PRIMARY KEY (rollout_id, device_id)
);
