//! The conformance suite catches the original async-std defect on this backend.

use chimeraforge_backend_async_std::AsyncStd;
use chimeraforge_conformance::{cases, defects::SerializedRequests};

/// Takes about 13 s: 64 serialized 200 ms streams, before the assertion can fail.
#[test]
#[should_panic(expected = "serial would be")]
fn suite_catches_a_lock_around_requests() {
    cases::concurrent_streams_overlap::<SerializedRequests<AsyncStd>>();
}

#[test]
#[should_panic(expected = "retried after response bytes arrived")]
fn suite_catches_a_retry_after_part_of_a_response() {
    cases::no_retry_after_part_of_a_response::<
        chimeraforge_conformance::defects::RetriesAfterPartialResponse<AsyncStd>,
    >();
}
