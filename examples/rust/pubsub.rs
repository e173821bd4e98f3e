//! Shows: publish/subscribe between two endpoints, with a wildcard pattern.
//! Run: cargo run -p netchan --example pubsub [-- tcp://127.0.0.1:0]
//! Prints: the bound address, then each received message; exits 0.

use std::time::Duration;

#[tokio::main]
async fn main() -> netchan::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:0".into());
    let subscriber = netchan::Endpoint::named("rust-subscriber")?;
    let sub = subscriber.subscribe("sensors/*/temp")?;
    let bound = subscriber.listen(&addr).await?;
    println!("subscriber listening on {bound}");

    let publisher = netchan::Endpoint::named("rust-publisher")?;
    publisher.connect(&bound).await?;
    for (room, t) in [("kitchen", "21.5"), ("hall", "19.0")] {
        publisher
            .publish(&format!("sensors/{room}/temp"), t.as_bytes().to_vec())
            .await?;
    }
    for _ in 0..2 {
        let m = tokio::time::timeout(Duration::from_secs(5), sub.recv())
            .await
            .expect("message within 5 s")
            .expect("subscription open");
        println!("{}\t{}", m.path(), String::from_utf8_lossy(m.payload()));
    }
    publisher.close().await;
    subscriber.close().await;
    Ok(())
}
