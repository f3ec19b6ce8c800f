//! The SQLite store against real database files: round trips, atomicity, refusing
//! damaged files, and that a failed write (a failed COMMIT included) leaves nothing
//! behind and does not block the next one.

use super::*;
use crate::model::NewParticipant;
use crate::store::test_support::record;

fn new_hearing(case: &str, n: usize) -> NewHearing {
    NewHearing {
        scheduled_at: None,
        recording: None,
        sites: Vec::new(),
        case_number: case.into(),
        title: format!("Phiên tòa {case}"),
        participants: (0..n)
            .map(|i| NewParticipant {
                name: format!("Người {i}"),
                role: Role::ALL[i % Role::ALL.len()],
                site: format!("Điểm cầu {i}"),
                party: (i % 2 == 0).then(|| format!("Bên {i}")),
            })
            .collect(),
    }
}

fn url(dir: &std::path::Path) -> String {
    format!("sqlite://{}", dir.join("sub/dir/openhearing.db").display())
}

#[tokio::test]
async fn create_get_list() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(dir.path())).await.unwrap();
    store.ping().await.unwrap();
    assert!(store.list_hearings().await.unwrap().is_empty());

    let a = store
        .create_hearing(new_hearing("HS-1/2026", 3), &[])
        .await
        .unwrap();
    let b = store
        .create_hearing(new_hearing("HS-2/2026", 10), &[])
        .await
        .unwrap();
    assert_eq!(a.participants.len(), 3);
    assert!(a.participants.iter().all(|p| p.hearing_id == a.id));

    let got = store.get_hearing(a.id).await.unwrap().unwrap();
    assert_eq!(got, a);
    assert_eq!(store.get_hearing(Uuid::new_v4()).await.unwrap(), None);

    let list = store.list_hearings().await.unwrap();
    assert_eq!(list.len(), 2);
    assert!(list.contains(&a) && list.contains(&b));

    let p = &b.participants[7];
    assert_eq!(
        store.get_participant(b.id, p.id).await.unwrap().as_ref(),
        Some(p)
    );
    // A participant of another hearing is not found.
    assert_eq!(store.get_participant(a.id, p.id).await.unwrap(), None);
}

#[tokio::test]
async fn data_survives_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(dir.path())).await.unwrap();
    let a = store
        .create_hearing(new_hearing("HS-9/2026", 2), &[])
        .await
        .unwrap();
    store.close().await;
    drop(store);

    let store = SqliteStore::open(&url(dir.path())).await.unwrap();
    assert_eq!(store.get_hearing(a.id).await.unwrap(), Some(a));
}

#[tokio::test]
async fn create_is_atomic() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(dir.path())).await.unwrap();
    // Make the database itself refuse the third participant, mid-transaction.
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON participants \
             WHEN NEW.name = 'refused' BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let mut h = new_hearing("HS-3/2026", 4);
    h.participants[2].name = "refused".into();
    let e = store.create_hearing(h, &[]).await.unwrap_err();
    assert!(e.to_string().contains("refused by test"), "{e}");

    let hearings: i64 = sqlx::query_scalar("SELECT count(*) FROM hearings")
        .fetch_one(store.pool())
        .await
        .unwrap();
    let participants: i64 = sqlx::query_scalar("SELECT count(*) FROM participants")
        .fetch_one(store.pool())
        .await
        .unwrap();
    assert_eq!((hearings, participants), (0, 0));
}

#[tokio::test]
async fn bad_url_is_clear() {
    let e = SqliteStore::open("sqlite:///proc/forbidden/x.db")
        .await
        .unwrap_err();
    assert!(e.to_string().contains("/proc/forbidden"), "{e}");
}

/// Item 8 of the hardening review: a 0-byte database file was silently replaced
/// by a fresh database with a new admin key.
#[tokio::test]
async fn an_empty_database_file_is_refused_not_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sub/dir/openhearing.db");
    std::fs::create_dir_all(file.parent().unwrap()).unwrap();
    std::fs::write(&file, b"").unwrap();
    let e = SqliteStore::open(&url(dir.path())).await.unwrap_err();
    assert!(matches!(e, StoreError::EmptyFile { .. }), "{e}");
    assert!(e.to_string().contains("restore it from a backup"), "{e}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0, "left untouched");
}

#[tokio::test]
async fn a_damaged_database_file_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = SqliteStore::open(&url(dir.path())).await.unwrap();
        store
            .create_hearing(new_hearing("HS-9/2026", 3), &[])
            .await
            .unwrap();
        sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .execute(store.pool())
            .await
            .unwrap();
        store.close().await;
    }
    // Overwrite the middle of the file (past the header) with garbage.
    let file = dir.path().join("sub/dir/openhearing.db");
    let mut bytes = std::fs::read(&file).unwrap();
    assert!(bytes.len() > 8192, "{} bytes", bytes.len());
    for b in &mut bytes[4096..8192] {
        *b = 0xA5;
    }
    std::fs::write(&file, &bytes).unwrap();
    let e = SqliteStore::open(&url(dir.path())).await.unwrap_err();
    assert!(
        matches!(e, StoreError::Damaged { .. } | StoreError::Open { .. }),
        "{e}"
    );
}

