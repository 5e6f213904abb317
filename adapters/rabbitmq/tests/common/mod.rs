//! Shared by the tests: settings with names of their own, a handler driven by a closure, a
//! worker that can be stopped, and a direct line to the broker to look into queues.
//!
//! The broker is the machine's RabbitMQ (`FILEGATE_TEST_AMQP_URL`, default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`); it is shared, so nothing here stops it, and every
//! test deletes its own queues and exchange at the end (best effort).

#![allow(dead_code)]

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use filegate_adapter_rabbitmq::{RabbitError, RabbitSettings, run_worker};
use filegate_application::media::{DeadReason, RetryReason};
use filegate_application::media_ports::{MetaError, MetaFault, TaskHandler, TaskOutcome};
use futures::future::BoxFuture;
use lapin::message::Delivery;
use lapin::options::{
    BasicGetOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::{Channel, Connection, ConnectionProperties};
use secrecy::{ExposeSecret, SecretString};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

pub fn broker_url() -> String {
    std::env::var("FILEGATE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The broker's address, for a proxy in front of it.
pub fn broker_addr() -> SocketAddr {
    let url = broker_url();
    let uri: lapin::uri::AMQPUri = url.parse().unwrap();
    let host = if uri.authority.host == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        uri.authority.host
    };
    format!("{host}:{}", uri.authority.port).parse().unwrap()
}

/// The broker URL with its host and port replaced by `addr` (a proxy).
pub fn url_via(addr: SocketAddr) -> String {
    let uri: lapin::uri::AMQPUri = broker_url().parse().unwrap();
    let user = &uri.authority.userinfo;
    let vhost = if uri.vhost == "/" {
        "%2f".to_owned()
    } else {
        uri.vhost.clone()
    };
    format!("amqp://{}:{}@{addr}/{vhost}", user.username, user.password)
}

/// Logs to the test's output, filtered by `RUST_LOG` (nothing by default).
pub fn init_logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

/// Settings whose every name is unique to this test, with small delays.
pub fn settings(test: &str) -> RabbitSettings {
    init_logs();
    let id = uuid::Uuid::new_v4().simple().to_string();
    let base = format!("filegate.test.{test}.{}", &id[..12]);
    RabbitSettings {
        url: SecretString::from(broker_url()),
        queue: base.clone(),
        dead_queue: format!("{base}.dead"),
        retry_queue_prefix: None,
        events_exchange: format!("{base}.events"),
        prefetch: 4,
        max_attempts: 3,
        retry_base_delay_ms: 200,
        retry_max_delay_ms: 2000,
        reconnect_delay_ms: 200,
        connect_timeout_ms: 2000,
        confirm_timeout_ms: 5000,
    }
}

/// One call of the handler.
#[derive(Debug, Clone)]
pub struct Call {
    pub body: Vec<u8>,
    pub attempt: u32,
    pub at: Instant,
}

/// A retry as the use case gives one when Meta is down; the adapter shows it as
/// `Meta is unavailable: {message}`.
pub fn retry(message: &str) -> TaskOutcome {
    TaskOutcome::Retry(RetryReason::Meta(MetaError::Transient(MetaFault {
        message: message.to_owned(),
        ..MetaFault::default()
    })))
}

/// A dead end as the use case gives one when Meta refuses a task; the adapter shows it as
/// `Meta refused the request: {message}`.
pub fn dead(message: &str) -> TaskOutcome {
    TaskOutcome::Dead(DeadReason::Rejected(MetaFault {
        message: message.to_owned(),
        ..MetaFault::default()
    }))
}

/// A `TaskHandler` that reports every call and answers with `script`.
pub struct ScriptedHandler<F> {
    calls: mpsc::UnboundedSender<Call>,
    script: F,
}

impl<F> TaskHandler for ScriptedHandler<F>
where
    F: Fn(Vec<u8>, u32) -> BoxFuture<'static, TaskOutcome> + Send + Sync + 'static,
{
    fn handle<'a>(&'a self, body: &'a [u8], attempt: u32) -> BoxFuture<'a, TaskOutcome> {
        let _ = self.calls.send(Call {
            body: body.to_vec(),
            attempt,
            at: Instant::now(),
        });
        (self.script)(body.to_vec(), attempt)
    }
}

pub fn scripted<F>(script: F) -> (Arc<dyn TaskHandler>, mpsc::UnboundedReceiver<Call>)
where
    F: Fn(Vec<u8>, u32) -> BoxFuture<'static, TaskOutcome> + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    (Arc::new(ScriptedHandler { calls: tx, script }), rx)
}

/// The next call, or a panic after `within`.
pub async fn next_call(calls: &mut mpsc::UnboundedReceiver<Call>, within: Duration) -> Call {
    tokio::time::timeout(within, calls.recv())
        .await
        .expect("the handler was not called in time")
        .expect("the handler is gone")
}

/// Asserts that the handler is not called for `during`.
pub async fn no_call(calls: &mut mpsc::UnboundedReceiver<Call>, during: Duration) {
    if let Ok(Some(call)) = tokio::time::timeout(during, calls.recv()).await {
        panic!("unexpected call: attempt {}", call.attempt);
    }
}

/// A worker running in the background until [`Worker::stop`].
pub struct Worker {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), RabbitError>>,
}

