//! Shows: a bidirectional stream. The client sends lines and finishes its
//! side; the server answers each line in upper case, then ends its side.
//! Run: cargo run -p netchan --example stream [-- unix:///tmp/stream.sock]
//! Prints: each answer, then `end`; exits 0.

use netchan::{Endpoint, Stream};

#[tokio::main]
async fn main() -> netchan::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:0".into());
    let server = Endpoint::named("rust-stream-server")?;
    let _svc = server.serve_stream_fn("upper/*", |_req, s: Stream| async move {
        while let Some(line) = s.recv().await? {
            s.send(line.to_ascii_uppercase()).await?;
        }
        Ok(()) // returning finishes the server's side
    })?;
    let bound = server.listen(&addr).await?;

    let client = Endpoint::named("rust-stream-client")?;
    client.connect(&bound).await?;
    let s = client.open_stream("upper/demo", "").await?;
    for line in ["hello", "stream", "world"] {
        s.send(line).await?;
    }
    s.finish();
    while let Some(answer) = s.recv().await? {
        println!("{}", String::from_utf8_lossy(&answer));
    }
    println!("end");
    client.close().await;
    server.close().await;
    Ok(())
}
