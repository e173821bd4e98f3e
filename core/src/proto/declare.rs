//! Declarations on the wire: what a DECLARE frame carries, read one item
//! at a time (see [`Declarations`]).

use bytes::Bytes;

use super::header::Reader;
use super::Kind;
use crate::error::Result;

/// What a declaration declares.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeclKind {
    /// "I want messages matching this pattern" (a subscription).
    Interest,
    /// "I publish on this path or pattern".
    Publisher,
    /// "I answer requests matching this pattern".
    Service,
    /// "I accept streams opened on paths matching this pattern" (v2).
    StreamService,
}

impl DeclKind {
    pub(super) fn to_u8(self) -> u8 {
        match self {
            DeclKind::Interest => 1,
            DeclKind::Publisher => 2,
            DeclKind::Service => 3,
            DeclKind::StreamService => 4,
        }
    }
    fn from_u8(b: u8) -> Option<DeclKind> {
        match b {
            1 => Some(DeclKind::Interest),
            2 => Some(DeclKind::Publisher),
            3 => Some(DeclKind::Service),
            4 => Some(DeclKind::StreamService),
            _ => None,
        }
    }
}

/// One declaration or undeclaration.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Decl {
    /// true: declare; false: undeclare.
    pub declare: bool,
    /// What is declared.
    pub kind: DeclKind,
    /// The pattern (validated by the receiver).
    pub pattern: String,
}

/// The items of a DECLARE frame, kept in their wire form (a checked
/// MessagePack array) and read one at a time by [`iter`](Self::iter): a
/// frame of a million declarations allocates nothing until the receiver
/// decides, item by item and within its limits, what to keep.
#[derive(Clone, PartialEq, Eq)]
pub struct Declarations {
    /// The whole header: an array of `[op, kind, pattern]`, shape checked.
    header: Bytes,
    count: usize,
}

/// One item of a [`Declarations`] list, borrowing its pattern.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DeclRef<'a> {
    /// true: declare; false: undeclare.
    pub declare: bool,
    /// What is declared.
    pub kind: DeclKind,
    /// The pattern, UTF-8 (not yet validated as a pattern).
    pub pattern: &'a str,
}

/// The smallest encoding of one DECLARE item: `93 op kind a1 x`.
const MIN_DECL_ITEM: usize = 5;

impl Declarations {
    /// Encodes `items` into their wire form.
    pub fn new(items: &[Decl]) -> Declarations {
        let wire: Vec<(u8, u8, &str)> = items
            .iter()
            .map(|d| (d.declare as u8, d.kind.to_u8(), d.pattern.as_str()))
            .collect();
        let mut buf =
            Vec::with_capacity(8 + items.iter().map(|d| d.pattern.len() + 6).sum::<usize>());
        // Encoding tuples of integers and strings into a Vec cannot fail.
        let _ = rmp_serde::encode::write(&mut buf, &wire);
        Declarations {
            header: buf.into(),
            count: items.len(),
        }
    }

    /// Checks the shape of every item without allocating; returns the count.
    pub(super) fn check(r: &mut Reader<'_>) -> Result<usize> {
        let n = r.array("the DECLARE list")?;
        r.check_count(n, MIN_DECL_ITEM, "the DECLARE list")?;
        for _ in 0..n {
            read_decl(r)?;
        }
        Ok(n)
    }

    /// A list whose header `check` accepted.
    pub(super) fn checked(header: Bytes, count: usize) -> Declarations {
        Declarations { header, count }
    }

    /// How many items.
    pub fn len(&self) -> usize {
        self.count
    }

    /// True if there are none.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The items, in order.
    pub fn iter(&self) -> impl Iterator<Item = DeclRef<'_>> + '_ {
        let mut r = Reader::new(Kind::Declare, &self.header);
        // Checked when the list was made: these reads cannot fail.
        let n = r.array("").unwrap_or(0);
        (0..n).map_while(move |_| read_decl(&mut r).ok())
    }

    /// The wire form of the header.
    pub(super) fn header(&self) -> &[u8] {
        &self.header
    }
}

fn read_decl<'a>(r: &mut Reader<'a>) -> Result<DeclRef<'a>> {
    r.tuple(3, "a DECLARE item [op, kind, pattern]")?;
    let declare = match r.uint("op")? {
        0 => false,
        1 => true,
        op => return Err(r.err(format!("op must be 0 or 1, got {op}"))),
    };
    let k = r.uint("kind")?;
    let kind = u8::try_from(k)
        .ok()
        .and_then(DeclKind::from_u8)
        .ok_or_else(|| r.err(format!("declaration kind must be 1, 2, 3 or 4, got {k}")))?;
    let pattern = r.str("pattern")?;
    Ok(DeclRef {
        declare,
        kind,
        pattern,
    })
}

impl std::fmt::Debug for Declarations {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl From<Vec<Decl>> for Declarations {
    fn from(items: Vec<Decl>) -> Declarations {
        Declarations::new(&items)
    }
}
