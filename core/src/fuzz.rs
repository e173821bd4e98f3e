//! Fuzz target bodies, shared by the cargo-fuzz targets in `fuzz/` and by
//! the test that replays the committed seed corpora (`core/tests/fuzz_corpus.rs`).
//! Each function must never panic, whatever the input; the path target also
//! checks the matcher against a naive reference (a differential oracle).

use bytes::{Bytes, BytesMut};

use crate::path::{validate_path, Pattern};

/// A listener with shared keys fed what a dialler might send: refused or
/// accepted without a panic, and nothing after an accepted handshake
/// decrypts (see `transport::psk`).
pub fn shared_key_handshake(data: &[u8]) {
    crate::transport::fuzz_shared_key_listener(data)
}
use crate::proto::{self, Decoded, Frame, Hello};

/// Decodes frames from `data` whole, then fed in two parts (split at a
/// position taken from the first byte), like chunked reads.
pub fn frame_decoder(data: &[u8]) {
    let whole = decode_all(data, &[]);
    let cut = data.first().map_or(0, |b| *b as usize % (data.len() + 1));
    let split = decode_all(&data[..cut], &data[cut..]);
    assert_eq!(whole, split, "chunking changed the decoded frames");
}

fn decode_all(a: &[u8], b: &[u8]) -> Vec<Result<Frame, u16>> {
    let mut out = Vec::new();
    let mut buf = BytesMut::from(a);
    let mut rest = Some(b);
    loop {
        match proto::decode(&mut buf, 1 << 16) {
            Ok(Decoded::Frame(f)) => {
                // Everything decoded re-encodes and decodes to the same frame.
                let mut again = BytesMut::new();
                if proto::encode(&mut again, &f).is_ok() {
                    let back = proto::decode(&mut again, usize::MAX);
                    assert!(
                        matches!(back, Ok(Decoded::Frame(ref g)) if *g == f),
                        "re-encoding changed {f:?}"
                    );
                }
                out.push(Ok(f));
            }
            Ok(Decoded::NeedMore(_)) => match rest.take() {
                Some(r) if !r.is_empty() => buf.extend_from_slice(r),
                _ => return out,
            },
            Err(e) => {
                out.push(Err(e.code().as_u16()));
                return out;
            }
        }
    }
}

/// Plays `data` as the byte stream of a peer: the first frame goes through
/// the handshake check, the rest through the post-handshake decoder.
pub fn handshake(data: &[u8]) {
    let local = Hello {
        magic: proto::MAGIC.into(),
        min_version: proto::VERSION_MIN,
        max_version: proto::VERSION_MAX,
        name: "fuzz-local".into(),
        max_frame: 1 << 16,
        heartbeat_ms: 1000,
        instance: 1,
        rejoin: false,
        link: 0,
    };
    let mut buf = BytesMut::from(data);
    let first = match proto::decode(&mut buf, proto::HANDSHAKE_MAX_FRAME) {
        Ok(Decoded::Frame(f)) => f,
        _ => return,
    };
    if proto::negotiate(&local, first).is_err() {
        return;
    }
    while let Ok(Decoded::Frame(f)) = proto::decode(&mut buf, local.max_frame as usize) {
        if let Frame::Declare(items) = f {
            for d in items.iter() {
                let _ = Pattern::new(d.pattern);
            }
        }
    }
    // The chunked fast path agrees with the frame decoder on what is a message.
    let chunk = Bytes::copy_from_slice(data);
    let mut at = 0;
    while let Ok(proto::Peeked::Complete(h)) = proto::peek(&chunk[at..], 1 << 16) {
        if let Some(r) = proto::message_path_range(&chunk[at..at + h.total], h) {
            assert!(r.end <= h.total);
        }
        let _ = proto::parse_frame(&chunk, at, h);
        at += h.total;
    }
}

