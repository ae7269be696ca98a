//! `async-std`: async-std's global executor with surf over async-h1 (pure Rust, no curl,
//! no tokio). Upstream async-std and surf are discontinued; kept because the report
//! compares them.
//!
//! Agents run unserialized: nothing here holds a lock across a request (the original
//! held an async mutex around each agent's call, which ran them one after another).

mod client;
mod connector;
pub mod framing;
mod runtime;

pub use client::{SurfBody, SurfClient, READ_BUFFER_BYTES};
pub use runtime::{AsyncStd, AsyncStdRuntime, THREADS_ENV};
