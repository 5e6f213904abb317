//! The upload API, black-box: the real binary against real services, on both profiles
//! (Postgres + Azurite, and the embedded SQLite + local files).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod bounds;
mod check;
mod checksums;
mod cli;
mod content;
mod cors;
mod crash;
mod errors;
mod health;
mod lifecycle;
mod metrics;
mod support;
mod uploads;

/// Makes a `#[tokio::test]` per profile for each scenario: `name::azure` and `name::embedded`.
macro_rules! on_both_profiles {
    ($($module:ident :: $name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn azure() {
                    crate::$module::$name(filegate_tests::Profile::Azure).await
                }

                #[tokio::test]
                async fn embedded() {
                    crate::$module::$name(filegate_tests::Profile::Embedded).await
                }
            }
        )*
    };
}

on_both_profiles!(
    uploads::a_single_chunk_upload_is_complete_with_the_bytes_at_the_mode_path,
    uploads::five_chunks_in_sequence_make_one_file,
    uploads::chunks_out_of_order_and_four_in_parallel_make_one_file,
    uploads::a_chunk_sent_twice_replaces_the_first_copy,
    uploads::two_racing_copies_of_the_final_chunk_commit_once_and_agree,
    uploads::the_last_two_missing_chunks_racing_complete_the_file_once,
    uploads::the_status_lists_what_is_missing_and_then_the_url,
    uploads::the_status_of_a_large_upload_is_compact,
    uploads::an_upload_survives_a_server_restart_between_chunks,
    uploads::the_legacy_fields_and_a_case_insensitive_path_work,
    uploads::the_stored_name_is_the_sanitized_first_file_name,
    uploads::a_file_sent_before_its_fields_is_buffered_and_stored,
    uploads::a_field_after_a_streamed_file_is_refused_and_not_recorded,
    errors::missing_or_invalid_fields_get_400_naming_the_field,
    errors::a_body_that_is_not_multipart_is_refused_in_the_envelope,
    errors::a_missing_or_unknown_key_gets_401,
    errors::an_unknown_or_foreign_file_id_gets_404,
    errors::conflicting_chunks_get_409,
    errors::a_chunk_over_the_limit_gets_413,
    errors::a_file_over_its_modes_cap_gets_413_and_keeps_nothing,
    errors::a_kind_of_media_over_its_cap_gets_413_as_soon_as_block_zero_shows_it,
    errors::a_chunk_past_the_memory_budget_gets_503_and_keeps_nothing,
    errors::a_chunk_far_over_the_limit_is_refused_without_reading_it_all,
    errors::unknown_routes_and_methods_answer_in_the_envelope,
    errors::early_answers_reach_a_client_that_sends_its_whole_body_first,
    errors::requests_hyper_refuses_are_answered_in_the_envelope,
    metrics::metrics_count_uploads_and_answers_without_ids,
    metrics::metrics_move_to_their_own_listener,
    cors::a_listed_origin_gets_cors_on_every_answer_and_others_none,
    cors::the_uploader_and_the_try_page_are_served_with_etags,
    errors::a_key_over_its_rate_gets_429_with_retry_after,
    health::liveness_and_readiness_answer_without_a_key,
    health::a_revoked_key_is_refused,
    health::a_key_deleted_by_hand_is_refused,
    health::the_spec_and_the_docs_ui_are_served_without_a_key,
    content::the_content_route_streams_the_file_with_its_headers,
    content::a_single_range_gets_206_with_just_those_bytes,
    content::active_content_is_refused_or_served_as_an_attachment,
    content::content_of_an_open_unknown_or_foreign_file_is_refused,
    content::the_first_start_prints_a_working_key,
    crash::a_server_killed_mid_commit_leaves_the_file_whole_or_resumable,
    crash::a_file_committed_but_not_recorded_completes_on_the_retry,
    lifecycle::an_idle_upload_expires_answers_410_and_frees_its_blocks,
    lifecycle::a_deleted_file_answers_404_and_its_bytes_are_gone,
    lifecycle::old_outbox_events_are_purged,
    lifecycle::a_firm_past_its_open_upload_quota_gets_429,
    checksums::a_file_sent_in_order_carries_its_sha256,
    checksums::a_file_sent_out_of_order_gets_its_sha256_soon,
    checksums::a_chunk_failing_its_sha256_gets_400_and_is_not_kept,
    bounds::idle_connections_are_closed_after_the_header_timeout,
    bounds::a_head_that_trickles_in_is_closed_after_the_header_timeout,
    bounds::a_chunk_body_that_stalls_gets_408_after_the_idle_timeout,
    bounds::a_streamed_chunk_that_stalls_gets_408_after_the_idle_timeout,
    bounds::stalled_large_chunks_keep_the_servers_memory_bounded,
    bounds::a_kept_alive_connection_that_goes_quiet_is_closed_after_the_idle_timeout,
    bounds::a_full_server_serves_a_newcomer_once_idle_connections_time_out,
);
