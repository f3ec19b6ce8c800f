-- Private rooms: a participant's party (a defendant and their counsel share one) and
-- the hearing's open rooms and pending consultation requests (JSON), so that a
-- restart never drops a consultation's members back into the hearing.
ALTER TABLE participants ADD COLUMN party TEXT;
ALTER TABLE hearings ADD COLUMN rooms TEXT NOT NULL DEFAULT '[]';
ALTER TABLE hearings ADD COLUMN consultation_requests TEXT NOT NULL DEFAULT '[]';
