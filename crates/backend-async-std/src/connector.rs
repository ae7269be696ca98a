//! surf's transport: one async-h1 exchange on a fresh TCP connection per request.
//!
//! surf's stock `H1Client` returns a connection to its pool when a half-read body is
//! dropped (the next request then reads the rest of the old response), caps each host
//! at 50 connections and has no connect timeout. This connector has none of that: the
//! connection lives exactly as long as the response body.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use async_std::net::{TcpStream, ToSocketAddrs};
use http_client::http_types::url::{Host, Url};
use http_client::http_types::StatusCode;
use http_client::{Error, HttpClient, Request, Response};

/// Why a connection could not be opened; recovered by downcasting surf's error.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectFailure {
    #[error("connect timed out")]
    TimedOut,
    #[error("{0}")]
    Failed(io::Error),
}

/// An async-h1 transport for surf with a connect timeout and no pool.
#[derive(Debug)]
pub(crate) struct H1Connector {
    pub(crate) connect_timeout: Duration,
}

#[http_client::async_trait]
impl HttpClient for H1Connector {
    async fn send(&self, req: Request) -> Result<Response, Error> {
        if req.url().scheme() != "http" {
            return Err(Error::from_str(
                StatusCode::BadRequest,
                format!(
                    "unsupported scheme {:?}: plain http only",
                    req.url().scheme()
                ),
            ));
        }
        let stream = connect(req.url(), self.connect_timeout)
            .await
            .map_err(|e| Error::new(StatusCode::BadGateway, e))?;
        async_h1::client::connect(stream, req).await
    }
}

/// Resolve and connect within `timeout`, trying each address in turn.
async fn connect(url: &Url, timeout: Duration) -> Result<TcpStream, ConnectFailure> {
    let port = url.port_or_known_default().unwrap_or(80);
    let attempt = async {
        let addrs: Vec<SocketAddr> = match url.host() {
            Some(Host::Ipv4(ip)) => vec![SocketAddr::from((ip, port))],
            Some(Host::Ipv6(ip)) => vec![SocketAddr::from((ip, port))],
            Some(Host::Domain(name)) => (name, port).to_socket_addrs().await?.collect(),
            None => return Err(io::Error::new(io::ErrorKind::InvalidInput, "no host")),
        };
        let mut last = io::Error::new(io::ErrorKind::NotFound, "host resolved to no address");
        for addr in addrs {
            match TcpStream::connect(addr).await {
                Ok(stream) => return Ok(stream),
                Err(e) => last = e,
            }
        }
        Err(last)
    };
    let stream = async_std::future::timeout(timeout, attempt)
        .await
        .map_err(|_| ConnectFailure::TimedOut)?
        .map_err(ConnectFailure::Failed)?;
    stream.set_nodelay(true).map_err(ConnectFailure::Failed)?;
    Ok(stream)
}
