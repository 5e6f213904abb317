//! The metadata store contract, and what is particular to SQLite (the file and its folder,
//! WAL, migrations, restarts, error mapping), against real database files. Each store gets a
//! file of its own in a temporary folder of its test, removed when the test ends, so tests run
//! in parallel without seeing each other.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use filegate_adapter_sqlite::SqliteStore;
use filegate_application::ports::{
    KeyStore, StoreError, StoreHealth, StoredApiKey, TaskStore, UploadStore,
};
use filegate_domain::{ApiKeyId, FirmId, UserId};
use uuid::Uuid;

/// The temporary folder of one test and the stores opened in it, closed and removed together
/// when the test ends.
struct Folder {
    path: PathBuf,
    files: AtomicUsize,
    stores: Mutex<Vec<SqliteStore>>,
}

impl Folder {
    fn new() -> Self {
        let path =
            std::env::temp_dir().join(format!("filegate-sqlite-{}", Uuid::new_v4().simple()));
        Self {
            path,
            files: AtomicUsize::new(0),
            stores: Mutex::new(Vec::new()),
        }
    }

    /// The URL of a new database file, in a folder that does not exist yet.
    fn blank_url(&self) -> String {
        let n = self.files.fetch_add(1, Ordering::SeqCst);
        url_of(&self.path.join(format!("db{n}")).join("metadata.db"))
    }

    /// A store on `url`, closed when the test ends.
    async fn store_on(&self, url: &str) -> SqliteStore {
        let store = SqliteStore::connect(url, 12)
            .await
            .expect("open the test database");
        self.stores.lock().unwrap().push(store.clone());
        store
    }

    /// A new database file, migrated, behind a store of its own.
    async fn fresh(&self) -> SqliteStore {
        let store = self.store_on(&self.blank_url()).await;
        store.migrate().await.expect("migrate a fresh database");
        store
    }

    async fn remove(&self) {
        let stores = std::mem::take(&mut *self.stores.lock().unwrap());
        for store in stores {
            store.close().await;
        }
        if let Err(e) = std::fs::remove_dir_all(&self.path)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            eprintln!("could not remove {}: {e}", self.path.display());
        }
    }
}

fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Runs one test body on its own task, then closes its stores and removes its folder whether
/// it passed or panicked, and passes the panic on.
async fn with_folder<F, Fut>(body: F)
where
    F: FnOnce(&'static Folder) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let folder: &'static Folder = Box::leak(Box::new(Folder::new()));
    let outcome = tokio::spawn(body(folder)).await;
    folder.remove().await;
    if let Err(e) = outcome {
        match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(e) => panic!("the test task did not finish: {e}"),
        }
    }
}

/// Hands a case a fresh, migrated store of its own, and cleans up after it.
async fn run<F, Fut>(case: F)
where
    F: FnOnce(SqliteStore) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_folder(|folder| async move { case(folder.fresh().await).await }).await;
}

filegate_contract_tests::metadata_store_suites!(run);

filegate_contract_tests::largest_group_case!(
    run,
    filegate_sql_store::MAX_GROUP,
    filegate_sql_store::record_as_group
);

