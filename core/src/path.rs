//! Paths and patterns.
//!
//! A **path** names what a message is about: `/`-separated, non-empty UTF-8
//! segments, e.g. `sensors/kitchen/temp`. No leading or trailing `/`, no empty
//! segment, no control characters, no `*`, at most [`MAX_PATH_LEN`] bytes and
//! [`MAX_SEGMENTS`] segments.
//!
//! A **pattern** is a path in which a whole segment may also be `*` (exactly
//! one segment) or `**` (zero or more segments): `sensors/*/temp`,
//! `sensors/**`. A `*` inside a segment (`temp*`) is rejected, so no pattern
//! is ambiguous.
//!
//! Every pattern is matched segment by segment; [`Pattern::overlaps`] answers
//! whether two patterns can match a common path (used for discovery).

use std::fmt;
use std::sync::Arc;

use crate::error::{Error, ErrorCode, Result};

/// The maximum length of a path or pattern, in bytes.
pub const MAX_PATH_LEN: usize = 1024;
/// The maximum number of segments in a path or pattern.
pub const MAX_SEGMENTS: usize = 64;

fn invalid(text: &str, reason: impl fmt::Display) -> Error {
    let shown: String = if text.len() > 80 {
        let mut end = 80;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        format!("{}...", &text[..end])
    } else {
        text.to_owned()
    };
    Error::new(ErrorCode::InvalidPath, format!("`{shown}`: {reason}"))
}

/// Checks the rules shared by paths and patterns; calls `seg` for each segment.
fn check_common(text: &str, mut seg: impl FnMut(usize, &str) -> Result<()>) -> Result<()> {
    if text.is_empty() {
        return Err(invalid(text, "a path must not be empty"));
    }
    if text.len() > MAX_PATH_LEN {
        return Err(invalid(
            text,
            format!(
                "is {} bytes long, the maximum is {MAX_PATH_LEN}",
                text.len()
            ),
        ));
    }
    if let Some(c) = text.chars().find(|c| c.is_control()) {
        return Err(invalid(
            text,
            format!("control character U+{:04X} is not allowed", c as u32),
        ));
    }
    let mut count = 0;
    for (i, s) in text.split('/').enumerate() {
        count += 1;
        if count > MAX_SEGMENTS {
            return Err(invalid(
                text,
                format!("has more than {MAX_SEGMENTS} segments"),
            ));
        }
        if s.is_empty() {
            let why = if i == 0 {
                "must not start with `/`"
            } else if text.ends_with('/') && text.len() == text.rfind('/').unwrap_or(0) + 1 {
                "must not end with `/`"
            } else {
                "has an empty segment (`//`)"
            };
            return Err(invalid(text, why));
        }
        seg(i, s)?;
    }
    Ok(())
}

/// Validates a concrete path (what `publish` and `request` take).
pub fn validate_path(text: &str) -> Result<()> {
    check_common(text, |_, s| {
        if s.contains('*') {
            Err(invalid(
                text,
                "`*` and `**` are wildcards; they are allowed in patterns (subscribe, serve), \
                 not in the concrete path of a publish or request",
            ))
        } else {
            Ok(())
        }
    })
}

/// Validates a pattern without keeping anything (a peer's declaration is
/// checked before the receiver decides to store it).
pub fn validate_pattern(text: &str) -> Result<()> {
    check_common(text, |_, s| {
        if s != "*" && s != "**" && s.contains('*') {
            Err(invalid(
                text,
                format!(
                    "segment `{s}`: `*` must be a whole segment (`*` matches one \
                     segment, `**` any number)"
                ),
            ))
        } else {
            Ok(())
        }
    })
}

/// A validated pattern: a path whose segments may be `*` or `**`. It is
/// only its text; matching reads the text (`matches_text`), so a
/// pattern costs one allocation.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pattern {
    text: Arc<str>,
}

/// Splits a pattern into `out` (at most [`MAX_SEGMENTS`]), dropping a `**`
/// that follows another (`**/**` means `**`; one keeps matching linear).
/// Returns how many segments, or `None` if there are too many.
fn pattern_segments<'a>(pattern: &'a str, out: &mut [&'a str; MAX_SEGMENTS]) -> Option<usize> {
    let mut n = 0;
    for s in pattern.split('/') {
        if s == "**" && n > 0 && out[n - 1] == "**" {
            continue;
        }
        *out.get_mut(n)? = s;
        n += 1;
    }
    Some(n)
}

