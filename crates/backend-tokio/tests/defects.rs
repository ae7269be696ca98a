//! The conformance suite catches serialized tasks and held chunks on tokio.

use chimeraforge_backend_tokio::TokioDefault;
use chimeraforge_conformance::cases;
use chimeraforge_conformance::defects::{HeldChunks, SerialSpawn};

#[test]
#[should_panic(expected = "spawned tasks are serialized")]
fn suite_catches_serialized_tasks() {
    cases::spawn_overlap::<SerialSpawn<TokioDefault>>();
}

#[test]
#[should_panic(expected = "reached the caller")]
fn suite_catches_chunks_held_until_1_kib() {
    cases::first_chunk_is_not_held::<HeldChunks<TokioDefault>>();
}

#[test]
#[should_panic(expected = "retried after response bytes arrived")]
fn suite_catches_a_retry_after_part_of_a_response() {
    cases::no_retry_after_part_of_a_response::<
        chimeraforge_conformance::defects::RetriesAfterPartialResponse<TokioDefault>,
    >();
}
