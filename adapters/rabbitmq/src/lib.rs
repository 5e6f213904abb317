//! The RabbitMQ adapter of filegate, on lapin. It drives the media worker: [`run_worker`]
//! consumes the durable task queue with a bounded number of deliveries in flight, hands each
//! task to the application's `TaskHandler`, and turns its `TaskOutcome` into an ack, a retry
//! that waits in a per-step delay queue (exponential back-off that survives a broker restart),
//! or a dead letter with the reason in its headers (the use case's typed reason becomes header
//! text here, by its `Display`); a follow-up copy is always confirmed by the
//! broker before the original is acknowledged, so a crash redelivers and never loses a task.
//! It also implements the `EventPublisher` port: [`RabbitPublisher`] sends file events to a
//! durable topic exchange (and tasks to the queue) with publisher confirms. Both declare their
//! topology ([`Topology`]) idempotently on every connect and reconnect by themselves after the
//! broker goes away. Names, limits and delays come from [`RabbitSettings`].

mod amqp;
mod error;
mod headers;
mod publisher;
mod settings;
mod topology;
mod worker;

pub use error::RabbitError;
pub use headers::{ATTEMPT_HEADER, ATTEMPTS_HEADER, LAST_ERROR_HEADER, REASON_HEADER};
pub use publisher::RabbitPublisher;
pub use settings::RabbitSettings;
pub use topology::{RetryQueue, Topology};
pub use worker::run_worker;