/// True if the concrete `path` matches the pattern `pattern`, both assumed
/// valid (see [`validate_pattern`], [`validate_path`]). Allocates nothing.
pub(crate) fn matches_text(pattern: &str, path: &str) -> bool {
    let mut pbuf = [""; MAX_SEGMENTS];
    let mut sbuf = [""; MAX_SEGMENTS];
    let Some(np) = pattern_segments(pattern, &mut pbuf) else {
        return false;
    };
    let mut ns = 0;
    for part in path.split('/') {
        let Some(slot) = sbuf.get_mut(ns) else {
            return false;
        };
        *slot = part;
        ns += 1;
    }
    let (segs, parts) = (&pbuf[..np], &sbuf[..ns]);
    // Classic wildcard matching with one backtrack point: `*` is "any one
    // item", `**` is "any run of items". Linear in practice, O(n*m) worst.
    let (mut p, mut s) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while s < parts.len() {
        match segs.get(p).copied() {
            Some("**") => {
                star = Some((p, s));
                p += 1;
            }
            Some(seg) if seg == "*" || seg == parts[s] => {
                p += 1;
                s += 1;
            }
            _ => match star {
                Some((sp, ss)) => {
                    p = sp + 1;
                    s = ss + 1;
                    star = Some((sp, ss + 1));
                }
                None => return false,
            },
        }
    }
    segs[p..].iter().all(|s| *s == "**")
}

