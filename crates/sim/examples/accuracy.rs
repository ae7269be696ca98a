//! How closely the simulator keeps its schedule, seen from a client on loopback.
//!
//! `cargo run -p chimeraforge-sim --release --example accuracy [RUNS]`: sends RUNS requests of
//! 50 tokens to the `fixed` profile (first token due at 50 ms, then every 10 ms) and prints
//! percentiles of each token's lateness (arrival minus schedule, from just before the request
//! is written), of the first token's, and of the drift (last token's minus first's).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use chimeraforge_sim::{loopback, SimConfig, SimServer};

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn summary(name: &str, mut values: Vec<f64>) {
    values.sort_by(f64::total_cmp);
    println!(
        "{name:>14}: min {:+.3}  p50 {:+.3}  p90 {:+.3}  p99 {:+.3}  max {:+.3} ms",
        values[0],
        percentile(&values, 0.5),
        percentile(&values, 0.9),
        percentile(&values, 0.99),
        values[values.len() - 1]
    );
}

fn main() {
    let runs: usize = std::env::args()
        .nth(1)
        .map_or(20, |a| a.parse().expect("RUNS"));
    let sim = SimServer::start(SimConfig::profile("fixed").unwrap(), loopback(0)).unwrap();
    let body = r#"{"model":"gemma3:latest","prompt":"go","options":{"num_predict":50}}"#;
    let request = format!(
        "POST /api/generate HTTP/1.1\r\nhost: sim\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let (mut every, mut first, mut drift) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let mut stream = TcpStream::connect(sim.addr()).unwrap();
        stream.set_nodelay(true).unwrap();
        let start = Instant::now();
        stream.write_all(request.as_bytes()).unwrap();
        let mut seen = Vec::new();
        let mut lines = Vec::new();
        let mut buf = [0u8; 8192];
        loop {
            let n = stream.read(&mut buf).unwrap();
            if n == 0 {
                break;
            }
            let at = start.elapsed();
            seen.extend_from_slice(&buf[..n]);
            let count = seen.windows(2).filter(|w| w == b"}\n").count();
            lines.resize(count, at);
        }
        let late: Vec<f64> = lines[..50]
            .iter()
            .enumerate()
            .map(|(i, t)| (t.as_secs_f64() - 0.050 - 0.010 * i as f64) * 1000.0)
            .collect();
        first.push(late[0]);
        drift.push(late[49] - late[0]);
        every.extend(late);
        std::thread::sleep(Duration::from_millis(20));
    }
    println!("{runs} runs x 50 tokens, fixed profile");
    summary("every token", every);
    summary("first token", first);
    summary("drift", drift);
}
