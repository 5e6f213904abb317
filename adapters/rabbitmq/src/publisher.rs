//! The publisher: file events to the events exchange, and tasks to the task queue, each
//! confirmed by the broker before the call returns.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use filegate_adapter_otel::{TRACEPARENT, current_traceparent};
use filegate_application::media_ports::{EventPublisher, OutgoingEvent, PublishError};
use lapin::options::ConfirmSelectOptions;
use lapin::types::{AMQPValue, FieldTable, LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Connection};
use tokio::sync::Mutex;

use crate::amqp::{connect, publish_confirmed, unavailable};
use crate::error::RabbitError;
use crate::headers::PERSISTENT;
use crate::settings::RabbitSettings;
use crate::topology::Topology;

/// Publishes with publisher confirms on one shared connection. Cheap to clone (clones share
/// the connection). The connection is opened on first use, or by [`RabbitPublisher::connect`];
/// after any failure it is dropped and the next publish opens a new one, so a broker that
/// comes back is picked up without a restart. Publishes run concurrently on one channel; a
/// reconnect is done once, by whichever publish comes first.
#[derive(Clone)]
pub struct RabbitPublisher {
    inner: Arc<Inner>,
}

struct Inner {
    /// Holds the password: kept out of `Debug`.
    uri: AMQPUri,
    settings: RabbitSettings,
    topology: Topology,
    session: Mutex<Option<Arc<Session>>>,
    sessions_opened: AtomicU64,
}

struct Session {
    id: u64,
    /// Kept open for as long as the session is in use; dropping it closes the connection.
    _connection: Connection,
    channel: Channel,
}

impl fmt::Debug for RabbitPublisher {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitPublisher")
            .field("settings", &self.inner.settings)
            .finish_non_exhaustive()
    }
}

impl RabbitPublisher {
    /// A publisher that connects on its first publish. Fails only on invalid settings.
    pub fn new(settings: RabbitSettings) -> Result<Self, RabbitError> {
        let uri = settings.validate()?;
        Ok(Self {
            inner: Arc::new(Inner {
                uri,
                topology: settings.topology(),
                settings,
                session: Mutex::new(None),
                sessions_opened: AtomicU64::new(0),
            }),
        })
    }

    /// A publisher that is connected (and has declared the topology) before it is returned:
    /// for a start-up check that the broker is there.
    pub async fn connect(settings: RabbitSettings) -> Result<Self, RabbitError> {
        let publisher = Self::new(settings)?;
        publisher.session().await?;
        Ok(publisher)
    }

    /// What the publisher declares when it connects.
    pub fn topology(&self) -> &Topology {
        &self.inner.topology
    }

    /// Publishes a task body to the task queue (persistent, `application/json`, attempt 1 as
    /// the header is absent) and waits for the broker's confirmation. The current span's
    /// trace, if any, goes along in the `traceparent` header.
    pub async fn publish_task(&self, body: &[u8]) -> Result<(), PublishError> {
        self.publish_task_in_trace(body, current_traceparent().as_deref())
            .await
    }

    /// [`Self::publish_task`] with the given W3C `traceparent` (a producer's own trace).
    pub async fn publish_task_in_trace(
        &self,
        body: &[u8],
        traceparent: Option<&str>,
    ) -> Result<(), PublishError> {
        let properties = with_traceparent(
            BasicProperties::default()
                .with_content_type("application/json".into())
                .with_delivery_mode(PERSISTENT)
                .with_timestamp(now_secs()),
            traceparent,
        );
        let queue = self.inner.topology.queue.as_str().into();
        // Mandatory: a task that reaches no queue is an error, not a silent drop.
        self.publish_confirmed("", queue, true, body, properties)
            .await
            .map_err(|e| PublishError(e.context("publishing a task")))
    }

