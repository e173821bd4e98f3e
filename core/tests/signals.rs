//! netchan's own runtime threads block the signals a program handles
//! itself (SIGINT, SIGTERM, ...), so the kernel delivers them to the
//! program's threads; the program's threads keep their mask.
#![cfg(unix)]

use netchan::Endpoint;

/// The calling thread's blocked-signal mask.
fn blocked() -> libc::sigset_t {
    // SAFETY: queries the calling thread's mask into a zeroed set.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut set);
        set
    }
}

fn is_blocked(set: &libc::sigset_t, sig: libc::c_int) -> bool {
    // SAFETY: reads a valid signal set.
    unsafe { libc::sigismember(set, sig) == 1 }
}

#[test]
fn runtime_threads_block_the_programs_signals_and_leave_its_threads_alone() {
    // No tokio runtime here: the endpoint runs on netchan's own.
    let ep = Endpoint::named("signals").unwrap();
    let on_worker = ep
        .block_on(async {
            // Runs on a runtime worker thread (a spawned task).
            tokio::spawn(async { blocked() }).await.unwrap()
        })
        .unwrap();
    let on_blocking_pool = ep
        .block_on(async { tokio::task::spawn_blocking(blocked).await.unwrap() })
        .unwrap();
    for sig in [
        libc::SIGINT,
        libc::SIGTERM,
        libc::SIGHUP,
        libc::SIGQUIT,
        libc::SIGUSR1,
        libc::SIGUSR2,
        libc::SIGALRM,
        libc::SIGCHLD,
        libc::SIGWINCH,
    ] {
        assert!(
            is_blocked(&on_worker, sig),
            "signal {sig} not blocked on a worker"
        );
        assert!(
            is_blocked(&on_blocking_pool, sig),
            "signal {sig} not blocked on the blocking pool"
        );
        assert!(
            !is_blocked(&blocked(), sig),
            "signal {sig} blocked on the program's thread"
        );
    }
    // Faults still reach the thread that caused them.
    assert!(!is_blocked(&on_worker, libc::SIGSEGV));
}
