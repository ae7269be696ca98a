//! Requests still work when the client's sockets are numbered at or above `FD_SETSIZE`.
//!
//! libcurl checks a connecting socket with `Curl_socket_check`, which uses `poll()` only
//! when built with `HAVE_POLL`; without it, it uses `select()` and fails every descriptor
//! ≥ `FD_SETSIZE` (1024) with `CURLE_COULDNT_CONNECT` ("connect to ... failed: Success"),
//! although the TCP connect succeeded. curl-sys 0.4.91 (curl 8.22) still defines
//! `HAVE_POLL_FINE`, which libcurl no longer reads (curl PR #15096 replaced it with
//! `HAVE_POLL`), so the repository's `.cargo/config.toml` adds `-DHAVE_POLL` to the
//! bundled libcurl's build. A 1,024-agent run hits it: the process
//! already holds a dozen descriptors, so the last agents' sockets land above 1023. Here
//! the descriptors below 1,100 are taken first, so every socket is above it.
//!
//! Its own test binary: the held descriptors must not reach other tests' sockets.

use std::fs::File;
use std::os::fd::AsRawFd;

use chimeraforge_backend_smol::Smol1Kb;
use chimeraforge_conformance::{Reply, ScriptedServer};
use chimeraforge_core::{
    AsyncRuntime, Backend, BodyStream, ClientOptions, HttpClient, HttpRequest,
};

/// Every descriptor below this is held before the server and client open theirs.
const FLOOR: i32 = 1100;
/// `FD_SETSIZE` on Linux (glibc and musl).
const FD_SETSIZE: i32 = 1024;
const REQUESTS: usize = 16;

/// Raise the soft descriptor limit to the hard one, as the bench's child does.
fn raise_nofile_limit() -> libc::rlim_t {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return 0;
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: lim.rlim_max,
                rlim_max: lim.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                return lim.rlim_max;
            }
        }
    }
    lim.rlim_cur
}

/// Hold `/dev/null` open until the lowest free descriptor is above `FLOOR`.
fn hold_descriptors_below(floor: i32) -> std::io::Result<Vec<File>> {
    let mut held = Vec::new();
    loop {
        let f = File::open("/dev/null")?;
        let fd = f.as_raw_fd();
        held.push(f);
        if fd >= floor {
            return Ok(held);
        }
    }
}

#[test]
fn requests_work_on_sockets_above_fd_setsize() {
    let limit = raise_nofile_limit();
    if limit < FLOOR as libc::rlim_t + 256 {
        eprintln!("skipped: RLIMIT_NOFILE is {limit}, too low to open descriptors past {FLOOR}");
        return;
    }
    let _held = hold_descriptors_below(FLOOR).expect("open /dev/null");

    let line = b"{\"response\":\"hi\",\"done\":false}\n".to_vec();
    let last = b"{\"response\":\"\",\"done\":true}\n".to_vec();
    let expected = [line.clone(), last.clone()].concat();
    let server =
        ScriptedServer::start(move |_| Reply::new(200).send(line.clone()).send(last.clone()));
    let (rt, client) = Smol1Kb::build(&ClientOptions::default()).expect("build smol-1kb");
    let probe = File::open("/dev/null").expect("open /dev/null");
    assert!(
        probe.as_raw_fd() > FD_SETSIZE,
        "descriptor {} is not above FD_SETSIZE: the test proves nothing",
        probe.as_raw_fd()
    );
    drop(probe);

    let results = rt.block_on(async {
        let tasks: Vec<_> = (0..REQUESTS)
            .map(|_| {
                let client = client.clone();
                let url = server.url("/api/generate");
                rt.spawn(async move {
                    let mut resp = client.send(HttpRequest::post_json(url, "{}")).await?;
                    let mut body = Vec::new();
                    while let Some(chunk) = resp.body.next_chunk().await? {
                        body.extend_from_slice(&chunk);
                    }
                    Ok::<_, chimeraforge_core::HttpError>((resp.status, body))
                })
            })
            .collect();
        let mut results = Vec::new();
        for t in tasks {
            results.push(t.await.expect("task panicked"));
        }
        results
    });
    for (i, res) in results.into_iter().enumerate() {
        match res {
            Ok((status, body)) => {
                assert_eq!(status, 200, "request {i}");
                assert_eq!(body, expected, "request {i}: body altered");
            }
            Err(e) => panic!(
                "request {i} failed on a socket above FD_SETSIZE: {e} \
                 (libcurl built without HAVE_POLL falls back to select(); see .cargo/config.toml)"
            ),
        }
    }
}