/// Item 2 of the hardening review: a COMMIT that failed was never rolled back, so
/// the pooled connection kept the write lock and every later write failed
/// (`cannot start a transaction within a transaction`, then `database is locked`).
/// A deferred foreign key makes the COMMIT itself fail, as a full disk does.
#[tokio::test]
async fn a_failed_commit_is_rolled_back_and_later_writes_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(dir.path())).await.unwrap();
    let h = store
        .create_hearing(new_hearing("HS-4/2026", 2), &[])
        .await
        .unwrap();
    sqlx::raw_sql(
        "CREATE TABLE parent (id INTEGER PRIMARY KEY); \
         CREATE TABLE child (p INTEGER REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED); \
         CREATE TRIGGER fail_at_commit AFTER INSERT ON audit WHEN NEW.action = 'doomed' \
         BEGIN INSERT INTO child VALUES (42); END;",
    )
    .execute(store.pool())
    .await
    .unwrap();
    for _ in 0..3 {
        let e = store
            .append_audit(h.id, record("doomed"))
            .await
            .unwrap_err();
        assert!(e.to_string().contains("FOREIGN KEY"), "{e}");
        assert!(!e.is_unavailable(), "a constraint is not the disk: {e}");
    }
    // More writes than the pool has connections: each would meet a stuck one.
    for i in 0..10 {
        let started = std::time::Instant::now();
        store
            .append_audit(h.id, record(&format!("fine {i}")))
            .await
            .unwrap_or_else(|e| panic!("write {i} after the failed commits: {e}"));
        assert!(started.elapsed() < Duration::from_secs(2), "no lock wait");
    }
    let (entries, count, head) = store.audit_log(h.id).await.unwrap().unwrap();
    assert_eq!((entries.len(), count), (10, 10));
    assert_eq!(
        crate::audit::verify_chain(h.id, &entries, count, &head),
        Ok(())
    );
    assert!(store.writable().await.is_ok());
}

/// The trail read while entries are appended is always one consistent snapshot:
/// its chain verifies at every read (the head and the rows were read apart once,
/// and a `leave` written between them made a sound chain look broken).
#[tokio::test]
async fn the_trail_read_during_writes_always_verifies() {
    let dir = tempfile::tempdir().unwrap();
    let store = std::sync::Arc::new(SqliteStore::open(&url(dir.path())).await.unwrap());
    let h = store
        .create_hearing(new_hearing("HS-9/2026", 2), &[])
        .await
        .unwrap();
    let writer = {
        let store = store.clone();
        tokio::spawn(async move {
            for i in 0..300 {
                store
                    .append_audit(h.id, record(&format!("w{i}")))
                    .await
                    .unwrap();
            }
        })
    };
    let mut reads = 0;
    while !writer.is_finished() && reads < 2_000 {
        let (entries, count, head) = store.audit_log(h.id).await.unwrap().unwrap();
        assert_eq!(
            crate::audit::verify_chain(h.id, &entries, count, &head),
            Ok(()),
            "read {reads}: {} rows, head count {count}",
            entries.len()
        );
        reads += 1;
    }
    writer.await.unwrap();
    let (entries, count, _) = store.audit_log(h.id).await.unwrap().unwrap();
    assert_eq!((entries.len(), count), (300, 300));
}

/// A batch stores everything or nothing: a state change never lands without the
/// audit entry that records it.
#[tokio::test]
async fn a_batch_is_all_or_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(dir.path())).await.unwrap();
    let h = store
        .create_hearing(new_hearing("HS-5/2026", 2), &[])
        .await
        .unwrap();
    sqlx::query(
        "CREATE TRIGGER refuse BEFORE INSERT ON audit WHEN NEW.action = 'refused' \
         BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
    )
    .execute(store.pool())
    .await
    .unwrap();
    let mut status = h.status.clone();
    status.locked = true;
    let p = h.participants[0].id;
    let batch = |action: &str| {
        vec![
            Write::Status {
                status: status.clone(),
                history: None,
            },
            Write::Participant {
                id: p,
                admission: Admission::Admitted,
                muted: true,
            },
            Write::Audit(record(action)),
        ]
    };
    let e = store.apply(h.id, &batch("refused")).await.unwrap_err();
    assert!(e.to_string().contains("refused by test"), "{e}");
    let got = store.get_hearing(h.id).await.unwrap().unwrap();
    assert_eq!(got, h, "nothing of the failed batch was stored");
    assert_eq!(store.audit_log(h.id).await.unwrap().unwrap().1, 0);

    store.apply(h.id, &batch("locked")).await.unwrap();
    let got = store.get_hearing(h.id).await.unwrap().unwrap();
    assert!(got.status.locked);
    assert!(got.participants[0].muted);
    let (entries, count, _) = store.audit_log(h.id).await.unwrap().unwrap();
    assert_eq!((entries[0].action.as_str(), count), ("locked", 1));
}

#[tokio::test]
async fn the_pool_runs_no_maintenance_task_that_could_spin_at_close() {
    // sqlx 0.9.0 spawns a maintenance task only for an idle timeout, a lifetime or a
    // minimum of connections; its sweep can spin forever after close (see `open`).
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(&url(dir.path())).await.unwrap();
    let options = store.pool().options();
    assert_eq!(options.get_idle_timeout(), None);
    assert_eq!(options.get_max_lifetime(), None);
    assert_eq!(options.get_min_connections(), 0);
    store.close().await;
}
