//! `netchan demo`: two endpoints in one process, talking over a real socket.

use std::time::Duration;

use netchan::{Endpoint, Error, ErrorCode};

pub(crate) async fn run(addr: &str) -> Result<(), Error> {
    let server = Endpoint::named("demo-server")?;
    let bound = server.listen(addr).await?;
    println!("[server] listening on {bound}");

    let temps = server.subscribe("sensors/*/temp")?;
    println!("[server] subscribed to sensors/*/temp (an interest, advertised to peers)");
    let _greeter = server.serve_fn("greet/*", |req| async move {
        let who = req.path().rsplit('/').next().unwrap_or("?").to_owned();
        Ok(format!("hello, {who}! (from {})", "demo-server").into())
    })?;
    println!("[server] serving greet/* (a service intent)");

    let client = Endpoint::named("demo-client")?;
    let peer = client.connect(&bound).await?;
    println!("[client] connected to {} at {}", peer.name, peer.addr);
    println!(
        "[client] discovery: subscribers of sensors/** = {:?}, servers of greet/* = {:?}",
        client.subscribers("sensors/**")?,
        client.servers("greet/*")?
    );

    let readings = [("kitchen", "21.5"), ("hall", "19.0"), ("garage", "7.25")];
    for (room, value) in readings {
        let path = format!("sensors/{room}/temp");
        client.publish(&path, value.as_bytes().to_vec()).await?;
        println!("[client] published {value:>5} on {path}");
    }
    client
        .publish("sensors/kitchen/humidity", &b"40%"[..])
        .await?;
    println!("[client] published   40% on sensors/kitchen/humidity (no interest: never sent)");
    for _ in readings {
        let m = tokio::time::timeout(Duration::from_secs(5), temps.recv())
            .await
            .map_err(|_| Error::new(ErrorCode::Timeout, "demo message did not arrive"))?
            .ok_or_else(|| Error::new(ErrorCode::Closed, "subscription closed"))?;
        println!(
            "[server] received {:>5} on {} from {}",
            String::from_utf8_lossy(m.payload()),
            m.path(),
            m.sender()
        );
    }

    let reply = client
        .request("greet/ana", "", Duration::from_secs(2))
        .await?;
    println!(
        "[client] request greet/ana -> {}",
        String::from_utf8_lossy(&reply)
    );
    match client
        .request("nobody/home", "", Duration::from_secs(2))
        .await
    {
        Err(e) => println!(
            "[client] request nobody/home -> {} ({})",
            e.code(),
            e.detail()
        ),
        Ok(_) => {
            return Err(Error::new(
                ErrorCode::Internal,
                "nobody/home unexpectedly answered",
            ))
        }
    }

    let mut rtts = Vec::new();
    for _ in 0..5 {
        rtts.push(client.ping("demo-server").await?);
    }
    rtts.sort();
    println!(
        "[client] ping demo-server: min {:.0} us, median {:.0} us",
        rtts[0].as_secs_f64() * 1e6,
        rtts[2].as_secs_f64() * 1e6
    );

    let s = client.stats();
    println!(
        "[client] stats: {} messages out ({} bytes), {} request(s) out, rtt {:?}",
        s.total.msgs_out,
        s.total.bytes_out,
        s.total.requests_out,
        s.peers.first().and_then(|p| p.rtt)
    );
    client.close().await;
    server.close().await;
    println!("done: pub/sub, request/reply and ping all worked");
    Ok(())
}
