//! Two connections' state machines driven against each other in memory:
//! frames go through the real codec, time is an explicit clock (no sleeps,
//! no runtime), and each side is driven the way the socket code drives it.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::sync::oneshot;
use tokio::time::Instant;

use super::*;
use crate::proto::{self, Decoded, Frame, Hello};

const MAX_FRAME: usize = 64 * 1024;

fn hello(name: &str, min: u64, max: u64) -> Hello {
    Hello {
        magic: proto::MAGIC.into(),
        min_version: min,
        max_version: max,
        name: name.into(),
        max_frame: MAX_FRAME as u32,
        heartbeat_ms: 1000,
        instance: 0,
        rejoin: false,
        link: 0,
    }
}

/// One end of an in-memory link, driven like `link::establish` and
/// `rx::Receiver` drive a real one.
struct Side {
    hs: Handshake,
    agreed: Option<Agreed>,
    session: Session,
    inflight: InFlight,
    live: Liveness,
    /// Bytes received and not yet taken.
    inbox: BytesMut,
    /// Bytes to send.
    out: BytesMut,
    last_rx: Instant,
    /// Requests handed to the local service: (id, path, cancellation).
    served: Vec<(u64, String, CancellationToken)>,
    /// What ended the link, if something did.
    ended: Option<Error>,
    /// A refusal the peer's CLOSE carried.
    refusal: Option<Error>,
}

impl Side {
    fn new(h: Hello, now: Instant) -> Side {
        let hs = Handshake::new(h, now, Duration::from_secs(2));
        let mut out = BytesMut::new();
        hs.hello(&mut out).unwrap();
        Side {
            hs,
            agreed: None,
            session: Session::default(),
            inflight: InFlight::default(),
            live: Liveness {
                interval: Duration::from_secs(1),
                misses: 3,
            },
            inbox: BytesMut::new(),
            out,
            last_rx: now,
            served: Vec::new(),
            ended: None,
            refusal: None,
        }
    }

    fn send(&mut self, f: &Frame) {
        proto::encode(&mut self.out, f).unwrap();
    }

    fn peer(&self) -> String {
        self.agreed
            .as_ref()
            .map(|a| a.peer.name.clone())
            .unwrap_or_default()
    }

    /// Takes bytes that arrived at `now`.
    fn receive(&mut self, bytes: &[u8], now: Instant) {
        if self.ended.is_some() {
            return;
        }
        self.last_rx = now;
        self.inbox.extend_from_slice(bytes);
        if let Err(e) = self.take(now) {
            self.inflight.fail_all(&e);
            self.ended = Some(e);
        }
    }

    fn take(&mut self, now: Instant) -> Result<()> {
        if self.agreed.is_none() {
            match self.hs.on_bytes(&mut self.inbox)? {
                Step::Agreed(a) => self.agreed = Some(a),
                Step::NeedMore(_) => return Ok(()),
            }
        }
        while let Decoded::Frame(f) = proto::decode(&mut self.inbox, MAX_FRAME)? {
            let peer = self.peer();
            match self.session.on_frame(f, &peer)? {
                Input::Ping(n) => self.send(&Frame::Pong(n)),
                Input::Pong(n) => {
                    if let Some(p) = self.inflight.on_pong(n, now) {
                        p.deliver();
                    }
                }
                Input::Result { id, outcome } => {
                    self.inflight.on_result(id, outcome);
                }
                Input::Request { id, path, .. } => {
                    let t = self.inflight.start_serving(id)?;
                    self.served.push((id, path, t));
                }
                Input::Cancel(id) => self.inflight.cancel_served(id),
                Input::Close { why, refusal } => {
                    self.refusal = refusal;
                    return Err(Error::new(ErrorCode::Closed, why));
                }
                Input::Message
                | Input::Declare(_)
                | Input::SnapshotEnd
                | Input::Credit(_)
                | Input::CreditAck(_)
                | Input::Tally(_)
                | Input::Stream(_) => {}
            }
        }
        Ok(())
    }

    /// Answers a served request, if its caller still waits.
    fn reply(&mut self, id: u64, payload: &'static [u8]) {
        if self.inflight.finish_served(id) {
            self.send(&Frame::Result {
                id,
                code: 0,
                message: String::new(),
                payload: Bytes::from_static(payload),
            });
        }
    }

