-- Whether a hearing is recorded, chosen when it is created (default from
-- `[recording] enabled_by_default`).
ALTER TABLE hearings ADD COLUMN recording INTEGER NOT NULL DEFAULT 1;
