//! The codec against the test vectors of docs/PROTOCOL.md, and its refusals.

use super::*;

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}
fn unhex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn hello() -> Hello {
    Hello {
        magic: MAGIC.into(),
        min_version: 2,
        max_version: 2,
        name: "a".into(),
        max_frame: 16 * 1024 * 1024,
        heartbeat_ms: 5000,
        instance: 0,
        rejoin: false,
        link: 0,
    }
}

/// The test vectors of docs/PROTOCOL.md, section "Test vectors".
fn vectors() -> Vec<(Frame, &'static str)> {
    vec![
        (
            Frame::Hello(hello()),
            "00000051 01 0000004c 86 a56d61676963 a44e544348 ab6d696e5f76657273696f6e 02 \
             ab6d61785f76657273696f6e 02 a46e616d65 a161 a96d61785f6672616d65 ce01000000 \
             ac6865617274626561745f6d73 cd1388",
        ),
        (
            Frame::Close {
                code: 0,
                reason: "bye".into(),
            },
            "0000000b 02 00000006 92 00 a3627965",
        ),
        (Frame::Ping(7), "00000007 03 00000002 91 07"),
        (Frame::Pong(7), "00000007 04 00000002 91 07"),
        (
            Frame::Tally {
                link: 0x1234,
                messages: 300,
            },
            "0000000c 05 00000007 92 cd1234 cd012c",
        ),
        (
            Frame::Declare(Declarations::new(&[
                Decl {
                    declare: true,
                    kind: DeclKind::Interest,
                    pattern: "a/*".into(),
                },
                Decl {
                    declare: false,
                    kind: DeclKind::Service,
                    pattern: "b".into(),
                },
            ])),
            "00000012 10 0000000d 92 93 01 01 a3612f2a 93 00 03 a162",
        ),
        (Frame::SnapshotEnd, "00000006 11 00000001 90"),
        (
            Frame::Message {
                path: Bytes::from_static(b"a/b"),
                payload: Bytes::from_static(b"hi"),
            },
            "0000000c 20 00000005 91 a3612f62 6869",
        ),
        (
            Frame::Request {
                id: 1,
                path: "svc".into(),
                timeout_ms: 1000,
                payload: Bytes::from_static(b"q"),
            },
            "0000000f 21 00000009 93 01 a3737663 cd03e8 71",
        ),
        (
            Frame::Result {
                id: 1,
                code: 0,
                message: String::new(),
                payload: Bytes::from_static(b"r"),
            },
            "0000000a 22 00000004 93 01 00 a0 72",
        ),
        (
            Frame::Result {
                id: 1,
                code: 301,
                message: "none".into(),
                payload: Bytes::new(),
            },
            "0000000f 22 0000000a 93 01 cd012d a46e6f6e65",
        ),
        (Frame::Cancel(1), "00000007 23 00000002 91 01"),
        (
            Frame::Credit(vec![
                CreditItem::Open {
                    sub: 1,
                    msgs: 64,
                    bytes: 1024,
                    pattern: "a/*".into(),
                    disconnect: false,
                },
                CreditItem::Open {
                    sub: 2,
                    msgs: 1,
                    bytes: 2,
                    pattern: "b".into(),
                    disconnect: true,
                },
                CreditItem::Grant {
                    sub: 1,
                    msgs: 16,
                    bytes: 256,
                },
                CreditItem::Close { sub: 1 },
            ]),
            "0000001f 40 0000001a 94 94 01 40 cd0400 a3612f2a 95 02 01 02 a162 01 93 01 10 cd0100 91 01",
        ),
        (
            Frame::CreditAck(vec![1, 2]),
            "00000008 41 00000003 92 01 02",
        ),
        (
            Frame::Alias {
                alias: 1,
                path: "a/b".into(),
            },
            "0000000b 24 00000006 92 01 a3612f62",
        ),
        (
            Frame::ShortMessage {
                alias: 1,
                payload: Bytes::from_static(b"hi"),
            },
            "00000005 25 0001 6869",
        ),
        (
            Frame::StreamOpen {
                id: 2,
                path: "s".into(),
                timeout_ms: 0,
                window: 65536,
                payload: Bytes::from_static(b"go"),
            },
            "00000011 30 0000000a 94 02 a173 00 ce00010000 676f",
        ),
        (
            Frame::StreamAccept {
                id: 3,
                window: 1024,
            },
            "0000000a 31 00000005 92 03 cd0400",
        ),
        (
            Frame::StreamData {
                id: 3,
                payload: Bytes::from_static(b"ab"),
            },
            "00000009 32 00000002 91 03 6162",
        ),
        (
            Frame::StreamCredit { id: 2, bytes: 4096 },
            "0000000a 33 00000005 92 02 cd1000",
        ),
        (
            Frame::StreamEnd {
                id: 2,
                code: 0,
                message: String::new(),
            },
            "00000009 34 00000004 93 02 00 a0",
        ),
        (
            Frame::StreamEnd {
                id: 3,
                code: 302,
                message: "stop".into(),
            },
            "0000000f 34 0000000a 93 03 cd012e a473746f70",
        ),
    ]
}

