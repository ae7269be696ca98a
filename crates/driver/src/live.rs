//! Live progress of a measured child, read by the parent while the child streams.
//!
//! The measured path only adds one relaxed atomic increment per text event
//! ([`chimeraforge_core::call::CallTarget::live_tokens`]). A plain OS thread, outside the
//! runtime under test, samples the counters every [`INTERVAL`] and writes one line
//! `@live {"phase":"concurrent","agents":["collector","insight"],"tokens":[12,30]}` to stderr.
//! It runs only when the parent asks for it (`CHIMERAFORGE_LIVE=1`, set when a progress bar
//! is drawn), so scripted and quiet runs have no sampler at all.

use chimeraforge_core::record::Phase;
use std::io::Write;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Environment variable with which the parent asks a child for live progress.
pub const ENV: &str = "CHIMERAFORGE_LIVE";
/// Prefix of a live progress line on the child's stderr.
pub const PREFIX: &str = "@live ";
/// How often the sampler writes a line.
pub const INTERVAL: Duration = Duration::from_millis(250);

/// Counters shared between the calls (writers) and the sampler thread (reader).
pub struct LiveCounters {
    phase: AtomicU8,
    pub tokens: Vec<Arc<AtomicU64>>,
}

impl LiveCounters {
    pub fn new(agents: usize) -> Arc<LiveCounters> {
        Arc::new(LiveCounters {
            phase: AtomicU8::new(0),
            tokens: (0..agents).map(|_| Arc::new(AtomicU64::new(0))).collect(),
        })
    }

    /// The phase now running; counters restart at zero for it.
    pub fn set_phase(&self, phase: Phase) {
        for t in &self.tokens {
            t.store(0, Ordering::Relaxed);
        }
        // 0 is "starting", so phase p is stored as p + 1.
        self.phase.store(phase as u8 + 1, Ordering::Relaxed);
    }

    fn phase_name(&self) -> &'static str {
        match self.phase.load(Ordering::Relaxed) {
            0 => "starting",
            code => Phase::ALL[usize::from(code - 1)].as_str(),
        }
    }
}

/// The sampler thread; stops (and joins) when dropped.
pub struct Sampler {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Sampler {
    /// Start sampling `counters` for agents named `ids`, if the parent asked for it.
    pub fn start_if_requested(counters: &Arc<LiveCounters>, ids: Vec<String>) -> Option<Sampler> {
        if std::env::var(ENV).as_deref() != Ok("1") {
            return None;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let (stop2, counters) = (Arc::clone(&stop), Arc::clone(counters));
        let thread = std::thread::Builder::new()
            .name("live-progress".into())
            .spawn(move || {
                while !stop2.load(Ordering::Relaxed) {
                    std::thread::sleep(INTERVAL);
                    let tokens: Vec<u64> = counters
                        .tokens
                        .iter()
                        .map(|t| t.load(Ordering::Relaxed))
                        .collect();
                    let line = serde_json::json!({
                        "phase": counters.phase_name(),
                        "agents": ids,
                        "tokens": tokens,
                    });
                    let mut err = std::io::stderr().lock();
                    let _ = writeln!(err, "{PREFIX}{line}");
                }
            })
            .ok()?;
        Some(Sampler {
            stop,
            thread: Some(thread),
        })
    }
}

impl Drop for Sampler {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One parsed live line: the phase, and each agent's text events so far in it.
#[derive(Debug, Clone, PartialEq, serde::Deserialize)]
pub struct LiveSample {
    pub phase: String,
    pub agents: Vec<String>,
    pub tokens: Vec<u64>,
}

/// Parse a stderr line of a child; `None` unless it is a live progress line.
pub fn parse(line: &str) -> Option<LiveSample> {
    serde_json::from_str(line.strip_prefix(PREFIX)?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn phase_resets_counters_and_lines_parse() {
        let c = LiveCounters::new(2);
        c.tokens[1].fetch_add(5, Ordering::Relaxed);
        c.set_phase(Phase::Concurrent);
        assert_eq!(c.tokens[1].load(Ordering::Relaxed), 0);
        assert_eq!(c.phase_name(), "concurrent");
        let s = parse(r#"@live {"phase":"sequential","agents":["a","b"],"tokens":[3,0]}"#).unwrap();
        assert_eq!(s.tokens, vec![3, 0]);
        assert!(parse("warning: something else").is_none());
    }
}
