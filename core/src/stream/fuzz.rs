//! Streams' credit accounting under a fuzzer (see
//! `crate::fuzz::stream_credit`).

use std::collections::VecDeque;

use bytes::Bytes;
use tokio_util::sync::CancellationToken;

use super::{cost, Side, StreamCore, TrySend};
use crate::error::{Error, ErrorCode};

/// Both sides of a stream within one endpoint, driven by the bytes of
/// `data` (see [`crate::fuzz::stream_credit`]).
pub(crate) fn fuzz_local(data: &[u8]) {
    let side = |name: &str| Side {
        path: "f".into(),
        peer_name: name.into(),
        deadline: None,
        shutdown: CancellationToken::new(),
        blocker: None,
    };
    let windows = (
        1 + u64::from(data.first().copied().unwrap_or(0)) * 3,
        1 + u64::from(data.get(1).copied().unwrap_or(0)),
    );
    let (a, b, _taken) = StreamCore::local_pair(side("a"), side("b"), windows);
    let sides = [&a, &b];
    // What each side sent that the other has not received yet.
    let mut in_flight: [VecDeque<Bytes>; 2] = [VecDeque::new(), VecDeque::new()];
    let mut cancelled = false;
    let mut finished = [false; 2];
    let mut tag = 0u8;
    for op in data.get(2..).unwrap_or(&[]).chunks(2) {
        let (code, arg) = (op[0], op.get(1).copied().unwrap_or(0));
        let who = usize::from(code & 1);
        let me = sides[who];
        match (code >> 1) % 4 {
            0 => {
                tag = tag.wrapping_add(1);
                let m = Bytes::from(vec![tag; usize::from(arg)]);
                match me.try_send(&m) {
                    Ok(TrySend::Sent) => in_flight[who].push_back(m),
                    Ok(_) => {}
                    Err(e) => assert!(
                        cancelled || finished[who],
                        "send failed on a live stream: {e}"
                    ),
                }
            }
            1 => match me.try_recv() {
                Ok(Some(Some(m))) => {
                    let want = in_flight[1 - who].pop_front();
                    assert_eq!(Some(m), want, "messages arrive whole and in order");
                }
                Ok(Some(None)) => {
                    assert!(finished[1 - who], "an end nobody sent");
                    assert!(in_flight[1 - who].is_empty(), "the end before the data");
                }
                Ok(None) => assert!(
                    cancelled || in_flight[1 - who].is_empty(),
                    "a message sent is not there"
                ),
                Err(_) => assert!(cancelled, "a receive failed on a live stream"),
            },
            2 => {
                me.finish();
                finished[who] = true;
            }
            _ if arg < 16 => {
                me.cancel(Error::new(ErrorCode::Cancelled, "fuzz"));
                cancelled = true;
            }
            _ => {}
        }
        for (pipe, window) in [(&a.out, windows.1), (&b.out, windows.0)] {
            let st = pipe.lock();
            let held: i64 = st.queue.iter().map(cost).sum();
            assert!(
                st.credit >= -255,
                "credit below zero by more than a message"
            );
            assert!(
                held <= window as i64 + 255,
                "{held} bytes held in a window of {window}"
            );
            if !cancelled {
                assert_eq!(held + st.credit, window as i64, "credit is conserved");
            }
        }
    }
}