#[test]
fn test_vectors_encode_and_decode() {
    for (frame, want) in vectors() {
        let mut buf = BytesMut::new();
        encode(&mut buf, &frame).unwrap();
        assert_eq!(hex(&buf), hex(&unhex(want)), "encoding {frame:?}");
        let mut input = BytesMut::from(&unhex(want)[..]);
        assert_eq!(decode(&mut input, 1 << 20).unwrap(), Decoded::Frame(frame));
        assert!(input.is_empty());
    }
}

fn protocol_doc() -> String {
    std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/PROTOCOL.md"))
        .expect("docs/PROTOCOL.md is readable")
}

/// The text of a `## ` section of a document, up to the next one.
fn doc_section<'a>(doc: &'a str, heading: &str) -> &'a str {
    let rest = doc
        .split(&format!("{heading}\n"))
        .nth(1)
        .unwrap_or_else(|| panic!("a {heading:?} section"));
    rest.split("\n## ").next().unwrap_or(rest)
}

/// docs/PROTOCOL.md lists exactly these vectors, byte for byte.
#[test]
fn protocol_doc_lists_the_same_vectors() {
    let doc = protocol_doc();
    let section = doc_section(&doc, "## Test vectors");
    let mut in_doc: Vec<String> = section
        .lines()
        .filter(|l| l.starts_with('|'))
        .filter_map(|l| l.rsplit('`').nth(1).map(|h| h.split_whitespace().collect()))
        .collect();
    let mut in_code: Vec<String> = vectors()
        .iter()
        .map(|(_, h)| h.split_whitespace().collect())
        .collect();
    in_doc.sort();
    in_code.sort();
    assert_eq!(in_doc, in_code);
}

#[test]
fn hand_written_message_head_matches_rmp_serde() {
    for n in [0usize, 1, 31, 32, 255, 256, 1024, 70000] {
        let path = "x".repeat(n);
        let mut fast = BytesMut::new();
        encode_message_head(&mut fast, &path, 3).unwrap();
        let mut slow = BytesMut::new();
        encode_head(&mut slow, Kind::Message, &MessageHdr { path: &path }, 3).unwrap();
        assert_eq!(fast, slow, "path length {n}");
        assert_eq!(fast.len() + 3, message_frame_len(&path, 3));
        fast.put_slice(b"abc");
        let Decoded::Frame(Frame::Message { path: p, payload }) =
            decode(&mut fast, 1 << 20).unwrap()
        else {
            panic!("not a message")
        };
        assert_eq!(&p[..], path.as_bytes());
        assert_eq!(&payload[..], b"abc");
    }
}

#[test]
fn split_input_needs_more_then_decodes() {
    for (frame, want) in vectors() {
        let bytes = unhex(want);
        for cut in 0..bytes.len() {
            let mut buf = BytesMut::from(&bytes[..cut]);
            assert!(matches!(
                decode(&mut buf, 1 << 20).unwrap(),
                Decoded::NeedMore(_)
            ));
            buf.extend_from_slice(&bytes[cut..]);
            assert_eq!(
                decode(&mut buf, 1 << 20).unwrap(),
                Decoded::Frame(frame.clone())
            );
        }
    }
}

#[test]
fn oversize_and_malformed_lengths_are_refused_before_allocation() {
    let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff][..]);
    assert_eq!(
        decode(&mut buf, 1 << 20).unwrap_err().code(),
        ErrorCode::ProtocolError
    );
    let mut buf = BytesMut::from(&(1u32 << 20).to_be_bytes()[..]);
    assert!(decode(&mut buf, 1 << 20)
        .unwrap_err()
        .detail()
        .contains("exceeds the limit"));
    let mut buf = BytesMut::from(&unhex("00000002 20 00")[..]);
    assert!(decode(&mut buf, 1 << 20).is_err());
    let mut buf = BytesMut::from(&unhex("00000006 20 00000009 00")[..]);
    assert!(decode(&mut buf, 1 << 20)
        .unwrap_err()
        .detail()
        .contains("header length"));
    let mut buf = BytesMut::from(&unhex("00000006 35 00000001 90")[..]);
    assert!(decode(&mut buf, 1 << 20)
        .unwrap_err()
        .detail()
        .contains("streams"));
    // HTTP and TLS garbage is refused on its first bytes.
    let mut buf = BytesMut::from(&b"GET / HTTP/1.1\r\n"[..]);
    assert!(decode(&mut buf, HANDSHAKE_MAX_FRAME).is_err());
    let mut buf = BytesMut::from(&unhex("16030100a5010000a10303")[..]);
    assert!(decode(&mut buf, HANDSHAKE_MAX_FRAME).is_err());
}

