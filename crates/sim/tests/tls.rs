//! `SimConfig::tls`: both APIs over https, trusted by the CA the simulator wrote; a client
//! that does not trust it is refused; the CA file lives as long as the server.

use chimeraforge_sim::{loopback, SimConfig, SimServer};

fn client_trusting(ca_pem: &str) -> reqwest::Client {
    reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .add_root_certificate(reqwest::Certificate::from_pem(ca_pem.as_bytes()).unwrap())
        .no_proxy()
        .build()
        .unwrap()
}

#[tokio::test(flavor = "current_thread")]
async fn both_apis_over_https_on_one_kept_connection() {
    let mut cfg = SimConfig::profile("null").unwrap();
    cfg.tls = true;
    let sim = SimServer::start(cfg, loopback(0)).unwrap();
    let base = sim.base_url();
    assert!(base.starts_with("https://127.0.0.1:"), "{base}");
    let ca_file = sim.ca_file().unwrap().to_owned();
    assert_eq!(
        std::fs::read_to_string(&ca_file).unwrap(),
        sim.ca_pem().unwrap()
    );

    // The CA file is what a client is given: read from disk, as a `ca_file` is.
    let client = client_trusting(&std::fs::read_to_string(&ca_file).unwrap());
    let ollama = client
        .post(format!("{base}/api/chat"))
        .body(r#"{"model":"gemma3","messages":[{"role":"user","content":"hi"}],"options":{"num_predict":3}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(ollama.status(), 200);
    let lines = ollama.text().await.unwrap();
    assert_eq!(lines.lines().count(), 4, "{lines}");
    let openai = client
        .post(format!("{base}/v1/chat/completions"))
        .body(r#"{"model":"gemma3","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(openai.status(), 200);
    assert!(openai.text().await.unwrap().ends_with("data: [DONE]\n\n"));
    // localhost is in the certificate too.
    let port = sim.addr().port();
    let by_name = client
        .get(format!("https://localhost:{port}/api/version"))
        .send()
        .await
        .unwrap();
    assert_eq!(by_name.status(), 200);
    let stats = sim.stats();
    assert_eq!(stats.requests, 3);
    // Two requests on the kept connection to 127.0.0.1, one to localhost.
    assert_eq!(stats.tls_handshakes, 2);

    // A client without the CA is refused, and the server goes on.
    let stranger = reqwest::Client::builder()
        .tls_built_in_root_certs(false)
        .no_proxy()
        .build()
        .unwrap();
    let e = stranger
        .get(format!("{base}/api/version"))
        .send()
        .await
        .unwrap_err();
    assert!(e.is_connect(), "{e:?}");
    assert_eq!(sim.stats().tls_handshakes, 2);

    sim.shutdown();
    assert!(!ca_file.exists(), "{} left behind", ca_file.display());
}
