use super::*;
use crate::config::{Overflow, SubscribeOptions};
use crate::path::Pattern;

fn inbox(id: u64, pattern: &str, capacity: usize, overflow: Overflow) -> Arc<Inbox> {
    Arc::new(Inbox::new(
        id,
        Pattern::new(pattern).unwrap(),
        SubscribeOptions {
            capacity,
            max_bytes: 1 << 20,
            overflow,
        },
    ))
}

fn meta(path: &str) -> Arc<Meta> {
    Arc::new(Meta {
        path: path.into(),
        sender: "p".into(),
    })
}

fn payloads(n: usize) -> Vec<Bytes> {
    (0..n).map(|i| Bytes::from(vec![i as u8; 10])).collect()
}

/// The two ends of a link, run against each other: the publishing side
/// sends only within credit, the subscribing side parks what does not fit
/// and grants credit back as the queue drains; nothing is lost, order is
/// kept, and credit returns to its window once everything is consumed.
#[test]
fn credit_flows_both_ways_and_returns_to_the_window() {
    let sub = inbox(7, "a/*", 4, Overflow::Block);
    let mut cin = CreditIn::default();
    let mut out = CreditOut::default();
    let open = cin.open(&sub).unwrap();
    let (opened, _) = out.apply(vec![open], 10).unwrap();
    assert_eq!(opened, vec![7]);
    cin.acked(&opened);
    let m = meta("a/x");
    let mut sent = 0usize;
    let mut got = Vec::new();
    let mut grants = Vec::new();
    for round in 0..50 {
        // The publisher sends while it has credit.
        let mut run = Vec::new();
        while out.take(&meta("a/x"), 10) == Check::Send {
            run.push(Bytes::from(vec![(sent % 251) as u8; 10]));
            sent += 1;
        }
        assert!(
            run.len() <= 8,
            "within the window of 4 + the park: {}",
            run.len()
        );
        let d = cin.deliver(7, &m, &mut run, true, &mut grants).unwrap();
        assert_eq!(d.dropped, 0);
        // The consumer takes one or two now and then; the park drains.
        let mut taken = Vec::new();
        sub.pop_into(&mut taken, 1 + round % 2);
        got.extend(taken.into_iter().map(|m| m.payload()[0]));
        cin.drain(7, &mut grants);
        out.apply(std::mem::take(&mut grants), 10).unwrap();
    }
    // Drain everything.
    loop {
        let mut taken = Vec::new();
        sub.pop_into(&mut taken, 100);
        got.extend(taken.iter().map(|m| m.payload()[0]));
        let more = cin.drain(7, &mut grants).is_some();
        out.apply(std::mem::take(&mut grants), 10).unwrap();
        if taken.is_empty() && !more {
            break;
        }
    }
    assert_eq!(got.len(), sent, "every message sent arrived");
    for (i, b) in got.iter().enumerate() {
        assert_eq!(*b as usize, i % 251, "in order");
    }
    let s = &out.slots[out.index[&7]];
    let pend = cin.slots[&7].pend;
    assert_eq!(s.msgs + pend.0, 4, "credit returns to the window");
}

/// A peer that sends past its credit breaks the protocol.
#[test]
fn sending_past_credit_is_a_protocol_error() {
    let sub = inbox(1, "a", 2, Overflow::Block);
    let mut cin = CreditIn::default();
    cin.open(&sub).unwrap();
    cin.acked(&[1]);
    let mut g = Vec::new();
    // Two fill the queue (and their credit goes back), two wait in the park.
    cin.deliver(1, &meta("a"), &mut payloads(2), true, &mut g)
        .unwrap();
    assert_eq!(g.len(), 1, "credit granted back as messages are queued");
    cin.deliver(1, &meta("a"), &mut payloads(2), true, &mut g)
        .unwrap();
    let e = cin.deliver(1, &meta("a"), &mut payloads(1), true, &mut g);
    assert_eq!(e.err().unwrap().error.code(), ErrorCode::ProtocolError);
}

