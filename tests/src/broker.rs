//! The machine's RabbitMQ, as the tests see it: names of their own per test, a direct line to
//! look into queues, and cleanup at the end.

use std::time::{Duration, Instant};

use lapin::message::Delivery;
use lapin::options::{
    BasicGetOptions, ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions,
    QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{Channel, Connection, ConnectionProperties, ExchangeKind};
use uuid::Uuid;

pub fn broker_url() -> String {
    std::env::var("FILEGATE_TEST_AMQP_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

/// The broker's socket address, for a proxy in front of it.
pub fn broker_addr() -> std::net::SocketAddr {
    let uri: lapin::uri::AMQPUri = broker_url().parse().expect("an AMQP URL");
    let host = if uri.authority.host == "localhost" {
        "127.0.0.1".to_owned()
    } else {
        uri.authority.host
    };
    format!("{host}:{}", uri.authority.port)
        .parse()
        .expect("a socket address")
}

/// A URL of the broker through another address (a proxy). The user, password and vhost stay
/// those of `FILEGATE_TEST_AMQP_URL`, which need not be the default guest account.
pub fn url_via(addr: std::net::SocketAddr) -> String {
    moved_to(&broker_url(), addr)
}

fn moved_to(broker_url: &str, addr: std::net::SocketAddr) -> String {
    let mut url = url::Url::parse(broker_url).expect("an AMQP URL");
    url.set_ip_host(addr.ip()).expect("a URL with a host");
    url.set_port(Some(addr.port())).expect("a URL with a host");
    url.into()
}

/// The queue and exchange names of one test.
#[derive(Debug, Clone)]
pub struct Names {
    pub queue: String,
    pub dead_queue: String,
    pub retry_prefix: String,
    pub events_exchange: String,
}

impl Names {
    pub fn fresh() -> Self {
        let id = Uuid::new_v4().simple().to_string();
        Self {
            queue: format!("filegate.it.{id}.media"),
            dead_queue: format!("filegate.it.{id}.media.dead"),
            retry_prefix: format!("filegate.it.{id}.media.retry"),
            events_exchange: format!("filegate.it.{id}.events"),
        }
    }

    /// The `FILEGATE_RABBITMQ__*` variables for a service using these names.
    pub fn env(&self, url: &str) -> Vec<(String, String)> {
        vec![
            ("FILEGATE_RABBITMQ__URL".into(), url.to_owned()),
            ("FILEGATE_RABBITMQ__QUEUE".into(), self.queue.clone()),
            (
                "FILEGATE_RABBITMQ__DEAD_QUEUE".into(),
                self.dead_queue.clone(),
            ),
            (
                "FILEGATE_RABBITMQ__RETRY_QUEUE_PREFIX".into(),
                self.retry_prefix.clone(),
            ),
            (
                "FILEGATE_RABBITMQ__EVENTS_EXCHANGE".into(),
                self.events_exchange.clone(),
            ),
            (
                "FILEGATE_RABBITMQ__RETRY_BASE_DELAY_MS".into(),
                "200".into(),
            ),
            ("FILEGATE_RABBITMQ__RETRY_MAX_DELAY_MS".into(), "800".into()),
            ("FILEGATE_RABBITMQ__RECONNECT_DELAY_MS".into(), "300".into()),
        ]
    }

    pub fn settings(&self, url: &str) -> filegate_adapter_rabbitmq::RabbitSettings {
        filegate_adapter_rabbitmq::RabbitSettings {
            url: secrecy::SecretString::from(url.to_owned()),
            queue: self.queue.clone(),
            dead_queue: self.dead_queue.clone(),
            retry_queue_prefix: Some(self.retry_prefix.clone()),
            events_exchange: self.events_exchange.clone(),
            retry_base_delay_ms: 200,
            retry_max_delay_ms: 800,
            ..Default::default()
        }
    }
}

/// A direct connection to the broker.
pub struct Broker {
    _connection: Connection,
    pub channel: Channel,
    names: Names,
}

impl std::fmt::Debug for Broker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Broker")
            .field("names", &self.names)
            .finish()
    }
}

impl Broker {
    pub async fn connect(names: &Names) -> Broker {
        let connection = Connection::connect(&broker_url(), ConnectionProperties::default())
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "RabbitMQ is not reachable at {} ({e}): start it (rabbitmq-server -detached)",
                    broker_url()
                )
            });
        let channel = connection.create_channel().await.expect("a channel");
        Broker {
            _connection: connection,
            channel,
            names: names.clone(),
        }
    }

    /// Ready messages in `queue`.
    pub async fn ready(&self, queue: &str) -> u32 {
        let options = QueueDeclareOptions {
            passive: true,
            ..QueueDeclareOptions::default()
        };
        match self
            .channel
            .queue_declare(queue.into(), options, FieldTable::default())
            .await
        {
            Ok(q) => q.message_count(),
            Err(_) => 0,
        }
    }

    /// Waits until `queue` holds at least `count` ready messages.
    pub async fn wait_ready(&self, queue: &str, count: u32, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let now = self.ready(queue).await;
            if now >= count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "`{queue}` holds {now} ready messages, not {count}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Takes one message off `queue`.
    pub async fn get(&self, queue: &str) -> Option<Delivery> {
        self.channel
            .basic_get(queue.into(), BasicGetOptions { no_ack: true })
            .await
            .ok()
            .flatten()
            .map(|m| m.delivery)
    }

    /// A queue of the test's own, bound to the events exchange with `routing_key`.
    pub async fn bind_events(&self, routing_key: &str) -> String {
        let exchange = self.names.events_exchange.as_str();
        let options = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        self.channel
            .exchange_declare(
                exchange.into(),
                ExchangeKind::Topic,
                options,
                FieldTable::default(),
            )
            .await
            .expect("declare the events exchange");
        let queue = format!("{}.listener", self.names.queue);
        self.channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("declare the listener queue");
        self.channel
            .queue_bind(
                queue.as_str().into(),
                exchange.into(),
                routing_key.into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .expect("bind the listener queue");
        queue
    }

    /// Deletes the test's queues and exchange (best effort).
    pub async fn cleanup(&self) {
        let names = &self.names;
        let mut queues = vec![
            names.queue.clone(),
            names.dead_queue.clone(),
            format!("{}.listener", names.queue),
        ];
        queues.extend(
            names
                .settings(&broker_url())
                .topology()
                .retry_queues
                .into_iter()
                .map(|q| q.name),
        );
        for queue in queues {
            let _ = self
                .channel
                .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
                .await;
        }
        let _ = self
            .channel
            .exchange_delete(
                names.events_exchange.as_str().into(),
                ExchangeDeleteOptions::default(),
            )
            .await;
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_proxy_url_keeps_the_account_and_the_vhost() {
        let addr = "127.0.0.1:40001".parse().unwrap();
        assert_eq!(
            super::moved_to("amqp://guest:guest@127.0.0.1:5672/%2f", addr),
            "amqp://guest:guest@127.0.0.1:40001/%2f"
        );
        assert_eq!(
            super::moved_to("amqp://app:p%40ss@localhost/tests?heartbeat=10", addr),
            "amqp://app:p%40ss@127.0.0.1:40001/tests?heartbeat=10"
        );
    }
}
