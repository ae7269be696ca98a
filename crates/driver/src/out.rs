//! Printing for long-running commands (`bench`, `overhead`) that must not die with their
//! reader: when stdout or stderr is a pipe whose reader went away (`| head`), a write
//! fails with `EPIPE` (SIGPIPE stays ignored there, so a crashed child's pipe cannot kill
//! the driver), and `println!` would panic and lose the run in progress. These writes give
//! up quietly instead: the measurement goes on and its results are still written to disk.

use std::io::Write;

fn write(mut to: impl Write, text: &str, newline: bool) {
    // Nothing printed carries an API key, whatever a server echoed (see `crate::secrets`).
    let text = crate::secrets::scrub(text);
    let _ = to.write_all(text.as_bytes());
    if newline {
        let _ = to.write_all(b"\n");
    }
    let _ = to.flush();
}

/// `text` and a newline on stdout, unless nobody reads it any more.
pub fn line(text: &str) {
    write(std::io::stdout().lock(), text, true);
}

/// `text` as is on stdout, unless nobody reads it any more.
pub fn text(text: &str) {
    write(std::io::stdout().lock(), text, false);
}

/// `text` and a newline on stderr, unless nobody reads it any more.
pub fn eline(text: &str) {
    write(std::io::stderr().lock(), text, true);
}
