//! Group commit of new files of one block.
//!
//! A file of one chunk costs one transaction of four inserts. On SQLite the transaction is
//! three hand-overs to the connection's thread (`BEGIN`, the inserts, `COMMIT`) under the
//! process's write gate, and with many small uploads in flight they queue there one by one. On
//! Postgres it is one statement, but each is a round trip, a backend's parse-bind-execute and a
//! WAL flush of its own, on a server that shares the machine's CPU with everything else.
//! Recording every file that is waiting in one transaction makes the queue the batch: the
//! first request to find no commit running starts one (on a task of its own, so that a client
//! hanging up cannot cut it short for the others), the others wait for its answer. Exactly-once
//! is unchanged: each file is still a new id inserted once, and a batch that fails is retried
//! file by file, so that one file's error is only its own.

use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use filegate_application::media_ports::OutgoingEvent;
use filegate_application::ports::{StagedBlock, StoreError};
use filegate_domain::{FileRecord, UploadSession};
use tokio::sync::oneshot;
use tokio::time::Instant;

/// The most files one transaction records. A group is always a power of two of files (the
/// rest wait for the next), so that each connection prepares and keeps at most six queries of
/// groups (1, 2, 4 ... 32 files) rather than one per size.
pub const MAX_GROUP: usize = 32;

/// The parameters of one file in [`crate::whole_file_inserts!`].
pub const PARAMS_PER_FILE: usize = 34;

/// What a file of one block needs stored: its session as it is to be stored (committed), its
/// block, record and event; the event carries the trace of the request that sent it (the
/// commit runs on a task of its own).
#[derive(Debug)]
pub struct WholeFile {
    pub session: UploadSession,
    pub block: StagedBlock,
    pub record: FileRecord,
    pub event: OutgoingEvent,
}

/// Records `files` (each its session, block, record and event) as one group through `store`:
/// for the stores' tests that their largest group succeeds as one (a failed group would
/// otherwise go by unseen, recorded file by file).
pub async fn record_as_group<S: RecordGroup<WholeFile>>(
    store: &S,
    files: Vec<(UploadSession, StagedBlock, FileRecord, OutgoingEvent)>,
) -> Result<(), StoreError> {
    let files: Vec<WholeFile> = files
        .into_iter()
        .map(|(session, block, record, event)| WholeFile {
            session,
            block,
            record,
            event,
        })
        .collect();
    store.record_group(&files).await
}

/// A file waiting, and where its answer goes.
pub type Waiter<T> = (T, oneshot::Sender<Result<(), StoreError>>);

/// The files waiting to be recorded, shared by a store's clones.
#[derive(Debug)]
pub struct GroupCommit<T = WholeFile>(Arc<Mutex<Queue<T>>>);

impl<T> Clone for GroupCommit<T> {
    fn clone(&self) -> Self {
        Self(Arc::clone(&self.0))
    }
}

#[derive(Debug)]
struct Queue<T> {
    waiting: Vec<Waiter<T>>,
    committing: bool,
    /// How long a commit waits for company when files have been arriving (zero: never).
    gather: Duration,
    /// When the last group was taken.
    last_taken: Option<Instant>,
}

/// Files arriving this close after the last group was taken mean a steady stream, worth a
/// short wait for company; an upload after a quiet spell goes at once.
pub const BUSY_WITHIN: Duration = Duration::from_millis(10);

impl<T> Default for GroupCommit<T> {
    fn default() -> Self {
        Self::gathering(Duration::ZERO)
    }
}

impl<T> GroupCommit<T> {
    /// A queue whose commits, while files keep arriving (a group was taken within
    /// [`BUSY_WITHIN`]), wait `gather` before taking the next group, so that more files share
    /// it. Where writers queue behind a gate (SQLite), the gate's queue already gathers them;
    /// where they do not (Postgres), a group would hold one or two files, each a statement and
    /// a WAL flush, without it.
    pub fn gathering(gather: Duration) -> Self {
        Self(Arc::new(Mutex::new(Queue {
            waiting: Vec::new(),
            committing: false,
            gather,
            last_taken: None,
        })))
    }

