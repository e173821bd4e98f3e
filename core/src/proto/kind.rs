//! Frame kinds and what each may carry.

/// Frame kinds. Numbers are fixed forever; gaps are reserved:
/// `0x35..=0x3F` streams, `0x42..=0x4F` credits (flow control),
/// `0x50..=0x5F` authentication.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Kind {
    /// Handshake: magic, versions, name, limits.
    Hello = 0x01,
    /// Orderly close with a code and reason.
    Close = 0x02,
    /// Liveness and RTT probe.
    Ping = 0x03,
    /// Answer to a ping.
    Pong = 0x04,
    /// How many messages the sender queued on an earlier connection that
    /// ended (v2).
    Tally = 0x05,
    /// A batch of interest/intent declarations and undeclarations.
    Declare = 0x10,
    /// End of the initial declaration snapshot.
    SnapshotEnd = 0x11,
    /// A published message.
    Message = 0x20,
    /// A request.
    Request = 0x21,
    /// A request's result (ok or error).
    Result = 0x22,
    /// Cancels a request.
    Cancel = 0x23,
    /// Opens a bidirectional stream (v2).
    StreamOpen = 0x30,
    /// A stream's server took it, granting its window (v2).
    StreamAccept = 0x31,
    /// Data on a stream (v2).
    StreamData = 0x32,
    /// More credit for a stream's sender (v2).
    StreamCredit = 0x33,
    /// The end of one direction of a stream (code 0) or of the whole
    /// stream (v2).
    StreamEnd = 0x34,
    /// Names a path with a small number on this connection (v2).
    Alias = 0x24,
    /// A published message on an aliased path, in the compact frame
    /// layout (no header length) (v2).
    ShortMessage = 0x25,
    /// Flow control: opens, grants and closes credit slots (v2).
    Credit = 0x40,
    /// The credit slots the sender started counting (v2).
    CreditAck = 0x41,
}

impl Kind {
    /// The name docs/PROTOCOL.md gives it (`HELLO`, `SNAPSHOT_END`, ...).
    pub fn name(self) -> &'static str {
        match self {
            Kind::Hello => "HELLO",
            Kind::Close => "CLOSE",
            Kind::Ping => "PING",
            Kind::Pong => "PONG",
            Kind::Tally => "TALLY",
            Kind::Declare => "DECLARE",
            Kind::SnapshotEnd => "SNAPSHOT_END",
            Kind::Message => "MESSAGE",
            Kind::Request => "REQUEST",
            Kind::Result => "RESULT",
            Kind::Cancel => "CANCEL",
            Kind::Alias => "ALIAS",
            Kind::ShortMessage => "SHORT_MESSAGE",
            Kind::StreamOpen => "STREAM_OPEN",
            Kind::StreamAccept => "STREAM_ACCEPT",
            Kind::StreamData => "STREAM_DATA",
            Kind::StreamCredit => "STREAM_CREDIT",
            Kind::StreamEnd => "STREAM_END",
            Kind::Credit => "CREDIT",
            Kind::CreditAck => "CREDIT_ACK",
        }
    }

    /// True for the kinds that may carry a payload.
    pub(crate) fn has_payload(self) -> bool {
        matches!(
            self,
            Kind::Message
                | Kind::Request
                | Kind::Result
                | Kind::StreamOpen
                | Kind::StreamData
                | Kind::ShortMessage
        )
    }

    /// Where the header starts in a frame of this kind: after `len`,
    /// `kind` and `hlen`, or, for the compact SHORT_MESSAGE (which has no
    /// `hlen`; its header is the 2-byte alias), after `len` and `kind`.
    pub fn header_start(self) -> usize {
        if self == Kind::ShortMessage {
            5
        } else {
            super::FRAME_PREFIX
        }
    }

    pub(crate) fn from_u8(b: u8) -> std::result::Result<Kind, String> {
        Ok(match b {
            0x01 => Kind::Hello,
            0x02 => Kind::Close,
            0x03 => Kind::Ping,
            0x04 => Kind::Pong,
            0x05 => Kind::Tally,
            0x10 => Kind::Declare,
            0x11 => Kind::SnapshotEnd,
            0x20 => Kind::Message,
            0x21 => Kind::Request,
            0x22 => Kind::Result,
            0x23 => Kind::Cancel,
            0x24 => Kind::Alias,
            0x25 => Kind::ShortMessage,
            0x30 => Kind::StreamOpen,
            0x31 => Kind::StreamAccept,
            0x32 => Kind::StreamData,
            0x33 => Kind::StreamCredit,
            0x34 => Kind::StreamEnd,
            0x40 => Kind::Credit,
            0x41 => Kind::CreditAck,
            0x35..=0x3F => {
                return Err(format!(
                    "frame kind 0x{b:02x} (streams) is not in protocol v2"
                ))
            }
            0x42..=0x4F => {
                return Err(format!(
                    "frame kind 0x{b:02x} (credits) is not in protocol v2"
                ))
            }
            0x50..=0x5F => {
                return Err(format!("frame kind 0x{b:02x} (auth) is not in protocol v2"))
            }
            _ => return Err(format!("unknown frame kind 0x{b:02x}")),
        })
    }
}