/// Splits `data` at the first NUL into a pattern and a path; checks that
/// the parsers never panic and that the matcher agrees with a naive one.
pub fn path_pattern(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let (pat, path) = text.split_once('\0').unwrap_or((&text, "a"));
    let p = Pattern::new(pat);
    let ok_path = validate_path(path).is_ok();
    if let (Ok(p), true) = (&p, ok_path) {
        let segs: Vec<&str> = pat.split('/').collect();
        let parts: Vec<&str> = path.split('/').collect();
        if segs.len() <= 12 && parts.len() <= 12 {
            assert_eq!(
                p.matches(path),
                naive_match(&segs, &parts),
                "{pat:?} vs {path:?}"
            );
        }
        assert!(p.overlaps(p), "a pattern overlaps itself");
        if let Ok(exact) = Pattern::new(path) {
            assert_eq!(p.overlaps(&exact), p.matches(path), "{pat:?} vs {path:?}");
        }
    }
}

/// The obviously correct matcher: recursive, exponential, for small inputs.
pub fn naive_match(pat: &[&str], path: &[&str]) -> bool {
    match (pat.first(), path.first()) {
        (None, None) => true,
        (Some(&"**"), _) => {
            naive_match(&pat[1..], path) || (!path.is_empty() && naive_match(pat, &path[1..]))
        }
        (Some(&"*"), Some(_)) => naive_match(&pat[1..], &path[1..]),
        (Some(l), Some(s)) => l == s && naive_match(&pat[1..], &path[1..]),
        _ => false,
    }
}

/// Plays `data` as frames between two ends of a link with credit: CREDIT
/// frames go to the publishing side's accounting, CREDIT_ACK and MESSAGE
/// frames to the subscribing side's (two `Block` subscriptions), PING
/// frames stand for the consumer taking messages. Whatever the input, the
/// accounting never panics, a slot's park never holds more than twice its
/// window, and what a subscription counts as parked matches its parks.
pub fn credit(data: &[u8]) {
    use crate::config::SubscribeOptions;
    use crate::credit::{CreditIn, CreditOut};
    use crate::inbox::{Inbox, Meta};
    use std::sync::Arc;

    let inbox = |id, pattern, capacity| {
        let o = SubscribeOptions {
            capacity,
            max_bytes: 64,
            ..Default::default()
        };
        Arc::new(Inbox::new(id, Pattern::new(pattern).expect("a pattern"), o))
    };
    let subs = [inbox(1, "a/*", 4), inbox(2, "**", 2)];
    let mut cin = CreditIn::default();
    for s in &subs {
        cin.open(s);
    }
    let mut out = CreditOut::default();
    let mut grants = Vec::new();
    let mut buf = BytesMut::from(data);
    while let Ok(Decoded::Frame(f)) = proto::decode(&mut buf, 1 << 16) {
        match f {
            Frame::Credit(items) => {
                let applied = out.apply(items, 8);
                if applied.is_err() {
                    return;
                }
            }
            Frame::CreditAck(ids) => cin.acked(&ids),
            Frame::Message { path, payload } => {
                let Ok(path) = std::str::from_utf8(&path) else {
                    return;
                };
                let meta = Arc::new(Meta {
                    path: path.into(),
                    sender: "fuzz".into(),
                });
                let _ = out.take(&meta, payload.len());
                for s in subs.iter().filter(|s| s.pattern.matches(path)) {
                    let mut run = [payload.clone()];
                    if cin
                        .deliver(s.id, &meta, &mut run, false, &mut grants)
                        .is_err()
                    {
                        return;
                    }
                }
            }
            Frame::Ping(n) => {
                let s = &subs[(n % 2) as usize];
                let mut taken = Vec::new();
                s.pop_into(&mut taken, (n % 5) as usize);
                cin.drain(s.id, &mut grants);
            }
            _ => {}
        }
        for s in &subs {
            let (parked, max) = cin.parked(s.id);
            assert_eq!(
                parked,
                s.parked.load(std::sync::atomic::Ordering::Relaxed),
                "parked count"
            );
            assert!(parked <= max, "a park beyond twice its window");
        }
    }
}

/// Credit accounting of streams: both sides of a stream within one
/// endpoint, driven by `data` (try-send, try-receive, finish, cancel on
/// either side). Whatever the input, nothing panics; messages arrive whole
/// and in order; a side never holds more than its window plus one
/// message; and, until the stream is cancelled, what a receiver holds plus
/// its sender's credit is exactly the window.
pub fn stream_credit(data: &[u8]) {
    crate::stream::fuzz_local(data)
}
