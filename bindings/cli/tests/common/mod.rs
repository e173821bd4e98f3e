//! Helpers shared by the CLI's test files.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_netchan");

/// A long-running netchan command that listens, with its bound address.
/// Killed (after a SIGCONT, in case a test froze it) when dropped.
#[allow(dead_code)] // not every test file reads every field
pub struct Listening {
    pub child: Child,
    pub addr: String,
    /// Everything it wrote on stderr after the "listening on" line.
    pub log: std::sync::Arc<std::sync::Mutex<String>>,
    /// Remove its Unix socket file once killed (true unless a test wants
    /// the stale file left behind).
    pub unlink: bool,
}

impl Listening {
    /// Starts `netchan ARGS` and waits for its "listening on ADDR" line.
    #[allow(dead_code)] // not every test file starts one
    pub fn start(args: &[&str]) -> Listening {
        Listening::start_with(BIN, args)
    }

    /// The same through another program that runs netchan (e.g.
    /// `ip netns exec NS netchan ...`).
    #[allow(dead_code)] // not every test file starts one
    pub fn start_with(program: &str, args: &[&str]) -> Listening {
        let mut child = Command::new(program)
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut err = BufReader::new(child.stderr.take().unwrap());
        let mut line = String::new();
        err.read_line(&mut line).unwrap();
        let addr = line
            .trim()
            .strip_prefix("listening on ")
            .unwrap_or_else(|| panic!("unexpected first line: {line:?}"))
            .to_owned();
        // Keep draining stderr so the child never blocks on a full pipe.
        let log = std::sync::Arc::new(std::sync::Mutex::new(String::new()));
        let sink = log.clone();
        std::thread::spawn(move || {
            let mut line = String::new();
            while matches!(err.read_line(&mut line), Ok(n) if n > 0) {
                sink.lock().unwrap().push_str(&line);
                line.clear();
            }
        });
        Listening {
            child,
            addr,
            log,
            unlink: true,
        }
    }

    /// The next `n` lines of its stdout.
    #[allow(dead_code)] // not every test file reads stdout
    pub fn stdout_lines(&mut self, n: usize) -> Vec<String> {
        let out = self.child.stdout.take().unwrap();
        let mut r = BufReader::new(out);
        let mut lines = Vec::new();
        for _ in 0..n {
            let mut l = String::new();
            r.read_line(&mut l).unwrap();
            lines.push(l.trim_end_matches('\n').to_owned());
        }
        lines
    }
}

impl Drop for Listening {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-CONT", &self.child.id().to_string()])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
        // Killed, it could not remove its socket file.
        if let Some(p) = self.addr.strip_prefix("unix://").filter(|_| self.unlink) {
            let _ = std::fs::remove_file(p);
        }
    }
}
