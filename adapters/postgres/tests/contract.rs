//! The metadata store contract, and what is particular to Postgres (migrations, restarts,
//! error mapping), against a real server. Each store gets a database of its own, created from
//! the admin connection and dropped afterwards, so tests run in parallel without seeing each
//! other. A server that cannot be reached fails the tests: a skipped suite would read as green.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::future::Future;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use filegate_adapter_postgres::PgStore;
use filegate_application::ports::{KeyStore, StoreError, StoreHealth, TaskStore, UploadStore};
use sqlx::postgres::{PgConnectOptions, PgPool};
use uuid::Uuid;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

fn admin_url() -> String {
    std::env::var("FILEGATE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

/// The databases one test created, dropped together when it ends.
struct Databases {
    admin: PgPool,
    options: PgConnectOptions,
    names: Mutex<Vec<String>>,
}

impl Databases {
    async fn connect() -> Self {
        let url = admin_url();
        let options: PgConnectOptions = url
            .parse()
            .unwrap_or_else(|e| panic!("FILEGATE_TEST_DATABASE_URL is not a Postgres URL: {e}"));
        let admin = PgStore::pool_options(2).connect_with(options.clone()).await.unwrap_or_else(|e| {
            panic!(
                "cannot reach Postgres at FILEGATE_TEST_DATABASE_URL (default {DEFAULT_ADMIN_URL}): {e}. \
                 Start it (e.g. `pg_ctlcluster --skip-systemctl-redirect 15 main start`) or point the \
                 variable at a server where this user may CREATE DATABASE."
            )
        });
        Self {
            admin,
            options,
            names: Mutex::new(Vec::new()),
        }
    }

    /// A new, empty database, not migrated.
    async fn blank(&self) -> PgConnectOptions {
        let name = format!("fg_test_{}", Uuid::new_v4().simple());
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&self.admin)
            .await
            .unwrap_or_else(|e| panic!("cannot create test database {name}: {e}"));
        self.names.lock().unwrap().push(name.clone());
        self.options.clone().database(&name)
    }

    async fn store_on(options: PgConnectOptions) -> PgStore {
        let pool = PgStore::pool_options(12)
            .connect_with(options)
            .await
            .expect("connect to the test database");
        PgStore::from_pool(pool)
    }

    /// The name of the database [`Databases::blank`] made last.
    fn last_name(&self) -> String {
        self.names
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("a database was made")
    }

    /// A new database, migrated, behind a store of its own.
    async fn fresh(&self) -> PgStore {
        let store = Self::store_on(self.blank().await).await;
        store.migrate().await.expect("migrate a fresh database");
        store
    }

    /// Best effort: a leftover database is harmless, only untidy.
    async fn drop_all(&self) {
        let names = std::mem::take(&mut *self.names.lock().unwrap());
        for name in names {
            let dropped = sqlx::query(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&self.admin)
            .await;
            if let Err(e) = dropped {
                eprintln!("could not drop test database {name}: {e}");
            }
        }
        self.admin.close().await;
    }
}

/// Runs one test body on its own task, then drops its databases whether it passed or panicked,
/// and passes the panic on.
async fn with_databases<F, Fut>(body: F)
where
    F: FnOnce(&'static Databases) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dbs: &'static Databases = Box::leak(Box::new(Databases::connect().await));
    let outcome = tokio::spawn(body(dbs)).await;
    dbs.drop_all().await;
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
    F: FnOnce(PgStore) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    with_databases(|dbs| async move { case(dbs.fresh().await).await }).await;
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
    with_databases(|dbs| async move {
        let store = Databases::store_on(dbs.blank().await).await;
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
async fn migrations_are_idempotent_and_data_survives_a_new_pool() {
    with_databases(|dbs| async move {
        let options = dbs.blank().await;
        let store = Databases::store_on(options.clone()).await;
        store.migrate().await.expect("first migration");
        store
            .migrate()
            .await
            .expect("a second migration must be a no-op");

        let session = open_session_with_one_block(&store).await;
        store.close().await;

        let restarted = Databases::store_on(options).await;
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
async fn ping_tells_a_database_that_is_not_migrated() {
    with_databases(|dbs| async move {
        let store = Databases::store_on(dbs.blank().await).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connect_by_url_reaches_the_server() {
    let store = PgStore::connect(&admin_url(), 1)
        .await
        .expect("connect by URL");
    // The admin database is never migrated by these tests, so the store answers but is not ready.
    assert!(matches!(
        store.ping().await,
        Err(StoreError::Unavailable(_))
    ));
    store.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_that_is_down_is_unavailable_within_seconds() {
    // Nothing listens on port 1; the pool retries until its acquire timeout and gives up.
    let started = Instant::now();
    match PgStore::connect("postgres://postgres@127.0.0.1:1/postgres", 1).await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("connecting to a closed port must be Unavailable, got {other:?}"),
    }
    let lazy = PgStore::connect_lazy("postgres://postgres@127.0.0.1:1/postgres", 1)
        .expect("a lazy pool opens");
    match lazy.ping().await {
        Err(StoreError::Unavailable(_)) => {}
        other => panic!("ping on a closed port must be Unavailable, got {other:?}"),
    }
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
}

/// Connections the server (here a cut in the network) dropped while they sat in the pool are
/// found dead by the ping before a connection is lent, and replaced: the first request after
/// the outage succeeds.
/// A store whose every connection passes through a proxy that can cut them, with a pooled
/// connection open.
async fn store_behind_a_proxy(dbs: &Databases) -> (PgStore, filegate_tcp_proxy::TcpProxy) {
    let options = dbs.blank().await;
    let upstream = format!("{}:{}", options.get_host(), options.get_port())
        .parse::<std::net::SocketAddr>()
        .unwrap();
    let proxy = filegate_tcp_proxy::TcpProxy::start(upstream).await.unwrap();
    let proxied = options
        .host(&proxy.addr().ip().to_string())
        .port(proxy.addr().port());
    let store = Databases::store_on(proxied).await;
    store.migrate().await.expect("migrate through the proxy");
    store.ping().await.expect("ping through the proxy");
    assert!(proxy.open_connections() > 0);
    (store, proxy)
}

/// Closes every connection through `proxy` under the store, with the network back at once, and
/// waits `pause` for the closed sockets' ends to reach the pool's connections.
async fn cut_every_connection(proxy: &filegate_tcp_proxy::TcpProxy, pause: Duration) {
    proxy.cut();
    proxy.restore();
    tokio::time::sleep(pause).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn connections_dropped_while_idle_are_replaced() {
    with_databases(|dbs| async move {
        let (store, proxy) = store_behind_a_proxy(dbs).await;
        // The pause outlasts PING_AFTER_IDLE, so the next loan pings, finds the connection dead
        // and opens another.
        let pause = filegate_adapter_postgres::PING_AFTER_IDLE + Duration::from_millis(300);
        cut_every_connection(&proxy, pause).await;
        store
            .ping()
            .await
            .expect("the first request after the outage gets a live connection");
        assert!(
            store.count_api_keys().await.is_ok(),
            "and so does the next one"
        );
    })
    .await;
}

/// A connection cut right after its last use is lent again without a ping: its request fails
/// as `Unavailable` (a 503 to retry), never as anything else, and the pool replaces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_connection_cut_right_after_use_fails_one_request_as_unavailable() {
    with_databases(|dbs| async move {
        let (store, proxy) = store_behind_a_proxy(dbs).await;
        cut_every_connection(&proxy, Duration::from_millis(100)).await;
        let mut failures = 0;
        // Each dead connection the pool holds can fail one request; a live one comes after.
        loop {
            match store.count_api_keys().await {
                Ok(_) => break,
                Err(StoreError::Unavailable(_)) if failures < 10 => failures += 1,
                Err(e) => panic!("a cut connection must fail as Unavailable: {e:?}"),
            }
        }
        assert!(
            failures >= 1,
            "the first loan skipped the ping ({failures} failures)"
        );
        assert!(
            store.count_api_keys().await.is_ok(),
            "and the pool is whole again"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_duplicate_key_hash_is_a_conflict() {
    with_databases(|dbs| async move {
        let store = dbs.fresh().await;
        let key = filegate_application::ports::StoredApiKey {
            id: filegate_domain::ApiKeyId::from_uuid(Uuid::new_v4()),
            hash: "ab".repeat(32),
            firm: filegate_domain::FirmId::from_uuid(Uuid::new_v4()),
            user: filegate_domain::UserId::from_uuid(Uuid::new_v4()),
            created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        };
        store.insert_api_key(&key).await.expect("first insert");
        let again = filegate_application::ports::StoredApiKey {
            id: filegate_domain::ApiKeyId::from_uuid(Uuid::new_v4()),
            ..key
        };
        assert!(matches!(
            store.insert_api_key(&again).await,
            Err(StoreError::Conflict(_))
        ));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_row_the_domain_refuses_is_reported_not_passed_on() {
    with_databases(|dbs| async move {
        let store = dbs.fresh().await;
        let session = open_session_with_one_block(&store).await;
        sqlx::query("UPDATE upload_sessions SET file_name = '../etc/passwd' WHERE file_id = $1")
            .bind(*session.file_id.as_uuid())
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

/// Opens a session of two blocks and stages block 1 (9 bytes).
async fn open_session_with_one_block(store: &PgStore) -> filegate_domain::UploadSession {
    use filegate_application::completion::{BlockOutcome, record_block};
    use filegate_application::ports::StagedBlock;
    use filegate_domain::{
        BlobPath, FileId, FileName, FirmId, Mode, SessionState, TotalBlocks, UploadSession, UserId,
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
    use filegate_domain::{FileId, FirmId, TaskId};

    with_databases(|dbs| async move {
        let store = dbs.fresh().await;
        let id = TaskId::from_uuid(Uuid::new_v4());
        let at = chrono::Utc::now();
        store
            .claim_task(
                id,
                FirmId::from_uuid(Uuid::new_v4()),
                FileId::from_uuid(Uuid::new_v4()),
                "message",
                at,
                at + chrono::TimeDelta::seconds(30),
            )
            .await
            .expect("claim_task");
        // A buggy release or a hand edit, past the schema's own guard.
        for (constraint, corruption, reason) in [
            (
                "media_tasks_status_check",
                "UPDATE media_tasks SET status = 'paused' WHERE id = $1",
                "unknown status `paused`",
            ),
            (
                "media_tasks_attempts_check",
                "UPDATE media_tasks SET status = 'pending', attempts = -1 WHERE id = $1",
                "negative attempts",
            ),
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "ALTER TABLE media_tasks DROP CONSTRAINT {constraint}"
            )))
            .execute(store.pool())
            .await
            .expect("drop the guard");
            sqlx::query(corruption)
                .bind(*id.as_uuid())
                .execute(store.pool())
                .await
                .expect("corrupt the row");
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

/// The feed of key changes names every key changed by filegate or by hand (a `TRUNCATE`: all
/// of them), never a new key, and reports a cut connection as lost before it follows again.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn key_changes_name_every_changed_key_and_report_a_lost_feed() {
    use filegate_adapter_postgres::PgKeyChanges;
    use filegate_application::ports::{KeyChange, KeyChanges, StoredApiKey};

    async fn next(feed: &mut PgKeyChanges) -> KeyChange {
        tokio::time::timeout(Duration::from_secs(10), feed.next())
            .await
            .expect("a key change within 10 s")
    }
    fn key(n: u8) -> StoredApiKey {
        StoredApiKey {
            id: filegate_domain::ApiKeyId::from_uuid(Uuid::new_v4()),
            hash: format!("{n:02x}").repeat(32),
            firm: filegate_domain::FirmId::from_uuid(Uuid::new_v4()),
            user: filegate_domain::UserId::from_uuid(Uuid::new_v4()),
            created_at: chrono::DateTime::<chrono::Utc>::UNIX_EPOCH,
        }
    }

    with_databases(|dbs| async move {
        let (store, proxy) = store_behind_a_proxy(dbs).await;
        let by_hand = PgPool::connect_with(dbs.options.clone().database(&dbs.last_name()))
            .await
            .unwrap();
        let mut feed = PgKeyChanges::new(&store);
        assert_eq!(next(&mut feed).await, KeyChange::Following);

        let (a, b, c) = (key(0xa1), key(0xb2), key(0xc3));
        for k in [&a, &b] {
            store.insert_api_key(k).await.unwrap();
        }
        let revoked_at = chrono::Utc::now();
        assert!(store.revoke_api_key(a.id, revoked_at).await.unwrap());
        assert_eq!(
            next(&mut feed).await,
            KeyChange::Changed(a.hash.clone()),
            "the inserts told nothing; the revocation named its key"
        );
        sqlx::query("DELETE FROM api_keys WHERE id = $1")
            .bind(b.id.as_uuid())
            .execute(&by_hand)
            .await
            .unwrap();
        assert_eq!(next(&mut feed).await, KeyChange::Changed(b.hash.clone()));
        sqlx::query("TRUNCATE api_keys")
            .execute(&by_hand)
            .await
            .unwrap();
        assert_eq!(next(&mut feed).await, KeyChange::All);
        store.insert_api_key(&c).await.unwrap();

        cut_every_connection(&proxy, Duration::from_millis(100)).await;
        assert_eq!(next(&mut feed).await, KeyChange::Lost);
        assert_eq!(next(&mut feed).await, KeyChange::Following);
        // By hand: the store's own pooled connection was cut too.
        sqlx::query("UPDATE api_keys SET revoked_at = now() WHERE id = $1")
            .bind(c.id.as_uuid())
            .execute(&by_hand)
            .await
            .unwrap();
        assert_eq!(
            next(&mut feed).await,
            KeyChange::Changed(c.hash.clone()),
            "followed again after the cut"
        );
        by_hand.close().await;
    })
    .await;
}
