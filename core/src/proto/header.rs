//! A strict reader for frame headers.
//!
//! Every header has exactly one shape (docs/PROTOCOL.md, "Frame kinds"), and
//! this reader accepts nothing else: a `bin` where a `str` belongs, a map
//! where an array belongs, a negative number where a `uint` belongs, a
//! missing or repeated key, or bytes left over after the header are each a
//! protocol error naming the field. It reads borrowed slices and never
//! allocates, so a header costs nothing until the frame's handler decides
//! to keep something. Lengths read from the wire are checked against the
//! bytes actually present before they are used.
//!
//! Markers are classified with the `rmp` crate; integers may use any width
//! (including the signed encodings of non-negative values, which some
//! MessagePack libraries emit), strings any of `fixstr`/`str8/16/32`.

use rmp::Marker;

use super::{proto_err, Kind};
use crate::error::Result;

/// Deepest nesting skipped inside an unknown HELLO key's value.
const MAX_SKIP_DEPTH: usize = 16;

pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
    kind: Kind,
}

/// What a marker is, for error messages.
fn describe(m: Marker) -> &'static str {
    match m {
        Marker::FixPos(_) | Marker::U8 | Marker::U16 | Marker::U32 | Marker::U64 => {
            "an unsigned integer"
        }
        Marker::FixNeg(_) | Marker::I8 | Marker::I16 | Marker::I32 | Marker::I64 => "an integer",
        Marker::Null => "nil",
        Marker::True | Marker::False => "a boolean",
        Marker::F32 | Marker::F64 => "a float",
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => "a string",
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => "binary data (bin)",
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => "an array",
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => "a map",
        Marker::FixExt1
        | Marker::FixExt2
        | Marker::FixExt4
        | Marker::FixExt8
        | Marker::FixExt16
        | Marker::Ext8
        | Marker::Ext16
        | Marker::Ext32 => "an extension",
        Marker::Reserved => "the reserved byte 0xc1",
    }
}

impl<'a> Reader<'a> {
    pub(crate) fn new(kind: Kind, buf: &'a [u8]) -> Reader<'a> {
        Reader { buf, pos: 0, kind }
    }

    /// A protocol error about this header.
    pub(crate) fn err(&self, what: impl std::fmt::Display) -> crate::error::Error {
        proto_err(format!("bad {} header: {what}", self.kind.name()))
    }

    fn remaining(&self) -> usize {
        self.buf.len() - self.pos
    }

    fn take(&mut self, n: usize, field: &str) -> Result<&'a [u8]> {
        if n > self.remaining() {
            return Err(self.err(format!(
                "{field} needs {n} bytes but the header has {} left",
                self.remaining()
            )));
        }
        let s = &self.buf[self.pos..self.pos + n];
        self.pos += n;
        Ok(s)
    }

    fn be(&mut self, n: usize, field: &str) -> Result<u64> {
        Ok(self
            .take(n, field)?
            .iter()
            .fold(0u64, |acc, b| (acc << 8) | u64::from(*b)))
    }

    fn marker(&mut self, field: &str) -> Result<Marker> {
        let b = self.take(1, field)?[0];
        Ok(Marker::from_u8(b))
    }

    fn wrong(&self, field: &str, want: &str, got: Marker) -> crate::error::Error {
        self.err(format!("{field} must be {want}, got {}", describe(got)))
    }

    /// An array of exactly `n` elements (`layout` shows them, for errors).
    pub(crate) fn tuple(&mut self, n: usize, layout: &str) -> Result<()> {
        let m = self.marker(layout)?;
        let len = match m {
            Marker::FixArray(n) => usize::from(n),
            Marker::Array16 => self.be(2, layout)? as usize,
            Marker::Array32 => self.be(4, layout)? as usize,
            other => return Err(self.err(format!("expected {layout}, got {}", describe(other)))),
        };
        if len != n {
            return Err(self.err(format!("expected {layout}, got an array of {len}")));
        }
        Ok(())
    }

    /// An array's length, at most the bytes left (each element takes one).
    pub(crate) fn array(&mut self, field: &str) -> Result<usize> {
        let m = self.marker(field)?;
        let len = match m {
            Marker::FixArray(n) => usize::from(n),
            Marker::Array16 => self.be(2, field)? as usize,
            Marker::Array32 => self.be(4, field)? as usize,
            other => return Err(self.wrong(field, "an array", other)),
        };
        self.check_count(len, 1, field)?;
        Ok(len)
    }

    /// Fails unless `count` elements of at least `min_size` bytes each can
    /// fit in what is left: a length read from the wire is never trusted.
    pub(crate) fn check_count(&self, count: usize, min_size: usize, field: &str) -> Result<()> {
        if count.saturating_mul(min_size) > self.remaining() {
            return Err(self.err(format!(
                "{field} claims {count} elements but only {} bytes follow",
                self.remaining()
            )));
        }
        Ok(())
    }

    /// A map's length, at most half the bytes left (a key and a value each).
    pub(crate) fn map(&mut self, field: &str) -> Result<usize> {
        let m = self.marker(field)?;
        let len = match m {
            Marker::FixMap(n) => usize::from(n),
            Marker::Map16 => self.be(2, field)? as usize,
            Marker::Map32 => self.be(4, field)? as usize,
            other => return Err(self.wrong(field, "a map", other)),
        };
        self.check_count(len, 2, field)?;
        Ok(len)
    }

