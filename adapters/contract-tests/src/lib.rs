//! The promises of filegate's ports, written once as async test cases, one module per port, and
//! one macro per port that turns its case list into one `#[tokio::test]` per case. Every adapter
//! runs them against a real instance of its backend (Postgres and SQLite for the metadata ports;
//! Azurite and the local file system for the blob store), and this crate runs them against the
//! in-memory fakes, so that adapters and fakes cannot drift apart.
//!
//! An adapter's test file defines a runner, `async fn run<F, Fut>(case: F)` with
//! `F: FnOnce(Store) -> Fut + Send + 'static` and `Fut: Future<Output = ()> + Send + 'static`,
//! that hands `case` a fresh, empty store and cleans up after it (even when it panics), and then
//! writes for instance `filegate_contract_tests::upload_store_suite!(run);`. The tests land in a
//! module named after the port (`uploads::racing_copies_of_the_final_block_commit_once`), so
//! that a failure names the port and the promise. The racing cases spawn their requests with
//! `tokio::spawn`; the generated tests use a multi-threaded runtime so that they race for real.
//!
//! Timestamps are built at whole microseconds, the precision of Postgres' `timestamptz`, since
//! a store is expected to give back what it was given.

pub mod blobs;
pub mod keys;
pub mod outbox;
mod support;
pub mod tasks;
pub mod upgrade;
pub mod uploads;

/// One test per case of `$port`'s module, each handed a fresh store by `$run`.
#[doc(hidden)]
#[macro_export]
macro_rules! __port_suite {
    ($port:ident, $run:path, [$($case:ident),* $(,)?]) => {
        mod $port {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
                async fn $case() {
                    $run(|store| async move { $crate::$port::$case(store).await }).await;
                }
            )*
        }
    };
}

/// The [`KeyStore`](filegate_application::ports::KeyStore) suite.
#[macro_export]
macro_rules! key_store_suite {
    ($run:path) => {
        $crate::__port_suite!(keys, $run, [api_keys_are_found_by_hash_until_revoked]);
    };
}

/// The [`UploadStore`](filegate_application::ports::UploadStore) suite, under the
/// application's completion rule.
#[macro_export]
macro_rules! upload_store_suite {
    ($run:path) => {
        $crate::__port_suite!(
            uploads,
            $run,
            [
                a_session_is_found_by_its_own_firm_only,
                opening_the_same_file_twice_is_a_conflict,
                blocks_arrive_in_any_order_and_a_resent_index_replaces,
                completion_stores_the_record_the_commit_returned,
                a_failed_commit_keeps_nothing_of_the_call,
                racing_copies_of_the_final_block_commit_once,
                racing_distinct_blocks_commit_once,
                a_block_for_an_unknown_file_finds_no_session,
                a_first_block_opens_its_session_in_the_same_transaction,
                a_whole_file_is_recorded_committed_at_once,
                whole_files_recorded_at_once_each_get_their_own_answer,
                an_incomplete_block_is_recorded_in_one_step_and_only_then,
                racing_incomplete_blocks_count_each_index_once,
                an_upload_id_is_open_only_while_its_session_is,
                open_uploads_are_counted_per_firm,
                files_without_a_checksum_are_listed_until_one_is_set,
                the_inventory_lists_live_files_and_known_paths,
                racing_sweepers_expire_each_upload_once,
                idle_open_sessions_expire_once,
                a_deleted_session_is_a_tombstone,
            ]
        );
    };
}

/// The [`TaskStore`](filegate_application::ports::TaskStore) suite.
#[macro_export]
macro_rules! task_store_suite {
    ($run:path) => {
        $crate::__port_suite!(
            tasks,
            $run,
            [
                a_task_is_claimed_on_first_sight,
                a_claim_while_the_lease_is_live_is_busy,
                a_task_whose_lease_ran_out_is_claimed_again,
                save_task_round_trips_every_field,
                a_finished_task_is_not_claimed_again,
                racing_claims_of_a_new_task_claim_it_once,
                racing_claims_of_an_expired_lease_claim_it_once,
            ]
        );
    };
}

