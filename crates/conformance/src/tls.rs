//! https cases: a TLS front ([`TlsFront`], the simulator's kind of certificate) before the
//! scripted server, so the connection cases hold over TLS too: a kept connection reused, a
//! server's idle close replaced inside the next call, one handshake per call under fresh, and
//! a certificate from an unknown CA refused with the endpoint and `ca_file` named.
//!
//! Not in [`crate::conformance_tests!`] (the floor client speaks plain http only): each
//! backend adds [`crate::tls_conformance_tests!`].

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use chimeraforge_core::api::ApiKind;
use chimeraforge_core::call::{execute_call, CallErrorKind, CallRecord, CallTarget};
use chimeraforge_core::{AsyncRuntime, Backend, ConnectionPolicy, HttpClient, TlsTrust};

use crate::connections::{chat_stream, counts, ok, options, settings, MODEL};
use crate::server::{Closes, ScriptedServer};

/// TLS on a loopback port, each connection relayed byte for byte to a plain `upstream`; when
/// the upstream closes, the client's connection closes too (close_notify, then FIN).
pub struct TlsFront {
    addr: SocketAddr,
    ca_file: PathBuf,
    handshakes: Arc<AtomicUsize>,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    _dir: TempDir,
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

impl TlsFront {
    /// Serve TLS before `upstream` with a fresh CA (see [`TlsFront::ca_file`]).
    pub fn start(upstream: SocketAddr) -> TlsFront {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("local addr");
        let (config, ca_pem) = chimeraforge_sim::tls_server_config(addr).expect("certificate");
        let dir = std::env::temp_dir().join(format!(
            "chimeraforge-conformance-tls-{}-{}",
            std::process::id(),
            addr.port()
        ));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let ca_file = dir.join("ca.pem");
        std::fs::write(&ca_file, ca_pem).expect("CA file");
        let handshakes = Arc::new(AtomicUsize::new(0));
        let counted = Arc::clone(&handshakes);
        let (stop, stopped) = tokio::sync::oneshot::channel();
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        let thread = std::thread::spawn(move || {
            runtime.block_on(async move {
                let serving = async {
                    loop {
                        let Ok((client, _)) = listener.accept().await else {
                            continue;
                        };
                        let acceptor = acceptor.clone();
                        let counted = Arc::clone(&counted);
                        tokio::spawn(async move {
                            let Ok(mut tls) = acceptor.accept(client).await else {
                                return;
                            };
                            counted.fetch_add(1, Ordering::SeqCst);
                            let Ok(mut plain) = tokio::net::TcpStream::connect(upstream).await
                            else {
                                return;
                            };
                            let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                        });
                    }
                };
                tokio::select! {
                    _ = serving => {}
                    _ = stopped => {}
                }
            });
        });
        TlsFront {
            addr,
            ca_file,
            handshakes,
            stop: Some(stop),
            thread: Some(thread),
            _dir: TempDir(dir),
        }
    }

    /// `https://127.0.0.1:PORT{path}`.
    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }

    /// The PEM of the CA that signed this front's certificate.
    pub fn ca_file(&self) -> &std::path::Path {
        &self.ca_file
    }

    /// TLS handshakes completed so far.
    pub fn handshakes(&self) -> usize {
        self.handshakes.load(Ordering::SeqCst)
    }
}

