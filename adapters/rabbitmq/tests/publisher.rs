//! The publisher against the real broker: confirmed events reach a queue bound to the events
//! exchange, and a cut connection is a `PublishError` until the broker is back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::{Broker, Cleanup, settings};
use filegate_adapter_rabbitmq::{RabbitPublisher, RabbitSettings};
use filegate_application::media_ports::{EventPublisher, OutgoingEvent};
use filegate_tcp_proxy::TcpProxy;
use lapin::options::{QueueBindOptions, QueueDeclareOptions, QueueDeleteOptions};
use lapin::types::FieldTable;
use secrecy::SecretString;

/// A queue of this test, bound to the events exchange with `pattern`.
async fn bound_queue(broker: &Broker, settings: &RabbitSettings, pattern: &str) -> String {
    let name = format!("{}.subscriber", settings.queue);
    broker
        .channel
        .queue_declare(
            name.as_str().into(),
            QueueDeclareOptions::durable(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    broker
        .channel
        .queue_bind(
            name.as_str().into(),
            settings.events_exchange.as_str().into(),
            pattern.into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await
        .unwrap();
    name
}

/// An error and all its sources, on one line.
fn chain(err: &(dyn std::error::Error + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        text.push_str(": ");
        text.push_str(&e.to_string());
        source = e.source();
    }
    text
}

fn event(id: &str, routing_key: &str) -> OutgoingEvent {
    OutgoingEvent {
        id: id.to_owned(),
        routing_key: routing_key.to_owned(),
        payload: format!("{{\"eventId\":\"{id}\"}}").into_bytes(),
        trace_parent: None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn confirmed_events_reach_a_queue_bound_with_the_routing_key() {
    let settings = settings("events");
    let broker = Broker::connect().await;
    let mut cleanup = Cleanup::new(&settings);
    // Connecting declares the exchange, so that the subscriber can bind to it.
    let publisher = RabbitPublisher::connect(settings.clone()).await.unwrap();
    let queue = bound_queue(&broker, &settings, "file.committed").await;
    cleanup.queue(&queue);

    publisher
        .publish(&event("e-1", "file.committed"))
        .await
        .unwrap();
    // Another routing key: not for this subscriber, and not an error either.
    publisher
        .publish(&event("e-2", "file.deleted"))
        .await
        .unwrap();
    // Clones share the connection.
    publisher
        .clone()
        .publish(&event("e-3", "file.committed"))
        .await
        .unwrap();

    broker.wait_ready(&queue, 2, Duration::from_secs(5)).await;
    let first = broker.get(&queue).await.unwrap();
    assert_eq!(first.routing_key.as_str(), "file.committed");
    assert_eq!(first.exchange.as_str(), settings.events_exchange);
    assert_eq!(first.data, b"{\"eventId\":\"e-1\"}");
    let props = &first.properties;
    assert_eq!(props.message_id().as_ref().map(|s| s.as_str()), Some("e-1"));
    assert_eq!(
        props.content_type().as_ref().map(|s| s.as_str()),
        Some("application/json")
    );
    assert_eq!(*props.delivery_mode(), Some(2));
    let second = broker.get(&queue).await.unwrap();
    assert_eq!(
        second.properties.message_id().as_ref().map(|s| s.as_str()),
        Some("e-3")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn publishing_fails_while_the_broker_is_cut_off_and_works_again_after() {
    let settings = settings("pubcut");
    let broker = Broker::connect().await;
    let mut cleanup = Cleanup::new(&settings);
    let proxy = TcpProxy::start(common::broker_addr()).await.unwrap();
    let publisher = RabbitPublisher::connect(RabbitSettings {
        url: SecretString::from(common::url_via(proxy.addr())),
        ..settings.clone()
    })
    .await
    .unwrap();
    let queue = bound_queue(&broker, &settings, "file.#").await;
    cleanup.queue(&queue);
    publisher
        .publish(&event("before", "file.committed"))
        .await
        .unwrap();

    proxy.cut();
    // The open connection is gone, and new ones are refused.
    let err = publisher
        .publish(&event("during", "file.committed"))
        .await
        .expect_err("published through a cut connection");
    assert!(!chain(&err).contains("guest:guest"), "{}", chain(&err));
    assert!(publisher.publish_task(b"task").await.is_err());

    proxy.restore();
    publisher
        .publish(&event("after", "file.committed"))
        .await
        .unwrap();
    publisher.publish_task(b"task").await.unwrap();

    // "before" and "after", and "during" if its publish arrived before the cut.
    broker
        .wait_ready_in(&queue, 2..=3, Duration::from_secs(5))
        .await;
    let mut ids = Vec::new();
    while let Some(d) = broker.get(&queue).await {
        ids.push(
            d.properties
                .message_id()
                .as_ref()
                .map(|s| s.to_string())
                .unwrap_or_default(),
        );
    }
    // A publish reported as failed may still have reached the broker (the cut can fall between
    // the message and its confirmation): delivery is at least once, so "during" may be there,
    // but "before" and "after" must be, in order.
    ids.retain(|id| id != "during");
    assert_eq!(ids, ["before", "after"]);
    // The task sent after the restore is there; the one sent during the cut may be too.
    let tasks = broker.ready(&settings.queue).await;
    assert!((1..=2).contains(&tasks), "{tasks} tasks");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_task_that_reaches_no_queue_is_an_error() {
    let settings = settings("noroute");
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let publisher = RabbitPublisher::connect(settings.clone()).await.unwrap();
    publisher.publish_task(b"one").await.unwrap();
    // Someone deletes the task queue: the mandatory publish comes back unroutable.
    broker
        .channel
        .queue_delete(
            settings.queue.as_str().into(),
            QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    let err = publisher.publish_task(b"two").await.unwrap_err();
    assert!(chain(&err).contains("unroutable"), "{}", chain(&err));
}

#[tokio::test]
async fn an_event_id_over_255_bytes_is_a_publish_error() {
    let publisher = RabbitPublisher::new(settings("longid")).unwrap();
    let err = publisher
        .publish(&event(&"x".repeat(300), "file.committed"))
        .await
        .unwrap_err();
    assert!(chain(&err).contains("too long"), "{}", chain(&err));
}
