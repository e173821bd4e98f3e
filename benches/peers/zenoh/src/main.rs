//! Zenoh (peer mode, explicit endpoints, multicast scouting off) measured
//! the way `netchan bench` measures: throughput timed at the subscriber from
//! the first message to the last; round trips one at a time.
//!
//! Usage: zenoh-bench sub ENDPOINT | pub ENDPOINT SIZE COUNT | pong ENDPOINT | ping ENDPOINT SIZE SAMPLES

use std::time::{Duration, Instant};

use zenoh::qos::CongestionControl;
use zenoh::{Config, Wait};

fn config(listen: Option<&str>, connect: Option<&str>) -> Config {
    let mut c = Config::default();
    c.insert_json5("mode", r#""peer""#).expect("mode");
    c.insert_json5("scouting/multicast/enabled", "false").expect("scouting");
    if let Some(l) = listen {
        c.insert_json5("listen/endpoints", &format!(r#"["{l}"]"#)).expect("listen");
    }
    if let Some(e) = connect {
        c.insert_json5("connect/endpoints", &format!(r#"["{e}"]"#)).expect("connect");
    }
    c
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args[0].as_str() {
        "sub" => {
            let s = zenoh::open(config(Some(&args[1]), None)).wait().expect("open");
            let sub = s.declare_subscriber("bench/data").wait().expect("subscriber");
            println!("READY");
            // Messages sent before the route is known may be dropped by
            // Zenoh, so count until 2 s of silence, not to a fixed number.
            let first = sub.recv().expect("first message");
            let _ = first;
            let t0 = Instant::now();
            let mut last = t0;
            let mut n = 1u64;
            while let Ok(Some(_)) = sub.recv_timeout(Duration::from_secs(2)) {
                n += 1;
                last = Instant::now();
            }
            println!("DONE {n} {}", (last - t0).as_nanos());
        }
        "pub" => {
            let (size, count): (usize, u64) = (args[2].parse().unwrap(), args[3].parse().unwrap());
            let s = zenoh::open(config(None, Some(&args[1]))).wait().expect("open");
            let p = s
                .declare_publisher("bench/data")
                .congestion_control(CongestionControl::Block)
                .wait()
                .expect("publisher");
            std::thread::sleep(Duration::from_millis(500)); // let the route form
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            for _ in 0..count {
                p.put(data.clone()).wait().expect("put");
            }
            std::thread::sleep(Duration::from_millis(500)); // let it flush
        }
        "pong" => {
            let s = zenoh::open(config(Some(&args[1]), None)).wait().expect("open");
            let sub = s.declare_subscriber("bench/ping").wait().expect("subscriber");
            let p = s
                .declare_publisher("bench/pong")
                .congestion_control(CongestionControl::Block)
                .express(true)
                .wait()
                .expect("publisher");
            println!("READY");
            while let Ok(sample) = sub.recv() {
                p.put(sample.payload().clone()).wait().expect("put");
            }
        }
        "ping" => {
            let (size, samples): (usize, usize) = (args[2].parse().unwrap(), args[3].parse().unwrap());
            let s = zenoh::open(config(None, Some(&args[1]))).wait().expect("open");
            let sub = s.declare_subscriber("bench/pong").wait().expect("subscriber");
            let p = s
                .declare_publisher("bench/ping")
                .congestion_control(CongestionControl::Block)
                .express(true)
                .wait()
                .expect("publisher");
            let data: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            // Until the first pong, the route may not exist yet.
            loop {
                p.put(data.clone()).wait().expect("put");
                if let Ok(Some(_)) = sub.recv_timeout(Duration::from_millis(200)) {
                    break;
                }
            }
            let mut rtts = Vec::with_capacity(samples);
            for i in 0..(1000 + samples) {
                let t0 = Instant::now();
                p.put(data.clone()).wait().expect("put");
                sub.recv().expect("pong");
                if i >= 1000 {
                    rtts.push(t0.elapsed().as_secs_f64() * 1e6);
                }
            }
            rtts.sort_by(|a, b| a.total_cmp(b));
            let q = |f: f64| rtts[((rtts.len() - 1) as f64 * f).round() as usize];
            println!("LAT {:.1} {:.1} {:.1}", q(0.5), q(0.99), q(0.999));
        }
        other => panic!("unknown mode {other}"),
    }
}
