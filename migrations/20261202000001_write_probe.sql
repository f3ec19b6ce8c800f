-- One row the server rewrites to learn whether the database can take a write
-- (`GET /readyz`): on a full disk this write fails like any hearing's would.
CREATE TABLE write_probe (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    at TEXT NOT NULL
);
