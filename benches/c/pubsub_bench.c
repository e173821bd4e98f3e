/* C pub/sub throughput benchmark: publisher and subscriber in separate
 * processes, timed at the subscriber from the first message to the last
 * (as `netchan bench` does). benches/c/run.sh drives it.
 *
 *   pubsub_bench sub ADDR COUNT pull|callback  -> "READY <addr>", later "DONE <n> <nanos>"
 *   pubsub_bench pub ADDR SIZE COUNT
 */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "netchan.h"

static long long now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

static int die(const char *what, netchan_result rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, netchan_result_name(rc), netchan_last_error());
    return 1;
}

typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long long count, want, first_ns, last_ns;
} cb_state;

static void on_msg(void *context, const netchan_message *m) {
    (void)m;
    cb_state *s = (cb_state *)context;
    /* One thread calls this (per subscription, in order): no lock needed
     * until the end. */
    if (s->count == 0) s->first_ns = now_ns();
    if (++s->count == s->want) {
        s->last_ns = now_ns();
        pthread_mutex_lock(&s->mu);
        pthread_cond_signal(&s->cv);
        pthread_mutex_unlock(&s->mu);
    }
}

static int run_sub(const char *addr, long long count, int pull) {
    netchan_endpoint *ep = NULL;
    netchan_result rc = netchan_endpoint_new(NULL, &ep);
    if (rc) return die("new", rc);
    netchan_subscription *sub = NULL;
    cb_state s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    s.want = count;
    if (pull) {
        rc = netchan_endpoint_subscribe(ep, "bench/data", NULL, &sub);
    } else {
        netchan_message_callback cb = {&s, on_msg, NULL};
        rc = netchan_endpoint_subscribe_callback(ep, "bench/data", NULL, cb, &sub);
    }
    if (rc) return die("subscribe", rc);
    char *bound = NULL;
    if ((rc = netchan_endpoint_listen(ep, addr, &bound))) return die("listen", rc);
    printf("READY %s\n", bound);
    fflush(stdout);
    long long n = 0, first = 0, last = 0;
    if (pull) {
        while (n < count) {
            netchan_message *m = NULL;
            if ((rc = netchan_subscription_recv(sub, 30000, &m))) return die("recv", rc);
            if (n == 0) first = now_ns();
            netchan_message_free(m);
            n++;
        }
        last = now_ns();
    } else {
        pthread_mutex_lock(&s.mu);
        while (__atomic_load_n(&s.last_ns, __ATOMIC_ACQUIRE) == 0) pthread_cond_wait(&s.cv, &s.mu);
        pthread_mutex_unlock(&s.mu);
        n = s.count;
        first = s.first_ns;
        last = s.last_ns;
    }
    printf("DONE %lld %lld\n", n, last - first);
    fflush(stdout);
    netchan_subscription_free(sub);
    netchan_endpoint_free(ep);
    netchan_string_free(bound);
    netchan_runtime_shutdown(5000);
    return 0;
}

static int run_pub(const char *addr, size_t size, long long count) {
    netchan_endpoint *ep = NULL;
    netchan_result rc = netchan_endpoint_new(NULL, &ep);
    if (rc) return die("new", rc);
    if ((rc = netchan_endpoint_connect(ep, addr, NULL))) return die("connect", rc);
    bool found = false;
    if ((rc = netchan_endpoint_wait_for_subscribers(ep, "bench/data", 10000, &found)) || !found)
        return die("wait_for_subscribers", rc);
    uint8_t *data = (uint8_t *)malloc(size ? size : 1);
    for (size_t i = 0; i < size; i++) data[i] = (uint8_t)(i % 251);
    for (long long i = 0; i < count; i++) {
        if ((rc = netchan_endpoint_publish(ep, "bench/data", data, size))) return die("publish", rc);
    }
    free(data);
    netchan_endpoint_free(ep); /* flushes what is queued */
    netchan_runtime_shutdown(5000);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 5 && strcmp(argv[1], "sub") == 0)
        return run_sub(argv[2], atoll(argv[3]), strcmp(argv[4], "pull") == 0);
    if (argc == 5 && strcmp(argv[1], "pub") == 0)
        return run_pub(argv[2], (size_t)atoll(argv[3]), atoll(argv[4]));
    fprintf(stderr, "usage: %s sub ADDR COUNT pull|callback | pub ADDR SIZE COUNT\n", argv[0]);
    return 2;
}
