//! The response body: whole, or fed frame by frame by a generation task.

use std::io;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

use bytes::Bytes;
use hyper::body::{Body, Frame, SizeHint};
use tokio::sync::mpsc;

/// What a generation task hands to the connection.
pub(crate) enum Chunk {
    /// One HTTP chunk.
    Data(Bytes),
    /// Fail the body so hyper drops the connection without the terminating chunk.
    Abort,
}

/// A body that is either known whole (sent with a content-length) or streamed (chunked).
pub(crate) struct SimBody {
    first: Option<Bytes>,
    rx: Option<mpsc::Receiver<Chunk>>,
}

impl SimBody {
    pub(crate) fn full(bytes: impl Into<Bytes>) -> Self {
        SimBody {
            first: Some(bytes.into()),
            rx: None,
        }
    }

    /// A chunked body: `first` (already received from `rx`) then whatever `rx` yields.
    pub(crate) fn stream(first: Option<Bytes>, rx: mpsc::Receiver<Chunk>) -> Self {
        SimBody {
            first,
            rx: Some(rx),
        }
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
            return Poll::Ready(Some(Ok(Frame::data(first))));
        }
        let Some(rx) = this.rx.as_mut() else {
            return Poll::Ready(None);
        };
        match ready!(rx.poll_recv(cx)) {
            Some(Chunk::Data(bytes)) => Poll::Ready(Some(Ok(Frame::data(bytes)))),
            Some(Chunk::Abort) => {
                this.rx = None;
                Poll::Ready(Some(Err(io::Error::other(
                    "connection dropped by fault close_before_done",
                ))))
            }
            None => {
                this.rx = None;
                Poll::Ready(None)
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