/// A database the release before issue 10 made (its migrations, its rows) upgrades, and its
/// rows read back through today's ports.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_database_of_the_previous_release_upgrades_with_its_rows() {
    use filegate_contract_tests::upgrade::{
        OLD_ROWS, RELEASE_BEFORE_LIFECYCLE, old_rows_read_back,
    };
    with_folder(|folder| async move {
        let store = folder.store_on(&folder.blank_url()).await;
        store
            .migrate_to(RELEASE_BEFORE_LIFECYCLE)
            .await
            .expect("the old migrations");
        sqlx::raw_sql(OLD_ROWS)
            .execute(store.pool())
            .await
            .expect("the old release's rows");
        store.migrate().await.expect("today's migrations");
        old_rows_read_back(store).await;
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_creates_the_file_and_its_folder() {
    with_folder(|folder| async move {
        let path = folder.path.join("a").join("b").join("metadata.db");
        assert!(!path.parent().unwrap().exists());
        let store = folder.store_on(&url_of(&path)).await;
        assert!(path.is_file(), "the database file must exist after connect");
        store.migrate().await.expect("migrate");
        store.ping().await.expect("ping");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn migrations_are_idempotent_and_data_survives_a_new_pool() {
    with_folder(|folder| async move {
        let url = folder.blank_url();
        let store = folder.store_on(&url).await;
        store.migrate().await.expect("first migration");
        store
            .migrate()
            .await
            .expect("a second migration must be a no-op");

        let session = open_session_with_one_block(&store).await;
        store.close().await;

        let restarted = folder.store_on(&url).await;
        restarted
            .migrate()
            .await
            .expect("migrating after a restart must be a no-op");
        restarted
            .ping()
            .await
            .expect("a migrated database must be ready");
        let snapshot = restarted
            .find_session(session.firm, session.file_id)
            .await
            .expect("find_session after a restart")
            .expect("the session must survive a restart");
        assert_eq!(snapshot.session, session);
        assert_eq!(snapshot.received.received().collect::<Vec<_>>(), vec![1]);
        assert_eq!(snapshot.staged_bytes, 9);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_use_wal_and_the_safety_settings() {
    with_folder(|folder| async move {
        let store = folder.fresh().await;
        let mut conn = store.pool().acquire().await.expect("acquire");
        let journal: String = sqlx::query_scalar("PRAGMA journal_mode")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(journal, "wal");
        let synchronous: i64 = sqlx::query_scalar("PRAGMA synchronous")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(synchronous, 1, "synchronous must be NORMAL");
        let foreign_keys: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(foreign_keys, 1, "foreign keys must be enforced");
        let busy_timeout: i64 = sqlx::query_scalar("PRAGMA busy_timeout")
            .fetch_one(&mut *conn)
            .await
            .unwrap();
        assert_eq!(busy_timeout, 30_000);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ping_tells_a_database_that_is_not_migrated() {
    with_folder(|folder| async move {
        let store = folder.store_on(&folder.blank_url()).await;
        match store.ping().await {
            Err(StoreError::Unavailable(e)) => {
                assert!(
                    e.to_string().contains("not migrated"),
                    "the reason must say so: {e}"
                );
            }
            other => panic!("ping on a blank database must be Unavailable, got {other:?}"),
        }
        store.migrate().await.expect("migrate");
        store.ping().await.expect("ping after migrating");
    })
    .await;
}

#[test]
fn the_url_forms_name_the_file() {
    let cases = [
        ("sqlite://data/filegate.db", "data/filegate.db"),
        (
            "sqlite://./filegate-data/filegate.db",
            "./filegate-data/filegate.db",
        ),
        (
            "sqlite:///var/lib/filegate/metadata.db",
            "/var/lib/filegate/metadata.db",
        ),
        ("sqlite:relative.db", "relative.db"),
        ("SQLite://upper.db", "upper.db"),
        ("sqlite://with%20space.db", "with space.db"),
    ];
    for (url, file) in cases {
        let options = SqliteStore::connect_options(url)
            .unwrap_or_else(|e| panic!("{url} must be accepted: {e}"));
        assert_eq!(options.get_filename(), Path::new(file), "{url}");
    }
    for url in [
        "postgres://postgres@localhost/filegate",
        "data.db",
        "sqlite::memory:",
        "sqlite://:memory:",
        "sqlite://",
        "sqlite://data.db?mode=memory",
        "sqlite://data.db?nonsense=1",
    ] {
        assert!(
            matches!(
                SqliteStore::connect_options(url),
                Err(StoreError::Unknown(_))
            ),
            "{url} must be refused"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_folder_that_cannot_be_created_is_unavailable() {
    with_folder(|folder| async move {
        std::fs::create_dir_all(&folder.path).unwrap();
        let blocker = folder.path.join("not-a-folder");
        std::fs::write(&blocker, b"").unwrap();
        let url = url_of(&blocker.join("metadata.db"));
        match SqliteStore::connect(&url, 1).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("a database under a file must be Unavailable, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_key_hash_is_a_conflict() {
    with_folder(|folder| async move {
        let store = folder.fresh().await;
        let key = api_key();
        store.insert_api_key(&key).await.expect("first insert");
        let again = StoredApiKey {
            id: ApiKeyId::from_uuid(Uuid::new_v4()),
            ..key
        };
        match store.insert_api_key(&again).await {
            Err(StoreError::Conflict(message)) => {
                assert!(message.contains("key_hash"), "{message}");
            }
            other => panic!("a duplicate hash must be a Conflict, got {other:?}"),
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_writer_held_past_the_busy_timeout_is_unavailable() {
    with_folder(|folder| async move {
        let url = folder.blank_url();
        folder.fresh_at(&url).await;
        let options = SqliteStore::connect_options(&url)
            .unwrap()
            .busy_timeout(Duration::from_millis(200));
        let pool = SqliteStore::pool_options(2)
            .connect_with(options)
            .await
            .unwrap();
        let store = SqliteStore::from_pool(pool);
        folder.stores.lock().unwrap().push(store.clone());

        let holder = store.pool().begin_with("BEGIN IMMEDIATE").await.unwrap();
        let started = Instant::now();
        match store.insert_api_key(&api_key()).await {
            Err(StoreError::Unavailable(_)) => {}
            other => panic!("a write behind a held lock must be Unavailable, got {other:?}"),
        }
        assert!(
            started.elapsed() >= Duration::from_millis(150),
            "the write must have waited for the lock, not failed at once ({:?})",
            started.elapsed()
        );
        // Readers are not blocked by the writer (WAL).
        assert_eq!(
            store.count_api_keys().await.expect("read beside a writer"),
            0
        );
        holder.rollback().await.unwrap();
        store
            .insert_api_key(&api_key())
            .await
            .expect("the write succeeds once the lock is released");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_schema_refuses_foreign_spellings_of_uuids_and_times() {
    with_folder(|folder| async move {
        let store = folder.fresh().await;
        let id = Uuid::new_v4();
        let insert = |id: String, created_at: &'static str| {
            let pool = store.pool().clone();
            async move {
                sqlx::query(
                    "INSERT INTO api_keys (id, key_hash, firm_id, user_id, created_at)
                     VALUES (?1, ?2, ?1, ?1, ?3)",
                )
                .bind(id)
                .bind(Uuid::new_v4().to_string())
                .bind(created_at)
                .execute(&pool)
                .await
            }
        };
        let good_time = "2024-05-01T12:34:56.123456Z";
        for bad_id in [
            id.hyphenated().to_string().to_uppercase(),
            id.simple().to_string(),
            format!("{{{id}}}"),
            id.hyphenated().to_string().replace('-', "x"),
            "0".repeat(8) + "-0000-0000-0000-00000000000g",
        ] {
            let refused = insert(bad_id.clone(), good_time).await;
            assert!(refused.is_err(), "the id `{bad_id}` must be refused");
        }
        for bad_time in [
            "2024-05-01T12:34:56.123Z",
            "2024-05-01 12:34:56.123456Z",
            "2024-05-01T12:34:56.123456+00:00",
        ] {
            let refused = insert(id.to_string(), bad_time).await;
            assert!(refused.is_err(), "the time `{bad_time}` must be refused");
        }
        insert(id.to_string(), good_time)
            .await
            .expect("the canonical forms are accepted");
        let key = store
            .find_api_key(&insert_hash(&store, id).await)
            .await
            .expect("find_api_key")
            .expect("the key inserted by hand is found");
        assert_eq!(key.id, ApiKeyId::from_uuid(id));
        assert_eq!(
            key.created_at.to_rfc3339(),
            "2024-05-01T12:34:56.123456+00:00"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_the_domain_refuses_is_reported_not_passed_on() {
    with_folder(|folder| async move {
        let store = folder.fresh().await;
        let session = open_session_with_one_block(&store).await;
        sqlx::query("UPDATE upload_sessions SET file_name = '../etc/passwd' WHERE file_id = ?1")
            .bind(session.file_id.to_string())
            .execute(store.pool())
            .await
            .expect("corrupt the row");
        match store.find_session(session.firm, session.file_id).await {
            Err(StoreError::Unknown(e)) => {
                assert!(
                    e.to_string().contains("not a sanitized name"),
                    "the reason must say what is wrong: {e}"
                );
            }
            other => panic!("a corrupt row must be StoreError::Unknown, got {other:?}"),
        }
    })
    .await;
}

impl Folder {
    /// Creates and migrates the database at `url` with the default settings.
    async fn fresh_at(&self, url: &str) {
        let store = self.store_on(url).await;
        store.migrate().await.expect("migrate");
    }
}

async fn insert_hash(store: &SqliteStore, id: Uuid) -> String {
    sqlx::query_scalar("SELECT key_hash FROM api_keys WHERE id = ?1")
        .bind(id.to_string())
        .fetch_one(store.pool())
        .await
        .expect("the key's hash")
}

fn api_key() -> StoredApiKey {
    StoredApiKey {
        id: ApiKeyId::from_uuid(Uuid::new_v4()),
        hash: format!("{}", Uuid::new_v4().simple()).repeat(2),
        firm: FirmId::from_uuid(Uuid::new_v4()),
        user: UserId::from_uuid(Uuid::new_v4()),
        created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
    }
}

/// Opens a session of two blocks and stages block 1 (9 bytes).
async fn open_session_with_one_block(store: &SqliteStore) -> filegate_domain::UploadSession {
    use filegate_application::completion::{BlockOutcome, record_block};
    use filegate_application::ports::StagedBlock;
    use filegate_domain::{
        BlobPath, FileId, FileName, Mode, SessionState, TotalBlocks, UploadSession,
    };

    let file_id = FileId::from_uuid(Uuid::new_v4());
    let firm = FirmId::from_uuid(Uuid::new_v4());
    let user = UserId::from_uuid(Uuid::new_v4());
    let file_name = FileName::sanitize("notes.txt");
    let total = TotalBlocks::new(2).unwrap();
    let session = UploadSession {
        file_id,
        firm,
        user,
        mode: Mode::Message,
        total_blocks: total,
        blob_path: BlobPath::for_file(Mode::Message, firm, user, file_id, &file_name),
        file_name,
        content_type: "text/plain".into(),
        upload_id: String::new(),
        state: SessionState::Open,
        created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
    };
    store.open_session(&session).await.expect("open_session");
    let block = StagedBlock {
        index: total.index(1).unwrap(),
        part_id: "p1".into(),
        size: 9,
    };
    let outcome = record_block(store, file_id, block, |_| async {
        Err::<filegate_domain::FileRecord, ()>(())
    })
    .await
    .expect("record_block");
    assert_eq!(
        outcome,
        BlockOutcome::Staged {
            received: 1,
            replaced: None
        }
    );
    session
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_task_row_the_domain_refuses_is_reported_not_passed_on() {
    use filegate_domain::{FileId, TaskId};

    with_folder(|folder| async move {
        let store = folder.fresh().await;
        let id = TaskId::from_uuid(Uuid::new_v4());
        let at = chrono::Utc::now();
        store
            .claim_task(
                id,
                FirmId::from_uuid(Uuid::new_v4()),
                FileId::from_uuid(Uuid::new_v4()),
                "template",
                at,
                at + chrono::TimeDelta::seconds(30),
            )
            .await
            .expect("claim_task");
        // A buggy release or a hand edit, past the schema's own guard.
        for (corruption, reason) in [
            (
                "UPDATE media_tasks SET status = 'paused' WHERE id = ?1",
                "unknown status `paused`",
            ),
            (
                "UPDATE media_tasks SET status = 'pending', lease_until = '2024-05-01 12:00:00' WHERE id = ?1",
                "media_tasks.lease_until",
            ),
        ] {
            let mut conn = store.pool().acquire().await.expect("acquire");
            sqlx::query("PRAGMA ignore_check_constraints = ON")
                .execute(&mut *conn)
                .await
                .unwrap();
            sqlx::query(corruption)
                .bind(id.to_string())
                .execute(&mut *conn)
                .await
                .expect("corrupt the row");
            sqlx::query("PRAGMA ignore_check_constraints = OFF")
                .execute(&mut *conn)
                .await
                .unwrap();
            drop(conn);
            match store.find_task(id).await {
                Err(StoreError::Unknown(e)) => assert!(
                    e.to_string().contains(reason),
                    "the reason must say what is wrong: {e}"
                ),
                other => panic!("a corrupt task row must be StoreError::Unknown, got {other:?}"),
            }
        }
    })
    .await;
}
