//! A peer's declarations, stored compactly.
//!
//! A peer can declare up to `max_declarations_per_peer` patterns, each as
//! small as five bytes on the wire. Stored as one `Pattern` per entry in a
//! hash map, each would cost ~200 bytes: a 40x amplification of what the
//! peer sent. Here every pattern's text lives in one shared string, each
//! declaration is an 8-byte entry, and the index is a table of 4-byte entry
//! numbers, so a declaration costs its text plus about 20 bytes (see the
//! amplification budget in docs/RELIABILITY.md). Matching reads the text
//! directly ([`crate::path::matches_text`]).
//!
//! The index hashes with a per-process random seed (std's `RandomState`):
//! patterns come from the network, and a fixed hash would let a peer choose
//! colliding ones and make every insert scan the table.

use std::hash::BuildHasher;

use hashbrown::HashTable;

use crate::path::matches_text;
use crate::proto::DeclKind;

#[derive(Clone, Copy)]
struct Entry {
    off: u32,
    len: u16,
    kind: DeclKind,
}

/// Declarations one peer holds, each `(kind, pattern)` at most once.
pub(crate) struct RemoteDecls {
    text: String,
    entries: Vec<Entry>,
    index: HashTable<u32>,
    hasher: std::collections::hash_map::RandomState,
    /// Bytes of `text` no entry refers to any more.
    garbage: usize,
}

impl Default for RemoteDecls {
    fn default() -> Self {
        RemoteDecls {
            text: String::new(),
            entries: Vec::new(),
            index: HashTable::new(),
            hasher: std::collections::hash_map::RandomState::new(),
            garbage: 0,
        }
    }
}

impl RemoteDecls {
    fn hash(&self, kind: DeclKind, text: &str) -> u64 {
        self.hasher.hash_one((kind as u8, text))
    }

    fn text_of(&self, e: Entry) -> &str {
        &self.text[e.off as usize..e.off as usize + e.len as usize]
    }

    fn find(&self, kind: DeclKind, text: &str) -> Option<u32> {
        let h = self.hash(kind, text);
        self.index
            .find(h, |&i| {
                let e = self.entries[i as usize];
                e.kind == kind && self.text_of(e) == text
            })
            .copied()
    }

    /// How many declarations.
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    /// Bytes of pattern text held (what `max_declaration_bytes_per_peer` limits).
    pub(crate) fn text_bytes(&self) -> usize {
        self.text.len() - self.garbage
    }

    /// True if `(kind, text)` is declared.
    pub(crate) fn contains(&self, kind: DeclKind, text: &str) -> bool {
        self.find(kind, text).is_some()
    }

    /// Declares `(kind, text)`; false if it already was. `text` must be a
    /// valid pattern (at most 1024 bytes).
    pub(crate) fn insert(&mut self, kind: DeclKind, text: &str) -> bool {
        if self.contains(kind, text) {
            return false;
        }
        let (Ok(off), Ok(len)) = (u32::try_from(self.text.len()), u16::try_from(text.len())) else {
            // Cannot happen within the configured limits; refuse, don't wrap.
            return false;
        };
        let idx = self.entries.len() as u32;
        self.text.push_str(text);
        self.entries.push(Entry { off, len, kind });
        let h = self.hash(kind, text);
        let (entries, str_text, hasher) = (&self.entries, &self.text, &self.hasher);
        self.index.insert_unique(h, idx, |&i| {
            let e = entries[i as usize];
            let t = &str_text[e.off as usize..e.off as usize + e.len as usize];
            hasher.hash_one((e.kind as u8, t))
        });
        true
    }

    /// Undeclares `(kind, text)`; false if it was not declared.
    pub(crate) fn remove(&mut self, kind: DeclKind, text: &str) -> bool {
        let h = self.hash(kind, text);
        let (entries, str_text) = (&self.entries, &self.text);
        let Ok(slot) = self.index.find_entry(h, |&i| {
            let e = entries[i as usize];
            e.kind == kind && &str_text[e.off as usize..e.off as usize + e.len as usize] == text
        }) else {
            return false;
        };
        let (idx, _) = slot.remove();
        let idx = idx as usize;
        self.garbage += usize::from(self.entries[idx].len);
        let last = self.entries.len() - 1;
        if idx != last {
            // The last entry moves into the hole: repoint its index slot.
            let moved = self.entries[last];
            let mh = self.hash(moved.kind, self.text_of(moved));
            if let Some(p) = self.index.find_mut(mh, |&i| i as usize == last) {
                *p = idx as u32;
            }
        }
        self.entries.swap_remove(idx);
        if self.garbage > 4096 && self.garbage * 2 > self.text.len() {
            self.compact();
        }
        true
    }

    /// Rewrites the text without the bytes of removed entries.
    fn compact(&mut self) {
        let mut text = String::with_capacity(self.text.len() - self.garbage);
        for e in &mut self.entries {
            let off = text.len() as u32;
            text.push_str(&self.text[e.off as usize..e.off as usize + e.len as usize]);
            e.off = off;
        }
        self.text = text;
        self.garbage = 0;
    }

    /// The patterns of one kind.
    pub(crate) fn iter(&self, kind: DeclKind) -> impl Iterator<Item = &str> {
        self.entries
            .iter()
            .filter(move |e| e.kind == kind)
            .map(|e| self.text_of(*e))
    }

    /// True if a pattern of `kind` matches the concrete `path`.
    pub(crate) fn any_matches(&self, kind: DeclKind, path: &str) -> bool {
        self.iter(kind).any(|p| matches_text(p, path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeclKind::*;

    #[test]
    fn insert_remove_and_match() {
        let mut d = RemoteDecls::default();
        assert!(d.insert(Interest, "a/*"));
        assert!(!d.insert(Interest, "a/*"));
        assert!(d.insert(Service, "a/*"));
        assert!(d.insert(Interest, "b/**"));
        assert_eq!(d.len(), 3);
        assert!(d.any_matches(Interest, "a/x"));
        assert!(d.any_matches(Interest, "b/c/d"));
        assert!(!d.any_matches(Publisher, "a/x"));
        assert!(d.remove(Interest, "a/*"));
        assert!(!d.remove(Interest, "a/*"));
        assert!(!d.any_matches(Interest, "a/x"));
        assert!(d.any_matches(Service, "a/x"));
        assert_eq!(d.iter(Interest).collect::<Vec<_>>(), vec!["b/**"]);
        assert_eq!(d.text_bytes(), "a/*".len() + "b/**".len());
    }

    /// Thousands of declarations removed in a mixed order leave exactly the
    /// others, findable, and the text is compacted along the way.
    #[test]
    fn churn_keeps_the_index_consistent() {
        let mut d = RemoteDecls::default();
        let name = |i: u32| format!("p/{i}/x");
        for i in 0..5000 {
            assert!(d.insert(Interest, &name(i)));
        }
        for i in (0..5000).filter(|i| i % 3 != 1) {
            assert!(d.remove(Interest, &name(i)), "{i}");
        }
        for i in 0..5000 {
            assert_eq!(d.contains(Interest, &name(i)), i % 3 == 1, "{i}");
        }
        let want: usize = (0..5000)
            .filter(|i| i % 3 == 1)
            .map(|i| name(i).len())
            .sum();
        assert_eq!(d.text_bytes(), want);
        assert!(d.text.len() < 2 * want + 4096, "compacted");
        for i in (0..5000).filter(|i| i % 3 == 1) {
            assert!(d.remove(Interest, &name(i)));
        }
        assert_eq!(d.len(), 0);
        assert_eq!(d.text_bytes(), 0);
    }
}
