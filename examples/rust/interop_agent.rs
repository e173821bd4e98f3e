//! Shows: the cross-language interop agent contract (tests/interop/README.md), in Rust.
//! Run: cargo run -p netchan --example interop_agent -- sub tcp://127.0.0.1:0 'x/**' 1
//! Prints: READY <addr>, then MSG/OK/ERR lines as the contract says; exits 0.

use std::io::Write;
use std::time::Duration;

use netchan::Endpoint;

/// FNV-1a, 64 bit: a checksum every language can compute in three lines.
fn fnv1a64(data: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in data {
        h ^= *b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

/// `hex:<hex>` or `gen:<n>` (n bytes, byte i = i % 251).
fn payload(spec: &str) -> Vec<u8> {
    if let Some(h) = spec.strip_prefix("hex:") {
        (0..h.len() / 2)
            .map(|i| u8::from_str_radix(&h[2 * i..2 * i + 2], 16).expect("hex"))
            .collect()
    } else if let Some(n) = spec.strip_prefix("gen:") {
        (0..n.parse::<usize>().expect("gen:N"))
            .map(|i| (i % 251) as u8)
            .collect()
    } else {
        panic!("bad payload spec {spec:?}")
    }
}

fn say(line: String) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

#[tokio::main]
async fn main() -> netchan::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // Settings by name from NETCHAN_SETTINGS (`KEY=VALUE` lines): the
    // matrix's TLS cells pass certificates this way to every language.
    let mut cfg = netchan::Config::named(format!("rust-agent-{}", std::process::id()));
    for line in std::env::var("NETCHAN_SETTINGS")
        .unwrap_or_default()
        .lines()
    {
        if let Some((k, v)) = line.split_once('=') {
            cfg.set(k.trim(), v.trim())?;
        }
    }
    let ep = Endpoint::new(cfg)?;
    match args.first().map(String::as_str) {
        Some("sub") => {
            let (addr, pattern, count) =
                (&args[1], &args[2], args[3].parse::<usize>().expect("count"));
            let sub = ep.subscribe(pattern)?;
            say(format!("READY {}", ep.listen(addr).await?));
            for _ in 0..count {
                let m = sub.recv().await.expect("subscription open");
                say(format!(
                    "MSG {} {} {:016x}",
                    m.path(),
                    m.payload().len(),
                    fnv1a64(m.payload())
                ));
            }
        }
        Some("pub") => {
            let (addr, path) = (&args[1], &args[2]);
            ep.connect(addr).await?;
            if !ep
                .wait_for_subscribers(path, Duration::from_secs(10))
                .await?
            {
                say("ERR TIMEOUT no subscriber".into());
                std::process::exit(1);
            }
            for spec in &args[3..] {
                ep.publish(path, payload(spec)).await?;
            }
            say("DONE".into());
        }
        Some("serve") => {
            let _echo = ep.serve_fn("echo", |r| async move { Ok(r.payload().clone()) })?;
            let _fail = ep.serve_fn("fail", |_| async {
                Err(netchan::Error::new(
                    netchan::ErrorCode::HandlerError,
                    "boom",
                ))
            })?;
            say(format!("READY {}", ep.listen(&args[1]).await?));
            std::future::pending::<()>().await;
        }
        Some("req") => {
            let (addr, path, spec) = (&args[1], &args[2], &args[3]);
            // A refused connection is an answer too (the TLS refusal cells).
            let r = match ep.connect(addr).await {
                Ok(_) => {
                    ep.request(path, payload(spec), Duration::from_secs(10))
                        .await
                }
                Err(e) => Err(e),
            };
            match r {
                Ok(r) => say(format!("OK {} {:016x}", r.len(), fnv1a64(&r))),
                Err(e) => say(format!("ERR {} {}", e.code(), e.detail())),
            }
        }
        Some("sserve") => {
            // secho: every message back (the first payload too, unless
            // empty), then the end once the opener ended its side.
            // scancel: sends "hello", then cancels. swatch: receives until
            // the stream ends and prints `SAW END|<CODE> <messages>`.
            let _echo = ep.serve_stream_fn("secho", |req, s| async move {
                if !req.payload().is_empty() {
                    s.send(req.payload().clone()).await?;
                }
                while let Some(m) = s.recv().await? {
                    s.send(m).await?;
                }
                Ok(())
            })?;
            let _cancel = ep.serve_stream_fn("scancel", |_req, s| async move {
                s.send("hello").await?;
                s.cancel();
                Ok(())
            })?;
            let _watch = ep.serve_stream_fn("swatch", |_req, s| async move {
                let mut n = 0;
                let end = loop {
                    match s.recv().await {
                        Ok(Some(_)) => n += 1,
                        Ok(None) => break "END".to_owned(),
                        Err(e) => break e.code().to_string(),
                    }
                };
                say(format!("SAW {end} {n}"));
                Ok(())
            })?;
            say(format!("READY {}", ep.listen(&args[1]).await?));
            std::future::pending::<()>().await;
        }
        Some("sopen") => {
            // sopen ADDR PATH [--cancel] SPEC...: sends each payload, then
            // finishes and prints `SMSG <len> <fnv>` per message received
            // and `SEND` at the end (or `ERR <CODE> <detail>`); with
            // --cancel, cancels after sending and prints `CANCELLED`.
            let (addr, path) = (&args[1], &args[2]);
            let cancel = args.get(3).is_some_and(|a| a == "--cancel");
            let specs = &args[if cancel { 4 } else { 3 }..];
            ep.connect(addr).await?;
            let r = async {
                let s = ep.open_stream(path, "").await?;
                for spec in specs {
                    s.send(payload(spec)).await?;
                }
                if cancel {
                    s.cancel();
                    say("CANCELLED".into());
                    return Ok(());
                }
                s.finish();
                while let Some(m) = s.recv().await? {
                    say(format!("SMSG {} {:016x}", m.len(), fnv1a64(&m)));
                }
                say("SEND".into());
                Ok::<(), netchan::Error>(())
            }
            .await;
            if let Err(e) = r {
                say(format!("ERR {} {}", e.code(), e.detail()));
            }
        }
        _ => {
            eprintln!("usage: interop_agent sub|pub|serve|req|sserve|sopen ...");
            std::process::exit(2);
        }
    }
    ep.close().await;
    Ok(())
}
