/* ZeroMQ beside netchan: the same measurements as `netchan bench`.
 * Build: cc -O2 benches/peers/zmq_bench.c -lzmq -o zmq_bench (benches/peers/run.sh does it)
 * Prints: one line per measurement: "zmq tp <transport> <size> <msgs/s>" or
 *         "zmq lat <transport> <size> <p50_us> <p99_us> <p999_us>".
 * PUSH/PULL for throughput (timed at the receiver, first to last message),
 * REQ/REP for round-trip latency (1000 warm-up round trips, then N). */
#define _POSIX_C_SOURCE 200809L
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

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static void die(const char *what) {
    fprintf(stderr, "zmq_bench: %s: %s\n", what, zmq_strerror(zmq_errno()));
    exit(1);
}

/* Throughput: the child binds PULL and times; the parent connects PUSH. */
static void throughput(const char *endpoint, size_t size, long count) {
    int pipefd[2];
    if (pipe(pipefd)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        void *ctx = zmq_ctx_new();
        void *s = zmq_socket(ctx, ZMQ_PULL);
        int hwm = 100000;
        zmq_setsockopt(s, ZMQ_RCVHWM, &hwm, sizeof hwm);
        if (zmq_bind(s, endpoint)) die("bind");
        char ok = 1;
        if (write(pipefd[1], &ok, 1) != 1) exit(1);
        zmq_msg_t m;
        zmq_msg_init(&m);
        double t0 = 0;
        for (long i = 0; i < count; i++) {
            if (zmq_msg_recv(&m, s, 0) < 0) die("recv");
            if (i == 0) t0 = now();
        }
        double dt = now() - t0;
        double rate = (count - 1) / dt;
        if (write(pipefd[1], &rate, sizeof rate) != sizeof rate) exit(1);
        zmq_msg_close(&m);
        zmq_close(s);
        zmq_ctx_term(ctx);
        _exit(0);
    }
    char ok;
    if (read(pipefd[0], &ok, 1) != 1) exit(1);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_PUSH);
    int hwm = 100000;
    zmq_setsockopt(s, ZMQ_SNDHWM, &hwm, sizeof hwm);
    if (zmq_connect(s, endpoint)) die("connect");
    char *buf = calloc(1, size ? size : 1);
    for (long i = 0; i < count; i++) {
        if (zmq_send(s, buf, size, 0) < 0) die("send");
    }
    double rate;
    if (read(pipefd[0], &rate, sizeof rate) != sizeof rate) exit(1);
    waitpid(pid, NULL, 0);
    printf("zmq tp %s %zu %.0f\n", strncmp(endpoint, "tcp", 3) ? "unix" : "tcp", size, rate);
    fflush(stdout);
    free(buf);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

static void latency(const char *endpoint, size_t size, int samples) {
    int pipefd[2];
    if (pipe(pipefd)) exit(1);
    pid_t pid = fork();
    if (pid == 0) {
        void *ctx = zmq_ctx_new();
        void *s = zmq_socket(ctx, ZMQ_REP);
        if (zmq_bind(s, endpoint)) die("bind");
        char ok = 1;
        if (write(pipefd[1], &ok, 1) != 1) exit(1);
        zmq_msg_t m;
        zmq_msg_init(&m);
        for (int i = 0; i < samples + 1000; i++) {
            if (zmq_msg_recv(&m, s, 0) < 0) die("recv");
            if (zmq_msg_send(&m, s, 0) < 0) die("send");
        }
        /* Flush the last reply before exiting (linger). */
        zmq_msg_close(&m);
        zmq_close(s);
        zmq_ctx_term(ctx);
        _exit(0);
    }
    char ok;
    if (read(pipefd[0], &ok, 1) != 1) exit(1);
    void *ctx = zmq_ctx_new();
    void *s = zmq_socket(ctx, ZMQ_REQ);
    if (zmq_connect(s, endpoint)) die("connect");
    char *buf = calloc(1, size ? size : 1);
    double *rtt = malloc(sizeof(double) * samples);
    zmq_msg_t m;
    zmq_msg_init(&m);
    for (int i = 0; i < samples + 1000; i++) {
        double t0 = now();
        if (zmq_send(s, buf, size, 0) < 0) die("send");
        if (zmq_msg_recv(&m, s, 0) < 0) die("recv");
        if (i >= 1000) rtt[i - 1000] = (now() - t0) * 1e6;
    }
    qsort(rtt, samples, sizeof(double), cmp);
    printf("zmq lat %s %zu %.1f %.1f %.1f\n", strncmp(endpoint, "tcp", 3) ? "unix" : "tcp", size,
           rtt[samples / 2], rtt[(int)((samples - 1) * 0.99)], rtt[(int)((samples - 1) * 0.999)]);
    fflush(stdout);
    waitpid(pid, NULL, 0);
    free(rtt);
    free(buf);
    zmq_close(s);
    zmq_ctx_term(ctx);
}

int main(int argc, char **argv) {
    int quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    char ipc[64];
    snprintf(ipc, sizeof ipc, "ipc:///tmp/zmq-bench-%d.sock", (int)getpid());
    size_t sizes[] = {8, 1024, 65536, 1048576};
    int port = 45700 + (int)(getpid() % 1000);
    for (int e = 0; e < 2; e++) {
        char ep[160];
        /* A fresh endpoint per measurement: no lingering peer from the last. */
#define NEXT_EP() (e == 0 ? snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port++) \
                          : snprintf(ep, sizeof ep, "%s.%d", ipc, port++))
        for (int i = 0; i < 4; i++) {
            long count = sizes[i] <= 64 ? 2000000 : sizes[i] <= 4096 ? 1000000 : (long)(2500000000.0 / sizes[i]);
            if (quick) count = count / 20 > 50 ? count / 20 : 50;
            NEXT_EP();
            throughput(ep, sizes[i], count);
        }
        NEXT_EP();
        latency(ep, 8, 20000);
        NEXT_EP();
        latency(ep, 1024, 20000);
    }
    return 0;
}