impl Drop for TlsFront {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// An agent's client of `B` under `policy`, trusting `ca_file` for endpoint `secure`.
fn agent_client<B: Backend>(
    policy: ConnectionPolicy,
    ca_file: &std::path::Path,
) -> (Arc<B::Runtime>, Arc<B::Client>) {
    let (rt, client) = B::build(&options(policy)).unwrap_or_else(|e| panic!("{e}"));
    let trust = TlsTrust {
        endpoint: "secure".into(),
        ca_file: Some(ca_file.to_owned()),
        insecure: false,
    };
    let agent = client
        .for_agent(&trust)
        .unwrap_or_else(|e| panic!("{}: agent client: {e}", B::NAME));
    (rt, Arc::new(agent))
}

/// One chat call to `front`.
async fn call<R: AsyncRuntime, C: HttpClient>(rt: &R, client: &C, front: &TlsFront) -> CallRecord {
    let target = CallTarget {
        agent_id: "conformance",
        call: "c",
        url: front.url("/api/chat"),
        model: MODEL,
        api: ApiKind::Ollama,
        body: b"{}".to_vec(),
        api_key: None,
        num_predict: None,
        live_tokens: None,
    };
    execute_call(rt, client, target, &settings(), rt.now())
        .await
        .record
}

/// Keep-alive over TLS: the kept connection carries the next call; after the server's idle
/// close the next call opens (and handshakes) a new one inside itself, counted as a
/// reconnect, and succeeds.
pub fn https_keep_alive_reuses_and_replaces_an_idle_closed_connection<B: Backend>() {
    let server = ScriptedServer::start_closing(
        Closes {
            idle: Some(Duration::from_millis(100)),
            after_requests: None,
        },
        |_| chat_stream(),
    );
    let front = TlsFront::start(server.addr());
    let (rt, client) = agent_client::<B>(ConnectionPolicy::KeepAlive, front.ca_file());
    let records = rt.block_on(async {
        let first = call(&*rt, &*client, &front).await;
        let second = call(&*rt, &*client, &front).await;
        rt.sleep(Duration::from_millis(400)).await;
        let third = call(&*rt, &*client, &front).await;
        let fourth = call(&*rt, &*client, &front).await;
        vec![first, second, third, fourth]
    });
    let case = format!("{}: https keep-alive", B::NAME);
    records.iter().for_each(|r| ok(r, &case));
    assert_eq!(counts(&records), [(1, 0), (0, 0), (1, 1), (0, 0)], "{case}");
    assert_eq!((server.connections(), front.handshakes()), (2, 2), "{case}");
}

/// Fresh over TLS: one connection, one handshake, per call.
pub fn https_fresh_handshakes_once_per_call<B: Backend>() {
    let server = ScriptedServer::start(|_| chat_stream());
    let front = TlsFront::start(server.addr());
    let (rt, client) = agent_client::<B>(ConnectionPolicy::Fresh, front.ca_file());
    let records = rt.block_on(async {
        let mut records = Vec::new();
        for _ in 0..3 {
            records.push(call(&*rt, &*client, &front).await);
        }
        records
    });
    let case = format!("{}: https fresh", B::NAME);
    records.iter().for_each(|r| ok(r, &case));
    assert_eq!(counts(&records), [(1, 0); 3], "{case}");
    assert_eq!((server.connections(), front.handshakes()), (3, 3), "{case}");
}

/// A server whose certificate no CA in `ca_file` signed: a `connect` error naming the
/// endpoint, the URL and the `ca_file`; nothing reaches the server.
pub fn https_untrusted_certificate_names_the_endpoint_and_ca_file<B: Backend>() {
    let server = ScriptedServer::start(|_| chat_stream());
    let front = TlsFront::start(server.addr());
    let other = TlsFront::start(server.addr());
    let (rt, client) = agent_client::<B>(ConnectionPolicy::KeepAlive, other.ca_file());
    let r = rt.block_on(call(&*rt, &*client, &front));
    let case = format!("{}: untrusted certificate", B::NAME);
    let e = r
        .error
        .as_ref()
        .unwrap_or_else(|| panic!("{case}: the call succeeded"));
    assert_eq!(e.kind, CallErrorKind::Connect, "{case}: {e}");
    let ca = other.ca_file().display().to_string();
    for part in ["\"secure\"", front.url("").as_str(), "ca_file", ca.as_str()] {
        assert!(
            e.message.contains(part) || e.url.contains(part),
            "{case}: {part:?} not in {e}"
        );
    }
    assert_eq!(server.exchanges().len(), 0, "{case}");
}
