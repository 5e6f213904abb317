//! How the adapter finds its broker and names its queues, as read from the configuration.

use std::time::Duration;

use lapin::uri::AMQPUri;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::error::RabbitError;
use crate::topology::{RetryQueue, Topology};

/// The RabbitMQ settings. Every name is settable, so that tests (and several deployments on one
/// broker) can keep to their own queues. `Debug` shows the URL as `[REDACTED]`: it holds the
/// password. An unknown key is refused: a misspelt setting would otherwise fall back to its
/// default without a word.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RabbitSettings {
    /// The broker, as an AMQP URI (`amqp://user:password@host:port/vhost`, the vhost
    /// URL-encoded; `amqps://` for TLS, verified against the platform's roots). Query
    /// parameters such as `?heartbeat=10` are lapin's. Default:
    /// `amqp://guest:guest@127.0.0.1:5672/%2f`.
    pub url: SecretString,
    /// The durable queue tasks are published to and consumed from. Default: `filegate.media`.
    pub queue: String,
    /// Where a task goes after its last attempt or when it can never succeed, with the reason
    /// in its headers. Default: `filegate.media.dead`.
    pub dead_queue: String,
    /// The prefix of the delay queues, one per back-off step (`{prefix}.1s`, `{prefix}.2s`,
    /// `{prefix}.500ms`, ...). Default: none, meaning `{queue}.retry`.
    pub retry_queue_prefix: Option<String>,
    /// The durable topic exchange file events are published to. Default: `filegate.events`.
    pub events_exchange: String,
    /// How many deliveries the broker hands the worker before it acknowledges any: the
    /// worker's concurrency. At least 1. Default: `8`.
    pub prefetch: u16,
    /// Tries per task, the first included; after the last a retry goes to the dead queue.
    /// At least 1. Default: `5`.
    pub max_attempts: u32,
    /// The wait before the second attempt, in milliseconds; each later wait doubles. At least
    /// 1. Default: `1000`.
    pub retry_base_delay_ms: u64,
    /// The longest wait between two attempts, in milliseconds. Default: `60000`.
    pub retry_max_delay_ms: u64,
    /// The pause before the worker connects again after losing (or failing to reach) the
    /// broker, in milliseconds. Default: `2000`.
    pub reconnect_delay_ms: u64,
    /// The longest wait to connect and declare the topology, in milliseconds. Default: `5000`.
    pub connect_timeout_ms: u64,
    /// The longest wait for the broker to confirm a publish, in milliseconds; past it the
    /// publish counts as failed (and the connection as broken). Default: `10000`.
    pub confirm_timeout_ms: u64,
}

impl Default for RabbitSettings {
    fn default() -> Self {
        Self {
            url: SecretString::from("amqp://guest:guest@127.0.0.1:5672/%2f"),
            queue: "filegate.media".to_owned(),
            dead_queue: "filegate.media.dead".to_owned(),
            retry_queue_prefix: None,
            events_exchange: "filegate.events".to_owned(),
            prefetch: 8,
            max_attempts: 5,
            retry_base_delay_ms: 1000,
            retry_max_delay_ms: 60_000,
            reconnect_delay_ms: 2000,
            connect_timeout_ms: 5000,
            confirm_timeout_ms: 10_000,
        }
    }
}

/// AMQP names (queues, exchanges, routing keys) are short strings: at most 255 bytes.
const MAX_NAME_LEN: usize = 255;

impl RabbitSettings {
    /// The queues and exchange these settings name, with the delay of every retry step.
    pub fn topology(&self) -> Topology {
        let prefix = self
            .retry_queue_prefix
            .clone()
            .unwrap_or_else(|| format!("{}.retry", self.queue));
        let mut retry_queues: Vec<RetryQueue> = Vec::new();
        // The wait after attempt n (1-based) is base * 2^(n-1), capped; the last attempt has
        // no retry. Steps with the same (capped) delay share their queue.
        for attempt in 1..self.max_attempts {
            let delay = self.retry_delay(attempt);
            if retry_queues.last().is_some_and(|q| q.delay == delay) {
                continue;
            }
            retry_queues.push(RetryQueue {
                name: format!("{prefix}.{}", delay_label(delay)),
                delay,
            });
        }
        Topology {
            queue: self.queue.clone(),
            dead_queue: self.dead_queue.clone(),
            retry_queues,
            events_exchange: self.events_exchange.clone(),
        }
    }

    /// The wait before the attempt after `attempt` (1-based).
    pub fn retry_delay(&self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(63);
        let ms = self
            .retry_base_delay_ms
            .saturating_mul(1u64 << doublings)
            .min(self.retry_max_delay_ms.max(self.retry_base_delay_ms));
        Duration::from_millis(ms)
    }

    pub(crate) fn reconnect_delay(&self) -> Duration {
        Duration::from_millis(self.reconnect_delay_ms)
    }