    /// How long a commit waits for company while files keep arriving (zero: never).
    #[cfg(test)]
    pub(crate) fn gather(&self) -> Duration {
        self.lock().gather
    }

    /// How long the commit should wait before taking the next group: `gather` while files
    /// keep arriving and the group is not full yet; nothing otherwise.
    fn wait_for_company(&self) -> Option<Duration> {
        let queue = self.lock();
        let busy = queue
            .last_taken
            .is_some_and(|at| at.elapsed() < BUSY_WITHIN);
        (busy && !queue.gather.is_zero() && queue.waiting.len() < MAX_GROUP).then_some(queue.gather)
    }
}

/// A place in the queue: the answer to wait for, and whether this caller must start the
/// commit (no commit was running).
#[derive(Debug)]
pub struct Joined {
    pub answer: oneshot::Receiver<Result<(), StoreError>>,
    pub lead: bool,
}

impl<T> GroupCommit<T> {
    pub fn join(&self, file: T) -> Joined {
        let (tx, answer) = oneshot::channel();
        let mut queue = self.lock();
        queue.waiting.push((file, tx));
        let lead = !std::mem::replace(&mut queue.committing, true);
        Joined { answer, lead }
    }

    /// The next files to record, in order of arrival: the largest power of two of them up to
    /// [`MAX_GROUP`]; none when the queue is empty, and then the commit that asked has ended
    /// (the next file to arrive starts another).
    pub fn take(&self) -> Vec<Waiter<T>> {
        let mut queue = self.lock();
        let waiting = queue.waiting.len().min(MAX_GROUP);
        let n = match waiting {
            0 => 0,
            w => 1 << w.ilog2(),
        };
        if n == 0 {
            queue.committing = false;
        } else {
            queue.last_taken = Some(Instant::now());
        }
        queue.waiting.drain(..n).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Queue<T>> {
        // The queue is a Vec and a flag, consistent at every step: a panic elsewhere
        // cannot have left it half-changed.
        self.0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Records the waiting files group by group until none is left: each group in one call of
/// `record`; a group that fails is recorded again file by file, so that each file gets its own
/// answer. Run by the caller that [`Joined::lead`]s, on a task of its own. Should `record`
/// panic, the files still waiting get an error (their answers are dropped) and the next file
/// to arrive starts a new run.
pub async fn run<T, R: RecordGroup<T>>(group: &GroupCommit<T>, recorder: &R) {
    let run = Running(group);
    loop {
        if let Some(wait) = group.wait_for_company() {
            tokio::time::sleep(wait).await;
        }
        let (files, answers): (Vec<T>, Vec<_>) = group.take().into_iter().unzip();
        if files.is_empty() {
            break;
        }
        match recorder.record_group(&files).await {
            Ok(()) => {
                for answer in answers {
                    let _ = answer.send(Ok(()));
                }
            }
            Err(e) if files.len() == 1 => {
                if let Some(answer) = answers.into_iter().next() {
                    let _ = answer.send(Err(e));
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, files = files.len(), "a group commit failed; recording its files one by one");
                for (file, answer) in files.iter().zip(answers) {
                    let _ = answer.send(recorder.record_group(std::slice::from_ref(file)).await);
                }
            }
        }
    }
    std::mem::forget(run);
}

/// What records a group of files, all or none.
pub trait RecordGroup<T> {
    fn record_group(
        &self,
        files: &[T],
    ) -> impl std::future::Future<Output = Result<(), StoreError>> + Send;
}

/// Ends a run that did not end by itself (a panic): the waiting files are answered with
/// an error by dropping their answers, and the queue is free for a new run.
struct Running<'a, T>(&'a GroupCommit<T>);

impl<T> Drop for Running<'_, T> {
    fn drop(&mut self) {
        let mut queue = self.0.lock();
        queue.waiting.clear();
        queue.committing = false;
    }
}

/// How a store writes one file's four inserts ([`crate::whole_file_inserts!`]'s forms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WholeFileForm {
    /// Four statements, run inside a transaction (SQLite takes several statements in one call).
    Sequence,
    /// One statement of data-modifying `WITH` parts, atomic on its own (Postgres prepares one
    /// statement at a time).
    Cte,
}

