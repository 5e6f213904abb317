//! The worker against the real broker: acks, retries through the delay queues, dead letters,
//! the prefetch bound, panics, shutdown, and a broker connection that is cut and comes back.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use common::{
    Broker, Cleanup, Worker, dead, header_number, header_text, next_call, no_call, publish_tasks,
    retry, scripted, settings,
};
use filegate_adapter_rabbitmq::{
    ATTEMPT_HEADER, ATTEMPTS_HEADER, REASON_HEADER, RabbitError, RabbitPublisher, RabbitSettings,
    run_worker,
};
use filegate_application::media_ports::TaskOutcome;
use filegate_tcp_proxy::TcpProxy;
use futures::FutureExt as _;
use secrecy::SecretString;

const SOON: Duration = Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn done_acknowledges_the_task() {
    let settings = settings("done");
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let (handler, mut calls) = scripted(|_, _| async { TaskOutcome::Done }.boxed());
    let worker = Worker::start(settings.clone(), handler);
    publish_tasks(&settings, [b"{\"taskId\":\"t1\"}".to_vec()]).await;

    let call = next_call(&mut calls, SOON).await;
    assert_eq!(call.body, b"{\"taskId\":\"t1\"}");
    assert_eq!(call.attempt, 1);
    // Once the worker has closed its channel, an unacknowledged task would be back: none is.
    worker.stop().await.unwrap();
    assert_eq!(broker.ready(&settings.queue).await, 0);
    assert_eq!(broker.ready(&settings.dead_queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retry_comes_back_after_the_delay_with_the_next_attempt_number() {
    let settings = settings("retry");
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let (handler, mut calls) = scripted(|_, attempt| {
        async move {
            if attempt == 1 {
                retry("rate limited")
            } else {
                TaskOutcome::Done
            }
        }
        .boxed()
    });
    let worker = Worker::start(settings.clone(), handler);
    publish_tasks(&settings, [b"retry me".to_vec()]).await;

    let first = next_call(&mut calls, SOON).await;
    let second = next_call(&mut calls, SOON).await;
    assert_eq!((first.attempt, second.attempt), (1, 2));
    assert_eq!(second.body, b"retry me");
    let waited = second.at - first.at;
    // The first step waits the base delay (200 ms); the broker expires on a timer, so allow
    // some lateness (a loaded machine expires late), but it must have waited.
    assert!(
        waited >= Duration::from_millis(190) && waited < Duration::from_millis(3000),
        "the retry came back after {waited:?}"
    );
    no_call(&mut calls, Duration::from_millis(600)).await;
    worker.stop().await.unwrap();
    assert_eq!(broker.ready(&settings.queue).await, 0);
    assert_eq!(broker.ready(&settings.dead_queue).await, 0);
    for step in settings.topology().retry_queues {
        assert_eq!(broker.ready(&step.name).await, 0, "{}", step.name);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_retry_copy_carries_the_attempt_and_the_last_error() {
    // With the worker stopped right after the first attempt, the copy is seen waiting in the
    // first delay queue... which it leaves after 200 ms. A long base delay keeps it there.
    let settings = RabbitSettings {
        retry_base_delay_ms: 60_000,
        retry_max_delay_ms: 60_000,
        ..settings("retrycopy")
    };
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let (handler, mut calls) = scripted(|_, _| async { retry("HTTP 503") }.boxed());
    let worker = Worker::start(settings.clone(), handler);
    publish_tasks(&settings, [b"copy".to_vec()]).await;
    assert_eq!(next_call(&mut calls, SOON).await.attempt, 1);
    let step = settings.topology().retry_queues[0].clone();
    assert!(step.name.ends_with(".retry.1m"), "{}", step.name);
    broker.wait_ready(&step.name, 1, SOON).await;
    worker.stop().await.unwrap();

    let copy = broker.get(&step.name).await.unwrap();
    assert_eq!(copy.data, b"copy");
    assert_eq!(header_number(&copy, ATTEMPT_HEADER), Some(2));
    assert_eq!(
        header_text(&copy, filegate_adapter_rabbitmq::LAST_ERROR_HEADER).as_deref(),
        Some("Meta is unavailable: HTTP 503")
    );
    assert_eq!(*copy.properties.delivery_mode(), Some(2));
    assert_eq!(broker.ready(&settings.queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_the_last_attempt_the_task_is_dead_lettered_with_reason_and_count() {
    let settings = settings("exhausted"); // 3 attempts, 200 ms then 400 ms
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let (handler, mut calls) =
        scripted(|_, attempt| async move { retry(&format!("failure {attempt}")) }.boxed());
    let worker = Worker::start(settings.clone(), handler);
    publish_tasks(&settings, [b"doomed".to_vec()]).await;

    let attempts: Vec<u32> = [
        next_call(&mut calls, SOON).await,
        next_call(&mut calls, SOON).await,
        next_call(&mut calls, SOON).await,
    ]
    .iter()
    .map(|c| c.attempt)
    .collect();
    assert_eq!(attempts, [1, 2, 3]);
    broker.wait_ready(&settings.dead_queue, 1, SOON).await;
    no_call(&mut calls, Duration::from_millis(800)).await;
    worker.stop().await.unwrap();

    let dead = broker.get(&settings.dead_queue).await.unwrap();
    assert_eq!(dead.data, b"doomed");
    assert_eq!(
        header_text(&dead, REASON_HEADER).as_deref(),
        Some("Meta is unavailable: failure 3")
    );
    assert_eq!(header_number(&dead, ATTEMPTS_HEADER), Some(3));
    assert_eq!(*dead.properties.delivery_mode(), Some(2));
    assert_eq!(broker.ready(&settings.queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_goes_straight_to_the_dead_queue() {
    let settings = settings("dead");
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let (handler, mut calls) = scripted(|_, _| async { dead("Invalid parameter") }.boxed());
    let worker = Worker::start(settings.clone(), handler);
    publish_tasks(&settings, [b"not json".to_vec()]).await;

    assert_eq!(next_call(&mut calls, SOON).await.attempt, 1);
    broker.wait_ready(&settings.dead_queue, 1, SOON).await;
    no_call(&mut calls, Duration::from_millis(500)).await;
    worker.stop().await.unwrap();
    let dead = broker.get(&settings.dead_queue).await.unwrap();
    assert_eq!(dead.data, b"not json");
    assert_eq!(
        header_text(&dead, REASON_HEADER).as_deref(),
        Some("Meta refused the request: Invalid parameter")
    );
    assert_eq!(header_number(&dead, ATTEMPTS_HEADER), Some(1));
    assert_eq!(broker.ready(&settings.queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prefetch_bounds_the_handlers_running_at_once() {
    let settings = RabbitSettings {
        prefetch: 3,
        ..settings("prefetch")
    };
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let running = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let (handler, mut calls) = {
        let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
        scripted(move |_, _| {
            let (running, peak) = (Arc::clone(&running), Arc::clone(&peak));
            async move {
                let now = running.fetch_add(1, Ordering::SeqCst) + 1;
                peak.fetch_max(now, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(150)).await;
                running.fetch_sub(1, Ordering::SeqCst);
                TaskOutcome::Done
            }
            .boxed()
        })
    };
    // Queued before the worker starts, so that the broker could hand out all of them at once.
    publish_tasks(&settings, (0..12).map(|i| format!("task {i}").into_bytes())).await;
    let worker = Worker::start(settings.clone(), handler);
    for _ in 0..12 {
        next_call(&mut calls, SOON).await;
    }
    no_call(&mut calls, Duration::from_millis(300)).await;
    worker.stop().await.unwrap();
    assert_eq!(peak.load(Ordering::SeqCst), 3, "the peak concurrency");
    assert_eq!(broker.ready(&settings.queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panicking_handler_is_a_retry_and_the_worker_goes_on() {
    let settings = settings("panic");
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let (handler, mut calls) = scripted(|body, attempt| {
        async move {
            if body == b"bomb" && attempt == 1 {
                panic!("the handler blew up");
            }
            TaskOutcome::Done
        }
        .boxed()
    });
    let worker = Worker::start(settings.clone(), handler);
    publish_tasks(&settings, [b"bomb".to_vec()]).await;
    let first = next_call(&mut calls, SOON).await;
    assert_eq!((first.body.as_slice(), first.attempt), (&b"bomb"[..], 1));
    let again = next_call(&mut calls, SOON).await;
    assert_eq!((again.body.as_slice(), again.attempt), (&b"bomb"[..], 2));

    publish_tasks(&settings, [b"next".to_vec()]).await;
    let next = next_call(&mut calls, SOON).await;
    assert_eq!((next.body.as_slice(), next.attempt), (&b"next"[..], 1));
    assert!(!worker.is_finished());
    worker.stop().await.unwrap();
    assert_eq!(broker.ready(&settings.queue).await, 0);
    assert_eq!(broker.ready(&settings.dead_queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_lets_the_handlers_in_flight_finish_and_settle() {
    let settings = settings("shutdown");
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let finished = Arc::new(AtomicUsize::new(0));
    let (handler, mut calls) = {
        let finished = Arc::clone(&finished);
        scripted(move |_, _| {
            let finished = Arc::clone(&finished);
            async move {
                tokio::time::sleep(Duration::from_millis(500)).await;
                finished.fetch_add(1, Ordering::SeqCst);
                TaskOutcome::Done
            }
            .boxed()
        })
    };
    let worker = Worker::start(settings.clone(), handler);
    publish_tasks(&settings, [b"slow".to_vec()]).await;
    next_call(&mut calls, SOON).await;
    worker.stop().await.unwrap();
    assert_eq!(
        finished.load(Ordering::SeqCst),
        1,
        "the worker stopped before its handler"
    );
    assert_eq!(
        broker.ready(&settings.queue).await,
        0,
        "the task was not acknowledged"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_survives_a_cut_connection_and_goes_on_consuming() {
    let settings = settings("cut");
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let proxy = TcpProxy::start(common::broker_addr()).await.unwrap();
    let via_proxy = RabbitSettings {
        url: SecretString::from(common::url_via(proxy.addr())),
        ..settings.clone()
    };
    let (handler, mut calls) = scripted(|_, _| async { TaskOutcome::Done }.boxed());
    let worker = Worker::start(via_proxy, handler);
    // Published directly, not through the proxy.
    publish_tasks(&settings, [b"before".to_vec()]).await;
    assert_eq!(next_call(&mut calls, SOON).await.body, b"before");
    // Let the ack reach the broker (otherwise "before" is, rightly, delivered again).
    tokio::time::sleep(Duration::from_millis(300)).await;

    proxy.cut();
    // Several reconnect attempts (every 200 ms) are refused meanwhile.
    tokio::time::sleep(Duration::from_secs(1)).await;
    publish_tasks(&settings, [b"during".to_vec()]).await;
    no_call(&mut calls, Duration::from_millis(300)).await;
    assert!(!worker.is_finished());

    proxy.restore();
    let after = next_call(&mut calls, Duration::from_secs(10)).await;
    assert_eq!(after.body, b"during");
    publish_tasks(&settings, [b"after".to_vec()]).await;
    assert_eq!(next_call(&mut calls, SOON).await.body, b"after");
    worker.stop().await.unwrap();
    assert_eq!(broker.ready(&settings.queue).await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cut_while_handling_redelivers_the_task_instead_of_losing_it() {
    let settings = settings("cutinflight");
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let proxy = Arc::new(TcpProxy::start(common::broker_addr()).await.unwrap());
    let via_proxy = RabbitSettings {
        url: SecretString::from(common::url_via(proxy.addr())),
        ..settings.clone()
    };
    // The first attempt cuts the connection under its own feet, then answers Retry: the retry
    // copy cannot be published, so the original must come back (redelivered, same attempt).
    let done_cutting = Arc::new(AtomicBool::new(false));
    let (handler, mut calls) = {
        let proxy = Arc::clone(&proxy);
        scripted(move |_, _| {
            let proxy = Arc::clone(&proxy);
            let first_call = !done_cutting.swap(true, Ordering::SeqCst);
            async move {
                if first_call {
                    proxy.cut();
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    proxy.restore();
                    retry("cut")
                } else {
                    TaskOutcome::Done
                }
            }
            .boxed()
        })
    };
    let worker = Worker::start(via_proxy, handler);
    publish_tasks(&settings, [b"fragile".to_vec()]).await;
    let first = next_call(&mut calls, SOON).await;
    assert_eq!(first.attempt, 1);
    let second = next_call(&mut calls, Duration::from_secs(10)).await;
    assert_eq!(second.body, b"fragile");
    // Redelivered by the broker (the retry copy never went out), so still attempt 1.
    assert_eq!(second.attempt, 1);
    no_call(&mut calls, Duration::from_millis(500)).await;
    worker.stop().await.unwrap();
    assert_eq!(broker.ready(&settings.queue).await, 0);
    assert_eq!(broker.ready(&settings.dead_queue).await, 0);
}

#[tokio::test]
async fn invalid_settings_are_an_error_not_a_reconnect_loop() {
    let (handler, _calls) = scripted(|_, _| async { TaskOutcome::Done }.boxed());
    let settings = RabbitSettings {
        prefetch: 0,
        ..settings("invalid")
    };
    let result = run_worker(settings, handler, std::future::pending()).await;
    assert!(matches!(result, Err(RabbitError::InvalidSettings(_))));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_queue_declared_elsewhere_with_other_arguments_is_a_topology_error() {
    let settings = settings("conflict");
    let broker = Broker::connect().await;
    let _cleanup = Cleanup::new(&settings);
    let mut args = lapin::types::FieldTable::default();
    args.insert(
        "x-max-length".into(),
        lapin::types::AMQPValue::LongLongInt(10),
    );
    broker
        .channel
        .queue_declare(
            settings.dead_queue.as_str().into(),
            lapin::options::QueueDeclareOptions::durable(),
            args,
        )
        .await
        .unwrap();
    let (handler, _calls) = scripted(|_, _| async { TaskOutcome::Done }.boxed());
    let result = tokio::time::timeout(
        SOON,
        run_worker(settings.clone(), handler, std::future::pending()),
    )
    .await
    .expect("the worker kept trying");
    match result {
        Err(RabbitError::Topology { name, .. }) => assert_eq!(name, settings.dead_queue),
        other => panic!("expected a topology error, got {other:?}"),
    }
}

#[tokio::test]
async fn publish_task_to_an_unreachable_broker_is_a_publish_error() {
    let free = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let publisher = RabbitPublisher::new(RabbitSettings {
        url: SecretString::from(common::url_via(addr)),
        ..settings("unreachable")
    })
    .unwrap();
    assert!(publisher.publish_task(b"x").await.is_err());
}
