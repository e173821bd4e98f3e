/* ZeroMQ fan-out beside netchan's (benches/peers/fanout): one publisher sends
 * N 8-byte messages to K subscriber processes over TCP on loopback.
 * Build: cc -O2 benches/peers/zmq_fanout.c -lzmq -o zmq_fanout
 * Usage: zmq_fanout K N xpub|pub
 *   xpub: XPUB with ZMQ_XPUB_NODROP, blocking sends: nothing is lost, the
 *         publisher waits for the slowest subscriber (netchan's `Block`);
 *   pub:  PUB/SUB: what does not fit in a subscriber's queue is dropped;
 *         each subscriber counts what it actually got.
 * Each subscriber times itself from its first message to its last. Prints:
 *   zmq fanout <mode> <K> <K x slowest msg/s> <delivered> <sent>
 * "K x slowest" is the same figure netchan's fan-out bench prints (for
 * `pub`, each subscriber's rate is what it got over its own span). */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <sys/select.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec / 1e9;
}

static void die(const char *what) {
    fprintf(stderr, "zmq_fanout: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

struct result {
    long got;
    double seconds;
};

/* A subscriber: count data messages until the 1-byte end marker (sent
 * repeatedly by the publisher, so a lossy PUB still delivers one). */
static void subscriber(const char *endpoint, int out) {
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_SUB);
    if (zmq_setsockopt(s, ZMQ_SUBSCRIBE, "", 0)) die("subscribe");
    if (zmq_connect(s, endpoint)) die("connect");
    zmq_msg_t m;
    zmq_msg_init(&m);
    long got = 0;
    double first = 0, last = 0;
    for (;;) {
        int n = zmq_msg_recv(&m, s, 0);
        if (n < 0) die("recv");
        if (n == 1) break;
        last = now();
        if (got++ == 0) first = last;
    }
    struct result r = {got, last - first};
    if (write(out, &r, sizeof r) != sizeof r) exit(1);
    zmq_msg_close(&m);
    zmq_close(s);
    zmq_ctx_term(ctx);
    _exit(0);
}

int main(int argc, char **argv) {
    if (argc != 4) {
        fprintf(stderr, "usage: zmq_fanout K N xpub|pub\n");
        return 2;
    }
    int k = atoi(argv[1]);
    long n = atol(argv[2]);
    int xpub = strcmp(argv[3], "xpub") == 0;
    if (k < 1 || n < 2 || (!xpub && strcmp(argv[3], "pub") != 0)) {
        fprintf(stderr, "usage: zmq_fanout K N xpub|pub\n");
        return 2;
    }
    void *ctx = zmq_ctx_new();
    void *p = zmq_socket(ctx, xpub ? ZMQ_XPUB : ZMQ_PUB);
    int one = 1;
    if (xpub) {
        if (zmq_setsockopt(p, ZMQ_XPUB_NODROP, &one, sizeof one)) die("nodrop");
        if (zmq_setsockopt(p, ZMQ_XPUB_VERBOSE, &one, sizeof one)) die("verbose");
    }
    if (zmq_bind(p, "tcp://127.0.0.1:*")) die("bind");
    char endpoint[256];
    size_t len = sizeof endpoint;
    if (zmq_getsockopt(p, ZMQ_LAST_ENDPOINT, endpoint, &len)) die("endpoint");
    int pipefd[2];
    if (pipe(pipefd)) return 1;
    pid_t *pids = calloc(k, sizeof *pids);
    for (int i = 0; i < k; i++) {
        pids[i] = fork();
        if (pids[i] == 0) {
            close(pipefd[0]);
            subscriber(endpoint, pipefd[1]);
        }
    }
    close(pipefd[1]);
    /* Every subscriber is connected and subscribed: XPUB sees each
     * subscription (VERBOSE); PUB has no way to tell, so wait a moment. */
    if (xpub) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        for (int i = 0; i < k; i++)
            if (zmq_msg_recv(&m, p, 0) < 0) die("subscription");
        zmq_msg_close(&m);
    } else {
        struct timespec pause = {0, 500000000};
        nanosleep(&pause, NULL);
    }
    const char data[8] = "8 bytes!";
    for (long i = 0; i < n; i++)
        if (zmq_send(p, data, sizeof data, 0) < 0) die("send");
    /* The end marker, until every subscriber has reported. */
    long delivered = 0;
    double slowest = 1e300;
    int reported = 0;
    while (reported < k) {
        if (zmq_send(p, "E", 1, ZMQ_DONTWAIT) < 0 && zmq_errno() != EAGAIN) die("end");
        fd_set fds;
        FD_ZERO(&fds);
        FD_SET(pipefd[0], &fds);
        struct timeval tv = {0, 10000};
        if (select(pipefd[0] + 1, &fds, NULL, NULL, &tv) > 0) {
            struct result r;
            if (read(pipefd[0], &r, sizeof r) != sizeof r) return 1;
            delivered += r.got;
            double rate = r.got > 1 ? (r.got - 1) / r.seconds : 0;
            if (rate < slowest) slowest = rate;
            reported++;
        }
    }
    for (int i = 0; i < k; i++) waitpid(pids[i], NULL, 0);
    printf("zmq fanout %s %d %.0f %ld %ld\n", argv[3], k, slowest * k, delivered, n * k);
    zmq_close(p);
    zmq_ctx_term(ctx);
    return 0;
}