/// The query recording `n` files, `n` a power of two up to [`MAX_GROUP`] (the sizes
/// [`GroupCommit::take`] answers), the i-th file's parameters being those of one file
/// (`$1`..`$34`) moved up by `34 * i`: for [`WholeFileForm::Sequence`] the statements of one
/// file repeated; for [`WholeFileForm::Cte`] the one statement with a row per file in each of
/// its four inserts. Built once per form and size.
pub fn group_sql(form: WholeFileForm, n: usize) -> &'static str {
    static SEQUENCE: OnceLock<Vec<String>> = OnceLock::new();
    static CTE: OnceLock<Vec<String>> = OnceLock::new();
    let sizes = || (0..=MAX_GROUP.ilog2()).map(|k| 1usize << k);
    let all = match form {
        WholeFileForm::Sequence => SEQUENCE.get_or_init(|| {
            sizes()
                .map(|n| repeated(crate::whole_file_inserts!(sequence), n))
                .collect()
        }),
        WholeFileForm::Cte => CTE.get_or_init(|| sizes().map(cte_rows).collect()),
    };
    let k = n.clamp(1, MAX_GROUP).ilog2() as usize;
    debug_assert!(n.is_power_of_two(), "a group of {n} files");
    &all[k]
}

/// `base` once per file, each with its own parameters, as statements of their own.
fn repeated(base: &str, n: usize) -> String {
    let mut out = String::with_capacity(base.len() * n + 2 * n);
    for i in 0..n {
        out.push_str(&renumbered(base, PARAMS_PER_FILE * i));
        out.push_str(";\n");
    }
    out
}

/// The `WITH` statement of one file, with each insert's row given once per file.
fn cte_rows(n: usize) -> String {
    let [session, block, file, event] = [
        (
            crate::whole_file_inserts!(@session_into),
            crate::whole_file_inserts!(@session_row),
            "",
        ),
        (
            crate::whole_file_inserts!(@block_into),
            crate::whole_file_inserts!(@block_row),
            "",
        ),
        (
            crate::whole_file_inserts!(@file_into),
            crate::whole_file_inserts!(@file_row),
            "",
        ),
        (
            crate::whole_file_inserts!(@event_into),
            crate::whole_file_inserts!(@event_row),
            crate::whole_file_inserts!(@event_tail),
        ),
    ]
    .map(|(into, row, tail)| {
        let rows: Vec<String> = (0..n)
            .map(|i| renumbered(row, PARAMS_PER_FILE * i))
            .collect();
        format!("{into} VALUES {}{tail}", rows.join(", "))
    });
    format!("WITH s AS ({session}),\nb AS ({block}),\nf AS ({file})\n{event}")
}