#[test]
fn msgpack_bombs_are_refused() {
    // Declare header claiming 2^32-1 items in a 6-byte header.
    let mut buf = BytesMut::from(&unhex("0000000a 10 00000005 ddffffffff")[..]);
    assert!(decode(&mut buf, 1 << 20).is_err());
    // Deeply nested arrays.
    let depth = 3000;
    let mut h = vec![0x91u8; depth];
    h.push(0x00);
    let mut frame = BytesMut::new();
    frame.put_u32((5 + h.len()) as u32);
    frame.put_u8(0x10);
    frame.put_u32(h.len() as u32);
    frame.put_slice(&h);
    assert!(decode(&mut frame, 1 << 20).is_err());
}

#[test]
fn version_mismatch_message_names_both_ranges() {
    let mut theirs = hello();
    theirs.name = "b".into();
    theirs.min_version = 9;
    theirs.max_version = 9;
    let e = negotiate(&hello(), Frame::Hello(theirs.clone())).unwrap_err();
    assert_eq!(e.code(), ErrorCode::UnsupportedVersion);
    assert_eq!(
        e.detail(),
        "unsupported protocol version 9 (supported 2..2)"
    );
    // And the other side, seeing our HELLO, says the same in its terms.
    let e = negotiate(&theirs, Frame::Hello(hello())).unwrap_err();
    assert_eq!(
        e.detail(),
        "unsupported protocol version 2 (supported 9..9)"
    );
}

#[test]
fn negotiate_checks_magic_name_and_first_frame() {
    let mut bad = hello();
    bad.name = "b".into();
    bad.magic = "HTTP".into();
    assert_eq!(
        negotiate(&hello(), Frame::Hello(bad)).unwrap_err().code(),
        ErrorCode::ProtocolError
    );
    assert_eq!(
        negotiate(&hello(), Frame::Hello(hello()))
            .unwrap_err()
            .code(),
        ErrorCode::HandshakeRejected
    );
    assert_eq!(
        negotiate(&hello(), Frame::Ping(1)).unwrap_err().code(),
        ErrorCode::ProtocolError
    );
    let mut ok = hello();
    ok.name = "b".into();
    assert_eq!(negotiate(&hello(), Frame::Hello(ok)).unwrap().version, 2);
}

proptest::proptest! {
    #[test]
    fn decoder_never_panics(data in proptest::collection::vec(proptest::num::u8::ANY, 0..256)) {
        let mut buf = BytesMut::from(&data[..]);
        for _ in 0..8 {
            match decode(&mut buf, 1 << 16) {
                Ok(Decoded::Frame(_)) => continue,
                _ => break,
            }
        }
    }
}

/// Every negative vector of docs/PROTOCOL.md ("Negative test vectors") is
/// refused with the code and the exact detail the table gives: a HELLO by
/// the handshake check (decoding, then negotiation against a local HELLO
/// for versions 2..2), any other frame by the decoder.
#[test]
fn negative_vectors_are_refused_with_their_code_and_detail() {
    let doc = protocol_doc();
    let section = doc_section(&doc, "## Negative test vectors");
    let mut checked = 0;
    for line in section
        .lines()
        .filter(|l| l.starts_with("| ") && l.contains('`'))
    {
        let cells: Vec<&str> = line.trim_matches('|').split(" | ").map(str::trim).collect();
        let [what, bytes, code, detail] = cells[..] else {
            panic!("a row has four cells: {line}")
        };
        let bytes = unhex(bytes.trim_matches('`'));
        let code: u16 = code.parse().expect("a code number");
        let mut buf = BytesMut::from(&bytes[..]);
        let got = match decode(&mut buf, 1 << 20) {
            Ok(Decoded::Frame(f @ Frame::Hello(_))) => negotiate(&hello(), f).map(|_| ()),
            Ok(other) => panic!("{what}: decoded as {other:?}"),
            Err(e) => Err(e),
        };
        let e = got.expect_err(what);
        assert_eq!(e.code().as_u16(), code, "{what}: {e}");
        assert_eq!(e.detail(), detail, "{what}");
        checked += 1;
    }
    assert!(checked >= 15, "only {checked} negative vectors found");
}