impl Pattern {
    /// Parses and validates a pattern.
    pub fn new(text: &str) -> Result<Pattern> {
        validate_pattern(text)?;
        Ok(Pattern { text: text.into() })
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The pattern text as a shared string.
    pub(crate) fn text_arc(&self) -> Arc<str> {
        self.text.clone()
    }

    /// True if the pattern has no wildcard (it is a plain path).
    pub fn is_exact(&self) -> bool {
        !self.text.contains('*')
    }

    /// True if `path` (assumed valid) matches this pattern.
    pub fn matches(&self, path: &str) -> bool {
        matches_text(&self.text, path)
    }

    /// True if some path matches both patterns.
    pub fn overlaps(&self, other: &Pattern) -> bool {
        let (mut abuf, mut bbuf) = ([""; MAX_SEGMENTS], [""; MAX_SEGMENTS]);
        let (Some(na), Some(nb)) = (
            pattern_segments(&self.text, &mut abuf),
            pattern_segments(&other.text, &mut bbuf),
        ) else {
            return false;
        };
        let (a, b) = (&abuf[..na], &bbuf[..nb]);
        let w = b.len() + 1;
        // memo[i*w + j]: 0 unknown, 1 false, 2 true
        let mut memo = vec![0u8; (a.len() + 1) * w];
        fn go(a: &[&str], b: &[&str], i: usize, j: usize, memo: &mut [u8], w: usize) -> bool {
            let k = i * w + j;
            if memo[k] != 0 {
                return memo[k] == 2;
            }
            let r = match (a.get(i).copied(), b.get(j).copied()) {
                (None, None) => true,
                (Some("**"), _) => {
                    go(a, b, i + 1, j, memo, w) || (j < b.len() && go(a, b, i, j + 1, memo, w))
                }
                (_, Some("**")) => {
                    go(a, b, i, j + 1, memo, w) || (i < a.len() && go(a, b, i + 1, j, memo, w))
                }
                (None, Some(_)) | (Some(_), None) => false,
                (Some(x), Some(y)) => {
                    (x == "*" || y == "*" || x == y) && go(a, b, i + 1, j + 1, memo, w)
                }
            };
            memo[k] = if r { 2 } else { 1 };
            r
        }
        go(a, b, 0, 0, &mut memo, w)
    }
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Pattern({:?})", &*self.text)
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl std::str::FromStr for Pattern {
    type Err = Error;
    fn from_str(s: &str) -> Result<Pattern> {
        Pattern::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn p(s: &str) -> Pattern {
        Pattern::new(s).unwrap()
    }

    #[test]
    fn valid_paths() {
        for ok in [
            "a",
            "a/b/c",
            "sensors/kitchen/temp",
            "ünï/cödé",
            "a b/c-d.e_f",
        ] {
            validate_path(ok).unwrap();
        }
    }

    #[test]
    fn invalid_paths_name_the_reason() {
        let cases = [
            ("", "empty"),
            ("/a", "start with `/`"),
            ("a/", "end with `/`"),
            ("a//b", "empty segment"),
            ("a/*", "wildcards"),
            ("a/**", "wildcards"),
            ("a\nb", "control character"),
        ];
        for (path, why) in cases {
            let e = validate_path(path).unwrap_err();
            assert_eq!(e.code(), ErrorCode::InvalidPath, "{path:?}");
            assert!(e.detail().contains(why), "{path:?}: {e}");
        }
        let long = "a".repeat(MAX_PATH_LEN + 1);
        assert!(validate_path(&long)
            .unwrap_err()
            .detail()
            .contains("maximum"));
        let deep = vec!["a"; MAX_SEGMENTS + 1].join("/");
        assert!(validate_path(&deep)
            .unwrap_err()
            .detail()
            .contains("segments"));
        validate_path(&"a".repeat(MAX_PATH_LEN)).unwrap();
    }

    #[test]
    fn invalid_patterns() {
        assert!(Pattern::new("a*/b")
            .unwrap_err()
            .detail()
            .contains("whole segment"));
        assert!(Pattern::new("***").is_err());
        assert!(Pattern::new("a//*").is_err());
        assert!(Pattern::new("").is_err());
    }

    #[test]
    fn matching() {
        assert!(p("a/b").matches("a/b"));
        assert!(!p("a/b").matches("a/b/c"));
        assert!(p("a/*").matches("a/b"));
        assert!(!p("a/*").matches("a"));
        assert!(!p("a/*").matches("a/b/c"));
        assert!(p("a/**").matches("a"));
        assert!(p("a/**").matches("a/b/c"));
        assert!(p("**").matches("x/y"));
        assert!(p("**/z").matches("z"));
        assert!(p("**/z").matches("x/y/z"));
        assert!(!p("**/z").matches("x/y"));
        assert!(p("a/**/b/*").matches("a/x/b/y/b/c"));
        assert!(!p("a/**/b/*").matches("a/x/b"));
        assert!(p("*/**/*").matches("a/b"));
        assert!(!p("*/**/*").matches("a"));
    }

    #[test]
    fn overlap() {
        assert!(p("a/*").overlaps(&p("*/b")));
        assert!(p("a/**").overlaps(&p("**/z")));
        assert!(!p("a/*").overlaps(&p("b/*")));
        assert!(!p("a/*").overlaps(&p("a")));
        assert!(p("a/**").overlaps(&p("a")));
        assert!(!p("*/*").overlaps(&p("*/*/*")));
        assert!(p("**").overlaps(&p("x/y/z")));
    }

    /// The obviously-correct reference: recursive, exponential, tiny inputs only.
    fn naive(pat: &[&str], path: &[&str]) -> bool {
        match (pat.first(), path.first()) {
            (None, None) => true,
            (Some(&"**"), _) => {
                naive(&pat[1..], path) || (!path.is_empty() && naive(pat, &path[1..]))
            }
            (Some(&"*"), Some(_)) => naive(&pat[1..], &path[1..]),
            (Some(l), Some(s)) => l == s && naive(&pat[1..], &path[1..]),
            _ => false,
        }
    }

    fn seg_strategy() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("a"), Just("b"), Just("c")]
    }
    fn pat_seg_strategy() -> impl Strategy<Value = &'static str> {
        prop_oneof![Just("a"), Just("b"), Just("*"), Just("**")]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(4000))]
        #[test]
        fn matcher_agrees_with_naive(
            pat in proptest::collection::vec(pat_seg_strategy(), 1..7),
            path in proptest::collection::vec(seg_strategy(), 1..8),
        ) {
            let pattern = Pattern::new(&pat.join("/")).unwrap();
            prop_assert_eq!(pattern.matches(&path.join("/")), naive(&pat, &path),
                "pattern {} path {}", pat.join("/"), path.join("/"));
        }

        #[test]
        fn overlap_agrees_with_brute_force(
            a in proptest::collection::vec(pat_seg_strategy(), 1..5),
            b in proptest::collection::vec(pat_seg_strategy(), 1..5),
        ) {
            let (pa, pb) = (Pattern::new(&a.join("/")).unwrap(), Pattern::new(&b.join("/")).unwrap());
            // Any common path can be shrunk to one of at most 8 segments over {a, b, c}.
            let mut found = false;
            'outer: for len in 1..=8usize {
                let total = 3usize.pow(len as u32);
                for mut n in 0..total {
                    let path: Vec<&str> = (0..len).map(|_| { let s = ["a", "b", "c"][n % 3]; n /= 3; s }).collect();
                    if naive(&a, &path) && naive(&b, &path) { found = true; break 'outer; }
                }
            }
            prop_assert_eq!(pa.overlaps(&pb), found, "{} vs {}", pa, pb);
        }

        #[test]
        fn arbitrary_text_never_panics(s in "\\PC{0,40}") {
            let _ = validate_path(&s);
            let _ = Pattern::new(&s).map(|p| p.matches("a/b"));
        }
    }
}
