//! The queues and exchange of the adapter, declared (durable, idempotently) on every connect.
//!
//! Retries wait in delay queues rather than in the worker's memory or in a broker plugin, so
//! that a waiting retry survives a restart of the worker or the broker: a delay queue has no
//! consumer, a per-queue TTL (`x-message-ttl`) and the default exchange as its dead-letter
//! exchange with the task queue as routing key, so a message that expires there goes back to
//! the task queue. One queue per back-off step, because RabbitMQ expires messages only at the
//! head of a queue: a 1 s retry behind a 60 s one in a shared queue would wait 60 s.

use std::time::Duration;

use lapin::options::{ExchangeDeclareOptions, QueueDeclareOptions};
use lapin::types::{AMQPValue, FieldTable, LongString};
use lapin::{Channel, ExchangeKind};

use crate::error::RabbitError;

/// Every name the adapter declares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The task queue (durable, no arguments, so that producers may declare it too).
    pub queue: String,
    /// The dead-letter queue (durable, no arguments).
    pub dead_queue: String,
    /// The delay queues, shortest first.
    pub retry_queues: Vec<RetryQueue>,
    /// The events exchange (durable, topic).
    pub events_exchange: String,
}

/// One back-off step: a durable queue whose messages return to the task queue after `delay`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryQueue {
    pub name: String,
    pub delay: Duration,
}

impl Topology {
    /// The delay queue for the retry after `attempt` failed: the step with that attempt's
    /// delay (`None` only when there are no steps, i.e. a single attempt).
    pub(crate) fn retry_queue_for(&self, delay: Duration) -> Option<&RetryQueue> {
        self.retry_queues
            .iter()
            .find(|q| q.delay == delay)
            .or(self.retry_queues.last())
    }

    /// Declares everything; idempotent as long as nobody declared the same names with other
    /// arguments (then the broker answers 406 and the channel is closed).
    pub(crate) async fn declare(&self, channel: &Channel) -> Result<(), RabbitError> {
        channel
            .exchange_declare(
                self.events_exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| RabbitError::declaring(&self.events_exchange, e))?;
        for plain in [&self.queue, &self.dead_queue] {
            declare_queue(channel, plain, FieldTable::default()).await?;
        }
        for step in &self.retry_queues {
            let mut args = FieldTable::default();
            let ttl_ms = i64::try_from(step.delay.as_millis()).unwrap_or(i64::MAX);
            args.insert("x-message-ttl".into(), AMQPValue::LongLongInt(ttl_ms));
            args.insert(
                "x-dead-letter-exchange".into(),
                AMQPValue::LongString(LongString::from("")),
            );
            args.insert(
                "x-dead-letter-routing-key".into(),
                AMQPValue::LongString(LongString::from(self.queue.as_str())),
            );
            declare_queue(channel, &step.name, args).await?;
        }
        Ok(())
    }
}

async fn declare_queue(channel: &Channel, name: &str, args: FieldTable) -> Result<(), RabbitError> {
    channel
        .queue_declare(name.into(), QueueDeclareOptions::durable(), args)
        .await
        .map(|_| ())
        .map_err(|e| RabbitError::declaring(name, e))
}