    /// A heartbeat tick at `now`.
    fn tick(&mut self, now: Instant) -> Tick {
        let t = self.live.tick(now - self.last_rx, false);
        if t == Tick::Ping {
            self.send(&Frame::Ping(0));
        }
        t
    }
}

/// Delivers everything each side has sent to the other, at `now`, until
/// neither has anything left to send (answers included).
fn exchange(a: &mut Side, b: &mut Side, now: Instant) {
    while !a.out.is_empty() || !b.out.is_empty() {
        let ab = a.out.split();
        if !ab.is_empty() {
            b.receive(&ab, now);
        }
        let ba = b.out.split();
        if !ba.is_empty() {
            a.receive(&ba, now);
        }
    }
}

fn pair(now: Instant) -> (Side, Side) {
    let mut a = Side::new(hello("a", 1, 1), now);
    let mut b = Side::new(hello("b", 1, 1), now);
    exchange(&mut a, &mut b, now);
    (a, b)
}

#[test]
fn both_sides_agree_on_the_highest_common_version_and_learn_each_others_hello() {
    let t0 = Instant::now();
    let mut a = Side::new(hello("a", 1, 3), t0);
    let mut b = Side::new(hello("b", 2, 5), t0);
    exchange(&mut a, &mut b, t0);
    let (x, y) = (a.agreed.unwrap(), b.agreed.unwrap());
    assert_eq!((x.version, y.version), (3, 3));
    assert_eq!((x.peer.name.as_str(), y.peer.name.as_str()), ("b", "a"));
    assert!(a.ended.is_none() && b.ended.is_none());
}

#[test]
fn a_version_mismatch_fails_both_sides_with_the_same_code() {
    let t0 = Instant::now();
    let mut a = Side::new(hello("a", 1, 1), t0);
    let mut b = Side::new(hello("b", 2, 2), t0);
    exchange(&mut a, &mut b, t0);
    for s in [&a, &b] {
        let e = s.ended.as_ref().expect("the handshake must fail");
        assert_eq!(e.code(), ErrorCode::UnsupportedVersion, "{e}");
    }
}

#[test]
fn a_hello_that_arrives_byte_by_byte_is_taken_whole_and_what_follows_stays() {
    let t0 = Instant::now();
    let hs = Handshake::new(hello("a", 1, 1), t0, Duration::from_secs(2));
    let mut wire = BytesMut::new();
    proto::encode(&mut wire, &Frame::Hello(hello("b", 1, 1))).unwrap();
    proto::encode(&mut wire, &Frame::Ping(7)).unwrap();
    let mut buf = BytesMut::new();
    let mut agreed = None;
    for (i, byte) in wire.iter().enumerate() {
        buf.extend_from_slice(&[*byte]);
        match hs.on_bytes(&mut buf).unwrap() {
            Step::Agreed(a) => {
                agreed = Some((i, a));
                break;
            }
            Step::NeedMore(n) => assert!(n > buf.len(), "asks for more than it has"),
        }
    }
    let (at, a) = agreed.expect("the HELLO completes");
    assert_eq!(a.peer.name, "b");
    // The PING after it is left for the reader.
    buf.extend_from_slice(&wire[at + 1..]);
    match proto::decode(&mut buf, MAX_FRAME).unwrap() {
        Decoded::Frame(Frame::Ping(7)) => {}
        other => panic!("expected the PING, got {other:?}"),
    }
}

#[test]
fn a_first_frame_other_than_hello_or_an_oversized_hello_is_refused() {
    let t0 = Instant::now();
    let hs = Handshake::new(hello("a", 1, 1), t0, Duration::from_secs(2));
    let mut buf = BytesMut::new();
    proto::encode(&mut buf, &Frame::Ping(1)).unwrap();
    let e = hs.on_bytes(&mut buf).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProtocolError, "{e}");

    let mut big = hello("b", 1, 1);
    big.name = "n".repeat(proto::HANDSHAKE_MAX_FRAME);
    let mut buf = BytesMut::new();
    proto::encode(&mut buf, &Frame::Hello(big)).unwrap();
    let e = hs.on_bytes(&mut buf.split_to(64)).unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProtocolError, "{e}");
    assert!(e.detail().contains("exceeds"), "{e}");
}

