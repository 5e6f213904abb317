//! What can stop the worker, and how lapin's failures are sorted.

use lapin::ErrorKind;
use lapin::protocol::{AMQPErrorKind, AMQPSoftError};

/// A failure of the adapter itself. The worker returns only the permanent ones (settings, a
/// topology the broker refuses); an unreachable or lost broker is retried, not returned. The
/// cause is the error's `source` (log it with `{:#}` through anyhow, or walk the chain).
#[derive(Debug, thiserror::Error)]
pub enum RabbitError {
    /// The settings cannot work (bad URL, zero prefetch, a name over 255 bytes, ...).
    #[error("invalid RabbitMQ settings: {0}")]
    InvalidSettings(String),
    /// The broker refused to declare a queue or exchange: it exists with other arguments
    /// (406 PRECONDITION_FAILED) or the user may not declare it (403 ACCESS_REFUSED).
    /// Reconnecting cannot help; an operator has to delete the old one or fix the settings.
    #[error("RabbitMQ refused to declare `{name}`")]
    Topology {
        name: String,
        #[source]
        source: lapin::Error,
    },
    /// The broker could not be reached or the connection broke.
    #[error("RabbitMQ is unavailable")]
    Unavailable(#[source] anyhow::Error),
}

impl RabbitError {
    /// A failed declaration: permanent when the broker itself refused it, otherwise the
    /// connection is to blame.
    pub(crate) fn declaring(name: &str, source: lapin::Error) -> Self {
        if is_refusal(&source) {
            RabbitError::Topology {
                name: name.to_owned(),
                source,
            }
        } else {
            RabbitError::Unavailable(
                anyhow::Error::new(source).context(format!("declaring `{name}`")),
            )
        }
    }

    /// Whether retrying (after a reconnect) might work.
    pub fn is_transient(&self) -> bool {
        matches!(self, RabbitError::Unavailable(_))
    }
}

/// The broker closed the channel because it refuses the request, not because of the network.
fn is_refusal(err: &lapin::Error) -> bool {
    matches!(
        err.kind(),
        ErrorKind::ProtocolError(amqp) if matches!(
            amqp.kind(),
            AMQPErrorKind::Soft(AMQPSoftError::PRECONDITIONFAILED | AMQPSoftError::ACCESSREFUSED)
        )
    )
}
