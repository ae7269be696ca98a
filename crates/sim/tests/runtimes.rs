//! The simulator serves clients on other runtimes in the same process.

use std::time::{Duration, Instant};

use chimeraforge_sim::{loopback, SimConfig, SimServer};
use futures_lite::{AsyncReadExt, AsyncWriteExt, StreamExt};

#[tokio::test(flavor = "current_thread")]
async fn reqwest_on_a_tokio_runtime_streams_on_schedule() {
    let sim = SimServer::start(SimConfig::profile("fixed").unwrap(), loopback(0)).unwrap();
    let client = reqwest::Client::new();
    let start = Instant::now();
    let response = client
        .post(format!("{}/api/chat", sim.base_url()))
        .body(r#"{"model":"gemma3","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":10}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let mut body = response.bytes_stream();
    let mut arrivals = Vec::new();
    while let Some(chunk) = body.next().await {
        let chunk = chunk.unwrap();
        arrivals.push((start.elapsed(), chunk));
    }
    // 10 tokens and the final line; the last token is due at 50 + 9 x 10 ms.
    let text: Vec<u8> = arrivals.iter().flat_map(|(_, c)| c.to_vec()).collect();
    assert_eq!(text.iter().filter(|&&b| b == b'\n').count(), 11);
    let end = arrivals.last().unwrap().0;
    assert!(
        end >= Duration::from_millis(140) && end < Duration::from_millis(160),
        "{end:?}"
    );
    // Dropping the handle inside an async context must not panic.
    drop(sim);
}

#[test]
fn smol_client_reads_a_stream() {
    let sim = SimServer::start(SimConfig::profile("null").unwrap(), loopback(0)).unwrap();
    let addr = sim.addr();
    let response = smol::block_on(async move {
        let mut stream = smol::net::TcpStream::connect(addr).await.unwrap();
        let body = r#"{"model":"qwen2.5:7b","prompt":"hi","options":{"num_predict":5}}"#;
        let request = format!(
            "POST /api/generate HTTP/1.1\r\nhost: x\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut response = Vec::new();
        stream.read_to_end(&mut response).await.unwrap();
        String::from_utf8(response).unwrap()
    });
    assert!(response.starts_with("HTTP/1.1 200 OK\r\n"), "{response}");
    assert!(response.contains("\"done\":true"));
    assert!(response.ends_with("0\r\n\r\n"));
    assert_eq!(sim.stats().generation_requests, 1);
    sim.shutdown();
    // Once shut down, nothing listens there.
    assert!(std::net::TcpStream::connect(addr).is_err());
}
