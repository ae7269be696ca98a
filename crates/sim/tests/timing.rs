//! The timing ground truth, measured by a client on the other side of a loopback socket.
//!
//! Tolerances are for a noisy 2-core machine: lateness of a few ms is accepted, earliness
//! never (the server must not send before a deadline), and every comparison between devices
//! has a margin far smaller than the difference the wrong model would make.

mod common;

use std::sync::{Barrier, Mutex, MutexGuard};
use std::thread;
use std::time::Duration;

use common::{config, post, start};
use serde_json::{json, Value};

use chimeraforge_sim::{Device, SimConfig};

/// Timing tests run one at a time so they do not disturb each other.
static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn exclusive() -> MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn generate(addr: std::net::SocketAddr, tokens: u32) -> common::Raw {
    post(
        addr,
        "/api/generate",
        &json!({"model": "m", "prompt": "go", "options": {"num_predict": tokens}}),
    )
}

/// Arrival (ms from send) of each token line, and the final line's stats.
fn token_times(raw: &common::Raw) -> (Vec<f64>, Value) {
    let lines = raw.ndjson();
    let (last, tokens) = lines.split_last().expect("lines");
    assert_eq!(last.1["done"], true);
    (tokens.iter().map(|(t, _)| ms(*t)).collect(), last.1.clone())
}

/// Run `n` identical streams released together; their token times.
fn concurrent(addr: std::net::SocketAddr, n: usize, tokens: u32) -> Vec<Vec<f64>> {
    let barrier = Barrier::new(n);
    thread::scope(|s| {
        let handles: Vec<_> = (0..n)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    token_times(&generate(addr, tokens)).0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn fixed_profile_meets_its_schedule() {
    let _one = exclusive();
    let sim = start(SimConfig::profile("fixed").unwrap());
    let raw = post(
        sim.addr(),
        "/api/generate",
        &json!({"model": "gemma3:latest", "prompt": "a prompt of some words", "options": {"num_predict": 50}}),
    );
    let (times, stats) = token_times(&raw);
    assert_eq!(times.len(), 50);
    let late: Vec<f64> = times
        .iter()
        .enumerate()
        .map(|(i, t)| t - (50.0 + 10.0 * i as f64))
        .collect();
    let end = times[49];
    // Medians of the first and last ten, so one scheduling hiccup on a busy machine is not drift.
    let median = |l: &[f64]| {
        let mut l = l.to_vec();
        l.sort_by(f64::total_cmp);
        l[l.len() / 2]
    };
    let drift = median(&late[40..]) - median(&late[..10]);
    eprintln!(
        "fixed: last token at {end:.2} ms (scheduled 540); lateness first {:.2}, max {:.2}, drift {drift:.2} ms",
        late[0],
        late.iter().cloned().fold(f64::MIN, f64::max)
    );
    assert!(
        (539.5..550.0).contains(&end),
        "last token at {end} ms, scheduled 540"
    );
    assert!(
        late.iter().all(|&l| l > -0.5),
        "a token came early: {late:?}"
    );
    // Deadlines are absolute: lateness does not grow along the stream.
    assert!(drift.abs() < 2.0, "drift {drift} ms: {late:?}");
    // The server reports its schedule exactly.
    assert_eq!(stats["eval_duration"], 490_000_000u64);
    assert_eq!(stats["prompt_eval_duration"], 0);
    // Loading takes 0 ms on this profile; the schedule counts from the request's arrival.
    assert_eq!(stats["load_duration"], 0);
    assert_eq!(stats["total_duration"], 540_000_000u64);
}

#[test]
fn openai_timings_report_the_schedule() {
    let _one = exclusive();
    let sim = start(SimConfig::profile("fixed").unwrap());
    let raw = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "gemma3:latest", "messages": [{"role": "user", "content": "one two three"}],
                "stream": true, "stream_options": {"include_usage": true}, "max_tokens": 20}),
    );
    let events = raw.sse();
    // Headers come at once; the role chunk and first token at 50 ms.
    assert!(ms(raw.headers_at) < 25.0, "headers at {:?}", raw.headers_at);
    let first_token = ms(events[1].0);
    assert!(
        (49.5..60.0).contains(&first_token),
        "first token at {first_token}"
    );
    let usage: Value = serde_json::from_str(&events[events.len() - 2].1).unwrap();
    assert_eq!(usage["timings"]["predicted_ms"], 190.0);
    assert_eq!(usage["timings"]["prompt_n"], 3);
    // llama.cpp's rate: the n − 1 intervals of predicted_ms.
    assert_eq!(usage["timings"]["predicted_per_second"], 19.0 / 0.19);
}

#[test]
fn long_stream_does_not_drift() {
    let _one = exclusive();
    let sim = start(config(Device::Ideal, 0.0, 200.0, 0.0));
    let (times, _) = token_times(&generate(sim.addr(), 256));
    let end = times[255];
    let scheduled = 255.0 * 5.0;
    eprintln!("256 tokens at 200 tok/s: last at {end:.2} ms (scheduled {scheduled})");
    assert!(
        end >= scheduled - 0.5 && end < scheduled + 6.0,
        "ended at {end} ms"
    );
}

