//! The response body: whole, or fed frame by frame by a generation task.

use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

use crate::stats::{FirstToken, Stats};

/// What a generation task hands to the connection.
pub(crate) enum Chunk {
    /// One HTTP chunk.
    Data(Bytes),
    /// Fail the body so hyper drops the connection without the terminating chunk.
    Abort,
    /// The next data carries the first token: the body records when it reached the
    /// connection (see [`FirstToken`]).
    FirstTokenDue(Scheduled),
}

/// A first token's schedule, named so the two instants cannot be swapped.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Scheduled {
    /// When it is due.
    pub(crate) due: Instant,
    /// When its request arrived.
    pub(crate) arrival: Instant,
}

/// A body that is either known whole (sent with a content-length) or streamed (chunked).
pub(crate) struct SimBody {
    first: Option<Bytes>,
    rx: Option<mpsc::Receiver<Chunk>>,
    /// The first token's schedule, until its bytes are handed to the connection.
    due: Option<Scheduled>,
    stats: Option<Arc<Stats>>,
}

impl SimBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        SimBody {
            first: Some(bytes.into()),
            rx: None,
            due: None,
            stats: None,
        }
    }

    /// A chunked body: `first` (already received from `rx`) then whatever `rx` yields.
    pub(crate) fn stream(first: Option<Bytes>, rx: mpsc::Receiver<Chunk>) -> Self {
        SimBody {
            first,
            rx: Some(rx),
            due: None,
            stats: None,
        }
    }

    /// Record the first token's timing in `stats`; `due` is its schedule if the token is
    /// already in `first` (otherwise a [`Chunk::FirstTokenDue`] announces it).
    pub(crate) fn timing_first_token(mut self, due: Option<Scheduled>, stats: Arc<Stats>) -> Self {
        self.due = due;
        self.stats = Some(stats);
        self
    }

    /// A data frame is leaving for the connection: if it carries the first token, record
    /// how late that is.
    fn data(&mut self, bytes: Bytes) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        if let (Some(s), Some(stats)) = (self.due.take(), &self.stats) {
            stats.first_token(FirstToken {
                arrival: s.arrival,
                due: s.due,
                left: Instant::now(),
            });
        }
        Poll::Ready(Some(Ok(Frame::data(bytes))))
    }
}

impl Body for SimBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        let this = self.get_mut();
        if let Some(first) = this.first.take() {
            return this.data(first);
        }
        loop {
            let Some(rx) = this.rx.as_mut() else {
                return Poll::Ready(None);
            };
            match ready!(rx.poll_recv(cx)) {
                Some(Chunk::FirstTokenDue(s)) => this.due = Some(s),
                Some(Chunk::Data(bytes)) => return this.data(bytes),
                Some(Chunk::Abort) => {
                    this.rx = None;
                    return Poll::Ready(Some(Err(io::Error::other(
                        "connection dropped by fault close_before_done",
                    ))));
                }
                None => {
                    this.rx = None;
                    return Poll::Ready(None);
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.first.is_none() && self.rx.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match (&self.first, &self.rx) {
            (Some(first), None) => SizeHint::with_exact(first.len() as u64),
            (None, None) => SizeHint::with_exact(0),
            (_, Some(_)) => SizeHint::default(),
        }
    }
}
