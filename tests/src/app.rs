//! One running `filegate serve` with its own database.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use sqlx::{Connection, Executor, PgConnection};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};
use uuid::Uuid;

const DEFAULT_ADMIN_URL: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A port that was free a moment ago, for a server that must keep its address over a restart.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn admin_url() -> String {
    std::env::var("FILEGATE_TEST_DATABASE_URL").unwrap_or_else(|_| DEFAULT_ADMIN_URL.to_owned())
}

fn azure_connection_string() -> String {
    std::env::var("FILEGATE_TEST_AZURE_CONNECTION_STRING").unwrap_or_else(|_| {
        panic!("FILEGATE_TEST_AZURE_CONNECTION_STRING is not set: run the tests through `scripts/test`, which starts Azurite")
    })
}

fn azure_container() -> String {
    std::env::var("FILEGATE_TEST_AZURE_CONTAINER").unwrap_or_else(|_| "uploads".to_owned())
}

/// The `filegate` binary built by this workspace (`FILEGATE_BIN` overrides).
pub fn binary() -> PathBuf {
    workspace_binary("filegate", "FILEGATE_BIN")
}

/// The `filegate-fake-meta` binary built by this workspace (`FILEGATE_FAKE_META_BIN`
/// overrides): the fake Meta in a process of its own, as a developer or a container runs it.
pub fn fake_meta_binary() -> PathBuf {
    workspace_binary("filegate-fake-meta", "FILEGATE_FAKE_META_BIN")
}

/// A binary of this workspace, found next to the test executable: the tests run the binaries
/// that `cargo build --workspace --bins` just built, never a stale one from the `PATH`.
fn workspace_binary(name: &str, override_var: &str) -> PathBuf {
    if let Ok(bin) = std::env::var(override_var) {
        return PathBuf::from(bin);
    }
    // The test executable lives in target/<profile>/deps; the binary one folder up.
    let exe = std::env::current_exe().expect("current exe");
    let dir = exe.parent().and_then(|d| d.parent()).expect("target dir");
    let bin = dir.join(format!("{name}{}", std::env::consts::EXE_SUFFIX));
    assert!(
        bin.exists(),
        "{} is missing: run `cargo build --workspace --bins` first (scripts/test does)",
        bin.display()
    );
    bin
}

/// Which adapters the server runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Postgres + Azure Blob (Azurite).
    Azure,
    /// SQLite + local files, the default configuration.
    Embedded,
}

/// Knobs of a test server.
#[derive(Debug, Clone)]
pub struct TestAppOptions {
    pub profile: Profile,
    pub max_chunk_bytes: usize,
    /// Create the key with `keys create` before `serve` (else `serve` makes the first one).
    pub create_key: bool,
    /// Listen on this port, so that a restarted server keeps its address (default: any free).
    pub port: Option<u16>,
    /// More environment for the server (`FILEGATE_EVENTS__ENABLED`, say).
    pub env: Vec<(String, String)>,
}

impl TestAppOptions {
    pub fn new(profile: Profile) -> Self {
        Self {
            profile,
            max_chunk_bytes: 1024 * 1024,
            create_key: true,
            port: None,
            env: Vec::new(),
        }
    }
}

/// Where a test app keeps its files; removed when the app is dropped.
#[derive(Debug)]
struct DataDir(PathBuf);

impl Drop for DataDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The metadata store of a test app, for tests that look at what it stored.
#[derive(Debug)]
pub enum Db {
    Postgres(PgConnection),
    Sqlite(sqlx::SqliteConnection),
}

impl Db {
    /// Runs statements (a script) on whichever database this is, to put it in a state a test
    /// needs, e.g. a trigger that makes a write fail.
    pub async fn execute(&mut self, sql_postgres: &'static str, sql_sqlite: &'static str) {
        match self {
            Db::Postgres(c) => {
                sqlx::raw_sql(sql_postgres)
                    .execute(c)
                    .await
                    .expect("a script on postgres");
            }
            Db::Sqlite(c) => {
                sqlx::raw_sql(sql_sqlite)
                    .execute(c)
                    .await
                    .expect("a script on sqlite");
            }
        }
    }

