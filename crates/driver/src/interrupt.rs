//! Ctrl-C during a bench. The first SIGINT lets the run in flight finish, then the bench
//! writes its summary and exits 130; a second one kills the child and exits at once.
//! Children run in their own process group, so only this process sees the terminal's
//! SIGINT and decides.

use std::sync::atomic::{AtomicUsize, Ordering};

static SIGINTS: AtomicUsize = AtomicUsize::new(0);

/// Exit code of a bench stopped by Ctrl-C (128 + SIGINT, as shells report it).
pub const EXIT_CODE: u8 = 130;

const FIRST: &[u8] = b"\nchimeraforge: Ctrl-C: finishing the run in flight, then writing the summary (Ctrl-C again to stop at once)\n";
const SECOND: &[u8] = b"\nchimeraforge: Ctrl-C again: stopping the run in flight now\n";

extern "C" fn on_sigint(_: libc::c_int) {
    let n = SIGINTS.fetch_add(1, Ordering::SeqCst) + 1;
    let msg = if n == 1 { FIRST } else { SECOND };
    // SAFETY: write(2) is async-signal-safe; the buffer is static.
    unsafe {
        libc::write(libc::STDERR_FILENO, msg.as_ptr().cast(), msg.len());
    }
}

/// Count SIGINTs from now on instead of dying on the first.
pub fn install() -> std::io::Result<()> {
    // SAFETY: a zeroed sigaction with a plain handler, SA_RESTART so blocking reads and
    // waits resume; the handler only touches an atomic and calls write(2).
    unsafe {
        let mut sa: libc::sigaction = std::mem::zeroed();
        sa.sa_sigaction = on_sigint as *const () as libc::sighandler_t;
        sa.sa_flags = libc::SA_RESTART;
        libc::sigemptyset(&mut sa.sa_mask);
        if libc::sigaction(libc::SIGINT, &sa, std::ptr::null_mut()) != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// SIGINTs received since [`install`].
pub fn count() -> usize {
    SIGINTS.load(Ordering::SeqCst)
}

/// Stop starting runs (the first Ctrl-C).
pub fn stop_requested() -> bool {
    count() >= 1
}

/// Stop the run in flight too (the second Ctrl-C).
pub fn abort_requested() -> bool {
    count() >= 2
}
