//! Live progress of a matrix, drawn by the parent only (the measured child never draws):
//! run k of n, its cell and run index, elapsed time and an estimate of what remains, and
//! while a Rust child streams, its phase and each agent's tokens and tok/s (from the child's
//! live samples, see [`crate::live`]).
//!
//! Where text goes: on a terminal, a progress bar on stderr with one line per finished run
//! above it; when stdout is not a terminal, or with `--quiet`, no per-run output at all;
//! with `--json`, stdout carries only the final JSON document and notes go to stderr.

use crate::matrix::Slot;
use crate::summary;
use chimeraforge_core::record::RunRecord;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use std::io::IsTerminal;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Agents shown by name in the live message; the rest are summed.
const LIVE_AGENTS_SHOWN: usize = 4;

#[derive(Default)]
struct LiveState {
    base: String,
    last: Option<(Instant, String, Vec<u64>)>,
}

/// How much the bench says while it runs, from the command line and the terminal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutputMode {
    /// Show the live bar and a line per run.
    pub live: bool,
    /// Print the final summary as JSON on stdout (and everything else on stderr).
    pub json: bool,
}

impl OutputMode {
    /// From `--quiet` and `--json`: live only when stdout is a terminal and neither is given.
    pub fn detect(quiet: bool, json: bool) -> OutputMode {
        let terminal = std::io::stdout().is_terminal() && std::io::stderr().is_terminal();
        OutputMode {
            live: terminal && !quiet && !json,
            json,
        }
    }

    /// A human note: stdout, or stderr under `--json` (stdout then carries only JSON).
    pub fn note(&self, text: &str) {
        if self.json {
            crate::out::eline(text);
        } else {
            crate::out::line(text);
        }
    }
}

/// The matrix's progress: hooks called by the bench loop, one call each.
pub struct Progress {
    mode: OutputMode,
    bar: Option<ProgressBar>,
    total: usize,
    runs_per_cell: u32,
    started: Instant,
    /// Position (0-based) and start of the run in progress.
    current: Option<(usize, Instant)>,
    /// Runs recorded before this session (resume).
    done_before: usize,
    /// The run's message and the last live sample, shared with the live sink.
    live: Arc<Mutex<LiveState>>,
    /// Runs finished in this session.
    finished: usize,
    failed: usize,
}

impl Progress {
    /// Progress over `total` runs of `runs_per_cell` runs per cell, `done` of them already
    /// recorded (a resumed matrix).
    pub fn new(mode: OutputMode, total: usize, done: usize, runs_per_cell: u32) -> Progress {
        let bar = mode.live.then(|| {
            let bar = ProgressBar::with_draw_target(
                Some(total as u64),
                ProgressDrawTarget::stderr_with_hz(4),
            );
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner:.green} {elapsed_precise} [{bar:24.cyan/blue}] {pos}/{len} done  {wide_msg}",
                )
                .expect("the template is valid")
                .progress_chars("=> "),
            );
            bar.set_position(done as u64);
            bar.enable_steady_tick(Duration::from_millis(250));
            bar
        });
        Progress {
            mode,
            bar,
            total,
            runs_per_cell,
            started: Instant::now(),
            current: None,
            done_before: done,
            live: Arc::default(),
            finished: 0,
            failed: 0,
        }
    }

    /// A human note (the matrix, the results path): stdout, or stderr under `--json`;
    /// printed above the bar when it is drawn.
    pub fn note(&self, text: &str) {
        match &self.bar {
            Some(bar) => bar.suspend(|| self.mode.note(text)),
            None => self.mode.note(text),
        }
    }

    /// Whether the final summary is JSON.
    pub fn json(&self) -> bool {
        self.mode.json
    }

    /// Run `index` (0-based) of the order starts.
    pub fn run_started(&mut self, index: usize, slot: &Slot) {
        self.current = Some((index, Instant::now()));
        if let Some(bar) = &self.bar {
            let base = format!(
                "running {}/{}: {} · {} · {} · run {}/{}{}",
                index + 1,
                self.total,
                slot.cell.backend,
                slot.cell.model,
                slot.cell.scenario.name(),
                slot.run_index + 1,
                self.runs_per_cell,
                self.eta()
                    .map(|eta| format!(" · ~{} left", clock(eta)))
                    .unwrap_or_default()
            );
            bar.set_message(base.clone());
            let mut live = self.live.lock().unwrap_or_else(|e| e.into_inner());
            *live = LiveState { base, last: None };
        }
    }

    /// Where the running child's live samples go: `None` when no bar is drawn, so quiet and
    /// scripted runs never ask a child for them.
    pub fn live_sink(&self) -> Option<crate::spawn::LiveSink> {
        let bar = self.bar.clone()?;
        let state = Arc::clone(&self.live);
        Some(Arc::new(move |sample: crate::live::LiveSample| {
            let mut st = state.lock().unwrap_or_else(|e| e.into_inner());
            let now = Instant::now();
            let rates: Option<Vec<f64>> = match &st.last {
                Some((t, phase, prev))
                    if *phase == sample.phase && prev.len() == sample.tokens.len() =>
                {
                    let dt = now.duration_since(*t).as_secs_f64().max(1e-3);
                    Some(
                        sample
                            .tokens
                            .iter()
                            .zip(prev)
                            .map(|(n, p)| n.saturating_sub(*p) as f64 / dt)
                            .collect(),
                    )
                }
                _ => None,
            };
            bar.set_message(format!(
                "{} · {}",
                st.base,
                live_text(&sample, rates.as_deref())
            ));
            st.last = Some((now, sample.phase, sample.tokens));
        }))
    }

    /// The run started last ended with a record (successful or failed).
    pub fn run_finished(&mut self, record: &RunRecord) {
        let position = self.current.map_or(self.finished, |(i, _)| i) + 1;
        self.end_run(!record.is_ok());
        if self.mode.live {
            self.note(&summary::run_line(position, self.total, record));
        }
    }

    /// The run started last produced no record (its child process failed).
    pub fn run_failed(&mut self, error: &dyn std::fmt::Display) {
        let position = self.current.map_or(self.finished, |(i, _)| i) + 1;
        self.end_run(true);
        if self.mode.live {
            self.note(&format!("[{position}/{}] FAILED: {error}", self.total));
        }
    }

    fn end_run(&mut self, failed: bool) {
        self.current = None;
        self.finished += 1;
        self.failed += usize::from(failed);
        if let Some(bar) = &self.bar {
            bar.set_position((self.done_before + self.finished) as u64);
        }
    }

    /// Estimated time left: the mean duration of this session's runs times the runs left.
    pub fn eta(&self) -> Option<Duration> {
        if self.finished == 0 {
            return None;
        }
        let per_run = self.started.elapsed() / self.finished as u32;
        let left = self.total.saturating_sub(self.done_before + self.finished) as u32;
        Some(per_run * left)
    }

    /// The matrix is over (or stopped): remove the bar, and say how long it took.
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        let failed = if self.failed > 0 {
            format!(", {} failed", self.failed)
        } else {
            String::new()
        };
        if self.mode.live {
            self.note(&format!(
                "{} of {} runs in {}{failed}",
                self.done_before + self.finished,
                self.total,
                clock(self.started.elapsed())
            ));
        }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        // An early return (an error) leaves the bar as it stood, ended by a newline.
        if let Some(bar) = self.bar.take() {
            bar.abandon();
        }
    }
}

