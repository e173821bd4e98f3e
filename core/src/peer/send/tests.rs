use super::*;

/// A sender's write-through that stops inside a large frame (the socket
/// took only part of it), then a control frame queued before the writer
/// runs: the control frame goes out after the rest of that frame, never
/// inside it. (It went inside it once, as a PONG in the middle of a
/// message's payload, under load: `large_frames_arrive_whole_over_tcp`.)
#[tokio::test]
async fn a_control_frame_never_lands_inside_a_frame_written_through_in_part() {
    let (a, mut b) = tokio::net::UnixStream::pair().unwrap();
    // A small socket buffer: the write-through takes only part of 1 MiB.
    let _ = socket2::SockRef::from(&a).set_send_buffer_size(16 * 1024);
    let (_ra, wa) = a.into_split();
    let tx = Arc::new(SendQueue::new(
        8 << 20,
        Wire::Unix(wa),
        Arc::new(WriteThrough::new()),
    ));
    let payload = Bytes::from(vec![7u8; 1 << 20]);
    assert!(matches!(tx.push_message("big", &payload), Enq::Queued));
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
        assert!(matches!(tx.push_message("p", &payload), Enq::Queued));
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
    assert!(matches!(tx.push_message("p", &payload), Enq::Queued));
    assert_eq!(
        b.read(&mut buf).await.unwrap(),
        len,
        "the answer was written through"
    );
}