#[test]
fn a_close_during_the_handshake_is_the_peers_refusal_with_its_code() {
    let t0 = Instant::now();
    let hs = Handshake::new(hello("a", 1, 1), t0, Duration::from_secs(2));
    let mut buf = BytesMut::new();
    proto::encode(
        &mut buf,
        &Frame::Close {
            code: ErrorCode::Overloaded.as_u16(),
            reason: "busy".into(),
        },
    )
    .unwrap();
    let e = hs.on_bytes(&mut buf).unwrap_err();
    assert_eq!(e.code(), ErrorCode::Overloaded, "{e}");
}

#[test]
fn the_handshake_deadline_is_its_start_plus_its_limit() {
    let t0 = Instant::now();
    let hs = Handshake::new(hello("a", 1, 1), t0, Duration::from_millis(1500));
    assert_eq!(hs.deadline(), t0 + Duration::from_millis(1500));
    assert_eq!(hs.timed_out().code(), ErrorCode::Timeout);
}

#[test]
fn a_second_snapshot_end_or_hello_after_the_handshake_breaks_the_protocol() {
    let mut s = Session::default();
    assert!(matches!(
        s.on_frame(Frame::SnapshotEnd, "b").unwrap(),
        Input::SnapshotEnd
    ));
    let e = s.on_frame(Frame::SnapshotEnd, "b").unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProtocolError);
    let e = s.on_frame(Frame::Hello(hello("b", 1, 1)), "b").unwrap_err();
    assert_eq!(e.code(), ErrorCode::ProtocolError);
}

#[test]
fn a_request_is_served_and_its_result_reaches_the_caller() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    let (tx, mut rx) = oneshot::channel();
    a.inflight.start_request(1, tx).unwrap();
    a.send(&Frame::Request {
        id: 1,
        path: "svc/echo".into(),
        timeout_ms: 500,
        payload: Bytes::from_static(b"hi"),
    });
    exchange(&mut a, &mut b, t0);
    assert_eq!(b.served.len(), 1);
    assert_eq!(b.served[0].1, "svc/echo");
    b.reply(1, b"HI");
    exchange(&mut a, &mut b, t0);
    assert_eq!(rx.try_recv().unwrap().unwrap(), Bytes::from_static(b"HI"));
    assert_eq!(a.inflight.len(), (0, 0));
    assert_eq!(b.inflight.len(), (0, 0));
}

#[test]
fn an_error_result_carries_its_code_and_an_unknown_code_is_a_handler_error() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    let (tx1, mut rx1) = oneshot::channel();
    let (tx2, mut rx2) = oneshot::channel();
    a.inflight.start_request(1, tx1).unwrap();
    a.inflight.start_request(2, tx2).unwrap();
    for (id, code) in [(1, ErrorCode::NoResponders.as_u16()), (2, 60_000)] {
        b.send(&Frame::Result {
            id,
            code,
            message: "no".into(),
            payload: Bytes::new(),
        });
    }
    exchange(&mut a, &mut b, t0);
    let e1 = rx1.try_recv().unwrap().unwrap_err();
    let e2 = rx2.try_recv().unwrap().unwrap_err();
    assert_eq!(e1.code(), ErrorCode::NoResponders);
    assert_eq!(e2.code(), ErrorCode::HandlerError);
}

#[test]
fn a_cancelled_request_is_cancelled_at_its_server_and_its_reply_is_not_sent() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    let (tx, _rx) = oneshot::channel();
    a.inflight.start_request(9, tx).unwrap();
    a.send(&Frame::Request {
        id: 9,
        path: "svc/slow".into(),
        timeout_ms: 500,
        payload: Bytes::new(),
    });
    exchange(&mut a, &mut b, t0);
    // The caller gives up: a CANCEL goes out, once.
    assert!(a.inflight.forget_request(9));
    assert!(!a.inflight.forget_request(9));
    a.send(&Frame::Cancel(9));
    exchange(&mut a, &mut b, t0);
    assert!(b.served[0].2.is_cancelled());
    b.reply(9, b"late");
    assert!(b.out.is_empty(), "a cancelled request's reply is not sent");
}

