//! Unix domain sockets (`unix://`): connections, and listening with the
//! socket file's permissions set from the start.
//!
//! The socket file is made in a new directory only this user can enter,
//! given its mode there, then linked to its path (`link` fails if the path
//! is taken, as `bind` would). No other user can connect between the bind
//! and the change of mode. Without a directory to make (a path too long for
//! the detour), it binds in place and sets the mode at once.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use tokio::net::{UnixListener, UnixStream};

use super::{Addr, Conn, Wire};
use crate::admission::Origin;
use crate::error::{Error, ErrorCode, Result};

/// The longest socket path the system takes, in bytes.
const MAX_PATH: usize = 107;

fn bind(path: &Path, mode: u32) -> io::Result<UnixListener> {
    let parent = path.parent().unwrap_or(Path::new("/"));
    let private = parent.join(format!(
        ".netchan-{}-{:x}",
        std::process::id(),
        fastrand::u64(..)
    ));
    let staged = private.join("s");
    if staged.as_os_str().len() > MAX_PATH {
        let l = UnixListener::bind(path)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
        return Ok(l);
    }
    std::fs::DirBuilder::new().mode(0o700).create(&private)?;
    let done = (|| {
        let l = UnixListener::bind(&staged)?;
        std::fs::set_permissions(&staged, std::fs::Permissions::from_mode(mode))?;
        std::fs::hard_link(&staged, path)?;
        Ok(l)
    })();
    let _ = std::fs::remove_file(&staged);
    let _ = std::fs::remove_dir(&private);
    done
}

/// The send buffer asked for on Unix sockets (the kernel caps it at
/// `net.core.wmem_max`). A Unix socket's bytes in flight count against the
/// sender's buffer, 208 KiB by default, which split every 1 MiB message into
/// several writes with a writable-wait each; TCP's buffer grows on its own
/// (up to `net.ipv4.tcp_wmem`'s 4 MiB); docs/BENCHMARKS.md has what it
/// changed for 64 KiB and 1 MiB messages over Unix sockets. It is a limit,
/// not an allocation: an idle connection costs nothing more.
pub(super) const UNIX_SEND_BUFFER: usize = 4 * 1024 * 1024;

pub(super) fn conn(s: UnixStream, path: &str) -> Conn {
    // Best effort: a smaller buffer only costs speed.
    let _ = socket2::SockRef::from(&s).set_send_buffer_size(UNIX_SEND_BUFFER);
    super::no_sigpipe(socket2::SockRef::from(&s));
    let origin = s
        .peer_cred()
        .map_or(Origin::Unknown, |c| Origin::Uid(c.uid()));
    let (r, w) = s.into_split();
    Conn {
        reader: Box::pin(r),
        writer: Wire::Unix(w),
        remote: path.to_owned(),
        origin,
        identity: None,
    }
}

/// Dials the socket at `p`.
pub(super) async fn dial(addr: &Addr, p: &Path) -> io::Result<Conn> {
    Ok(conn(UnixStream::connect(p).await?, &addr.to_string()))
}

/// The next connection on `l`, bound at `p`.
pub(super) async fn accept(l: &UnixListener, p: &Path) -> io::Result<Conn> {
    Ok(conn(
        l.accept().await?.0,
        &format!("unix://{}", p.display()),
    ))
}

/// Listens at `p` (`addr`), the socket file with permissions `unix_mode`;
/// a file left by a dead process is replaced.
pub(super) async fn listen(addr: &Addr, p: &Path, unix_mode: u32) -> Result<UnixListener> {
    if p.exists() {
        // A socket file left by a dead process is stale; a live one is in use.
        if UnixStream::connect(p).await.is_ok() {
            return Err(Error::new(
                ErrorCode::AddressInUse,
                format!("cannot listen on {addr}: another process is listening there"),
            ));
        }
        // The file may go meanwhile (its owner closed): then
        // the path is free.
        use std::os::unix::fs::FileTypeExt;
        match std::fs::symlink_metadata(p) {
            Ok(m) if !m.file_type().is_socket() => {
                return Err(Error::new(
                    ErrorCode::AddressInUse,
                    format!("cannot listen on {addr}: the path exists and is not a socket"),
                ));
            }
            Ok(_) | Err(_) => {
                let _ = std::fs::remove_file(p);
            }
        }
    }
    // Who may connect is the file's permissions' to say, from
    // the moment it exists (see `bind`).
    let l = bind(p, unix_mode).map_err(|e| {
        // Another listener took the path since the check above.
        let code = if e.kind() == std::io::ErrorKind::AddrInUse
            || e.kind() == std::io::ErrorKind::AlreadyExists
        {
            ErrorCode::AddressInUse
        } else {
            ErrorCode::InvalidAddress
        };
        Error::new(
            code,
            format!("cannot listen on {addr} (mode {unix_mode:o}): {e}"),
        )
    })?;
    Ok(l)
}