    async fn publish_confirmed(
        &self,
        exchange: &str,
        routing_key: ShortString,
        mandatory: bool,
        body: &[u8],
        properties: BasicProperties,
    ) -> anyhow::Result<()> {
        let session = self.session().await?;
        let result = publish_confirmed(
            &session.channel,
            exchange,
            routing_key,
            mandatory,
            body,
            properties,
            self.inner.settings.confirm_timeout(),
        )
        .await;
        match result {
            Ok(()) => Ok(()),
            Err(err) => {
                if !err.channel_is_sound() {
                    self.forget(session.id).await;
                }
                Err(anyhow::Error::new(err))
            }
        }
    }

    /// The open session, or a new one when there is none or it broke.
    async fn session(&self) -> Result<Arc<Session>, RabbitError> {
        let mut current = self.inner.session.lock().await;
        if let Some(session) = current.as_ref()
            && session.channel.status().connected()
        {
            return Ok(Arc::clone(session));
        }
        *current = None;
        let settings = &self.inner.settings;
        let open = async {
            let connection = connect(
                &self.inner.uri,
                "filegate-publisher",
                settings.connect_timeout(),
            )
            .await?;
            let channel = connection
                .create_channel()
                .await
                .map_err(unavailable("opening a channel"))?;
            self.inner.topology.declare(&channel).await?;
            channel
                .confirm_select(ConfirmSelectOptions::default())
                .await
                .map_err(unavailable("enabling publisher confirms"))?;
            Ok::<_, RabbitError>((connection, channel))
        };
        let (connection, channel) =
            match tokio::time::timeout(settings.connect_timeout().saturating_mul(2), open).await {
                Ok(opened) => opened?,
                Err(_) => {
                    return Err(RabbitError::Unavailable(anyhow::anyhow!(
                        "RabbitMQ did not answer while setting up the publisher"
                    )));
                }
            };
        let id = self.inner.sessions_opened.fetch_add(1, Ordering::Relaxed) + 1;
        tracing::debug!(session = id, "the publisher is connected to RabbitMQ");
        let session = Arc::new(Session {
            id,
            _connection: connection,
            channel,
        });
        *current = Some(Arc::clone(&session));
        Ok(session)
    }

    /// Drops the session `id` (unless a newer one replaced it already), so that the next
    /// publish connects again.
    async fn forget(&self, id: u64) {
        let mut current = self.inner.session.lock().await;
        if current.as_ref().is_some_and(|s| s.id == id) {
            *current = None;
            tracing::debug!(
                session = id,
                "dropped the publisher's RabbitMQ session after a failure"
            );
        }
    }
}

impl EventPublisher for RabbitPublisher {
    async fn publish(&self, event: &OutgoingEvent) -> Result<(), PublishError> {
        let routing_key = ShortString::try_new(event.routing_key.as_str()).map_err(|e| {
            PublishError(anyhow::Error::new(e).context("the routing key is too long"))
        })?;
        let message_id = ShortString::try_new(event.id.as_str())
            .map_err(|e| PublishError(anyhow::Error::new(e).context("the event id is too long")))?;
        let properties = BasicProperties::default()
            .with_message_id(message_id)
            .with_content_type("application/json".into())
            .with_delivery_mode(PERSISTENT)
            .with_timestamp(now_secs());
        // The committing request's trace, for consumers to continue.
        let properties = with_traceparent(properties, event.trace_parent.as_deref());
        // Not mandatory: an event nobody subscribed to is not an error.
        self.publish_confirmed(
            &self.inner.topology.events_exchange,
            routing_key,
            false,
            &event.payload,
            properties,
        )
        .await
        .map_err(|e| {
            PublishError(e.context(format!(
                "publishing event {} ({})",
                event.id, event.routing_key
            )))
        })
    }
}

/// Adds the `traceparent` header (W3C trace context) when there is a trace to pass on.
fn with_traceparent(properties: BasicProperties, traceparent: Option<&str>) -> BasicProperties {
    match traceparent {
        Some(traceparent) => properties.with_headers(FieldTable::from(BTreeMap::from([(
            ShortString::from(TRACEPARENT),
            AMQPValue::LongString(LongString::from(traceparent)),
        )]))),
        None => properties,
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
