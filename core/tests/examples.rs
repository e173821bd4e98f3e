//! The Rust examples run and exit 0 (cargo test builds them first).

use std::process::Command;

fn run_example(name: &str, args: &[&str]) -> String {
    let exe = std::env::current_exe().unwrap();
    // target/<profile>/deps/examples-HASH -> target/<profile>/examples/NAME
    let dir = exe.parent().unwrap().parent().unwrap().join("examples");
    let out = Command::new(dir.join(name))
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("example {name} not built at {}: {e}", dir.display()));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success(),
        "{name}: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    stdout
}

#[test]
fn pubsub_example() {
    let out = run_example("pubsub", &[]);
    assert!(out.contains("sensors/kitchen/temp\t21.5"), "{out}");
    assert!(out.contains("sensors/hall/temp\t19.0"), "{out}");
}

#[test]
fn reqrep_example_over_unix() {
    let sock = format!(
        "unix://{}/netchan-ex-{}.sock",
        std::env::temp_dir().display(),
        std::process::id()
    );
    let out = run_example("reqrep", &[&sock]);
    assert!(out.contains("upper -> HELLO"), "{out}");
    assert!(out.contains("fail -> HANDLER_ERROR"), "{out}");
    assert!(out.contains("nobody -> NO_RESPONDERS"), "{out}");
}

#[test]
fn ping_example() {
    let out = run_example("ping", &[]);
    assert_eq!(
        out.lines()
            .filter(|l| l.starts_with("ping rust-ping-a"))
            .count(),
        5,
        "{out}"
    );
}

#[test]
fn stream_example_over_unix() {
    let sock = format!(
        "unix://{}/netchan-ex-stream-{}.sock",
        std::env::temp_dir().display(),
        std::process::id()
    );
    let out = run_example("stream", &[&sock]);
    assert_eq!(out, "HELLO\nSTREAM\nWORLD\nend\n");
}
