//! Binding a Unix socket with its permissions from the start: the socket
//! file is made in a new directory only this user can enter, given its
//! mode there, then linked to its path (`link` fails if the path is taken,
//! as `bind` would). No other user can connect between the bind and the
//! change of mode. Without a directory to make (a path too long for the
//! detour), it binds in place and sets the mode at once.

use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::Path;

use tokio::net::UnixListener;

/// The longest socket path the system takes, in bytes.
const MAX_PATH: usize = 107;

pub(super) fn bind(path: &Path, mode: u32) -> io::Result<UnixListener> {
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
