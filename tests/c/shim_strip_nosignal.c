/* LD_PRELOAD shim for tests/c/run.sh: strips MSG_NOSIGNAL from every
 * sendmsg()/send(), to show that test_no_sigpipe_when_peer_closes can fail
 * (without the flag the test process dies of SIGPIPE). Whether a write hits
 * the closed connection before its reader notices depends on timing, so the
 * shim also counts the calls that carried the flag and, if the process
 * lives to exit, says so on stderr ("shim: N of M sends carried
 * MSG_NOSIGNAL"): run.sh then requires N == M > 0. Not a test itself. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdio.h>
#include <sys/socket.h>

static long flagged, total;

static void count(int flags) {
    __atomic_add_fetch(&total, 1, __ATOMIC_RELAXED);
    if (flags & MSG_NOSIGNAL) __atomic_add_fetch(&flagged, 1, __ATOMIC_RELAXED);
}

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    ssize_t (*real)(int, const struct msghdr *, int) =
        (ssize_t(*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
    count(flags);
    return real(fd, msg, flags & ~MSG_NOSIGNAL);
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
    ssize_t (*real)(int, const void *, size_t, int) =
        (ssize_t(*)(int, const void *, size_t, int))dlsym(RTLD_NEXT, "send");
    count(flags);
    return real(fd, buf, len, flags & ~MSG_NOSIGNAL);
}

__attribute__((destructor)) static void report(void) {
    fprintf(stderr, "shim: %ld of %ld sends carried MSG_NOSIGNAL\n",
            __atomic_load_n(&flagged, __ATOMIC_RELAXED), __atomic_load_n(&total, __ATOMIC_RELAXED));
}
