//! One running `filegate worker`, on the same database and blob store as a [`TestApp`], talking
//! to a fake Meta server and to the test's own queues.

use std::process::Stdio;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Child;

use crate::TestApp;
use crate::broker::Names;

/// How a worker is started.
#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub amqp_url: String,
    pub names: Names,
    pub meta_base_url: String,
    pub meta_token: String,
    pub lease_secs: u64,
    pub prefetch: u16,
    pub max_attempts: u32,
    /// `telemetry.metrics_addr`: where the worker serves `/metrics`, if anywhere.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// More environment for the worker (`OTEL_EXPORTER_OTLP_ENDPOINT`, say).
    pub env: Vec<(String, String)>,
}

impl WorkerOptions {
    /// A worker on the machine's broker with the test's `names`, sending to `meta`: a lease of
    /// 60 s, 4 deliveries at once, 5 attempts, no metrics listener.
    pub fn new(names: &Names, meta: &filegate_fake_meta::FakeMeta) -> Self {
        Self {
            amqp_url: crate::broker::broker_url(),
            names: names.clone(),
            meta_base_url: meta.base_url(),
            meta_token: meta.access_token().to_owned(),
            lease_secs: 60,
            prefetch: 4,
            max_attempts: 5,
            metrics_addr: None,
            env: Vec::new(),
        }
    }
}

#[derive(Debug)]
pub struct TestWorker {
    child: Option<Child>,
    options: WorkerOptions,
}

impl TestWorker {
    pub async fn spawn(app: &TestApp, options: WorkerOptions) -> Self {
        let mut worker = Self {
            child: None,
            options,
        };
        worker.start(app).await;
        worker
    }

    pub async fn start(&mut self, app: &TestApp) {
        let o = &self.options;
        let mut cmd = app.command();
        cmd.arg("worker")
            .envs(o.names.env(&o.amqp_url))
            .env("FILEGATE_RABBITMQ__PREFETCH", o.prefetch.to_string())
            .env(
                "FILEGATE_RABBITMQ__MAX_ATTEMPTS",
                o.max_attempts.to_string(),
            )
            .env("FILEGATE_META__BASE_URL", &o.meta_base_url)
            .env("FILEGATE_META__ACCESS_TOKEN", &o.meta_token)
            .env("FILEGATE_META__APP_ID", "1234567890")
            .env("FILEGATE_WORKER__LEASE_SECS", o.lease_secs.to_string())
            .env("FILEGATE_DATABASE__CREATE_FIRST_KEY", "false")
            .envs(o.env.iter().map(|(k, v)| (k, v)))
            .stdout(Stdio::piped());
        if let Some(addr) = o.metrics_addr {
            cmd.env("FILEGATE_TELEMETRY__METRICS_ADDR", addr.to_string());
        }
        let mut child = cmd.spawn().expect("spawn filegate worker");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        tokio::time::timeout(Duration::from_secs(60), async {
            while let Some(line) = lines.next_line().await.expect("read stdout") {
                if line.starts_with("filegate worker consuming") {
                    return;
                }
            }
            panic!("filegate worker exited before consuming")
        })
        .await
        .expect("filegate worker did not start within 60 s");
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        self.child = Some(child);
    }

    pub fn pid(&self) -> u32 {
        self.child
            .as_ref()
            .and_then(Child::id)
            .expect("a running worker")
    }

    /// SIGKILL, as a crash.
    pub async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
            let _ = child.wait().await;
        }
    }

    /// Resident memory now and at its peak, in bytes (Linux: /proc/PID/status).
    pub fn memory(&self) -> (u64, u64) {
        let status =
            std::fs::read_to_string(format!("/proc/{}/status", self.pid())).expect("/proc status");
        let kb = |key: &str| {
            status
                .lines()
                .find_map(|l| l.strip_prefix(key))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
                .map_or(0, |v| v * 1024)
        };
        (kb("VmRSS:"), kb("VmHWM:"))
    }

    /// Resets the peak resident memory (VmHWM) so that a later reading shows the peak since now.
    pub fn reset_peak_memory(&self) {
        let _ = std::fs::write(format!("/proc/{}/clear_refs", self.pid()), "5");
    }
}

impl Drop for TestWorker {
    fn drop(&mut self) {
        if let Some(child) = self.child.as_mut() {
            let _ = child.start_kill();
        }
    }
}
