//! The consumer: takes tasks from the queue, hands them to the application's `TaskHandler`,
//! and turns each outcome into an ack, a delayed retry or a dead letter.
//!
//! The order of a follow-up is fixed: the copy (retry or dead letter) is published and
//! confirmed by the broker first, the original is acknowledged after. A crash or a lost
//! connection in between leaves the original unacknowledged, so the broker delivers it again:
//! a task can be handled twice (the handler is idempotent by task id), never lost.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::{Pin, pin};
use std::sync::Arc;

use anyhow::Context as _;
use filegate_adapter_otel::{TRACEPARENT, TRACESTATE, continue_trace};
use filegate_application::media_ports::{TaskHandler, TaskOutcome};
use futures::{FutureExt as _, StreamExt as _};
use lapin::message::Delivery;
use lapin::options::{
    BasicAckOptions, BasicCancelOptions, BasicConsumeOptions, BasicQosOptions, ConfirmSelectOptions,
};
use lapin::types::FieldTable;
use lapin::uri::AMQPUri;
use lapin::{Channel, Connection, Consumer};
use tokio::task::JoinSet;
use tracing::Instrument as _;

use crate::amqp::{connect, publish_confirmed, unavailable};
use crate::error::RabbitError;
use crate::headers::{
    ATTEMPT_HEADER, ATTEMPTS_HEADER, LAST_ERROR_HEADER, REASON_HEADER, attempt_of, copy_properties,
    count_value, reason_value, text_header,
};
use crate::settings::RabbitSettings;
use crate::topology::Topology;

/// The consumer tag; unique per channel is enough, and every session has its own channel.
const CONSUMER_TAG: &str = "filegate-worker";

/// Runs the worker until `shutdown` completes: consumes the task queue with `prefetch`
/// deliveries in flight, hands each to `handler`, and settles it by its outcome. When the
/// broker cannot be reached or the connection drops, it logs, waits `reconnect_delay_ms` and
/// connects again, for as long as it takes. On shutdown it stops taking deliveries, lets the
/// handlers in flight finish and settle, then closes the connection; deliveries the broker had
/// sent ahead but no handler took go back to the queue.
///
/// Returns an error only for what reconnecting cannot fix: invalid settings, or a topology
/// the broker refuses (a queue declared elsewhere with other arguments, missing permissions).
pub async fn run_worker(
    settings: RabbitSettings,
    handler: Arc<dyn TaskHandler>,
    shutdown: impl Future<Output = ()>,
) -> Result<(), RabbitError> {
    let uri = settings.validate()?;
    let plan = Arc::new(Plan {
        topology: settings.topology(),
        settings,
    });
    let mut shutdown = pin!(shutdown);
    loop {
        let opened = tokio::select! {
            biased;
            () = shutdown.as_mut() => return Ok(()),
            opened = open_session(&uri, &plan) => opened,
        };
        match opened {
            Ok(session) => {
                tracing::info!(queue = %plan.topology.queue, prefetch = plan.settings.prefetch, "consuming tasks");
                match consume(session, &plan, &handler, shutdown.as_mut()).await {
                    SessionEnd::Shutdown => return Ok(()),
                    SessionEnd::Lost(err) => tracing::warn!(
                        error = format!("{err:#}"),
                        retry_in_ms = plan.settings.reconnect_delay_ms,
                        "lost the RabbitMQ connection; reconnecting"
                    ),
                }
            }
            Err(err) if !err.is_transient() => return Err(err),
            Err(err) => tracing::warn!(
                error = format!("{:#}", anyhow::Error::new(err)),
                retry_in_ms = plan.settings.reconnect_delay_ms,
                "cannot reach RabbitMQ; trying again"
            ),
        }
        tokio::select! {
            biased;
            () = shutdown.as_mut() => return Ok(()),
            () = tokio::time::sleep(plan.settings.reconnect_delay()) => {}
        }
    }
}

/// What every delivery's task needs, shared.
#[derive(Debug)]
struct Plan {
    settings: RabbitSettings,
    topology: Topology,
}

struct Session {
    connection: Connection,
    /// The channel deliveries arrive and are acknowledged on.
    consume: Channel,
    /// A channel in confirm mode for the follow-up copies.
    publish: Channel,
    consumer: Consumer,
}

