-- Court workflow: sites, the hearing lifecycle, lobby/mute state, revocable links,
-- the hash-chained audit trail and hashed admin keys.

-- Sites (điểm cầu) of a hearing, by name. Participants name their site.
CREATE TABLE sites (
    hearing_id TEXT NOT NULL REFERENCES hearings (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    kind       TEXT NOT NULL,
    position   INTEGER NOT NULL,
    PRIMARY KEY (hearing_id, name)
);

INSERT INTO sites (hearing_id, name, kind, position)
    SELECT hearing_id, site, 'remote', MIN(position) FROM participants GROUP BY hearing_id, site;

ALTER TABLE hearings ADD COLUMN scheduled_at TEXT;
ALTER TABLE hearings ADD COLUMN state TEXT NOT NULL DEFAULT 'scheduled';
ALTER TABLE hearings ADD COLUMN state_reason TEXT;
ALTER TABLE hearings ADD COLUMN state_since TEXT NOT NULL DEFAULT '';
ALTER TABLE hearings ADD COLUMN adjourned_to TEXT;
ALTER TABLE hearings ADD COLUMN locked INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hearings ADD COLUMN spotlight TEXT;
-- The audit chain's head, kept apart from the rows so that deleting the last entry
-- is detected too.
ALTER TABLE hearings ADD COLUMN audit_count INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hearings ADD COLUMN audit_head TEXT NOT NULL DEFAULT '';

UPDATE hearings SET state_since = created_at WHERE state_since = '';

-- 'lobby' | 'admitted' | 'removed'
ALTER TABLE participants ADD COLUMN admission TEXT NOT NULL DEFAULT 'lobby';
ALTER TABLE participants ADD COLUMN muted INTEGER NOT NULL DEFAULT 0;
-- Join tokens carry this number; revoking a link increments it.
ALTER TABLE participants ADD COLUMN link_version INTEGER NOT NULL DEFAULT 0;

CREATE TABLE hearing_states (
    hearing_id   TEXT NOT NULL REFERENCES hearings (id) ON DELETE CASCADE,
    seq          INTEGER NOT NULL,
    state        TEXT NOT NULL,
    reason       TEXT,
    adjourned_to TEXT,
    actor        TEXT NOT NULL,
    at           TEXT NOT NULL,
    PRIMARY KEY (hearing_id, seq)
);

-- Append-only: each entry carries the hash of the previous one (see src/audit.rs).
CREATE TABLE audit (
    hearing_id TEXT NOT NULL,
    seq        INTEGER NOT NULL,
    at         TEXT NOT NULL,
    actor      TEXT NOT NULL,
    subject    TEXT,
    action     TEXT NOT NULL,
    details    TEXT NOT NULL,
    prev_hash  TEXT NOT NULL,
    hash       TEXT NOT NULL,
    PRIMARY KEY (hearing_id, seq)
);

-- Admin API keys: only their SHA-256 is stored.
CREATE TABLE admin_keys (
    id         TEXT PRIMARY KEY NOT NULL,
    name       TEXT NOT NULL,
    sha256     TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
