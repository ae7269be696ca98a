//! One conformance suite for every chimeraforge backend.
//!
//! Each case in [`cases`] is written once, generic over `B: Backend`; a backend crate
//! instantiates all of them in its `tests/conformance.rs` with
//! `chimeraforge_conformance::conformance_tests!(MyBackend);`, which expands to one
//! `#[test]` per case. The server side is [`server::ScriptedServer`], a std::net
//! HTTP/1.1 server whose chunk splits and stalls are exact.

pub mod cases;
pub mod connections;
pub mod defects;
pub mod server;
pub mod tls;
pub mod unanswered;

pub use server::{Closes, Exchange, Framing, ReceivedRequest, Reply, ScriptedServer, Step};
pub use unanswered::UnansweredAddr;

/// Expand to one `#[test]` per conformance case for the given backend type.
#[macro_export]
macro_rules! conformance_tests {
    ($backend:ty) => {
        $crate::conformance_tests!(@cases $backend;
            facts_are_recorded,
            sleep_waits_its_duration,
            spawned_task_runs_unawaited,
            spawned_panic_is_join_error,
            spawn_overlap,
            first_chunk_is_not_held,
            bytes_survive_any_split,
            large_body_arrives_complete,
            error_statuses_have_readable_bodies,
            request_arrives_intact,
            connect_refused_is_connect_error,
            connect_timeout_is_enforced,
            invalid_url_is_rejected,
            concurrent_streams_overlap,
            dropped_body_closes_connection,
            abandoned_reads_are_safe,
            reasoning_stream_times_both_ttfts,
            tool_call_streams_are_generated_output,
            chunk_extensions_are_ignored,
            close_delimited_bodies_are_read_to_eof,
            malformed_chunk_size_is_framing,
            reset_mid_stream_is_closed_before_done,
            oversized_response_head_is_refused,
            missing_content_type_is_none,
            content_length_cut_short_is_a_body_error,
            flood_of_tokens_is_a_runaway_stream,
            flood_of_bytes_is_a_runaway_stream,
            total_timeout_says_whether_tokens_were_arriving,
            unasked_content_encoding_is_named,
            keep_alive_is_one_connection_per_agent,
            fresh_is_one_connection_per_call,
            idle_close_between_calls_reconnects,
            close_after_n_requests_reconnects,
            connection_close_in_a_response_is_obeyed,
            stale_connections_mid_burst_are_replaced,
            no_retry_after_part_of_a_response,
        );
    };
    (@cases $backend:ty; $($case:ident),* $(,)?) => {
        $crate::conformance_tests!(@in cases $backend; $($case),*);
    };
    (@in $module:ident $backend:ty; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                $crate::$module::$case::<$backend>();
            }
        )*
    };
}

/// Expand to one `#[test]` per https case ([`tls`]) for the given backend type: every
/// backend's client speaks TLS (the floor client does not, so it is not in
/// [`conformance_tests!`]).
#[macro_export]
macro_rules! tls_conformance_tests {
    ($backend:ty) => {
        $crate::conformance_tests!(@in tls $backend;
            https_keep_alive_reuses_and_replaces_an_idle_closed_connection,
            https_fresh_handshakes_once_per_call,
            https_untrusted_certificate_names_the_endpoint_and_ca_file,
        );
    };
}