impl Worker {
    pub fn start(settings: RabbitSettings, handler: Arc<dyn TaskHandler>) -> Worker {
        let (stop, stopped) = oneshot::channel::<()>();
        let shutdown = async move {
            let _ = stopped.await;
        };
        Worker {
            stop: Some(stop),
            task: tokio::spawn(run_worker(settings, handler, shutdown)),
        }
    }

    /// Asks the worker to stop and waits for it (at most 10 s).
    pub async fn stop(mut self) -> Result<(), RabbitError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        tokio::time::timeout(Duration::from_secs(10), &mut self.task)
            .await
            .expect("the worker did not stop within 10 s")
            .expect("the worker panicked")
    }

    pub fn is_finished(&self) -> bool {
        self.task.is_finished()
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A direct connection to the broker, for looking into queues and cleaning up.
pub struct Broker {
    _connection: Connection,
    pub channel: Channel,
}

impl Broker {
    pub async fn connect() -> Broker {
        let connection = Connection::connect(&broker_url(), ConnectionProperties::default())
            .await
            .expect("RabbitMQ is not running on the test URL");
        let channel = connection.create_channel().await.unwrap();
        Broker {
            _connection: connection,
            channel,
        }
    }

    /// Ready messages in `queue` (not counting unacknowledged ones).
    pub async fn ready(&self, queue: &str) -> u32 {
        self.channel
            .queue_declare(
                queue.into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap()
            .message_count()
    }

    /// Waits until `queue` holds `count` ready messages (at most `within`).
    pub async fn wait_ready(&self, queue: &str, count: u32, within: Duration) {
        self.wait_ready_in(queue, count..=count, within).await;
    }

    /// Waits until the ready messages of `queue` are within `counts` (at most `within`): for a
    /// publish that may or may not have arrived (at least once).
    pub async fn wait_ready_in(
        &self,
        queue: &str,
        counts: std::ops::RangeInclusive<u32>,
        within: Duration,
    ) {
        let count = counts.clone();
        let deadline = Instant::now() + within;
        loop {
            let now = self.ready(queue).await;
            if counts.contains(&now) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{queue}` holds {now} ready messages, not {count:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Takes one message off `queue` (acknowledged at once).
    pub async fn get(&self, queue: &str) -> Option<Delivery> {
        self.channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .unwrap()
            .map(|m| m.delivery)
    }

    /// Deletes every queue and the exchange of `settings`, ignoring failures.
    pub async fn cleanup(&self, settings: &RabbitSettings) {
        let topology = settings.topology();
        let mut queues = vec![topology.queue, topology.dead_queue];
        queues.extend(topology.retry_queues.into_iter().map(|q| q.name));
        for queue in queues {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self
            .channel
            .exchange_delete(
                topology.events_exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

/// Deletes a test's queues and exchange when dropped, even when the test fails (best effort,
/// on a connection of its own, since `Drop` cannot await).
pub struct Cleanup {
    settings: RabbitSettings,
    extra_queues: Vec<String>,
}

impl Cleanup {
    pub fn new(settings: &RabbitSettings) -> Cleanup {
        Cleanup {
            settings: settings.clone(),
            extra_queues: Vec::new(),
        }
    }

    /// Also deletes `queue` (a subscriber queue the test declared).
    pub fn queue(&mut self, queue: &str) {
        self.extra_queues.push(queue.to_owned());
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let settings = self.settings.clone();
        let extra = std::mem::take(&mut self.extra_queues);
        let cleaning = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                let Ok(Ok(connection)) = tokio::time::timeout(
                    Duration::from_secs(5),
                    Connection::connect(&broker_url(), ConnectionProperties::default()),
                )
                .await
                else {
                    return;
                };
                let Ok(channel) = connection.create_channel().await else {
                    return;
                };
                let broker = Broker {
                    _connection: connection,
                    channel,
                };
                for queue in &extra {
                    let _ = broker
                        .channel
                        .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                        .await;
                }
                broker.cleanup(&settings).await;
            });
        });
        let _ = cleaning.join();
    }
}

/// A header of a delivery, if present.
pub fn header<'a>(delivery: &'a Delivery, name: &str) -> Option<&'a AMQPValue> {
    delivery
        .properties
        .headers()
        .as_ref()
        .and_then(|h| h.inner().get(name))
}

pub fn header_text(delivery: &Delivery, name: &str) -> Option<String> {
    match header(delivery, name)? {
        AMQPValue::LongString(s) => Some(String::from_utf8_lossy(s.as_bytes()).into_owned()),
        other => panic!("`{name}` is not a string: {other:?}"),
    }
}

pub fn header_number(delivery: &Delivery, name: &str) -> Option<i64> {
    match header(delivery, name)? {
        AMQPValue::LongLongInt(n) => Some(*n),
        other => panic!("`{name}` is not a long long int: {other:?}"),
    }
}

/// Publishes `count` tasks through a publisher built from `settings`.
pub async fn publish_tasks(settings: &RabbitSettings, bodies: impl IntoIterator<Item = Vec<u8>>) {
    let publisher = filegate_adapter_rabbitmq::RabbitPublisher::new(settings.clone()).unwrap();
    for body in bodies {
        publisher.publish_task(&body).await.unwrap();
    }
}

/// Runs `f` until it gives `Some`, polling every 50 ms, at most `within`.
pub async fn eventually<T, Fut>(within: Duration, mut f: impl FnMut() -> Fut) -> T
where
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "the condition did not hold in time"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn secret_url(settings: &RabbitSettings) -> &str {
    settings.url.expose_secret()
}
