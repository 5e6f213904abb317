//! One writing transaction at a time, in this process, where the database has one writer.
//!
//! SQLite lets one connection write; the others' `BEGIN IMMEDIATE` waits in SQLite's busy
//! handler, which polls by sleeping (1, 2, 5, 10 ... 100 ms). Under concurrent uploads most of
//! that time is sleep, not work: 16 uploads of small files in flight left half the CPU idle and
//! made 2,000 sleeps in 5 s. Queueing the process's writers on an async semaphore first hands
//! the lock over at once, in arrival order; the busy handler is left for other processes.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::Duration;

use sqlx::{Database, Pool, Transaction};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::Dialect;

/// How long a group commit on an open gate waits for more files while they keep arriving: one
/// tick of tokio's timer. Measured on the small-file benchmark's load (2,000 files of 64 KiB,
/// 16 in flight, Azure profile): Postgres commits per 2,000 files 1,300–1,540 → about 540, its
/// CPU 0.55–0.67 → 0.33–0.36 s; docs/decisions.md, "Group commit on Postgres".
pub const GATHER: Duration = Duration::from_millis(1);

/// Who may begin a writing transaction. Clones share the queue.
#[derive(Debug, Clone)]
pub struct WriteGate {
    turn: Option<Arc<Semaphore>>,
    /// How long a writer queues before it gives up (a retryable error), as long as the busy
    /// timeout it replaces.
    wait: Duration,
    /// New files of one block waiting to be recorded together.
    group: crate::GroupCommit,
}

impl WriteGate {
    /// No queue: the database locks rows itself (Postgres). Nothing gathers new files into
    /// groups here, so their commits wait [`GATHER`] for company while files keep arriving.
    pub fn open() -> Self {
        Self {
            turn: None,
            wait: Duration::ZERO,
            group: crate::GroupCommit::gathering(GATHER),
        }
    }

    /// One writer at a time, each queueing at most `wait`.
    pub fn serial(wait: Duration) -> Self {
        Self {
            turn: Some(Arc::new(Semaphore::new(1))),
            wait,
            group: crate::GroupCommit::default(),
        }
    }

    /// The files of one block waiting for a group commit behind this gate.
    pub fn group(&self) -> &crate::GroupCommit {
        &self.group
    }

    async fn enter(&self) -> Result<Option<OwnedSemaphorePermit>, sqlx::Error> {
        let Some(turn) = &self.turn else {
            return Ok(None);
        };
        match tokio::time::timeout(self.wait, turn.clone().acquire_owned()).await {
            Ok(Ok(permit)) => Ok(Some(permit)),
            // The semaphore is never closed; a timeout is the busy timeout's answer.
            Ok(Err(_)) | Err(_) => Err(sqlx::Error::PoolTimedOut),
        }
    }
}

/// A writing transaction, holding its turn at the gate until it is committed, rolled back or
/// dropped. It derefs to the connection, as a transaction does.
#[derive(Debug)]
pub struct WriteTx<DB: Database> {
    tx: Transaction<'static, DB>,
    _turn: Option<OwnedSemaphorePermit>,
}

impl<DB: Database> WriteTx<DB> {
    pub async fn commit(self) -> Result<(), sqlx::Error> {
        self.tx.commit().await
    }

    pub async fn rollback(self) -> Result<(), sqlx::Error> {
        self.tx.rollback().await
    }
}

impl<DB: Database> Deref for WriteTx<DB> {
    type Target = DB::Connection;

    fn deref(&self) -> &Self::Target {
        &self.tx
    }
}

impl<DB: Database> DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.tx
    }
}

/// Queues at `gate`, then begins a writing transaction the dialect's way.
pub async fn begin_write<D: Dialect>(
    pool: &Pool<D::Db>,
    gate: &WriteGate,
) -> Result<WriteTx<D::Db>, sqlx::Error> {
    let turn = gate.enter().await?;
    let tx = D::begin_write(pool).await?;
    Ok(WriteTx { tx, _turn: turn })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_serial_gate_lets_one_in_and_the_next_when_it_leaves() {
        let gate = WriteGate::serial(Duration::from_millis(200));
        let first = gate.enter().await.unwrap();
        assert!(first.is_some());
        // While the first holds its turn, the next one waits and then gives up.
        assert!(matches!(
            gate.clone().enter().await,
            Err(sqlx::Error::PoolTimedOut)
        ));
        let waiting = tokio::spawn({
            let gate = gate.clone();
            async move { gate.enter().await.map(|t| t.is_some()) }
        });
        tokio::time::sleep(Duration::from_millis(20)).await;
        drop(first);
        assert!(waiting.await.unwrap().unwrap(), "the next writer got in");
    }

    /// Only where writers do not queue at the gate do group commits wait for company.
    #[test]
    fn only_an_open_gates_group_commits_gather() {
        assert_eq!(WriteGate::open().group().gather(), GATHER);
        assert_eq!(
            WriteGate::serial(Duration::from_secs(1)).group().gather(),
            Duration::ZERO
        );
    }

    #[tokio::test]
    async fn an_open_gate_never_waits() {
        let gate = WriteGate::open();
        let a = gate.enter().await.unwrap();
        let b = gate.enter().await.unwrap();
        assert!(a.is_none() && b.is_none());
    }
}