    /// Runs a `SELECT count(*) ...` with at most one text parameter on either database.
    pub async fn count(
        &mut self,
        sql_postgres: &'static str,
        sql_sqlite: &'static str,
        arg: Option<&str>,
    ) -> i64 {
        match self {
            Db::Postgres(c) => {
                let q = sqlx::query_scalar::<_, i64>(sql_postgres);
                let q = match arg {
                    Some(a) => q.bind(a.to_owned()),
                    None => q,
                };
                q.fetch_one(c).await.expect("count on postgres")
            }
            Db::Sqlite(c) => {
                let q = sqlx::query_scalar::<_, i64>(sql_sqlite);
                let q = match arg {
                    Some(a) => q.bind(a.to_owned()),
                    None => q,
                };
                q.fetch_one(c).await.expect("count on sqlite")
            }
        }
    }
}

/// A running server, its database, and an API key of its own firm.
#[derive(Debug)]
pub struct TestApp {
    pub base: String,
    pub key: String,
    pub firm: Uuid,
    pub user: Uuid,
    pub http: reqwest::Client,
    /// What `serve` printed on stdout before it listened (the first-key banner, say).
    pub banner: Vec<String>,
    database_url: String,
    /// The Postgres database to drop at the end, if any.
    database_name: Option<String>,
    data_dir: Option<DataDir>,
    options: TestAppOptions,
    child: Option<Child>,
}

impl TestApp {
    pub async fn spawn(profile: Profile) -> Self {
        Self::spawn_with(TestAppOptions::new(profile)).await
    }

    pub async fn spawn_with(options: TestAppOptions) -> Self {
        let data_dir =
            DataDir(std::env::temp_dir().join(format!("filegate-it-{}", Uuid::new_v4().simple())));
        std::fs::create_dir_all(&data_dir.0).expect("create the data folder");
        let (database_url, database_name) = match options.profile {
            Profile::Azure => {
                let (url, name) = fresh_database().await;
                (url, Some(name))
            }
            Profile::Embedded => (
                format!("sqlite://{}/filegate.db", data_dir.0.display()),
                None,
            ),
        };
        let mut app = Self {
            base: String::new(),
            key: String::new(),
            firm: Uuid::new_v4(),
            user: Uuid::new_v4(),
            http: reqwest::Client::new(),
            banner: Vec::new(),
            database_url,
            database_name,
            data_dir: Some(data_dir),
            options,
            child: None,
        };
        if app.options.create_key {
            app.key = app.create_key(app.firm, app.user).await;
        }
        app.start().await;
        app
    }

    pub fn profile(&self) -> Profile {
        self.options.profile
    }

    /// The folder of the embedded profile's blobs.
    pub fn blob_root(&self) -> PathBuf {
        self.data_dir
            .as_ref()
            .expect("a data folder")
            .0
            .join("blobs")
    }