/// `sql` with every parameter `$k` made `$(k + offset)`.
fn renumbered(sql: &str, offset: usize) -> String {
    let mut out = String::with_capacity(sql.len() + sql.len() / 8);
    let mut rest = sql;
    while let Some(at) = rest.find('$') {
        out.push_str(&rest[..=at]);
        rest = &rest[at + 1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        match rest[..digits].parse::<usize>() {
            Ok(k) => out.push_str(&(k + offset).to_string()),
            Err(_) => out.push_str(&rest[..digits]),
        }
        rest = &rest[digits..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_file_of_a_group_has_parameters_of_its_own() {
        let sql = repeated("INSERT INTO t VALUES ($1, $12, $34); SELECT '$'", 3);
        assert_eq!(
            sql,
            "INSERT INTO t VALUES ($1, $12, $34); SELECT '$';\n\
             INSERT INTO t VALUES ($35, $46, $68); SELECT '$';\n\
             INSERT INTO t VALUES ($69, $80, $102); SELECT '$';\n"
        );
    }

    #[test]
    fn the_whole_file_statements_use_exactly_their_parameters() {
        let base = crate::whole_file_inserts!(sequence);
        let mut used: Vec<usize> = base
            .split('$')
            .skip(1)
            .filter_map(|s| s.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok())
            .collect();
        used.sort_unstable();
        used.dedup();
        assert_eq!(used, (1..=PARAMS_PER_FILE).collect::<Vec<_>>());
        for form in [WholeFileForm::Sequence, WholeFileForm::Cte] {
            let group = group_sql(form, MAX_GROUP);
            assert!(group.contains(&format!("${}", PARAMS_PER_FILE * MAX_GROUP)));
            assert!(!group.contains(&format!("${}", PARAMS_PER_FILE * MAX_GROUP + 1)));
        }
        assert_eq!(
            group_sql(WholeFileForm::Cte, 1),
            crate::whole_file_inserts!(cte),
            "one file's group is the one file's statement"
        );
    }

    #[test]
    fn a_cte_group_has_a_row_per_file_in_each_insert() {
        let sql = group_sql(WholeFileForm::Cte, 2);
        assert_eq!(sql.matches("INSERT INTO").count(), 4, "{sql}");
        assert_eq!(sql.matches("WITH").count(), 1, "{sql}");
        assert!(
            sql.contains(
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13), ($35, $36,"
            ),
            "{sql}"
        );
        assert!(
            sql.contains("VALUES ($14, $15, $16, $17, $18), ($48, $49, $50, $51, $52)"),
            "{sql}"
        );
        assert!(
            sql.ends_with("($64, $65, $66, $67, $68) ON CONFLICT (id) DO NOTHING"),
            "{sql}"
        );
    }

    #[test]
    fn the_first_to_join_leads_until_the_queue_is_empty() {
        let group = GroupCommit::<u32>::default();
        let first = group.join(1);
        let second = group.join(2);
        assert!(first.lead && !second.lead, "one commit at a time");
        let taken: Vec<u32> = group.take().into_iter().map(|(n, _)| n).collect();
        assert_eq!(taken, [1, 2]);
        assert!(
            !group.join(3).lead,
            "the commit runs until it finds the queue empty"
        );
        assert_eq!(group.take().len(), 1);
        assert!(group.take().is_empty());
        assert!(
            group.join(4).lead,
            "an empty queue ended it; the next file starts another"
        );
    }

    fn unavailable() -> StoreError {
        StoreError::Unavailable(anyhow::anyhow!("refused"))
    }

    #[tokio::test]
    async fn a_failed_group_is_recorded_file_by_file_with_answers_of_their_own() {
        let group = GroupCommit::<u32>::default();
        let joined: Vec<Joined> = (1..=3).map(|n| group.join(n)).collect();
        struct Flaky(Mutex<Vec<Vec<u32>>>);
        impl RecordGroup<u32> for Flaky {
            async fn record_group(&self, files: &[u32]) -> Result<(), StoreError> {
                self.0.lock().unwrap().push(files.to_vec());
                // A group fails; alone, only file 2 does.
                if files.len() > 1 || files == [2] {
                    Err(unavailable())
                } else {
                    Ok(())
                }
            }
        }
        let calls = Flaky(Mutex::new(Vec::new()));
        run(&group, &calls).await;
        assert_eq!(
            calls.0.into_inner().unwrap(),
            // A group of two (a power of two), then the one left.
            [vec![1, 2], vec![1], vec![2], vec![3]]
        );
        let mut answers = Vec::new();
        for j in joined {
            answers.push(j.answer.await.unwrap().is_ok());
        }
        assert_eq!(answers, [true, false, true]);
        assert!(group.join(4).lead, "the run ended with the queue");
    }

    /// A group and the (paused) time it was recorded at.
    type Recorded = (Vec<u32>, Instant);

    /// Records each group with its time.
    #[derive(Clone, Default)]
    struct Timed(Arc<Mutex<Vec<Recorded>>>);

    impl RecordGroup<u32> for Timed {
        async fn record_group(&self, files: &[u32]) -> Result<(), StoreError> {
            self.0
                .lock()
                .unwrap()
                .push((files.to_vec(), Instant::now()));
            Ok(())
        }
    }

    #[tokio::test(start_paused = true)]
    async fn while_files_keep_coming_a_commit_waits_for_company() {
        let gather = Duration::from_millis(1);
        let group = GroupCommit::<u32>::gathering(gather);
        let timed = Timed::default();
        let start = |group: &GroupCommit<u32>| {
            let (group, timed) = (group.clone(), timed.clone());
            tokio::spawn(async move { run(&group, &timed).await })
        };

        // After a quiet spell a file goes at once.
        let quiet = Instant::now();
        let first = group.join(1);
        assert!(first.lead);
        let runner = start(&group);
        first.answer.await.unwrap().unwrap();
        runner.await.unwrap();

        // Right after it, the next commit waits `gather`, and a file arriving meanwhile
        // shares its group.
        let busy = Instant::now();
        let second = group.join(2);
        assert!(second.lead, "the run before has ended");
        let runner = start(&group);
        tokio::time::sleep(gather / 2).await;
        assert!(!group.join(3).lead, "a commit is under way");
        runner.await.unwrap();

        // After a quiet spell again, at once.
        tokio::time::sleep(BUSY_WITHIN).await;
        let later = Instant::now();
        assert!(group.join(4).lead);
        start(&group).await.unwrap();

        let groups = timed.0.lock().unwrap().clone();
        assert_eq!(
            groups,
            [
                (vec![1], quiet),
                (vec![2, 3], busy + gather),
                (vec![4], later)
            ]
        );
    }

    #[tokio::test]
    async fn a_commit_that_never_gathers_takes_what_waits_at_once() {
        let group = GroupCommit::<u32>::default();
        let timed = Timed::default();
        for n in 1..=2 {
            assert!(group.join(n).lead, "each run ends with its queue");
            let before = Instant::now();
            run(&group, &timed).await;
            assert!(before.elapsed() < BUSY_WITHIN, "no wait");
        }
        let groups: Vec<Vec<u32>> = timed
            .0
            .lock()
            .unwrap()
            .iter()
            .map(|(g, _)| g.clone())
            .collect();
        assert_eq!(groups, [vec![1], vec![2]]);
    }

    #[tokio::test]
    async fn a_panicking_run_answers_every_waiting_file_and_frees_the_queue() {
        let group = GroupCommit::<u32>::default();
        let first = group.join(1);
        let second = group.join(2);
        let shared = group.clone();
        struct Panics;
        impl RecordGroup<u32> for Panics {
            async fn record_group(&self, _: &[u32]) -> Result<(), StoreError> {
                panic!("boom")
            }
        }
        let task = tokio::spawn(async move { run(&shared, &Panics).await });
        assert!(task.await.is_err(), "the run panicked");
        assert!(first.answer.await.is_err() && second.answer.await.is_err());
        assert!(group.join(3).lead, "a new run can start");
    }

    #[test]
    fn a_group_is_a_power_of_two_of_files_up_to_max_group() {
        let group = GroupCommit::<usize>::default();
        for n in 0..MAX_GROUP + 7 {
            let _ = group.join(n);
        }
        let firsts: Vec<usize> = group.take().into_iter().map(|(n, _)| n).collect();
        assert_eq!(
            firsts,
            (0..MAX_GROUP).collect::<Vec<_>>(),
            "the first to arrive go first"
        );
        assert_eq!(group.take().len(), 4, "then a power of two of the 7 left");
        assert_eq!(group.take().len(), 2);
        assert_eq!(group.take().len(), 1);
        assert!(group.take().is_empty());
    }
}