/// Integers of any width and the signed encodings of non-negative values
/// are accepted where a `uint` belongs; strings of any width where a `str`
/// belongs. (The strictness is about types and shapes, not encodings.)
#[test]
fn any_integer_and_string_width_is_accepted() {
    // PING nonce 7 as int8, uint64; CANCEL 1 as int64.
    for header in [
        "91 d0 07",
        "91 cf 0000000000000007",
        "91 d3 0000000000000007",
    ] {
        let h = unhex(header);
        let mut f = BytesMut::new();
        f.put_u32((5 + h.len()) as u32);
        f.put_u8(Kind::Ping as u8);
        f.put_u32(h.len() as u32);
        f.put_slice(&h);
        assert_eq!(
            decode(&mut f, 1 << 20).unwrap(),
            Decoded::Frame(Frame::Ping(7)),
            "{header}"
        );
    }
    // MESSAGE with a str32 path goes through the strict reader, not the fast path.
    let h = unhex("91 db 00000003 612f62");
    let mut f = BytesMut::new();
    f.put_u32((5 + h.len() + 2) as u32);
    f.put_u8(Kind::Message as u8);
    f.put_u32(h.len() as u32);
    f.put_slice(&h);
    f.put_slice(b"hi");
    assert_eq!(
        decode(&mut f, 1 << 20).unwrap(),
        Decoded::Frame(Frame::Message {
            path: Bytes::from_static(b"a/b"),
            payload: Bytes::from_static(b"hi"),
        })
    );
}

/// A DECLARE list is decoded one item at a time: the count is checked
/// against the bytes present before anything else, and iterating yields
/// the items as encoded.
#[test]
fn declarations_iterate_in_order() {
    let items: Vec<Decl> = (0..1000)
        .map(|i| Decl {
            declare: i % 7 != 0,
            kind: [DeclKind::Interest, DeclKind::Publisher, DeclKind::Service][i % 3],
            pattern: format!("p/{i}"),
        })
        .collect();
    let mut buf = BytesMut::new();
    encode(&mut buf, &Frame::Declare(Declarations::new(&items))).unwrap();
    let Decoded::Frame(Frame::Declare(list)) = decode(&mut buf, 1 << 20).unwrap() else {
        panic!("not a DECLARE")
    };
    assert_eq!(list.len(), items.len());
    let back: Vec<Decl> = list
        .iter()
        .map(|d| Decl {
            declare: d.declare,
            kind: d.kind,
            pattern: d.pattern.to_owned(),
        })
        .collect();
    assert_eq!(back, items);
}

/// HELLO's optional `instance` and `rejoin`: sent when set, read back;
/// absent is 0 / false; given twice is a protocol error.
#[test]
fn hello_instance_is_optional_and_round_trips() {
    let roundtrip = |h: Hello| {
        let mut buf = BytesMut::new();
        encode(&mut buf, &Frame::Hello(h)).unwrap();
        match decode(&mut buf, 1 << 20) {
            Ok(Decoded::Frame(Frame::Hello(h))) => h,
            other => panic!("{other:?}"),
        }
    };
    let mut with = hello();
    with.instance = 0xfeed_beef_1234;
    with.rejoin = true;
    with.link = 0x0bad_cafe;
    assert_eq!(roundtrip(with.clone()), with);
    assert_eq!(roundtrip(hello()).link, 0);
    assert_eq!(roundtrip(hello()).instance, 0);
    assert!(!roundtrip(hello()).rejoin);
    // The documented vector (no `instance`) is what a zero encodes to.
    let mut buf = BytesMut::new();
    encode(&mut buf, &Frame::Hello(hello())).unwrap();
    assert!(!buf.windows(8).any(|w| w == b"instance"));
    assert!(!buf.windows(6).any(|w| w == b"rejoin"));

    // A HELLO map with `instance` twice.
    let mut h = Vec::new();
    rmp::encode::write_map_len(&mut h, 8).unwrap();
    for (k, v) in [
        ("magic", None),
        ("min_version", Some(1)),
        ("max_version", Some(1)),
        ("name", None),
        ("max_frame", Some(1 << 20)),
        ("heartbeat_ms", Some(0)),
        ("instance", Some(7)),
        ("instance", Some(8)),
    ] {
        rmp::encode::write_str(&mut h, k).unwrap();
        match v {
            Some(n) => rmp::encode::write_uint(&mut h, n).map(|_| ()).unwrap(),
            None => rmp::encode::write_str(&mut h, if k == "magic" { MAGIC } else { "x" }).unwrap(),
        }
    }
    let mut frame = BytesMut::new();
    frame.put_u32((5 + h.len()) as u32);
    frame.put_u8(0x01); // HELLO
    frame.put_u32(h.len() as u32);
    frame.put_slice(&h);
    let e = decode(&mut frame, 1 << 20).unwrap_err();
    assert!(e.detail().contains("`instance` appears twice"), "{e}");
}