/// Before the peer acknowledges a slot its messages are not counted (it
/// may have sent them before it knew the slot), but they are bounded: past
/// twice the window waiting in the park, the link breaks.
#[test]
fn unacknowledged_slots_are_bounded() {
    let sub = inbox(1, "a", 2, Overflow::Block);
    let mut cin = CreditIn::default();
    cin.open(&sub).unwrap();
    let mut g = Vec::new();
    cin.deliver(1, &meta("a"), &mut payloads(6), true, &mut g)
        .unwrap();
    assert!(g.is_empty(), "uncounted messages give no credit back");
    let e = cin
        .deliver(1, &meta("a"), &mut payloads(1), true, &mut g)
        .unwrap_err();
    assert_eq!(e.error.code(), ErrorCode::ProtocolError);
    // A first run that breaks the bound at once: what it parked still
    // drains (a park that never drained would hold the subscription's
    // other links behind its turn for good).
    let sub = inbox(1, "a", 2, Overflow::Block);
    let mut cin = CreditIn::new(1);
    cin.open(&sub).unwrap();
    let e = cin
        .deliver(1, &meta("a"), &mut payloads(7), true, &mut g)
        .unwrap_err();
    assert_eq!(e.error.code(), ErrorCode::ProtocolError);
    assert!(e.out.start_drain, "a drain starts");
    let mut all = Vec::new();
    loop {
        let mut ms = Vec::new();
        sub.pop_into(&mut ms, 100);
        let more = cin.drain(1, &mut g).is_some();
        if ms.is_empty() && !more {
            break;
        }
        all.extend(ms);
    }
    assert_eq!(all.len(), 7);
    assert!(sub.inbox_turns_are_empty());
}

/// A message matching two slots needs credit in both and takes it from
/// both; one without credit holds it back (and says whether it stalled).
#[test]
fn a_message_takes_credit_from_every_slot_it_matches() {
    let mut out = CreditOut::default();
    let open = |sub, msgs, pattern: &str| CreditItem::Open {
        sub,
        msgs,
        bytes: 1000,
        pattern: pattern.into(),
        disconnect: false,
    };
    out.apply(vec![open(1, 5, "a/*"), open(2, 1, "a/b")], 10)
        .unwrap();
    assert_eq!(out.take(&meta("a/b"), 1), Check::Send);
    assert_eq!(
        out.take(&meta("a/b"), 1),
        Check::NoCredit { stalled: false }
    );
    assert_eq!(
        out.take(&meta("a/c"), 1),
        Check::Send,
        "a/c matches slot 1 only"
    );
    out.stall("a/b");
    assert_eq!(out.take(&meta("a/b"), 1), Check::NoCredit { stalled: true });
    out.apply(
        vec![CreditItem::Grant {
            sub: 2,
            msgs: 1,
            bytes: 10,
        }],
        10,
    )
    .unwrap();
    assert_eq!(
        out.take(&meta("a/b"), 1),
        Check::Send,
        "a grant ends the stall"
    );
    assert_eq!(out.slots[out.index[&1]].msgs, 2);
    out.apply(vec![CreditItem::Close { sub: 2 }], 10).unwrap();
    assert_eq!(out.take(&meta("a/b"), 1), Check::Send);
    assert_eq!(out.take(&meta("z"), 1), Check::Send, "no slot matches");
}

