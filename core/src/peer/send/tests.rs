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
    let tx = Arc::new(SendQueue::new(8 << 20, Wire::Unix(wa)));
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
    while frames.len() < 2 {
        match proto::decode(&mut buf, 4 << 20).unwrap() {
            proto::Decoded::Frame(f) => frames.push(f),
            proto::Decoded::NeedMore(_) => {
                use tokio::io::AsyncReadExt;
                assert!(b.read_buf(&mut buf).await.unwrap() > 0);
            }
        }
    }
    match &frames[0] {
        Frame::Message { path, payload: p } => {
            assert_eq!(&path[..], b"big");
            assert!(p[..] == payload[..], "the payload arrived whole");
        }
        other => panic!("expected the message first, got {other:?}"),
    }
    assert_eq!(frames[1], Frame::Pong(3));
    tx.close();
    let _ = writer.await;
}
