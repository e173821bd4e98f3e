//! Shows: ping and round-trip times, from plain synchronous code.
//! Run: cargo run -p netchan --example ping [-- tcp://127.0.0.1:0]
//! Prints: five round-trip times and the peer's stats; exits 0.

fn main() -> netchan::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:0".into());
    // No async runtime here: the endpoints run on netchan's own.
    let a = netchan::Endpoint::named("rust-ping-a")?;
    let bound = a.block_on(a.listen(&addr))??;
    let b = netchan::Endpoint::named("rust-ping-b")?;
    let peer = b.block_on(b.connect(&bound))??;
    for i in 0..5 {
        let rtt = b.block_on(b.ping(&peer.name))??;
        println!(
            "ping {} seq={i} rtt={:.1} us",
            peer.name,
            rtt.as_secs_f64() * 1e6
        );
    }
    let stats = b.stats();
    println!(
        "peers: {:?}",
        stats
            .peers
            .iter()
            .map(|p| (&p.name, p.rtt))
            .collect::<Vec<_>>()
    );
    b.block_on(b.close())?;
    a.block_on(a.close())?;
    netchan::runtime::shutdown(std::time::Duration::from_secs(1));
    Ok(())
}