/// Credit never overflows, a slot opens once, and the number of slots a
/// peer may open is bounded.
#[test]
fn grants_are_checked() {
    let mut out = CreditOut::default();
    let open = |sub| CreditItem::Open {
        sub,
        msgs: 1,
        bytes: 1,
        pattern: "a".into(),
        disconnect: false,
    };
    out.apply(vec![open(1)], 2).unwrap();
    assert!(out.apply(vec![open(1)], 2).is_err(), "opened twice");
    out.apply(vec![open(2)], 2).unwrap();
    assert!(out.apply(vec![open(3)], 2).is_err(), "too many slots");
    let big = CreditItem::Grant {
        sub: 1,
        msgs: MAX_CREDIT,
        bytes: 1,
    };
    assert!(out.apply(vec![big], 2).is_err(), "overflow");
    let bad = CreditItem::Open {
        sub: 9,
        msgs: 1,
        bytes: 1,
        pattern: "a//b".into(),
        disconnect: false,
    };
    assert!(out.apply(vec![bad], 9).is_err(), "invalid pattern");
    // Closing a slot that is not the last keeps the others findable.
    let mut out = CreditOut::default();
    let open = |sub| CreditItem::Open {
        sub,
        msgs: 1,
        bytes: 1,
        pattern: format!("p{sub}"),
        disconnect: false,
    };
    out.apply(vec![open(1), open(2), open(3)], 9).unwrap();
    out.apply(vec![CreditItem::Close { sub: 1 }], 9).unwrap();
    out.apply(
        vec![CreditItem::Grant {
            sub: 3,
            msgs: 4,
            bytes: 4,
        }],
        9,
    )
    .unwrap();
    assert_eq!(out.slots[out.index[&3]].msgs, 5);
    assert_eq!(out.take(&meta("p3"), 1), Check::Send);
    assert_eq!(out.take(&meta("p1"), 1), Check::Send, "slot 1 is gone");
    assert!(out.apply(vec![open(1)], 9).is_ok(), "and may open again");
    // A grant for a slot closed meanwhile is ignored.
    out.apply(
        vec![CreditItem::Grant {
            sub: 42,
            msgs: 1,
            bytes: 1,
        }],
        2,
    )
    .unwrap();
}

/// One subscription, two links (a publisher's link that died with messages
/// parked, and its next link): while a park waits, the other link parks
/// too instead of queueing, and the parks move into the queue in the order
/// they started, so the old link's messages go first. (Without the turns,
/// a message over the new link overtook the parked ones: a fresh-clone
/// run of `a_disconnect_subscription_that_stops_reading_has_its_link_cut`.)
#[test]
fn parks_of_one_subscription_drain_in_the_order_they_started() {
    let sub = inbox(1, "a", 2, Overflow::Block);
    let (mut old, mut new) = (CreditIn::new(1), CreditIn::new(2));
    for c in [&mut old, &mut new] {
        c.open(&sub).unwrap();
        c.acked(&[1]);
    }
    let numbered = |from: u8, n: u8| -> Vec<Bytes> {
        (from..from + n).map(|i| Bytes::from(vec![i])).collect()
    };
    let mut g = Vec::new();
    // The old link: two queued (their credit goes back), two parked.
    old.deliver(1, &meta("a"), &mut numbered(0, 2), true, &mut g)
        .unwrap();
    let d = old
        .deliver(1, &meta("a"), &mut numbered(2, 2), true, &mut g)
        .unwrap();
    assert!(d.start_drain);
    // The new link: the queue is full anyway; it parks behind the old park.
    new.deliver(1, &meta("a"), &mut numbered(4, 1), true, &mut g)
        .unwrap();
    let mut got = Vec::new();
    let take = |got: &mut Vec<u8>| {
        let mut ms = Vec::new();
        sub.pop_into(&mut ms, 1);
        got.extend(ms.iter().map(|m| m.payload()[0]));
    };
    take(&mut got);
    // Room for one: the new link's turn has not come.
    assert!(new.drain(1, &mut g).is_some());
    assert_eq!(sub.stats().queued, 4, "1 queued + 3 parked");
    assert!(old.drain(1, &mut g).is_some(), "one of two moved");
    // The new link may not queue straight away while parks wait.
    new.deliver(1, &meta("a"), &mut numbered(5, 1), true, &mut g)
        .unwrap();
    for _ in 0..6 {
        take(&mut got);
        old.drain(1, &mut g);
        new.drain(1, &mut g);
    }
    assert_eq!(got, [0, 1, 2, 3, 4, 5]);
    assert!(sub.inbox_turns_are_empty());
}