    pub(crate) fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms)
    }

    pub(crate) fn confirm_timeout(&self) -> Duration {
        Duration::from_millis(self.confirm_timeout_ms)
    }

    /// Checks what the broker would only refuse later (or lapin would panic on: names longer
    /// than 255 bytes) and parses the URL.
    pub(crate) fn validate(&self) -> Result<AMQPUri, RabbitError> {
        let invalid = |why: String| Err(RabbitError::InvalidSettings(why));
        let uri = match self.url.expose_secret().parse::<AMQPUri>() {
            Ok(uri) => uri,
            // The parser's message may quote the URL, password included: not repeated.
            Err(_) => return invalid("`url` is not a valid AMQP URI".to_owned()),
        };
        if self.prefetch == 0 {
            return invalid("`prefetch` must be at least 1".to_owned());
        }
        if self.max_attempts == 0 {
            return invalid("`max_attempts` must be at least 1".to_owned());
        }
        if self.retry_base_delay_ms == 0 {
            return invalid("`retry_base_delay_ms` must be at least 1".to_owned());
        }
        let topology = self.topology();
        let mut names = vec![
            ("queue", topology.queue.as_str()),
            ("dead_queue", topology.dead_queue.as_str()),
            ("events_exchange", topology.events_exchange.as_str()),
        ];
        names.extend(
            topology
                .retry_queues
                .iter()
                .map(|q| ("retry_queue_prefix", q.name.as_str())),
        );
        for (setting, name) in names {
            if name.is_empty() || name.len() > MAX_NAME_LEN {
                return invalid(format!(
                    "`{setting}` must give a name of 1 to {MAX_NAME_LEN} bytes, not `{name}`"
                ));
            }
            if name.starts_with("amq.") {
                return invalid(format!(
                    "`{setting}`: names starting with `amq.` are reserved by the broker (`{name}`)"
                ));
            }
        }
        if topology.queue == topology.dead_queue
            || topology
                .retry_queues
                .iter()
                .any(|q| q.name == topology.queue || q.name == topology.dead_queue)
        {
            return invalid("the task, dead and retry queues must have distinct names".to_owned());
        }
        Ok(uri)
    }
}

/// `1s`, `2s`, `1m`, `90s`, `250ms`: the delay as a queue name suffix.
fn delay_label(delay: Duration) -> String {
    let ms = delay.as_millis();
    if ms.is_multiple_of(60_000) {
        format!("{}m", ms / 60_000)
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_give_one_delay_queue_per_step() {
        let topology = RabbitSettings::default().topology();
        let names: Vec<_> = topology
            .retry_queues
            .iter()
            .map(|q| q.name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "filegate.media.retry.1s",
                "filegate.media.retry.2s",
                "filegate.media.retry.4s",
                "filegate.media.retry.8s"
            ]
        );
        assert_eq!(topology.queue, "filegate.media");
        assert_eq!(topology.dead_queue, "filegate.media.dead");
        assert_eq!(topology.events_exchange, "filegate.events");
        assert!(RabbitSettings::default().validate().is_ok());
    }

    #[test]
    fn delays_double_up_to_the_cap_and_capped_steps_share_a_queue() {
        let settings = RabbitSettings {
            max_attempts: 10,
            retry_base_delay_ms: 200,
            retry_max_delay_ms: 1000,
            retry_queue_prefix: Some("r".to_owned()),
            ..RabbitSettings::default()
        };
        let delays: Vec<_> = (1..10)
            .map(|a| settings.retry_delay(a).as_millis())
            .collect();
        assert_eq!(delays, [200, 400, 800, 1000, 1000, 1000, 1000, 1000, 1000]);
        let names: Vec<_> = settings
            .topology()
            .retry_queues
            .into_iter()
            .map(|q| q.name)
            .collect();
        assert_eq!(names, ["r.200ms", "r.400ms", "r.800ms", "r.1s"]);
    }

    #[test]
    fn huge_attempt_numbers_do_not_overflow() {
        let settings = RabbitSettings::default();
        assert_eq!(settings.retry_delay(u32::MAX), Duration::from_secs(60));
        assert_eq!(delay_label(Duration::from_secs(120)), "2m");
    }

    #[test]
    fn a_single_attempt_needs_no_delay_queue() {
        let settings = RabbitSettings {
            max_attempts: 1,
            ..RabbitSettings::default()
        };
        assert!(settings.topology().retry_queues.is_empty());
    }

    #[test]
    fn bad_settings_are_refused_without_echoing_the_url() {
        let bad_url = RabbitSettings {
            url: SecretString::from("http://user:hunter2@host"),
            ..RabbitSettings::default()
        };
        let err = bad_url.validate().unwrap_err().to_string();
        assert!(!err.contains("hunter2"), "{err}");

        for settings in [
            RabbitSettings {
                prefetch: 0,
                ..RabbitSettings::default()
            },
            RabbitSettings {
                max_attempts: 0,
                ..RabbitSettings::default()
            },
            RabbitSettings {
                queue: "x".repeat(300),
                ..RabbitSettings::default()
            },
            RabbitSettings {
                dead_queue: "filegate.media".to_owned(),
                ..RabbitSettings::default()
            },
            RabbitSettings {
                events_exchange: "amq.topic".to_owned(),
                ..RabbitSettings::default()
            },
        ] {
            assert!(matches!(
                settings.validate(),
                Err(RabbitError::InvalidSettings(_))
            ));
        }
    }

    #[test]
    fn settings_deserialize_with_defaults_and_hide_the_url() {
        let settings: RabbitSettings =
            serde_json::from_str(r#"{"url": "amqp://u:secret@h:5672/%2f", "prefetch": 2}"#)
                .unwrap();
        assert_eq!(settings.prefetch, 2);
        assert_eq!(settings.queue, "filegate.media");
        assert!(!format!("{settings:?}").contains("secret"));
    }
}
