//! `netchan target` (hidden): an endpoint for hostile-peer tests to attack.
//! It serves `svc/**` (echo), holds a subscription on `topic/**` that it
//! never reads, and answers `target/stats` with its counters, one
//! `key=value` per word, so a test in another process can check what was
//! counted.

use clap::Args;
use netchan::{Config, Endpoint, Error};

#[derive(Args)]
pub struct TargetArgs {
    /// Address to listen on.
    #[arg(long, value_name = "ADDR")]
    listen: String,
}

pub async fn run(cfg: &Config, args: TargetArgs) -> Result<(), Error> {
    let ep = Endpoint::new(cfg.clone())?;
    let _unread = ep.subscribe("topic/**")?;
    let _echo = ep.serve_fn("svc/**", |r| async move { Ok(r.payload().clone()) })?;
    let me = ep.clone();
    let _stats = ep.serve_fn("target/stats", move |_| {
        let s = me.stats();
        let sub = s.subscriptions.first().cloned();
        async move {
            let t = s.total;
            Ok(format!(
                "errors={} dropped_queue_full={} dropped_send_full={} peers={} sub_queued={} sub_dropped={}",
                t.errors,
                t.dropped_queue_full,
                t.dropped_send_full,
                s.peers.len(),
                sub.as_ref().map_or(0, |x| x.queued),
                sub.as_ref().map_or(0, |x| x.dropped),
            )
            .into())
        }
    })?;
    let bound = ep.listen(&args.listen).await?;
    eprintln!("listening on {bound}");
    std::future::pending::<()>().await;
    Ok(())
}