#[test]
fn ideal_device_runs_streams_in_parallel() {
    let _one = exclusive();
    let sim = start(config(Device::Ideal, 10.0, 200.0, 0.0));
    generate(sim.addr(), 1); // first use loads (0 ms) the model
    let solo = *token_times(&generate(sim.addr(), 60)).0.last().unwrap();
    let both = concurrent(sim.addr(), 2, 60);
    let slowest = both.iter().map(|t| *t.last().unwrap()).fold(0.0, f64::max);
    eprintln!("ideal: solo {solo:.1} ms, two together {slowest:.1} ms");
    assert!((304.5..315.0).contains(&solo), "solo {solo}");
    assert!(slowest / solo < 1.05, "ideal took {slowest} vs {solo}");
}

#[test]
fn serial_device_runs_streams_one_after_another() {
    let _one = exclusive();
    let sim = start(config(Device::Serial, 10.0, 200.0, 0.0));
    generate(sim.addr(), 1);
    let solo = *token_times(&generate(sim.addr(), 60)).0.last().unwrap();
    let both = concurrent(sim.addr(), 2, 60);
    let mut ends: Vec<f64> = both.iter().map(|t| *t.last().unwrap()).collect();
    ends.sort_by(f64::total_cmp);
    eprintln!("serial: solo {solo:.1} ms, two together end at {ends:?}");
    assert!(ends[0] / solo < 1.05, "first {} vs solo {solo}", ends[0]);
    let ratio = ends[1] / solo;
    assert!((1.95..2.08).contains(&ratio), "second/solo = {ratio}");
    // The second stream sends nothing while the first holds the device.
    let second = both.iter().find(|t| *t.last().unwrap() == ends[1]).unwrap();
    assert!(
        second[0] >= ends[0],
        "second started at {} before first ended {}",
        second[0],
        ends[0]
    );
}

#[test]
fn shared_device_splits_capacity() {
    let _one = exclusive();
    let sim = start(config(
        Device::Shared {
            capacity_tok_s: 200.0,
        },
        10.0,
        200.0,
        0.0,
    ));
    generate(sim.addr(), 1);
    let solo = token_times(&generate(sim.addr(), 60)).0;
    let solo_total = *solo.last().unwrap();
    let solo_decode = solo_total - solo[0];
    let both = concurrent(sim.addr(), 2, 60);
    for times in &both {
        let total = *times.last().unwrap();
        let decode = total - times[0];
        eprintln!("shared: solo {solo_total:.1} ms (decode {solo_decode:.1}), together {total:.1} (decode {decode:.1})");
        let ratio = decode / solo_decode;
        assert!((1.9..2.1).contains(&ratio), "decode ratio {ratio}");
        // ttft is 10 of solo's 305 ms, so the whole stream is ~2x too.
        let ratio = total / (2.0 * solo_total);
        assert!(
            (0.95..1.05).contains(&ratio),
            "total {total} vs 2 x {solo_total}"
        );
    }
}

#[test]
fn shared_device_bounds_each_stream_by_its_solo_rate() {
    let _one = exclusive();
    // Capacity 400 for two streams is 200 each: exactly the solo rate, so no slowdown.
    let sim = start(config(
        Device::Shared {
            capacity_tok_s: 400.0,
        },
        10.0,
        200.0,
        0.0,
    ));
    generate(sim.addr(), 1);
    let solo = *token_times(&generate(sim.addr(), 60)).0.last().unwrap();
    let both = concurrent(sim.addr(), 2, 60);
    for times in &both {
        let ratio = times.last().unwrap() / solo;
        assert!(ratio < 1.05, "ratio {ratio}");
    }
}

fn load_ns(raw: &common::Raw) -> u64 {
    token_times(raw).1["load_duration"].as_u64().unwrap()
}

/// A load is reported as exactly `load_ms` (100 ms here), no load as 0.
fn assert_load(raw: &common::Raw, paid: bool) {
    assert_eq!(load_ns(raw), if paid { 100_000_000 } else { 0 });
}