    /// A non-negative integer of any width.
    pub(crate) fn uint(&mut self, field: &str) -> Result<u64> {
        let m = self.marker(field)?;
        let v: i128 = match m {
            Marker::FixPos(n) => i128::from(n),
            Marker::U8 => i128::from(self.be(1, field)?),
            Marker::U16 => i128::from(self.be(2, field)?),
            Marker::U32 => i128::from(self.be(4, field)?),
            Marker::U64 => i128::from(self.be(8, field)?),
            Marker::FixNeg(n) => i128::from(n),
            Marker::I8 => i128::from(self.be(1, field)? as u8 as i8),
            Marker::I16 => i128::from(self.be(2, field)? as u16 as i16),
            Marker::I32 => i128::from(self.be(4, field)? as u32 as i32),
            Marker::I64 => i128::from(self.be(8, field)? as i64),
            other => return Err(self.wrong(field, "an unsigned integer", other)),
        };
        u64::try_from(v).map_err(|_| self.err(format!("{field} must not be negative, got {v}")))
    }

    /// A boolean.
    pub(crate) fn bool(&mut self, field: &str) -> Result<bool> {
        match self.marker(field)? {
            Marker::True => Ok(true),
            Marker::False => Ok(false),
            other => Err(self.wrong(field, "a boolean", other)),
        }
    }

    /// A UTF-8 string (never `bin`).
    pub(crate) fn str(&mut self, field: &str) -> Result<&'a str> {
        let bytes = self.str_bytes(field)?;
        std::str::from_utf8(bytes).map_err(|_| self.err(format!("{field} is not valid UTF-8")))
    }

    /// The bytes of a string, not yet checked for UTF-8.
    pub(crate) fn str_bytes(&mut self, field: &str) -> Result<&'a [u8]> {
        let m = self.marker(field)?;
        let len = match m {
            Marker::FixStr(n) => usize::from(n),
            Marker::Str8 => self.be(1, field)? as usize,
            Marker::Str16 => self.be(2, field)? as usize,
            Marker::Str32 => self.be(4, field)? as usize,
            other => return Err(self.wrong(field, "a string", other)),
        };
        self.take(len, field)
    }

    /// Skips one value of any type (an unknown HELLO key's), refusing
    /// nesting deeper than [`MAX_SKIP_DEPTH`].
    pub(crate) fn skip(&mut self, field: &str) -> Result<()> {
        // Values still to skip; an explicit stack, so depth costs no recursion.
        let mut pending: Vec<usize> = vec![1];
        while let Some(top) = pending.last_mut() {
            if *top == 0 {
                pending.pop();
                continue;
            }
            *top -= 1;
            let m = self.marker(field)?;
            let (data, children) = match m {
                Marker::FixPos(_)
                | Marker::FixNeg(_)
                | Marker::Null
                | Marker::True
                | Marker::False => (0, 0),
                Marker::U8 | Marker::I8 => (1, 0),
                Marker::U16 | Marker::I16 => (2, 0),
                Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
                Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
                Marker::FixStr(n) => (usize::from(n), 0),
                Marker::Str8 | Marker::Bin8 => (self.be(1, field)? as usize, 0),
                Marker::Str16 | Marker::Bin16 => (self.be(2, field)? as usize, 0),
                Marker::Str32 | Marker::Bin32 => (self.be(4, field)? as usize, 0),
                Marker::FixArray(n) => (0, usize::from(n)),
                Marker::Array16 => (0, self.be(2, field)? as usize),
                Marker::Array32 => (0, self.be(4, field)? as usize),
                Marker::FixMap(n) => (0, 2 * usize::from(n)),
                Marker::Map16 => (0, 2 * self.be(2, field)? as usize),
                Marker::Map32 => (0, 2 * self.be(4, field)? as usize),
                Marker::FixExt1 => (2, 0),
                Marker::FixExt2 => (3, 0),
                Marker::FixExt4 => (5, 0),
                Marker::FixExt8 => (9, 0),
                Marker::FixExt16 => (17, 0),
                Marker::Ext8 => (self.be(1, field)? as usize + 1, 0),
                Marker::Ext16 => (self.be(2, field)? as usize + 1, 0),
                Marker::Ext32 => (self.be(4, field)? as usize + 1, 0),
                Marker::Reserved => return Err(self.wrong(field, "a MessagePack value", m)),
            };
            self.take(data, field)?;
            if children > 0 {
                self.check_count(children, 1, field)?;
                if pending.len() > MAX_SKIP_DEPTH {
                    return Err(self.err(format!(
                        "{field} is nested deeper than {MAX_SKIP_DEPTH} levels"
                    )));
                }
                pending.push(children);
            }
        }
        Ok(())
    }

    /// Fails if bytes are left after the header's value.
    pub(crate) fn end(&self) -> Result<()> {
        if self.remaining() > 0 {
            return Err(self.err(format!(
                "{} bytes follow the header's value",
                self.remaining()
            )));
        }
        Ok(())
    }
}