/// `1:02:03` or `2:03`.
pub fn clock(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 3600 {
        format!("{}:{:02}:{:02}", s / 3600, s / 60 % 60, s % 60)
    } else {
        format!("{}:{:02}", s / 60, s % 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clock_formats_minutes_and_hours() {
        assert_eq!(clock(Duration::from_secs(5)), "0:05");
        assert_eq!(clock(Duration::from_secs(125)), "2:05");
        assert_eq!(clock(Duration::from_secs(3725)), "1:02:05");
    }

    #[test]
    fn eta_is_unknown_until_a_run_finishes() {
        let mut p = Progress::new(
            OutputMode {
                live: false,
                json: false,
            },
            4,
            0,
            2,
        );
        assert!(p.eta().is_none());
        p.end_run(false);
        assert!(p.eta().is_some());
        p.end_run(true);
        assert_eq!(p.failed, 1);
    }
}

/// `sequential: collector 40 tok 38 tok/s, insight 0 tok` (the first few agents, the rest summed).
fn live_text(sample: &crate::live::LiveSample, rates: Option<&[f64]>) -> String {
    let rate = |i: usize| {
        rates
            .and_then(|r| r.get(i))
            .map(|r| format!(" {r:.0} tok/s"))
            .unwrap_or_default()
    };
    let mut parts: Vec<String> = sample
        .agents
        .iter()
        .zip(&sample.tokens)
        .take(LIVE_AGENTS_SHOWN)
        .enumerate()
        .map(|(i, (id, n))| format!("{id} {n} tok{}", rate(i)))
        .collect();
    if sample.tokens.len() > LIVE_AGENTS_SHOWN {
        let rest: u64 = sample.tokens[LIVE_AGENTS_SHOWN..].iter().sum();
        parts.push(format!(
            "+{} agents {rest} tok",
            sample.tokens.len() - LIVE_AGENTS_SHOWN
        ));
    }
    format!("{}: {}", sample.phase, parts.join(", "))
}

#[cfg(test)]
mod live_tests {
    use super::*;

    #[test]
    fn live_text_names_phase_agents_tokens_and_rates() {
        let s = crate::live::LiveSample {
            phase: "concurrent".into(),
            agents: (0..6).map(|i| format!("a{i}")).collect(),
            tokens: vec![10, 20, 0, 1, 5, 5],
        };
        let t = live_text(&s, Some(&[40.0, 80.0, 0.0, 4.0]));
        assert_eq!(
            t,
            "concurrent: a0 10 tok 40 tok/s, a1 20 tok 80 tok/s, a2 0 tok 0 tok/s, a3 1 tok 4 tok/s, +2 agents 10 tok"
        );
        assert_eq!(
            live_text(&s, None).split(", ").next(),
            Some("concurrent: a0 10 tok")
        );
    }
}
