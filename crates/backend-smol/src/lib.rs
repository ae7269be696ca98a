//! `smol-1kb`: an `async-executor` on a fixed set of threads with `async-io` timers, and
//! isahc (libcurl) whose response body is read through a 1 KiB buffer.
//!
//! The original smol-1kb held stream chunks back until 1 KiB had arrived, delaying
//! first tokens; here each read returns whatever arrived, up to 1 KiB.

mod client;
mod runtime;

pub use client::{IsahcBody, IsahcClient, READ_BUFFER_BYTES};
pub use runtime::{Smol1Kb, SmolRuntime, THREADS_ENV};
