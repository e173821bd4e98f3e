/* LD_PRELOAD shim for tests/c/run.sh: strips MSG_NOSIGNAL from every
 * sendmsg()/send(), to show that test_no_sigpipe_when_peer_closes can fail
 * (without the flag the test process dies of SIGPIPE). Not a test itself. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <sys/socket.h>

ssize_t sendmsg(int fd, const struct msghdr *msg, int flags) {
    ssize_t (*real)(int, const struct msghdr *, int) =
        (ssize_t(*)(int, const struct msghdr *, int))dlsym(RTLD_NEXT, "sendmsg");
    return real(fd, msg, flags & ~MSG_NOSIGNAL);
}

ssize_t send(int fd, const void *buf, size_t len, int flags) {
    ssize_t (*real)(int, const void *, size_t, int) =
        (ssize_t(*)(int, const void *, size_t, int))dlsym(RTLD_NEXT, "send");
    return real(fd, buf, len, flags & ~MSG_NOSIGNAL);
}
