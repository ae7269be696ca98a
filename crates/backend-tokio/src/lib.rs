//! tokio backends: `tokio-default` (multi-thread work-stealing) and `tokio-localset`
//! (current-thread runtime, every task on one thread through a `LocalSet`), both with
//! reqwest as the HTTP client.

mod client;
mod localset;
mod multi_thread;

pub use client::{ReqwestBody, ReqwestClient};
pub use localset::{TokioLocalSet, TokioLocalSetRuntime};
pub use multi_thread::{TokioDefault, TokioMultiThread, WORKERS_ENV};
