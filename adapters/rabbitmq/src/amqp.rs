//! Connecting and publishing with confirmation: the pieces the worker and the publisher share.

use std::time::Duration;

use lapin::options::BasicPublishOptions;
use lapin::types::{LongString, ShortString};
use lapin::uri::AMQPUri;
use lapin::{BasicProperties, Channel, Confirmation, Connection, ConnectionProperties};

use crate::error::RabbitError;

/// Opens a connection, named so that the management UI shows who it is. Bounded by `timeout`:
/// a broker behind a dead network would otherwise hold a connect for minutes.
pub(crate) async fn connect(
    uri: &AMQPUri,
    name: &str,
    timeout: Duration,
) -> Result<Connection, RabbitError> {
    let properties = ConnectionProperties::default().with_connection_name(LongString::from(name));
    match tokio::time::timeout(timeout, Connection::connect_uri(uri.clone(), properties)).await {
        Ok(Ok(connection)) => Ok(connection),
        // lapin's errors name the socket, never the URI: nothing secret in them.
        Ok(Err(err)) => Err(RabbitError::Unavailable(
            anyhow::Error::new(err).context("connecting to RabbitMQ"),
        )),
        Err(_) => Err(RabbitError::Unavailable(anyhow::anyhow!(
            "no connection to RabbitMQ within {timeout:?}"
        ))),
    }
}

pub(crate) fn unavailable(what: &'static str) -> impl FnOnce(lapin::Error) -> RabbitError {
    move |err| RabbitError::Unavailable(anyhow::Error::new(err).context(what))
}

/// Why a confirmed publish did not go through.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConfirmError {
    /// Mandatory and unroutable: no queue is bound to that name (the connection is fine).
    #[error("the broker returned the message as unroutable ({code} {text})")]
    Returned { code: u16, text: String },
    /// The broker could not take the message (an internal error on its side).
    #[error("the broker refused the message (nack)")]
    Nacked,
    #[error("the broker did not confirm the message within {0:?}")]
    Timeout(Duration),
    #[error("the channel failed while publishing")]
    Channel(#[source] lapin::Error),
}

impl ConfirmError {
    /// Whether the channel can still be trusted after this failure.
    pub(crate) fn channel_is_sound(&self) -> bool {
        matches!(self, ConfirmError::Returned { .. })
    }
}

/// Publishes on a channel in confirm mode and waits for the broker's answer: only an ack
/// (without a return) counts as published.
pub(crate) async fn publish_confirmed(
    channel: &Channel,
    exchange: &str,
    routing_key: ShortString,
    mandatory: bool,
    body: &[u8],
    properties: BasicProperties,
    timeout: Duration,
) -> Result<(), ConfirmError> {
    let publish = async {
        channel
            .basic_publish(
                exchange.into(),
                routing_key,
                BasicPublishOptions {
                    mandatory,
                    immediate: false,
                },
                body,
                properties,
            )
            .await?
            .await
    };
    match tokio::time::timeout(timeout, publish).await {
        Err(_) => Err(ConfirmError::Timeout(timeout)),
        Ok(Err(err)) => Err(ConfirmError::Channel(err)),
        Ok(Ok(Confirmation::Ack(None))) => Ok(()),
        Ok(Ok(Confirmation::Ack(Some(returned)))) => Err(ConfirmError::Returned {
            code: returned.reply_code,
            text: returned.reply_text.to_string(),
        }),
        Ok(Ok(Confirmation::Nack(_))) => Err(ConfirmError::Nacked),
        // Every channel that publishes is put in confirm mode first; without it nothing is
        // known about the message.
        Ok(Ok(Confirmation::NotRequested)) => Err(ConfirmError::Nacked),
    }
}
