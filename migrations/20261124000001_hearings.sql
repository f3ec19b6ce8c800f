-- Hearings and their invited participants. Ids are UUIDs in their hyphenated text
-- form; timestamps are RFC 3339 UTC text.
CREATE TABLE hearings (
    id          TEXT PRIMARY KEY NOT NULL,
    case_number TEXT NOT NULL,
    title       TEXT NOT NULL,
    created_at  TEXT NOT NULL
);

CREATE TABLE participants (
    id         TEXT PRIMARY KEY NOT NULL,
    hearing_id TEXT NOT NULL REFERENCES hearings (id) ON DELETE CASCADE,
    -- Order in which the participants were listed when the hearing was created.
    position   INTEGER NOT NULL,
    name       TEXT NOT NULL,
    role       TEXT NOT NULL,
    site       TEXT NOT NULL
);

CREATE INDEX participants_by_hearing ON participants (hearing_id, position);
