/* C request/reply round trip: an echo service and a client in separate
 * processes, the client calling netchan_endpoint_request_blocking() from
 * its main thread, one request at a time. Reports the p50 and p99 round
 * trip and the CPU time (user + system) of each process per 10,000 round
 * trips, warm-up included, so that the busy-poll window
 * (netchan_options_set_busy_poll_us) can be judged by what it costs as well
 * as what it gains. benches/c/run.sh drives it.
 *
 *   reqrep_bench serve ADDR            -> "READY <addr>"; on stdin EOF "CPU <us>"
 *   reqrep_bench req ADDR SAMPLES BUSY_US -> "RTT <p50 us> <p99 us> CPU <us>"
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "netchan.h"

#define WARMUP 1000

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static long long cpu_us(void) {
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (long long)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) * 1000000LL + ru.ru_utime.tv_usec +
           ru.ru_stime.tv_usec;
}

static int die(const char *what, netchan_result rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, netchan_result_name(rc), netchan_last_error());
    return 1;
}

static void echo(void *context, const netchan_request *request, netchan_reply *reply) {
    (void)context;
    netchan_slice p = netchan_request_payload(request);
    netchan_reply_send(reply, p.data, p.len);
    netchan_reply_free(reply);
}

static int run_serve(const char *addr) {
    netchan_endpoint *ep = NULL;
    netchan_result rc = netchan_endpoint_new(NULL, &ep);
    if (rc) return die("new", rc);
    netchan_request_handler h = {NULL, echo, NULL};
    netchan_service *svc = NULL;
    if ((rc = netchan_endpoint_serve(ep, "bench/echo", h, &svc))) return die("serve", rc);
    char *bound = NULL;
    if ((rc = netchan_endpoint_listen(ep, addr, &bound))) return die("listen", rc);
    printf("READY %s\n", bound);
    fflush(stdout);
    netchan_string_free(bound);
    long long cpu0 = cpu_us();
    /* Until the driver closes our stdin (the client is done). */
    while (getchar() != EOF) {
    }
    printf("CPU %lld\n", cpu_us() - cpu0);
    fflush(stdout);
    netchan_service_free(svc);
    netchan_endpoint_free(ep);
    return 0;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return (x > y) - (x < y);
}

static int run_req(const char *addr, long samples, unsigned long long busy_us) {
    netchan_options *o = NULL;
    netchan_result rc = netchan_options_new(&o);
    if (rc) return die("options", rc);
    if ((rc = netchan_options_set_busy_poll_us(o, busy_us))) return die("busy_poll", rc);
    netchan_endpoint *ep = NULL;
    rc = netchan_endpoint_new(o, &ep);
    netchan_options_free(o);
    if (rc) return die("new", rc);
    char *peer = NULL;
    if ((rc = netchan_endpoint_connect(ep, addr, &peer))) return die("connect", rc);
    netchan_string_free(peer);
    long long *rtt = malloc(sizeof(long long) * (size_t)samples);
    if (!rtt) return 1;
    const uint8_t payload[8] = {1, 2, 3, 4, 5, 6, 7, 8};
    long long cpu0 = cpu_us();
    for (long i = 0; i < WARMUP + samples; i++) {
        long long t0 = now_ns();
        netchan_bytes *reply = NULL;
        rc = netchan_endpoint_request_blocking(ep, "bench/echo", payload, sizeof payload, 5000, &reply);
        if (rc) return die("request", rc);
        long long t1 = now_ns();
        netchan_bytes_free(reply);
        if (i >= WARMUP) rtt[i - WARMUP] = t1 - t0;
    }
    long long cpu = cpu_us() - cpu0;
    qsort(rtt, (size_t)samples, sizeof rtt[0], cmp_ll);
    printf("RTT %.1f %.1f CPU %lld\n", rtt[samples / 2] / 1e3, rtt[samples * 99 / 100] / 1e3, cpu);
    free(rtt);
    netchan_endpoint_free(ep);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 3 && strcmp(argv[1], "serve") == 0) return run_serve(argv[2]);
    if (argc == 5 && strcmp(argv[1], "req") == 0)
        return run_req(argv[2], atol(argv[3]), strtoull(argv[4], NULL, 10));
    fprintf(stderr, "usage: reqrep_bench serve ADDR | req ADDR SAMPLES BUSY_US\n");
    return 2;
}
