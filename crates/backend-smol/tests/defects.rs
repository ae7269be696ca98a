//! The conformance suite catches the original smol-1kb defect on this backend.

use chimeraforge_backend_smol::Smol1Kb;
use chimeraforge_conformance::{cases, defects::HeldChunks};

#[test]
#[should_panic(expected = "reached the caller")]
fn suite_catches_chunks_held_until_1_kib() {
    cases::first_chunk_is_not_held::<HeldChunks<Smol1Kb>>();
}

#[test]
#[should_panic(expected = "spawned tasks are serialized")]
fn suite_catches_serialized_tasks() {
    cases::spawn_overlap::<chimeraforge_conformance::defects::SerialSpawn<Smol1Kb>>();
}

#[test]
#[should_panic(expected = "retried after response bytes arrived")]
fn suite_catches_a_retry_after_part_of_a_response() {
    cases::no_retry_after_part_of_a_response::<
        chimeraforge_conformance::defects::RetriesAfterPartialResponse<Smol1Kb>,
    >();
}
