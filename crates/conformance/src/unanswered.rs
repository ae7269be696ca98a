//! A loopback address whose connects go unanswered, to exercise connect timeouts.
//!
//! Linux drops an incoming SYN while the listener's accept queue is full, so a listener
//! with backlog 0 and one unaccepted connection leaves every further connect hanging in
//! SYN retransmission: a real connect timeout on 127.0.0.1, no outside address needed.

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

/// A listener with a full accept queue; connects to [`UnansweredAddr::addr`] hang.
pub struct UnansweredAddr {
    addr: SocketAddr,
    _listener: TcpListener,
    _queued: Vec<TcpStream>,
}

impl UnansweredAddr {
    /// Fill a fresh listener's accept queue; `Err(reason)` if this host can't do that.
    pub fn new() -> Result<Self, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        shrink_backlog(&listener)?;
        let mut queued = Vec::new();
        for _ in 0..16 {
            match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(stream) => queued.push(stream),
                Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Ok(UnansweredAddr {
                        addr,
                        _listener: listener,
                        _queued: queued,
                    })
                }
                Err(e) => return Err(format!("filling the accept queue failed: {e}")),
            }
        }
        Err("the accept queue never filled: connects are still answered".to_owned())
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

#[cfg(unix)]
fn shrink_backlog(listener: &TcpListener) -> Result<(), String> {
    use std::os::fd::AsRawFd;
    // SAFETY: `listen` on a valid, already-listening socket only updates its backlog.
    let rc = unsafe { libc::listen(listener.as_raw_fd(), 0) };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "listen(backlog 0) failed: {}",
            std::io::Error::last_os_error()
        ))
    }
}

#[cfg(not(unix))]
fn shrink_backlog(_: &TcpListener) -> Result<(), String> {
    Err("shrinking a listen backlog needs unix".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn connects_hang_until_timeout() {
        let target = match UnansweredAddr::new() {
            Ok(t) => t,
            Err(reason) => {
                eprintln!("skipped: {reason}");
                return;
            }
        };
        let start = Instant::now();
        let err = TcpStream::connect_timeout(&target.addr(), Duration::from_millis(300))
            .expect_err("connect must not succeed");
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(start.elapsed() >= Duration::from_millis(290));
    }
}