#[test]
fn a_request_id_repeated_while_in_flight_breaks_the_protocol() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    for _ in 0..2 {
        a.send(&Frame::Request {
            id: 4,
            path: "svc/x".into(),
            timeout_ms: 500,
            payload: Bytes::new(),
        });
    }
    exchange(&mut a, &mut b, t0);
    let e = b.ended.as_ref().expect("the repeat ends the link");
    assert_eq!(e.code(), ErrorCode::ProtocolError, "{e}");
    // What it was serving is cancelled with the link.
    assert!(b.served[0].2.is_cancelled());
}

#[test]
fn the_end_of_a_link_fails_what_is_in_flight_and_refuses_what_comes_after() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    let (tx, mut rx) = oneshot::channel();
    a.inflight.start_request(1, tx).unwrap();
    b.send(&Frame::Close {
        code: ErrorCode::NameInUse.as_u16(),
        reason: "duplicate".into(),
    });
    exchange(&mut a, &mut b, t0);
    let e = a.ended.as_ref().expect("CLOSE ends the link");
    assert_eq!(e.code(), ErrorCode::Closed);
    assert_eq!(a.refusal.as_ref().unwrap().code(), ErrorCode::NameInUse);
    let waiting = rx.try_recv().unwrap().unwrap_err();
    assert_eq!(waiting.code(), ErrorCode::Closed);
    let (tx, _) = oneshot::channel();
    assert_eq!(
        a.inflight.start_request(2, tx).unwrap_err().code(),
        ErrorCode::Closed
    );
    let (tx, _) = oneshot::channel();
    assert!(a.inflight.start_ping(3, t0, tx).is_err());
}

#[test]
fn a_normal_close_is_no_refusal() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    b.send(&Frame::Close {
        code: 0,
        reason: "bye".into(),
    });
    exchange(&mut a, &mut b, t0);
    assert!(a.ended.is_some());
    assert!(a.refusal.is_none());
}

#[test]
fn a_ping_measures_the_round_trip_on_the_clock_it_is_given() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    let (tx, mut rx) = oneshot::channel();
    a.inflight.start_ping(11, t0, tx).unwrap();
    a.send(&Frame::Ping(11));
    let ab = a.out.split();
    b.receive(&ab, t0 + Duration::from_millis(3));
    let ba = b.out.split();
    a.receive(&ba, t0 + Duration::from_millis(7));
    assert_eq!(rx.try_recv().unwrap(), Duration::from_millis(7));
    // The heartbeat's pings (nonce 0) wait for nobody.
    assert!(a.inflight.on_pong(0, t0).is_none());
}

#[test]
fn liveness_pings_after_an_interval_of_quiet_and_gives_up_after_the_window() {
    let l = Liveness {
        interval: Duration::from_secs(1),
        misses: 3,
    };
    let ms = Duration::from_millis;
    assert_eq!(l.tick(ms(999), false), Tick::Idle);
    assert_eq!(l.tick(ms(1000), false), Tick::Ping);
    assert_eq!(l.tick(ms(2999), false), Tick::Ping);
    assert!(matches!(l.tick(ms(3000), false), Tick::Dead(_)));
    // While our reader leaves the peer unread, its silence is ours.
    assert_eq!(l.tick(ms(60_000), true), Tick::Idle);
}

#[test]
fn a_peer_that_answers_pings_stays_alive_and_one_that_stops_is_dead_after_the_window() {
    let t0 = Instant::now();
    let (mut a, mut b) = pair(t0);
    let s = Duration::from_secs;
    // Both quiet, both answering: a's pings keep it hearing from b.
    for k in 1..=10 {
        let now = t0 + s(k);
        assert_ne!(a.tick(now), Tick::Idle, "quiet for a second: ping");
        exchange(&mut a, &mut b, now);
        assert_eq!(a.live.tick(now - a.last_rx, false), Tick::Idle);
    }
    // b stops answering (its process froze): a's pings go unanswered.
    let frozen = t0 + s(10);
    let mut verdicts = Vec::new();
    for k in 1..=3 {
        let now = frozen + s(k);
        verdicts.push(a.tick(now));
        a.out.clear();
    }
    assert_eq!(verdicts[..2], [Tick::Ping, Tick::Ping]);
    assert!(
        matches!(verdicts[2], Tick::Dead(_)),
        "dead exactly at interval x misses: {verdicts:?}"
    );
}
