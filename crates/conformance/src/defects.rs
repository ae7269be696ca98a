//! Backends broken on purpose, the way the original project's were, to prove the suite
//! catches each defect: wrap a working backend, run a case, expect it to fail.

use std::future::Future;
use std::marker::PhantomData;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use chimeraforge_core::{
    AsyncRuntime, Backend, BackendError, BodyStream, ClientOptions, ConnectionCounts, HttpClient,
    HttpError, HttpRequest, HttpResponse, JoinError, RuntimeFacts, TlsTrust,
};

/// The original smol-1kb: each chunk is held until 1 KiB (or the end) has arrived.
pub struct HeldChunks<B>(PhantomData<B>);

/// A client whose bodies return chunks only once 1 KiB has accumulated.
pub struct HeldClient<C>(Arc<C>);

/// A body that fills 1 KiB before returning anything.
pub struct HeldBody<S>(S);

const HELD_BYTES: usize = 1024;

impl<B: Backend> Backend for HeldChunks<B> {
    type Runtime = B::Runtime;
    type Client = HeldClient<B::Client>;

    const NAME: &'static str = B::NAME;

    fn build(
        opts: &ClientOptions,
    ) -> Result<(Arc<Self::Runtime>, Arc<Self::Client>), BackendError> {
        let (rt, client) = B::build(opts)?;
        Ok((rt, Arc::new(HeldClient(client))))
    }
}

impl<C: HttpClient> HttpClient for HeldClient<C> {
    type Body = HeldBody<C::Body>;

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse<Self::Body>, HttpError> {
        let resp = self.0.send(req).await?;
        Ok(HttpResponse {
            status: resp.status,
            content_type: resp.content_type,
            content_encoding: resp.content_encoding,
            body: HeldBody(resp.body),
        })
    }

    fn for_agent(&self, tls: &TlsTrust) -> Result<Self, HttpError> {
        Ok(HeldClient(Arc::new(self.0.for_agent(tls)?)))
    }

    fn connections(&self) -> ConnectionCounts {
        self.0.connections()
    }
}

impl<S: BodyStream> BodyStream for HeldBody<S> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        let mut held = BytesMut::new();
        while held.len() < HELD_BYTES {
            match self.0.next_chunk().await? {
                Some(chunk) => held.extend_from_slice(&chunk),
                None => break,
            }
        }
        Ok((!held.is_empty()).then(|| held.freeze()))
    }
}

/// The original async-std: one lock held around each whole request, body included.
pub struct SerializedRequests<B>(PhantomData<B>);

/// A client that lets one request at a time through, until its body is dropped.
pub struct SerializedClient<C> {
    inner: Arc<C>,
    take: async_channel::Sender<()>,
    give_back: async_channel::Receiver<()>,
}

/// A body that holds the client's only permit.
pub struct SerializedBody<S> {
    body: S,
    _permit: Permit,
}

struct Permit(async_channel::Receiver<()>);

impl Drop for Permit {
    fn drop(&mut self) {
        let _ = self.0.try_recv();
    }
}

impl<B: Backend> Backend for SerializedRequests<B> {
    type Runtime = B::Runtime;
    type Client = SerializedClient<B::Client>;

    const NAME: &'static str = B::NAME;

    fn build(
        opts: &ClientOptions,
    ) -> Result<(Arc<Self::Runtime>, Arc<Self::Client>), BackendError> {
        let (rt, inner) = B::build(opts)?;
        let (take, give_back) = async_channel::bounded(1);
        Ok((
            rt,
            Arc::new(SerializedClient {
                inner,
                take,
                give_back,
            }),
        ))
    }
}

impl<C: HttpClient> HttpClient for SerializedClient<C> {
    type Body = SerializedBody<C::Body>;

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse<Self::Body>, HttpError> {
        self.take
            .send(())
            .await
            .map_err(|e| HttpError::Request(e.to_string()))?;
        let permit = Permit(self.give_back.clone());
        let resp = self.inner.send(req).await?;
        Ok(HttpResponse {
            status: resp.status,
            content_type: resp.content_type,
            content_encoding: resp.content_encoding,
            body: SerializedBody {
                body: resp.body,
                _permit: permit,
            },
        })
    }