#[test]
fn changed_options_reload_the_model() {
    let _one = exclusive();
    let sim = start(config(Device::Ideal, 5.0, 1000.0, 100.0));
    let call = |options: Value| {
        post(
            sim.addr(),
            "/api/generate",
            &json!({"model": "m:latest", "prompt": "hi", "options": options}),
        )
    };
    let first = call(json!({"num_ctx": 512, "num_gpu": 80, "num_predict": 3}));
    assert_load(&first, true);
    assert!(ms(first.end_at) >= 105.0);
    let again = call(json!({"num_ctx": 512, "num_gpu": 80, "num_predict": 3}));
    assert_load(&again, false);
    assert!(ms(again.end_at) < 60.0, "{:?}", again.end_at);
    let other_ctx = call(json!({"num_ctx": 1024, "num_gpu": 80, "num_predict": 3}));
    assert_load(&other_ctx, true);
    let other_gpu = call(json!({"num_ctx": 1024, "num_gpu": 0, "num_predict": 3}));
    assert_load(&other_gpu, true);
    assert_eq!(sim.stats().loads, 3);
    // OpenAI requests take the model as loaded.
    let openai = post(
        sim.addr(),
        "/v1/completions",
        &json!({"model": "m:latest", "prompt": "hi", "max_tokens": 3}),
    );
    assert_eq!(openai.status, 200);
    assert_eq!(sim.stats().loads, 3);
    // Defaults differ from num_ctx 1024, so a bare Ollama request reloads.
    let bare = call(json!({"num_predict": 3}));
    assert_load(&bare, true);
}

#[test]
fn concurrent_first_requests_share_one_load() {
    let _one = exclusive();
    let sim = start(config(Device::Ideal, 5.0, 1000.0, 100.0));
    let barrier = Barrier::new(2);
    let loads: Vec<u64> = thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    barrier.wait();
                    // 100 tokens at 1000 tok/s: waiting for the other's whole stream would show.
                    load_ns(&generate(sim.addr(), 100))
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(sim.stats().loads, 1);
    // One paid the load, the other waited for it (not for the first one's stream): ~100 ms each.
    for load in loads {
        assert!((99_000_000..150_000_000).contains(&load), "{load}");
    }
}

#[test]
fn null_profile_sends_as_fast_as_read() {
    let _one = exclusive();
    let sim = start(SimConfig::profile("null").unwrap());
    let raw = post(
        sim.addr(),
        "/api/generate",
        &json!({"model": "gemma3:latest", "prompt": "go", "options": {"num_predict": 2000}}),
    );
    assert!(raw.complete);
    // Every token is its own chunk even with no pacing.
    assert_eq!(raw.chunks.len(), 2001);
    eprintln!("null: 2000 tokens in {:?}", raw.end_at);
    assert!(raw.end_at < Duration::from_millis(1500), "{:?}", raw.end_at);
    let (_, stats) = token_times(&raw);
    assert_eq!(stats["eval_duration"], 0);
}

#[test]
fn serial_device_is_freed_when_a_client_leaves() {
    let _one = exclusive();
    let sim = start(config(Device::Serial, 10.0, 100.0, 0.0));
    // A 1000-token stream (10 s) whose client reads for 100 ms and hangs up.
    let body = json!({"model": "m", "prompt": "go", "options": {"num_predict": 1000}});
    let left = common::send(
        sim.addr(),
        "POST",
        "/api/generate",
        &[],
        body.to_string().as_bytes(),
        Duration::from_millis(100),
    );
    assert!(!left.complete && !left.chunks.is_empty());
    drop(left);
    let (times, _) = token_times(&generate(sim.addr(), 5));
    let end = *times.last().unwrap();
    eprintln!("serial after a departed client: 5 tokens end at {end:.1} ms");
    assert!(end < 200.0, "waited {end} ms for a client that left");
}

/// Every streamed first token is timed against its schedule, on both APIs; whole replies
/// are not. A lateness below the TTFT shows it is measured from the schedule (arrival +
/// TTFT), not from the arrival; measured TTFT ≥ the server's lateness shows the client
/// cannot see a token before the server let it go.
#[test]
fn first_token_lateness_is_recorded_per_streamed_request() {
    let _one = exclusive();
    let sim = start(config(Device::Ideal, 200.0, 100.0, 0.0));
    assert!(sim.take_first_tokens().is_empty());
    let a = generate(sim.addr(), 3);
    let b = post(
        sim.addr(),
        "/v1/chat/completions",
        &json!({"model": "m", "stream": true, "max_tokens": 3,
                "messages": [{"role": "user", "content": "go"}]}),
    );
    post(
        sim.addr(),
        "/api/generate",
        &json!({"model": "m", "prompt": "go", "stream": false, "options": {"num_predict": 3}}),
    );
    let firsts = sim.take_first_tokens();
    assert_eq!(firsts.len(), 2, "{firsts:?}");
    for f in &firsts {
        assert!(
            ms(f.late()) < 200.0,
            "{f:?}: lateness counts from arrival, not schedule"
        );
        // No load, no prefill: due exactly TTFT after arrival.
        assert_eq!(f.due - f.arrival, Duration::from_millis(200), "{f:?}");
        assert!(f.left >= f.due, "{f:?}");
    }
    assert!(
        firsts[0].arrival < firsts[1].arrival,
        "in the order they left"
    );
    let first_ollama = token_times(&a).0[0];
    assert!(first_ollama >= 200.0, "first token at {first_ollama} ms");
    assert!(!b.sse().is_empty());
    assert!(sim.take_first_tokens().is_empty(), "taken twice");
}