/// The [`OutboxStore`](filegate_application::ports::OutboxStore) suite (its store also
/// completes uploads, which is what writes events).
#[macro_export]
macro_rules! outbox_store_suite {
    ($run:path) => {
        $crate::__port_suite!(
            outbox,
            $run,
            [
                completing_a_file_puts_one_event_in_the_outbox,
                a_failed_commit_puts_no_event_in_the_outbox,
                published_events_are_no_longer_unpublished,
                unpublished_events_come_oldest_first_up_to_the_limit,
                old_events_are_purged,
            ]
        );
    };
}

/// Every metadata suite, for an adapter that implements every metadata port.
#[macro_export]
macro_rules! metadata_store_suites {
    ($run:path) => {
        $crate::key_store_suite!($run);
        $crate::upload_store_suite!($run);
        $crate::task_store_suite!($run);
        $crate::outbox_store_suite!($run);
    };
}

/// [`uploads::a_group_of_whole_files_is_recorded_as_one`] for a store that records new files in
/// groups of up to `$max`, each group through `$record(&store, parts)`.
#[macro_export]
macro_rules! largest_group_case {
    ($run:path, $max:expr, $record:path) => {
        /// The largest group of new files the store records together succeeds as one (see the
        /// case).
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn a_group_of_whole_files_is_recorded_as_one() {
            $run(|store| async move {
                let recorder = store.clone();
                $crate::uploads::a_group_of_whole_files_is_recorded_as_one(
                    store,
                    $max,
                    |parts| async move { $record(&recorder, parts).await },
                )
                .await;
            })
            .await;
        }
    };
}

/// The [`BlobStore`](filegate_application::ports::BlobStore) suite: every case that needs
/// only the store. [`blobs::share_url_answers_the_bytes`] needs a store whose shared URLs are
/// readable by anyone holding them, so an adapter with such URLs calls it itself. A module name
/// may come first, to run the suite on two configurations of one adapter.
#[macro_export]
macro_rules! blob_store_suite {
    ($run:path) => {
        $crate::blob_store_suite!(blob_store, $run);
    };
    ($module:ident, $run:path) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            $crate::__blob_cases!(
                $run,
                [
                    ping_answers_ok,
                    a_block_arriving_in_pieces_is_staged_whole,
                    a_body_that_fails_midway_is_answered_with_its_error,
                    blocks_staged_out_of_order_are_committed_in_the_given_order,
                    a_restaged_index_wins_when_its_new_part_is_committed,
                    blocks_of_uneven_sizes_are_committed_whole,
                    a_block_that_failed_midway_can_be_sent_again,
                    discarding_the_staging_keeps_the_blob,
                    a_blob_put_whole_reads_back_and_a_failed_put_leaves_none,
                    a_range_reads_just_those_bytes,
                    a_large_block_comes_back_whole,
                    a_block_of_several_mebibytes_in_pieces_comes_back_whole,
                    unusual_file_names_round_trip,
                    committing_a_committed_file_again_succeeds_and_changes_nothing,
                    a_repeated_commit_with_another_size_never_changes_the_blob,
                    committing_an_unknown_part_fails_and_leaves_no_blob,
                    a_missing_blob_is_not_found_and_deleting_it_succeeds,
                    a_deleted_blob_is_not_found,
                    the_location_names_the_path,
                    committed_blobs_are_listed_and_staging_is_not,
                ]
            );
        }
    };
}

#[doc(hidden)]
#[macro_export]
macro_rules! __blob_cases {
    ($run:path, [$($case:ident),* $(,)?]) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
        async fn $case() {
            $run(|store| async move { $crate::blobs::$case(&store).await }).await;
        }
    )*};
}
