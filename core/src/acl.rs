//! Who a peer is and what it may do (docs/SECURITY.md, "Identities" and
//! "Access rules").
//!
//! An [`Identity`] is what a peer proved when it connected: a certificate
//! (`cert:NAME`, the certificate's common name), a shared key
//! (`key:ID`), the user id of a Unix socket peer (`uid:N`), or nothing
//! (`anonymous`). The names it may take as an endpoint name come with it:
//! a certificate's common name and DNS names, a shared key's `names=`; a
//! peer claiming any other name is refused at the handshake.
//!
//! [`Acl`] holds access rules, one per line, allow-only (deny by default
//! once any rule is set):
//!
//! ```text
//! # allow IDENTITY ACTIONS PATH-PATTERN
//! allow cert:alice    publish,subscribe  sensors/**
//! allow key:2026-*    request            greet/*
//! allow *             subscribe          public/**
//! ```
//!
//! `IDENTITY` may hold `*` (any run of characters); `ACTIONS` is a comma
//! list of `publish`, `subscribe`, `serve`, `request`, `stream` or `all`.
//! Rules are checked where traffic enters the endpoint; this module only
//! parses and answers, without IO.

use std::fmt;
use std::path::PathBuf;

use crate::error::{Error, Result};
use crate::path::Pattern;

/// The identity of a peer that proved nothing.
pub const ANONYMOUS: &str = "anonymous";

/// What a peer proved when it connected, and the endpoint names that lets
/// it take.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Identity {
    /// `cert:NAME`, `key:ID`, `uid:N` or `anonymous`.
    pub id: String,
    /// Patterns (with `*`) of the endpoint names it may take; empty: any.
    pub names: Vec<String>,
}

impl Identity {
    pub(crate) fn anonymous() -> Identity {
        Identity {
            id: ANONYMOUS.into(),
            names: Vec::new(),
        }
    }

    /// True if it may call itself `name`.
    pub(crate) fn may_use_name(&self, name: &str) -> bool {
        self.names.is_empty() || self.names.iter().any(|p| glob(p, name))
    }
}

