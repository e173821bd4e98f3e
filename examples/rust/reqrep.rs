//! Shows: request/reply, a handler error, and NO_RESPONDERS.
//! Run: cargo run -p netchan --example reqrep [-- unix:///tmp/reqrep.sock]
//! Prints: the reply, then the two error codes; exits 0.

use std::time::Duration;

use netchan::{Error, ErrorCode};

#[tokio::main]
async fn main() -> netchan::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "tcp://127.0.0.1:0".into());
    let server = netchan::Endpoint::named("rust-server")?;
    let _upper = server.serve_fn("upper", |req| async move {
        Ok(req.payload().to_ascii_uppercase().into())
    })?;
    let _fail = server.serve_fn("fail", |_| async {
        Err(Error::new(
            ErrorCode::HandlerError,
            "this handler always fails",
        ))
    })?;
    let bound = server.listen(&addr).await?;

    let client = netchan::Endpoint::named("rust-client")?;
    client.connect(&bound).await?;
    let reply = client
        .request("upper", "hello", Duration::from_secs(2))
        .await?;
    println!("upper -> {}", String::from_utf8_lossy(&reply));
    let e = client
        .request("fail", "", Duration::from_secs(2))
        .await
        .unwrap_err();
    println!("fail -> {} ({})", e.code(), e.detail());
    let e = client
        .request("nobody", "", Duration::from_secs(2))
        .await
        .unwrap_err();
    println!("nobody -> {}", e.code());
    assert_eq!(e.code(), ErrorCode::NoResponders);
    client.close().await;
    server.close().await;
    Ok(())
}