    fn for_agent(&self, tls: &TlsTrust) -> Result<Self, HttpError> {
        // One permit for the whole run, as the original had one lock.
        Ok(SerializedClient {
            inner: Arc::new(self.inner.for_agent(tls)?),
            take: self.take.clone(),
            give_back: self.give_back.clone(),
        })
    }

    fn connections(&self) -> ConnectionCounts {
        self.inner.connections()
    }
}

impl<S: BodyStream> BodyStream for SerializedBody<S> {
    fn next_chunk(&mut self) -> impl Future<Output = Result<Option<Bytes>, HttpError>> + Send {
        self.body.next_chunk()
    }
}

/// A client that sends a request again when its connection breaks after part of the
/// response arrived, splicing the second response's body onto what was read: a call that
/// should have failed comes back whole (and the server generated twice).
pub struct RetriesAfterPartialResponse<B>(PhantomData<B>);

/// The wrapped client.
pub struct RetryingClient<C>(Arc<C>);

/// A body that, on a broken read, sends its request again and reads on from the new body.
pub struct RetryingBody<C: HttpClient> {
    client: Arc<C>,
    again: Option<HttpRequest>,
    body: C::Body,
}

impl<B: Backend> Backend for RetriesAfterPartialResponse<B> {
    type Runtime = B::Runtime;
    type Client = RetryingClient<B::Client>;

    const NAME: &'static str = B::NAME;

    fn build(
        opts: &ClientOptions,
    ) -> Result<(Arc<Self::Runtime>, Arc<Self::Client>), BackendError> {
        let (rt, client) = B::build(opts)?;
        Ok((rt, Arc::new(RetryingClient(client))))
    }
}

impl<C: HttpClient> HttpClient for RetryingClient<C> {
    type Body = RetryingBody<C>;

    async fn send(&self, req: HttpRequest) -> Result<HttpResponse<Self::Body>, HttpError> {
        let resp = self.0.send(req.clone()).await?;
        Ok(HttpResponse {
            status: resp.status,
            content_type: resp.content_type,
            content_encoding: resp.content_encoding,
            body: RetryingBody {
                client: Arc::clone(&self.0),
                again: Some(req),
                body: resp.body,
            },
        })
    }

    fn for_agent(&self, tls: &TlsTrust) -> Result<Self, HttpError> {
        Ok(RetryingClient(Arc::new(self.0.for_agent(tls)?)))
    }

    fn connections(&self) -> ConnectionCounts {
        self.0.connections()
    }
}

impl<C: HttpClient> BodyStream for RetryingBody<C> {
    async fn next_chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        match self.body.next_chunk().await {
            Err(e) => match self.again.take() {
                Some(req) => {
                    self.body = self.client.send(req).await?.body;
                    self.body.next_chunk().await
                }
                None => Err(e),
            },
            read => read,
        }
    }
}

/// A runtime whose `spawn` runs each task to completion before returning.
///
/// It blocks the calling thread, so only wrap runtimes whose timers and I/O are driven
/// by other threads (tokio multi-thread, smol with async-io).
pub struct SerialSpawn<B>(PhantomData<B>);

/// The wrapped runtime.
pub struct SerialRuntime<R>(Arc<R>);

impl<B: Backend> Backend for SerialSpawn<B> {
    type Runtime = SerialRuntime<B::Runtime>;
    type Client = B::Client;

    const NAME: &'static str = B::NAME;

    fn build(
        opts: &ClientOptions,
    ) -> Result<(Arc<Self::Runtime>, Arc<Self::Client>), BackendError> {
        let (rt, client) = B::build(opts)?;
        Ok((Arc::new(SerialRuntime(rt)), client))
    }
}

impl<R: AsyncRuntime> AsyncRuntime for SerialRuntime<R> {
    fn name(&self) -> &'static str {
        self.0.name()
    }

    fn describe(&self) -> RuntimeFacts {
        self.0.describe()
    }

    fn block_on<F: Future>(&self, fut: F) -> F::Output {
        self.0.block_on(fut)
    }

    fn spawn<F>(
        &self,
        fut: F,
    ) -> impl Future<Output = Result<F::Output, JoinError>> + Send + 'static + use<R, F>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let out = futures_lite::future::block_on(fut);
        std::future::ready(Ok(out))
    }

    fn sleep(&self, dur: Duration) -> impl Future<Output = ()> + Send + 'static + use<R> {
        self.0.sleep(dur)
    }
}