/// `*` matches any run of characters (none included); all else itself.
pub(crate) fn glob(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else {
        // No `*` at all: the whole text must have matched.
        return rest.is_empty();
    };
    for p in middle {
        match rest.find(p) {
            Some(i) => rest = &rest[i + p.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Something a peer does that a rule can allow.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Action {
    /// Send messages on a path.
    Publish,
    /// Receive messages on a path (a subscription's interest).
    Subscribe,
    /// Answer requests on a path.
    Serve,
    /// Send requests on a path.
    Request,
    /// Open or serve streams on a path.
    Stream,
}

impl Action {
    const ALL: [Action; 5] = [
        Action::Publish,
        Action::Subscribe,
        Action::Serve,
        Action::Request,
        Action::Stream,
    ];

    /// Its name in rules and events (`publish`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Publish => "publish",
            Action::Subscribe => "subscribe",
            Action::Serve => "serve",
            Action::Request => "request",
            Action::Stream => "stream",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Clone, Debug)]
struct Rule {
    identity: String,
    actions: u8,
    path: Pattern,
}

/// Access rules, parsed and checked (see the module's doc for the
/// format). An `Acl` without rules denies everything.
#[derive(Clone, Debug)]
pub struct Acl {
    rules: Vec<Rule>,
}

/// Rules files are small; anything larger is not one.
const MAX_ACL_BYTES: usize = 1024 * 1024;

/// Where access rules are: a file, or its text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AclSource {
    /// A rules file, read when the endpoint starts and on `reload_keys`.
    File(PathBuf),
    /// The rules' text.
    Text(String),
}

impl AclSource {
    /// A value as the `acl` setting takes it: rules' text if it holds a
    /// line starting with `allow`, a file path otherwise.
    pub fn parse(v: &str) -> AclSource {
        let is_text = v.lines().any(|l| {
            let l = l.trim_start();
            l.starts_with("allow ") || l.starts_with('#')
        });
        if is_text {
            AclSource::Text(v.to_owned())
        } else {
            AclSource::File(PathBuf::from(v))
        }
    }

    /// A value as the `acl` setting and every binding's `set_acl` take it:
    /// empty (or blank) is no rules, else as [`parse`](Self::parse).
    pub fn from_setting(v: &str) -> Option<AclSource> {
        Some(v.trim())
            .filter(|t| !t.is_empty())
            .map(AclSource::parse)
    }

    /// Reads and parses the rules.
    pub fn load(&self) -> Result<Acl> {
        match self {
            AclSource::Text(t) => Acl::parse(t),
            AclSource::File(p) => {
                let meta = std::fs::metadata(p).map_err(|e| {
                    Error::invalid_argument(format!(
                        "cannot read the rules (acl) {}: {e}",
                        p.display()
                    ))
                })?;
                if meta.len() > MAX_ACL_BYTES as u64 {
                    return Err(Error::invalid_argument(format!(
                        "the rules file {} is larger than {MAX_ACL_BYTES} bytes",
                        p.display()
                    )));
                }
                let t = std::fs::read_to_string(p).map_err(|e| {
                    Error::invalid_argument(format!(
                        "cannot read the rules (acl) {}: {e}",
                        p.display()
                    ))
                })?;
                Acl::parse(&t).map_err(|e| {
                    Error::invalid_argument(format!("{}: {}", p.display(), e.detail()))
                })
            }
        }
    }
}

impl Acl {
    /// Parses rules; the error names the line and what is wrong.
    pub fn parse(text: &str) -> Result<Acl> {
        let mut rules = Vec::new();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |why: String| {
                Error::invalid_argument(format!(
                    "rules, line {}: {why}; a rule is `allow IDENTITY ACTIONS PATH` (docs/SECURITY.md, \"Access rules\")",
                    i + 1
                ))
            };
            let parts: Vec<&str> = line.split_whitespace().collect();
            let [verb, identity, actions, path] = parts[..] else {
                return Err(bad(format!("{} fields, not 4", parts.len())));
            };
            if verb != "allow" {
                return Err(bad(format!(
                    "`{verb}`: rules only allow (anything not allowed is denied)"
                )));
            }
            let mut bits = 0u8;
            for a in actions.split(',') {
                bits |= match a {
                    "all" => Action::ALL.iter().fold(0, |b, a| b | a.bit()),
                    _ => Action::ALL
                        .iter()
                        .find(|x| x.as_str() == a)
                        .map(|x| x.bit())
                        .ok_or_else(|| {
                            bad(format!(
                                "unknown action `{a}` (publish, subscribe, serve, request, stream, all)"
                            ))
                        })?,
                };
            }
            let path = Pattern::new(path).map_err(|e| bad(e.detail().to_owned()))?;
            rules.push(Rule {
                identity: identity.to_owned(),
                actions: bits,
                path,
            });
        }
        Ok(Acl { rules })
    }

    /// How many rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// True if there are no rules (everything is denied).
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    fn rules_for<'a>(
        &'a self,
        identity: &'a str,
        action: Action,
    ) -> impl Iterator<Item = &'a Rule> {
        self.rules
            .iter()
            .filter(move |r| r.actions & action.bit() != 0 && glob(&r.identity, identity))
    }

    /// True if `identity` may do `action` on the concrete `path`.
    pub fn allows(&self, identity: &str, action: Action, path: &str) -> bool {
        self.rules_for(identity, action)
            .any(|r| r.path.matches(path))
    }

    /// True if `identity` may do `action` on some path `pattern` matches
    /// (a wide subscription is kept, and gets only the allowed paths).
    pub fn allows_some(&self, identity: &str, action: Action, pattern: &str) -> bool {
        let Ok(p) = Pattern::new(pattern) else {
            return false;
        };
        self.rules_for(identity, action)
            .any(|r| r.path.overlaps(&p))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        for (p, t, want) in [
            ("*", "", true),
            ("*", "anything", true),
            ("cert:alice", "cert:alice", true),
            ("cert:alice", "cert:alice2", false),
            ("cert:*", "cert:bob", true),
            ("cert:*", "key:bob", false),
            ("*-agent-*", "py-agent-42", true),
            ("*-agent-*", "agent-42", false),
            ("a*b*c", "abc", true),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
            ("ab*ba", "aba", false),
        ] {
            assert_eq!(glob(p, t), want, "{p} ~ {t}");
        }
    }

    #[test]
    fn rules_allow_what_they_name_and_deny_the_rest() {
        let acl = Acl::parse(
            "# comment\n\nallow cert:alice publish,subscribe sensors/**\n\
             allow key:* request greet/*\nallow * subscribe public/**\nallow uid:0 all **\n",
        )
        .unwrap();
        assert_eq!(acl.len(), 4);
        use Action::*;
        assert!(acl.allows("cert:alice", Publish, "sensors/a/b"));
        assert!(!acl.allows("cert:alice", Publish, "other"));
        assert!(!acl.allows("cert:alice", Serve, "sensors/a"));
        assert!(!acl.allows("cert:bob", Publish, "sensors/a"));
        assert!(acl.allows("key:2026", Request, "greet/x"));
        assert!(!acl.allows("key:2026", Request, "greet/x/y"));
        assert!(acl.allows("anonymous", Subscribe, "public/x"));
        assert!(acl.allows("uid:0", Stream, "x/y"));
        // A wide subscription overlaps what is allowed; a disjoint one not.
        assert!(acl.allows_some("cert:alice", Subscribe, "**"));
        assert!(acl.allows_some("cert:bob", Subscribe, "**"));
        assert!(!acl.allows_some("cert:bob", Subscribe, "private/**"));
        assert!(!acl.allows_some("cert:bob", Serve, "**"));
        assert!(Acl::parse("").unwrap().is_empty());
        assert!(!Acl::parse("").unwrap().allows("x", Publish, "a"));
    }

    #[test]
    fn bad_rules_are_named() {
        for (text, says) in [
            ("allow x publish", "3 fields"),
            ("deny x publish a", "only allow"),
            ("allow x shout a", "unknown action `shout`"),
            ("allow x publish a//b", "line 1"),
            ("\nallow x publish,, a", "line 2"),
        ] {
            let e = Acl::parse(text).unwrap_err();
            assert!(e.detail().contains(says), "{text}: {e}");
        }
    }

    #[test]
    fn names_bound_to_an_identity() {
        let any = Identity::anonymous();
        assert!(any.may_use_name("whatever"));
        let alice = Identity {
            id: "cert:alice".into(),
            names: vec!["alice".into(), "alice-*".into()],
        };
        assert!(alice.may_use_name("alice"));
        assert!(alice.may_use_name("alice-2"));
        assert!(!alice.may_use_name("bob"));
        assert!(!alice.may_use_name("alicex"));
    }

    #[test]
    fn sources() {
        assert!(matches!(
            AclSource::parse("/etc/netchan/acl"),
            AclSource::File(_)
        ));
        assert!(matches!(
            AclSource::parse("allow * all **"),
            AclSource::Text(_)
        ));
        let e = AclSource::File("/nonexistent/acl".into())
            .load()
            .unwrap_err();
        assert!(e.detail().contains("cannot read"), "{e}");
    }
}
