//! Ctrl-C (SIGINT) and SIGTERM during a bench: both are a request to stop. The first one lets
//! the run in flight finish, then the bench writes its summary, the report and the manifest
//! (`interrupted`, `finished_utc`) and exits 128 + the first signal's number: 130 after
//! SIGINT, 143 after SIGTERM. A second one of either kind (SIGTERM after SIGTERM, SIGTERM
//! after Ctrl-C, Ctrl-C after SIGTERM) kills the child, finishes the manifest and exits at
//! once with the same code. Children run in their own process group, so only this process
//! sees the terminal's SIGINT, and they ignore SIGTERM (a cgroup-wide SIGTERM from systemd
//! reaches them too), so this process alone decides.
//!
//! `timeout DURATION chimeraforge bench` sends one SIGTERM: the run in flight finishes. With
//! `timeout -k GRACE`, a SIGKILL follows after GRACE; runs already recorded are safe on disk
//! either way, but a SIGKILL leaves no summary and no `finished_utc`: make GRACE longer than
//! one run.

use std::sync::atomic::{AtomicI32, AtomicUsize, Ordering};

static SIGNALS: AtomicUsize = AtomicUsize::new(0);
static FIRST: AtomicI32 = AtomicI32::new(0);

/// Exit code of a bench stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_CODE: u8 = 130;

/// Exit code of a bench stopped by SIGTERM (128 + SIGTERM).
pub const EXIT_CODE_TERM: u8 = 143;

const FIRST_INT: &[u8] = b"\nchimeraforge: Ctrl-C: finishing the run in flight, then writing the summary (Ctrl-C again to stop at once)\n";
const FIRST_TERM: &[u8] = b"\nchimeraforge: SIGTERM: finishing the run in flight, then writing the summary (a second SIGTERM or Ctrl-C stops at once)\n";
const SECOND_INT: &[u8] = b"\nchimeraforge: Ctrl-C again: stopping the run in flight now\n";
const SECOND_TERM: &[u8] =
    b"\nchimeraforge: SIGTERM after a stop request: stopping the run in flight now\n";

extern "C" fn on_signal(sig: libc::c_int) {
    let n = SIGNALS.fetch_add(1, Ordering::SeqCst) + 1;
    if n == 1 {
        FIRST.store(sig, Ordering::SeqCst);
    }
    let msg = match (n, sig) {
        (1, libc::SIGTERM) => FIRST_TERM,
        (1, _) => FIRST_INT,
        (_, libc::SIGTERM) => SECOND_TERM,
        _ => SECOND_INT,
    };
    // SAFETY: write(2) is async-signal-safe; the buffer is static.
    unsafe {
        libc::write(libc::STDERR_FILENO, msg.as_ptr().cast(), msg.len());
    }
}

/// Count SIGINTs and SIGTERMs from now on instead of dying on the first.
pub fn install() -> std::io::Result<()> {
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: a zeroed sigaction with a plain handler, SA_RESTART so blocking reads and
        // waits resume; the handler only touches atomics and calls write(2).
        unsafe {
            let mut sa: libc::sigaction = std::mem::zeroed();
            sa.sa_sigaction = on_signal as *const () as libc::sighandler_t;
            sa.sa_flags = libc::SA_RESTART;
            libc::sigemptyset(&mut sa.sa_mask);
            if libc::sigaction(sig, &sa, std::ptr::null_mut()) != 0 {
                return Err(std::io::Error::last_os_error());
            }
        }
    }
    Ok(())
}

/// Stop signals (SIGINT or SIGTERM) received since [`install`].
pub fn count() -> usize {
    SIGNALS.load(Ordering::SeqCst)
}

/// Stop starting runs (the first signal).
pub fn stop_requested() -> bool {
    count() >= 1
}

/// Stop the run in flight too (the second signal).
pub fn abort_requested() -> bool {
    count() >= 2
}

/// The first stop signal's name, `SIGINT` or `SIGTERM`; `None` before any.
pub fn first_signal() -> Option<&'static str> {
    match FIRST.load(Ordering::SeqCst) {
        0 => None,
        libc::SIGTERM => Some("SIGTERM"),
        _ => Some("SIGINT"),
    }
}

/// How the stop was asked for, in words: `Ctrl-C` or `SIGTERM`.
pub fn first_signal_words() -> &'static str {
    match first_signal() {
        Some("SIGTERM") => "SIGTERM",
        _ => "Ctrl-C",
    }
}

/// The exit code of an interrupted bench: 143 when the first stop signal was SIGTERM, else 130.
pub fn exit_code() -> u8 {
    if first_signal() == Some("SIGTERM") {
        EXIT_CODE_TERM
    } else {
        EXIT_CODE
    }
}
