use super::*;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

fn meta(path: &str) -> Arc<Meta> {
    Arc::new(Meta {
        path: path.into(),
        sender: "t".into(),
    })
}

/// A send queue over one end of a socket pair (with a small socket buffer
/// when `small`, so that writes push back), the other end to read from, and
/// the queue's own read half (kept so the socket stays open).
fn link(
    small: bool,
) -> (
    Arc<SendQueue>,
    tokio::net::UnixStream,
    tokio::net::unix::OwnedReadHalf,
) {
    let (a, b) = tokio::net::UnixStream::pair().unwrap();
    if small {
        let _ = socket2::SockRef::from(&a).set_send_buffer_size(16 * 1024);
    }
    let (ra, wa) = a.into_split();
    let tx = Arc::new(SendQueue::new(
        8 << 20,
        Wire::Unix(wa),
        Arc::new(WriteThrough::new()),
    ));
    (tx, b, ra)
}

/// A sender's write-through that stops inside a large frame (the socket
/// took only part of it), then a control frame queued before the writer
/// runs: the control frame goes out after the rest of that frame, never
/// inside it. (It went inside it once, as a PONG in the middle of a
/// message's payload, under load: `large_frames_arrive_whole_over_tcp`.)
#[tokio::test]
async fn a_control_frame_never_lands_inside_a_frame_written_through_in_part() {
    // A small socket buffer: the write-through takes only part of 1 MiB.
    let (tx, mut b, _ra) = link(true);
    let payload = Bytes::from(vec![7u8; 1 << 20]);
    assert!(matches!(
        tx.push_message(&meta("big"), &payload),
        Enq::Queued
    ));
    assert!(
        tx.lock().mid_frame,
        "the write-through stopped inside the frame"
    );
    assert!(matches!(tx.push_control(&Frame::Pong(3)), Enq::Queued));
    let dead = CancellationToken::new();
    let writer = tokio::spawn(writer_loop(tx.clone(), dead.clone(), "t".into()));
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    while frames.len() < 3 {
        match proto::decode(&mut buf, 4 << 20).unwrap() {
            proto::Decoded::Frame(f) => frames.push(f),
            proto::Decoded::NeedMore(_) => {
                use tokio::io::AsyncReadExt;
                assert!(b.read_buf(&mut buf).await.unwrap() > 0);
            }
        }
    }
    assert_eq!(
        frames[0],
        Frame::Alias {
            alias: 0,
            path: "big".into()
        }
    );
    match &frames[1] {
        Frame::ShortMessage {
            alias: 0,
            payload: p,
        } => {
            assert!(p[..] == payload[..], "the payload arrived whole");
        }
        other => panic!("expected the message first, got {other:?}"),
    }
    assert_eq!(frames[2], Frame::Pong(3));
    tx.close();
    let _ = writer.await;
}

/// The write-through gate is the endpoint's: once one link's sender wrote
/// through, a message to another link within the gap is left to that link's
/// writer task, which batches (gated per link, a slow fan-out wrote every
/// message through on every link: docs/BENCHMARKS.md, "Fan-out"). An answer
/// (a frame sent after the peer sent something) writes through regardless.
#[tokio::test]
async fn a_fan_out_writes_through_to_one_link_and_leaves_the_rest_to_the_writers() {
    use tokio::io::AsyncReadExt;
    // A gap no test outlasts: the outcome does not depend on timing.
    let gate = Arc::new(WriteThrough::with_gap(Duration::from_secs(3600)));
    let mut links = Vec::new();
    for _ in 0..3 {
        let (a, b) = tokio::net::UnixStream::pair().unwrap();
        let (_ra, wa) = a.into_split();
        links.push((
            SendQueue::new(8 << 20, Wire::Unix(wa), gate.clone()),
            b,
            _ra,
        ));
    }
    let payload = Bytes::from_static(b"8 bytes!");
    for (tx, _, _) in &links {
        assert!(matches!(tx.push_message(&meta("p"), &payload), Enq::Queued));
    }
    // The first message on a path names it (ALIAS), then goes short.
    let mut alias = BytesMut::new();
    let named = Frame::Alias {
        alias: 0,
        path: "p".into(),
    };
    proto::encode(&mut alias, &named).unwrap();
    let len = alias.len() + proto::short_message_frame_len(payload.len());
    let mut buf = [0u8; 256];
    let (first, rest) = links.split_first_mut().unwrap();
    assert_eq!(
        first.1.read(&mut buf).await.unwrap(),
        len,
        "the first link was written through"
    );
    assert_eq!(first.0.lock().queued, 0);
    for (tx, b, _) in rest.iter_mut() {
        assert_eq!(tx.lock().queued, len, "left queued for the writer");
        assert!(b.try_read(&mut buf).is_err(), "nothing written yet");
    }
    // An answer (on a fourth link): through at once, gate or not.
    let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
    let (_ra, wa) = a.into_split();
    let tx = SendQueue::new(8 << 20, Wire::Unix(wa), gate);
    tx.heard();
    assert!(matches!(tx.push_message(&meta("p"), &payload), Enq::Queued));
    assert_eq!(
        b.read(&mut buf).await.unwrap(),
        len,
        "the answer was written through"
    );
}