    /// The process id of the running server.
    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("a running server")
    }

    /// The `filegate` command with this app's database and blob store settings.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(binary());
        // Nothing of the developer's own configuration may leak into a test server.
        for (name, _) in
            std::env::vars().filter(|(n, _)| n.starts_with("FILEGATE_") && n.contains("__"))
        {
            cmd.env_remove(name);
        }
        cmd.env_remove("FILEGATE_CONFIG");
        cmd.env("FILEGATE_DATABASE__URL", &self.database_url)
            .env("FILEGATE_DATABASE__MAX_CONNECTIONS", "8");
        match self.options.profile {
            Profile::Azure => {
                cmd.env("FILEGATE_BLOB__KIND", "azure")
                    .env("FILEGATE_BLOB__AZURE__CONTAINER", azure_container())
                    .env(
                        "FILEGATE_BLOB__AZURE__CONNECTION_STRING",
                        azure_connection_string(),
                    )
                    .env("FILEGATE_BLOB__AZURE__URL_MODE", "sas");
            }
            Profile::Embedded => {
                cmd.env("FILEGATE_BLOB__KIND", "local")
                    .env("FILEGATE_BLOB__LOCAL__ROOT", self.blob_root());
            }
        }
        cmd.env(
            "FILEGATE_HTTP__ADDR",
            format!("127.0.0.1:{}", self.options.port.unwrap_or(0)),
        )
        .env(
            "FILEGATE_HTTP__MAX_CHUNK_BYTES",
            self.options.max_chunk_bytes.to_string(),
        )
        .env("FILEGATE_HTTP__SHUTDOWN_GRACE_SECS", "5")
        .env("FILEGATE_LOG__LEVEL", "warn")
        .envs(
            self.options
                .env
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str())),
        )
        .stdin(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
        cmd
    }

    /// Runs `filegate keys create` and answers the key from the last line of its stdout.
    pub async fn create_key(&self, firm: Uuid, user: Uuid) -> String {
        let out = self
            .command()
            .args([
                "keys",
                "create",
                "--firm",
                &firm.to_string(),
                "--user",
                &user.to_string(),
            ])
            .stdout(Stdio::piped())
            .output()
            .await
            .expect("run filegate keys create");
        assert!(
            out.status.success(),
            "keys create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let stdout = String::from_utf8(out.stdout).expect("utf-8 stdout");
        stdout
            .lines()
            .last()
            .expect("a last line")
            .trim()
            .to_owned()
    }

    /// Runs `filegate keys revoke`.
    pub async fn revoke_key(&self, key_id: &str) -> std::process::Output {
        self.command()
            .args(["keys", "revoke", key_id])
            .stdout(Stdio::piped())
            .output()
            .await
            .expect("run revoke")
    }

    async fn start(&mut self) {
        let mut child = self
            .command()
            .arg("serve")
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn filegate serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let base = tokio::time::timeout(Duration::from_secs(60), async {
            let mut banner = Vec::new();
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if let Some(addr) = line.strip_prefix("filegate listening on ") {
                    return (addr.trim().to_owned(), banner);
                }
                banner.push(line);
            }
            panic!("filegate serve exited before listening")
        })
        .await
        .expect("filegate serve did not start within 60 s");
        // Keep draining stdout so that the server never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.base = base.0;
        self.banner = base.1;
        self.child = Some(child);
    }

    /// Stops the server with SIGTERM (a graceful shutdown) and waits for it.
    pub async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Some(pid) = child.id() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &pid.to_string()])
                    .status();
            }
            let _ = tokio::time::timeout(Duration::from_secs(15), child.wait()).await;
            let _ = child.kill().await;
        }
    }

    pub async fn restart(&mut self) {
        self.stop().await;
        self.start().await;
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Posts a chunk with this app's key.
    pub async fn post_chunk(&self, chunk: crate::Chunk) -> reqwest::Response {
        self.post_chunk_as(&self.key, chunk).await
    }

    pub async fn post_chunk_as(&self, key: &str, chunk: crate::Chunk) -> reqwest::Response {
        self.http
            .post(self.url("/api/v1/Files/chunk"))
            .header("X-API-Key", key)
            .multipart(chunk.into_form())
            .send()
            .await
            .expect("send chunk")
    }

    pub async fn status(&self, file_id: &str) -> reqwest::Response {
        self.http
            .get(self.url(&format!("/api/v1/Files/{file_id}")))
            .header("X-API-Key", &self.key)
            .send()
            .await
            .expect("get status")
    }

    /// Kills the server with SIGKILL: no graceful anything, as a crash would.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Starts the server again on the same data after `stop` or `kill`.
    pub async fn start_again(&mut self) {
        self.start().await;
    }

    /// A connection to this app's database, to look at what it stored.
    pub async fn db(&self) -> Db {
        match self.options.profile {
            Profile::Azure => Db::Postgres(
                PgConnection::connect(&self.database_url)
                    .await
                    .expect("connect to postgres"),
            ),
            Profile::Embedded => Db::Sqlite(
                sqlx::SqliteConnection::connect(&self.database_url)
                    .await
                    .expect("open the sqlite database"),
            ),
        }
    }

    /// Answers the bytes at a URL the service handed out: a signed blob URL (Azure profile) or
    /// the content route (embedded profile), which needs the key.
    pub async fn fetch(&self, url: &str) -> Vec<u8> {
        let resp = self
            .http
            .get(url)
            .header("X-API-Key", &self.key)
            .send()
            .await
            .expect("GET the file url");
        assert_eq!(resp.status().as_u16(), 200, "GET {url}");
        resp.bytes().await.expect("file bytes").to_vec()
    }

    /// Checks that nothing was kept: no upload session in the metadata store and, on the
    /// embedded profile, no file under the blob folder, staging and hidden files included.
    pub async fn assert_no_files(&self) {
        let sql = "SELECT count(*) FROM upload_sessions";
        let sessions = self.db().await.count(sql, sql, None).await;
        assert_eq!(sessions, 0, "an upload session was stored");
        if matches!(self.options.profile, Profile::Embedded) {
            let mut files = Vec::new();
            let mut folders = vec![self.blob_root()];
            while let Some(folder) = folders.pop() {
                let Ok(entries) = std::fs::read_dir(&folder) else {
                    continue;
                };
                for entry in entries.flatten() {
                    match entry.file_type() {
                        Ok(t) if t.is_dir() => folders.push(entry.path()),
                        _ => files.push(entry.path()),
                    }
                }
            }
            assert!(files.is_empty(), "files were kept: {files:?}");
        }
    }

    /// Checks that a complete file's URL serves `data` and that the file is stored at
    /// `{prefix}/{fileId}/{name}` in the profile's blob store.
    pub async fn assert_stored(
        &self,
        url: &str,
        prefix: &str,
        file_id: &str,
        name: &str,
        data: &[u8],
    ) {
        let relative = format!("{prefix}/{file_id}/{name}");
        match self.options.profile {
            Profile::Azure => {
                let encoded = relative.replace(' ', "%20");
                let expected = format!("/{}/{encoded}", azure_container());
                assert!(url.contains(&expected), "{url} is not at {relative}");
            }
            Profile::Embedded => {
                assert_eq!(url, self.url(&format!("/api/v1/Files/{file_id}/content")));
                let on_disk =
                    std::fs::read(self.blob_root().join(&relative)).expect("the stored file");
                assert!(
                    on_disk == data,
                    "the file at {relative} differs from what was sent"
                );
            }
        }
        assert!(
            self.fetch(url).await == data,
            "{url} does not serve the bytes that were sent"
        );
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
        let Some(name) = self.database_name.clone() else {
            return;
        };
        // Best effort: drop the database on a thread of its own, since Drop cannot await.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build();
            if let Ok(rt) = rt {
                rt.block_on(async {
                    if let Ok(mut conn) = PgConnection::connect(&admin_url()).await {
                        let sql = format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)");
                        let _ = conn.execute(sqlx::AssertSqlSafe(sql)).await;
                    }
                });
            }
        })
        .join();
    }
}

async fn fresh_database() -> (String, String) {
    let admin = admin_url();
    let mut conn = PgConnection::connect(&admin).await.unwrap_or_else(|e| {
        panic!("cannot reach Postgres at {admin} ({e}): start it or run the tests through `scripts/test`")
    });
    let name = format!("fg_it_{}", Uuid::new_v4().simple());
    let sql = format!("CREATE DATABASE {name}");
    conn.execute(sqlx::AssertSqlSafe(sql))
        .await
        .expect("create the test database");
    let mut url = url::Url::parse(&admin).expect("admin URL");
    url.set_path(&format!("/{name}"));
    (url.to_string(), name)
}