async fn open_session(uri: &AMQPUri, plan: &Plan) -> Result<Session, RabbitError> {
    let timeout = plan.settings.connect_timeout();
    let open = async {
        let connection = connect(uri, "filegate-worker", timeout).await?;
        let publish = connection
            .create_channel()
            .await
            .map_err(unavailable("opening a channel"))?;
        plan.topology.declare(&publish).await?;
        publish
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unavailable("enabling publisher confirms"))?;
        let consume = connection
            .create_channel()
            .await
            .map_err(unavailable("opening a channel"))?;
        consume
            .basic_qos(plan.settings.prefetch, BasicQosOptions::default())
            .await
            .map_err(unavailable("setting the prefetch"))?;
        let consumer = consume
            .basic_consume(
                plan.topology.queue.as_str().into(),
                CONSUMER_TAG.into(),
                BasicConsumeOptions {
                    no_ack: false,
                    ..BasicConsumeOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(unavailable("starting to consume"))?;
        Ok(Session {
            connection,
            consume,
            publish,
            consumer,
        })
    };
    // The connect has its own bound; this one covers the declarations after it.
    match tokio::time::timeout(timeout.saturating_mul(2), open).await {
        Ok(result) => result,
        Err(_) => Err(RabbitError::Unavailable(anyhow::anyhow!(
            "RabbitMQ did not answer while setting up within {:?}",
            timeout.saturating_mul(2)
        ))),
    }
}

enum SessionEnd {
    Shutdown,
    Lost(anyhow::Error),
}

/// Consumes until shutdown or until the session breaks; in both cases only after every
/// handler in flight has finished.
async fn consume<F: Future<Output = ()>>(
    session: Session,
    plan: &Arc<Plan>,
    handler: &Arc<dyn TaskHandler>,
    mut shutdown: Pin<&mut F>,
) -> SessionEnd {
    let Session {
        connection,
        consume: channel,
        publish,
        mut consumer,
    } = session;
    let limit = usize::from(plan.settings.prefetch);
    let mut in_flight: JoinSet<anyhow::Result<()>> = JoinSet::new();
    let mut stopping: Option<SessionEnd> = None;
    loop {
        if stopping.is_some() && in_flight.is_empty() {
            break;
        }
        let shutting_down = matches!(stopping, Some(SessionEnd::Shutdown));
        tokio::select! {
            biased;
            () = shutdown.as_mut(), if !shutting_down => {
                tracing::info!(in_flight = in_flight.len(), "stopping: finishing the tasks in flight");
                if stopping.is_none() {
                    // No more deliveries; those already sent stay unacknowledged and go back
                    // to the queue when the channel closes.
                    let cancel = channel.basic_cancel(CONSUMER_TAG.into(), BasicCancelOptions::default());
                    if let Ok(Err(err)) = tokio::time::timeout(plan.settings.connect_timeout(), cancel).await {
                        tracing::debug!(%err, "cancelling the consumer failed");
                    }
                }
                stopping = Some(SessionEnd::Shutdown);
            }
            Some(joined) = in_flight.join_next() => match joined {
                Ok(Ok(())) => {}
                Ok(Err(err)) => {
                    // A copy that could not be confirmed, or an ack that did not go out: the
                    // channel is not to be trusted; everything unacknowledged is redelivered
                    // once the connection is dropped.
                    if stopping.is_none() {
                        stopping = Some(SessionEnd::Lost(err));
                    } else {
                        tracing::warn!(error = format!("{err:#}"), "a task could not be settled; it will be redelivered");
                    }
                }
                // Handler panics are caught inside the task; this is a bug in the adapter.
                Err(err) => tracing::error!(%err, "a task's settling panicked; it will be redelivered"),
            },
            next = consumer.next(), if stopping.is_none() && in_flight.len() < limit => match next {
                Some(Ok(delivery)) => {
                    in_flight.spawn(settle(delivery, Arc::clone(handler), publish.clone(), Arc::clone(plan)));
                }
                Some(Err(err)) => stopping = Some(SessionEnd::Lost(anyhow::Error::new(err))),
                None => stopping = Some(SessionEnd::Lost(anyhow::anyhow!("the broker cancelled the consumer (was the queue deleted?)"))),
            },
            else => break,
        }
    }
    let end = stopping.unwrap_or_else(|| SessionEnd::Lost(anyhow::anyhow!("the consumer ended")));
    drop(consumer);
    if matches!(end, SessionEnd::Shutdown) && connection.status().connected() {
        let close = connection.close(200, "shutting down".into());
        match tokio::time::timeout(plan.settings.connect_timeout(), close).await {
            Ok(Ok(())) => tracing::info!("closed the RabbitMQ connection"),
            Ok(Err(err)) => tracing::debug!(%err, "closing the RabbitMQ connection failed"),
            Err(_) => tracing::debug!("closing the RabbitMQ connection timed out"),
        }
    }
    end
}

/// Runs the handler on one delivery and settles it. An error means the delivery could not be
/// settled (it stays unacknowledged and will be redelivered) and the channel is suspect.
async fn settle(
    delivery: Delivery,
    handler: Arc<dyn TaskHandler>,
    publish: Channel,
    plan: Arc<Plan>,
) -> anyhow::Result<()> {
    let attempt = attempt_of(&delivery.properties);
    let span = tracing::info_span!(
        "task",
        attempt,
        delivery_tag = delivery.delivery_tag,
        message_id = delivery
            .properties
            .message_id()
            .as_ref()
            .map(|m| m.as_str()),
        redelivered = delivery.redelivered,
        otel.kind = "consumer",
    );
    // The producer's trace goes on through the blob read, the Meta calls and the send; a retry
    // copy keeps the header, so every attempt joins the same trace.
    continue_trace(
        &span,
        text_header(&delivery.properties, TRACEPARENT).as_deref(),
        text_header(&delivery.properties, TRACESTATE).as_deref(),
    );
    async move {
        let body = delivery.data.as_slice();
        // Inside the async block so that a panic while creating the future is caught too.
        let run = AssertUnwindSafe(async { handler.handle(body, attempt).await });
        let verdict = match run.catch_unwind().await {
            Ok(outcome) => Verdict::from(outcome),
            Err(panic) => {
                let reason = format!("the handler panicked: {}", panic_message(&*panic));
                tracing::error!(%reason, "treating the panic as a failed attempt");
                Verdict::Retry(reason)
            }
        };
        let settings = &plan.settings;
        match &verdict {
            Verdict::Ack => {}
            Verdict::Retry(reason) if attempt < settings.max_attempts => {
                let delay = settings.retry_delay(attempt);
                let Some(step) = plan.topology.retry_queue_for(delay) else {
                    anyhow::bail!("no delay queue for attempt {attempt}");
                };
                let properties = copy_properties(
                    &delivery.properties,
                    vec![
                        (ATTEMPT_HEADER, count_value(attempt + 1)),
                        (LAST_ERROR_HEADER, reason_value(reason)),
                    ],
                );
                publish_confirmed(
                    &publish,
                    "",
                    step.name.as_str().into(),
                    true,
                    body,
                    properties,
                    settings.confirm_timeout(),
                )
                .await
                .with_context(|| format!("publishing the retry to `{}`", step.name))?;
                tracing::warn!(%reason, retry_in_ms = delay.as_millis(), "the task failed; retrying later");
            }
            Verdict::Retry(reason) | Verdict::Dead(reason) => {
                let properties = copy_properties(
                    &delivery.properties,
                    vec![
                        (ATTEMPT_HEADER, count_value(attempt)),
                        (REASON_HEADER, reason_value(reason)),
                        (ATTEMPTS_HEADER, count_value(attempt)),
                    ],
                );
                publish_confirmed(
                    &publish,
                    "",
                    plan.topology.dead_queue.as_str().into(),
                    true,
                    body,
                    properties,
                    settings.confirm_timeout(),
                )
                .await
                .with_context(|| format!("publishing the dead letter to `{}`", plan.topology.dead_queue))?;
                let last = matches!(verdict, Verdict::Retry(_));
                tracing::error!(%reason, attempts = attempt, after_last_attempt = last, "the task is dead-lettered");
            }
        }
        let acked = delivery
            .ack(BasicAckOptions::default())
            .await
            .context("acknowledging the task")?;
        if !acked {
            anyhow::bail!("the task could not be acknowledged: its channel is gone");
        }
        if matches!(verdict, Verdict::Ack) {
            tracing::debug!("the task is done");
        }
        Ok(())
    }
    .instrument(span)
    .await
}

/// A delivery's outcome as the broker and the log see it. The use case's typed reason becomes
/// text here and nowhere before: headers and log lines are the only readers that need text.
enum Verdict {
    Ack,
    Retry(String),
    Dead(String),
}

impl From<TaskOutcome> for Verdict {
    fn from(outcome: TaskOutcome) -> Self {
        match outcome {
            TaskOutcome::Done => Verdict::Ack,
            TaskOutcome::Retry(reason) => Verdict::Retry(reason.to_string()),
            TaskOutcome::Dead(reason) => Verdict::Dead(reason.to_string()),
        }
    }
}

fn panic_message(panic: &(dyn Any + Send)) -> &str {
    if let Some(s) = panic.downcast_ref::<&'static str>() {
        s
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s
    } else {
        "(no message)"
    }
}
