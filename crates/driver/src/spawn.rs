//! Each run in a child process: this binary's `child` command for compiled backends, an
//! interpreter for external ones; the child's record, or why there is none ([`ChildFailure`]).

use crate::child::ChildJob;
use chimeraforge_core::record::RunRecord;
use chimeraforge_results::{ChildFailure, ChildFailureKind};
use std::io::{Read, Write};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};

/// Longest tail of a failed child's stderr kept in its failure, bytes.
const STDERR_TAIL: usize = 4096;

/// How often the parent looks at the child and at Ctrl-C or SIGTERM while a run is in flight.
const POLL: std::time::Duration = std::time::Duration::from_millis(10);

/// Run one job in a child process of `exe` and wait for its record.
///
/// The child gets its own process group, so a terminal Ctrl-C reaches only this process
/// (see [`crate::interrupt`]), and ignores SIGTERM; a second Ctrl-C or SIGTERM kills the
/// child here. On Linux the child
/// also dies with this process, so a killed bench leaves no run loading the servers.
pub fn run_child(exe: &Path, job: &ChildJob) -> Result<RunRecord, ChildFailure> {
    run_child_live(exe, job, None)
}

/// Receives a child's live progress samples (on a reader thread of the parent).
pub type LiveSink = std::sync::Arc<dyn Fn(crate::live::LiveSample) + Send + Sync>;

/// [`run_child`], asking the child for live progress when `live` is given: its samples go to
/// `live` as they arrive, and never into the failure text.
pub fn run_child_live(
    exe: &Path,
    job: &ChildJob,
    live: Option<LiveSink>,
) -> Result<RunRecord, ChildFailure> {
    // A child's stderr is kept in the manifest and printed: never with an API key in it.
    let fail = |kind: ChildFailureKind, status: String, detail: String| ChildFailure {
        kind,
        backend: job.backend.clone(),
        status,
        detail: crate::secrets::scrub(&detail).into_owned(),
    };
    // Compiled backends run in a child of this binary; external ones (Python) in their own
    // interpreter, with the same job on stdin, the same record on stdout, the same accounting.
    let mut cmd = match crate::backends::external_command(&job.backend) {
        Some(Ok(cmd)) => cmd,
        Some(Err(why)) => {
            return Err(fail(
                ChildFailureKind::NotStarted,
                "not started".into(),
                why,
            ))
        }
        None => {
            let mut cmd = Command::new(exe);
            cmd.arg("child");
            cmd
        }
    };
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    // Every child is asked the same way, compiled or external (Python): only when a sink is
    // given, never because this process happened to inherit the variable, so quiet and
    // scripted runs carry no sampler.
    if live.is_some() {
        cmd.env(crate::live::ENV, "1");
    } else {
        cmd.env_remove(crate::live::ENV);
    }
    // SAFETY: signal(2) is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            // A SIGTERM for the whole group or cgroup (systemd's stop, a CI cancel) is the
            // parent's to act on (see `crate::interrupt`): the run in flight finishes, or a
            // second signal makes the parent kill it. The disposition survives exec, so
            // Python children ignore it too.
            if libc::signal(libc::SIGTERM, libc::SIG_IGN) == libc::SIG_ERR {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    #[cfg(target_os = "linux")]
    // SAFETY: prctl is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| {
        fail(
            ChildFailureKind::NotStarted,
            "not started".into(),
            e.to_string(),
        )
    })?;
    let stdout = child.stdout.take().expect("stdout is piped");
    let stderr = child.stderr.take().expect("stderr is piped");
    let read_all = |mut r: Box<dyn Read + Send>| {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let _ = r.read_to_end(&mut buf);
            buf
        })
    };
    let out_reader = read_all(Box::new(stdout));
    let err_reader = std::thread::spawn(move || {
        // Live lines go to the sink; everything else is kept for a failure's message.
        let mut kept = Vec::new();
        let mut reader = std::io::BufReader::new(stderr);
        let mut line = Vec::new();
        while matches!(std::io::BufRead::read_until(&mut reader, b'\n', &mut line), Ok(n) if n > 0)
        {
            match (
                &live,
                crate::live::parse(String::from_utf8_lossy(&line).trim_end()),
            ) {
                (Some(sink), Some(sample)) => sink(sample),
                _ => kept.extend_from_slice(&line),
            }
            line.clear();
        }
        kept
    });
    let input = serde_json::to_vec(job).expect("a job always serializes");
    // A child that dies before reading its job shows up in its exit status below.
    let stdin_error = {
        let mut stdin = child.stdin.take().expect("stdin is piped");
        stdin.write_all(&input).err()
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if crate::interrupt::abort_requested() => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(fail(
                    ChildFailureKind::Interrupted,
                    "killed".into(),
                    "stopped by a second Ctrl-C or SIGTERM; this run has no record".into(),
                ));
            }
            Ok(None) => std::thread::sleep(POLL),
            Err(e) => {
                let _ = child.kill();
                return Err(fail(
                    ChildFailureKind::Crashed,
                    "wait".into(),
                    e.to_string(),
                ));
            }
        }
    };
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let stderr_tail = || {
        let s = String::from_utf8_lossy(&stderr[stderr.len().saturating_sub(STDERR_TAIL)..])
            .trim()
            .to_owned();
        match &stdin_error {
            Some(e) if s.is_empty() => format!("(no stderr; writing its job failed: {e})"),
            _ if s.is_empty() => "(no stderr)".to_owned(),
            _ => s,
        }
    };
    if !status.success() {
        use std::os::unix::process::ExitStatusExt;
        let kind = if status.signal().is_some() {
            ChildFailureKind::Crashed
        } else {
            ChildFailureKind::ExitedWithError
        };
        return Err(fail(kind, status.to_string(), stderr_tail()));
    }
    serde_json::from_slice(&stdout).map_err(|e| {
        fail(
            ChildFailureKind::UnreadableRecord,
            status.to_string(),
            format!("unreadable record: {e}; stderr: {}", stderr_tail()),
        )
    })
}