/// Reads frames from `b` until `n` have arrived.
async fn read_frames(b: &mut tokio::net::UnixStream, n: usize) -> Vec<Frame> {
    use tokio::io::AsyncReadExt;
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    while frames.len() < n {
        match proto::decode(&mut buf, 4 << 20).unwrap() {
            proto::Decoded::Frame(f) => frames.push(f),
            proto::Decoded::NeedMore(_) => assert!(b.read_buf(&mut buf).await.unwrap() > 0),
        }
    }
    frames
}

/// A link remembers the route it last aliased by identity (no hash per
/// message); a different route, or another handle on the same path, still
/// finds its own alias, and a path is named once.
#[tokio::test]
async fn a_path_is_aliased_once_whichever_route_handle_sends_on_it() {
    let (tx, mut b, _ra) = link(false);
    let dead = CancellationToken::new();
    let writer = tokio::spawn(writer_loop(tx.clone(), dead.clone(), "t".into()));
    let (pa, pb, pa2) = (meta("a"), meta("b"), meta("a"));
    let payload = Bytes::from_static(b"x");
    for m in [&pa, &pb, &pa, &pa2, &pb, &pa2] {
        assert!(matches!(tx.push_message(m, &payload), Enq::Queued));
    }
    let short = |alias| Frame::ShortMessage {
        alias,
        payload: payload.clone(),
    };
    let name = |alias, path: &str| Frame::Alias {
        alias,
        path: path.into(),
    };
    let want = vec![
        name(0, "a"),
        short(0),
        name(1, "b"),
        short(1),
        short(0),
        short(0),
        short(1),
        short(0),
    ];
    assert_eq!(read_frames(&mut b, want.len()).await, want);
    tx.close();
    let _ = writer.await;
}

/// A stream of small messages through a congested link is cut into
/// segments; each segment written is kept and filled again (no allocation,
/// no fresh pages per segment), and what arrives is every message, intact
/// and in order.
#[tokio::test]
async fn written_segments_are_filled_again_and_every_message_arrives_intact() {
    let (tx, mut b, _ra) = link(true);
    let dead = CancellationToken::new();
    let writer = tokio::spawn(writer_loop(tx.clone(), dead.clone(), "t".into()));
    let m = meta("p");
    let per_round = 3 * SEGMENT / 1024;
    let mut spare_after_first = 0;
    for round in 0..2u32 {
        // Queued at once (the writer runs only when this task yields).
        for i in 0..per_round as u32 {
            let mut p = vec![0u8; 1024];
            p[..4].copy_from_slice(&(round * 100_000 + i).to_be_bytes());
            assert!(matches!(tx.push_message(&m, &Bytes::from(p)), Enq::Queued));
        }
        if round == 1 {
            assert!(
                tx.lock().spare.len() < spare_after_first,
                "the second round filled spare segments"
            );
        }
        let frames = read_frames(&mut b, per_round + usize::from(round == 0)).await;
        let got: Vec<u32> = frames
            .iter()
            .filter_map(|f| match f {
                Frame::ShortMessage { payload, .. } => {
                    assert_eq!(payload.len(), 1024);
                    Some(u32::from_be_bytes(payload[..4].try_into().unwrap()))
                }
                _ => None,
            })
            .collect();
        let want: Vec<u32> = (0..per_round as u32).map(|i| round * 100_000 + i).collect();
        assert_eq!(got, want, "round {round}: every message, in order");
        // The writer gives written segments back when it next looks at the
        // queue: one more (empty) message makes it look.
        assert!(matches!(
            tx.push_message(&m, &Bytes::from_static(b"")),
            Enq::Queued
        ));
        let _ = read_frames(&mut b, 1).await;
        tokio::task::yield_now().await;
        if round == 0 {
            spare_after_first = tx.lock().spare.len();
            assert!(
                (1..=SPARE_SEGMENTS).contains(&spare_after_first),
                "written segments were kept: {spare_after_first}"
            );
        }
    }
    tx.close();
    let _ = writer.await;
}
