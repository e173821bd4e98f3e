//! `netchan bench --streams`: one stream's throughput (64 KiB messages,
//! the default window) beside the raw socket's, between two processes.

use std::time::{Duration, Instant};

use netchan::{Endpoint, Error};

use super::{
    addr_for, count_for, cpu_time, err, parse_done, payload, throughput, BenchArgs, Caller, Impl,
    Rr, Transport, Worker, WorkerArgs,
};

/// Each stream message's size.
const CHUNK: usize = 64 * 1024;

/// A netchan stream sink: takes one stream and counts what arrives, then
/// prints `DONE <n> <nanos> <cpu us>` like the pub/sub subscriber.
pub(super) async fn sink(a: WorkerArgs) -> Result<(), Error> {
    let ep = Endpoint::new(super::base(format!("bench-ssink-{}", std::process::id())))?;
    let svc = ep.serve_stream("bench/stream")?;
    let bound = ep.listen(&a.addr).await?;
    println!("READY {bound}");
    let (_req, s) = svc
        .recv()
        .await
        .ok_or_else(|| err("the stream service closed"))?;
    let cpu0 = cpu_time();
    let mut n = 0u64;
    let mut first = None;
    while let Some(_m) = s.recv().await? {
        first.get_or_insert_with(Instant::now);
        n += 1;
    }
    let nanos = first.map(|f| f.elapsed().as_nanos()).unwrap_or(0);
    println!("DONE {n} {nanos} {}", (cpu_time() - cpu0).as_micros());
    ep.close().await;
    Ok(())
}

async fn one(t: Transport, count: u64) -> Result<(f64, Duration, Duration), Error> {
    let rr = Rr {
        caller: Caller::Task,
        busy_poll: 0,
    };
    let w = Worker::spawn(
        "ssink",
        Impl::Netchan,
        &addr_for(t, "st", Impl::Netchan),
        count,
        rr,
    )?;
    let ep = Endpoint::new(super::base(format!("bench-sopen-{}", std::process::id())))?;
    ep.connect(&w.addr).await?;
    let s = ep.open_stream("bench/stream", "").await?;
    let data = payload(CHUNK);
    let cpu0 = cpu_time();
    for _ in 0..count {
        s.send(data.clone()).await?;
    }
    s.finish();
    let line = tokio::task::spawn_blocking(move || w.finish())
        .await
        .map_err(|e| err(e.to_string()))??;
    let cpu = cpu_time() - cpu0;
    ep.close().await;
    parse_done(&line, count, cpu)
}

/// The stream table: netchan's stream beside the raw socket (the same
/// length-prefixed flood `throughput` measures), median of `runs`.
pub(super) async fn table(a: &BenchArgs, transports: &[Transport]) -> Result<(), Error> {
    println!(
        "\n## Stream throughput (one stream, {} KiB messages, the default window; median of {} run(s))\n",
        CHUNK / 1024,
        a.runs
    );
    println!("| transport | netchan MB/s | CPU/msg | raw MB/s | raw CPU/msg | netchan/raw | spread (min-max netchan MB/s) |");
    println!("|---|---|---|---|---|---|---|");
    let mb = |r: f64| r * CHUNK as f64 / 1e6;
    for &t in transports {
        let count = count_for(CHUNK, a.quick);
        let (mut nc, mut raw) = (Vec::new(), Vec::new());
        for _ in 0..a.runs {
            nc.push(one(t, count).await?);
            raw.push(throughput(t, Impl::Raw, CHUNK, count, Caller::Task).await?);
        }
        nc.sort_by(|x, y| x.0.total_cmp(&y.0));
        raw.sort_by(|x, y| x.0.total_cmp(&y.0));
        let (n, r) = (nc[nc.len() / 2], raw[raw.len() / 2]);
        println!(
            "| {} | {:.0} | {}+{} ns | {:.0} | {}+{} ns | {:.2} | {:.0} - {:.0} |",
            super::label(t),
            mb(n.0),
            n.1.as_nanos(),
            n.2.as_nanos(),
            mb(r.0),
            r.1.as_nanos(),
            r.2.as_nanos(),
            n.0 / r.0,
            mb(nc[0].0),
            mb(nc[nc.len() - 1].0)
        );
    }
    Ok(())
}
