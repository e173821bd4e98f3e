/* Publish/subscribe: pull (recv, try_recv, timeouts, waiting forever),
 * borrowed views, arguments copied, callback delivery in order and one at
 * a time, overflow policies, close semantics, exact stats, several threads
 * receiving from one subscription and publishing on one endpoint. */
#include "testutil.h"

#define N 1000

static void test_pull_subscription_over_tcp(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    CHECK(server_name != NULL && strcmp(server_name, netchan_endpoint_name(server)) == 0);
    netchan_subscription *pull = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "sensors/**", NULL, &pull));
    CHECK(t_str_eq(netchan_subscription_pattern(pull), "sensors/**"));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "sensors/kitchen/temp", 5000, &found));
    CHECK(found);
    CHECK_OK(netchan_endpoint_publish(client, "sensors/kitchen/temp", (const uint8_t *)"21.5", 4));
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_recv(pull, 5000, &m));
    CHECK(t_str_eq(netchan_message_path(m), "sensors/kitchen/temp"));
    CHECK(t_slice_eq(netchan_message_payload(m), "21.5", 4));
    CHECK(t_str_eq(netchan_message_sender(m), netchan_endpoint_name(client)));
    netchan_message_free(m);
    /* An empty payload; then nothing is queued. */
    CHECK_OK(netchan_endpoint_publish(client, "sensors/x", NULL, 0));
    CHECK_OK(netchan_subscription_recv(pull, 5000, &m));
    CHECK(netchan_message_payload(m).len == 0);
    netchan_message_free(m);
    CHECK_RC(netchan_subscription_try_recv(pull, &m), NETCHAN_RESULT_EMPTY);
    CHECK_RC(netchan_subscription_recv(pull, 0, &m), NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_subscription_recv(pull, 20, &m), NETCHAN_RESULT_TIMEOUT);
    /* Many messages, in order, pulled. */
    for (long i = 0; i < N; i++)
        CHECK_OK(netchan_endpoint_publish(client, "sensors/seq", (const uint8_t *)&i, sizeof i));
    int ordered = 1;
    for (long i = 0; i < N; i++) {
        m = NULL;
        netchan_result rc = netchan_subscription_recv(pull, 5000, &m);
        CHECK_OK(rc);
        if (rc != NETCHAN_RESULT_OK) break;
        long v = -1;
        memcpy(&v, netchan_message_payload(m).data, sizeof v);
        if (v != i) ordered = 0;
        netchan_message_free(m);
    }
    CHECK(ordered);
    /* Freeing the endpoint ends its pull subscriptions: CLOSED. */
    netchan_endpoint_free(server);
    CHECK_RC(netchan_subscription_recv(pull, 5000, &m), NETCHAN_RESULT_CLOSED);
    CHECK_RC(netchan_subscription_try_recv(pull, &m), NETCHAN_RESULT_CLOSED);
    netchan_subscription_free(pull);
    netchan_endpoint_free(client);
    netchan_string_free(server_name);
}

static void test_borrowed_views_live_as_long_as_their_object(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "views/*", NULL, &sub));
    CHECK_OK(netchan_endpoint_publish(ep, "views/a", (const uint8_t *)"payload", 7));
    netchan_message *m = NULL, *copy = NULL;
    CHECK_OK(netchan_subscription_try_recv(sub, &m));
    CHECK_OK(netchan_message_clone(m, &copy));
    netchan_message_free(m);
    netchan_str path = netchan_message_path(copy);
    netchan_slice payload = netchan_message_payload(copy);
    netchan_str sender = netchan_message_sender(copy);
    /* The copy's views stay valid after the original, the subscription and
     * the endpoint are gone (ASan checks every byte read below). */
    netchan_subscription_free(sub);
    netchan_endpoint_free(ep);
    CHECK(t_str_eq(path, "views/a"));
    CHECK(t_slice_eq(payload, "payload", 7));
    CHECK(sender.len > 0 && sender.data != NULL);
    /* Printing a view: "%.*s" with its length. */
    char buf[32];
    snprintf(buf, sizeof buf, "%.*s", (int)path.len, path.data);
    CHECK(strcmp(buf, "views/a") == 0);
    netchan_message_free(copy);
}

static void test_arguments_copied(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    char *pattern = strdup("copied/*");
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, pattern, NULL, &sub));
    free(pattern);
    char *path = strdup("copied/x");
    uint8_t *data = (uint8_t *)malloc(4);
    memcpy(data, "abcd", 4);
    CHECK_OK(netchan_endpoint_publish(ep, path, data, 4));
    /* Freed right after the call: the library kept copies. */
    memset(data, 0, 4);
    free(data);
    free(path);
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_recv(sub, 5000, &m));
    CHECK(t_str_eq(netchan_message_path(m), "copied/x"));
    CHECK(t_slice_eq(netchan_message_payload(m), "abcd", 4));
    CHECK(t_str_eq(netchan_subscription_pattern(sub), "copied/*"));
    netchan_message_free(m);
    netchan_subscription_free(sub);
    netchan_endpoint_free(ep);
}

typedef struct {
    netchan_subscription *sub;
    t_counter started;
    netchan_result rc;
    long value;
} waiter_ctx;

static void *wait_forever(void *arg) {
    waiter_ctx *w = (waiter_ctx *)arg;
    t_counter_add(&w->started, 1);
    netchan_message *m = NULL;
    w->rc = netchan_subscription_recv(w->sub, -1, &m);
    if (w->rc == NETCHAN_RESULT_OK) {
        memcpy(&w->value, netchan_message_payload(m).data, sizeof w->value);
        netchan_message_free(m);
    }
    return NULL;
}

static void test_recv_negative_timeout_waits(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    t_pair(&server, &client, NULL);
    waiter_ctx w;
    memset(&w, 0, sizeof w);
    t_counter_init(&w.started);
    CHECK_OK(netchan_endpoint_subscribe(server, "wait/x", NULL, &w.sub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "wait/x", 5000, &found));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, wait_forever, &w) == 0);
    CHECK(t_counter_wait(&w.started, 1, 5000) == 1);
    long v = 42;
    CHECK_OK(netchan_endpoint_publish(client, "wait/x", (const uint8_t *)&v, sizeof v));
    pthread_join(th, NULL);
    CHECK(w.rc == NETCHAN_RESULT_OK && w.value == 42);
    /* Closing the subscription ends a wait with no limit: CLOSED. */
    w.rc = NETCHAN_RESULT_OK;
    t_counter_destroy(&w.started);
    t_counter_init(&w.started);
    CHECK(pthread_create(&th, NULL, wait_forever, &w) == 0);
    CHECK(t_counter_wait(&w.started, 1, 5000) == 1);
    CHECK_OK(netchan_subscription_close(w.sub));
    pthread_join(th, NULL);
    CHECK(w.rc == NETCHAN_RESULT_CLOSED);
    netchan_subscription_free(w.sub);
    t_counter_destroy(&w.started);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
}

typedef struct {
    t_counter got;
    t_counter dropped;
    int in_order;
    int running;      /* calls in progress now */
    int overlapped;   /* a call started while another ran */
    int off_thread;   /* a call ran on a thread that is not netchan's */
    long next;
} order_ctx;

static void on_msg(void *context, const netchan_message *m) {
    order_ctx *c = (order_ctx *)context;
    if (__atomic_add_fetch(&c->running, 1, __ATOMIC_SEQ_CST) != 1) c->overlapped = 1;
    if (!t_on_netchan_thread()) c->off_thread = 1;
    netchan_slice p = netchan_message_payload(m);
    long v = -1;
    if (p.len == sizeof v) memcpy(&v, p.data, sizeof v);
    if (v != c->next) c->in_order = 0;
    c->next = v + 1;
    sched_yield(); /* give an overlapping call the chance to show */
    __atomic_sub_fetch(&c->running, 1, __ATOMIC_SEQ_CST);
    t_counter_add(&c->got, 1);
}

static void on_drop(void *context) {
    order_ctx *c = (order_ctx *)context;
    t_counter_add(&c->dropped, 1);
}

static void test_callback_delivery_in_order_one_at_a_time(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    t_pair(&server, &client, NULL);
    order_ctx oc;
    memset(&oc, 0, sizeof oc);
    t_counter_init(&oc.got);
    t_counter_init(&oc.dropped);
    oc.in_order = 1;
    netchan_message_callback cb = {&oc, on_msg, on_drop};
    netchan_subscription *csub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "cb/*", NULL, cb, &csub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "cb/x", 5000, &found));
    CHECK(found);
    for (long i = 0; i < N; i++)
        CHECK_OK(netchan_endpoint_publish(client, "cb/x", (const uint8_t *)&i, sizeof i));
    CHECK(t_counter_wait(&oc.got, N, 10000) == N);
    CHECK(oc.in_order);
    CHECK(!oc.overlapped);
    CHECK(!oc.off_thread);
    netchan_message *m = NULL;
    CHECK_RC(netchan_subscription_recv(csub, 0, &m), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK_RC(netchan_subscription_try_recv(csub, &m), NETCHAN_RESULT_INVALID_ARGUMENT);
    netchan_subscription_free(csub);
    /* Freed from a plain thread: drop has run before free returned. */
    CHECK(t_counter_get(&oc.dropped) == 1);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    t_counter_destroy(&oc.got);
    t_counter_destroy(&oc.dropped);
}

/* Payloads here are int64_t: 8 bytes on every system (a long is 4 on
 * Windows), so the byte bounds below hold everywhere. */
static int64_t first_payload(netchan_subscription *s) {
    netchan_message *m = NULL;
    int64_t v = -1;
    if (netchan_subscription_try_recv(s, &m) == NETCHAN_RESULT_OK) {
        netchan_slice p = netchan_message_payload(m);
        CHECK(p.len == sizeof v);
        if (p.len == sizeof v) memcpy(&v, p.data, sizeof v);
        netchan_message_free(m);
    }
    return v;
}

static void test_overflow_policies(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    /* DROP_OLDEST from the subscription's own options: keeps the last 4. */
    netchan_subscribe_options *so = NULL;
    CHECK_OK(netchan_subscribe_options_new(&so));
    CHECK_OK(netchan_subscribe_options_set_capacity(so, 4));
    CHECK_OK(netchan_subscribe_options_set_overflow(so, NETCHAN_OVERFLOW_DROP_OLDEST));
    netchan_subscription *oldest = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "local/q", so, &oldest));
    /* DROP_NEWEST with a byte bound: 3 messages of 8 bytes fit in 24. */
    CHECK_OK(netchan_subscribe_options_set_capacity(so, 100));
    CHECK_OK(netchan_subscribe_options_set_max_bytes(so, 24));
    CHECK_OK(netchan_subscribe_options_set_overflow(so, NETCHAN_OVERFLOW_DROP_NEWEST));
    netchan_subscription *newest = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "local/q", so, &newest));
    netchan_subscribe_options_free(so);
    for (int64_t i = 0; i < 10; i++)
        CHECK_RC(netchan_endpoint_publish(ep, "local/q", (const uint8_t *)&i, sizeof i), NETCHAN_RESULT_OK);
    CHECK(netchan_subscription_dropped(oldest) == 6);
    CHECK(first_payload(oldest) == 6);
    CHECK(netchan_subscription_dropped(newest) == 7);
    CHECK(first_payload(newest) == 0);
    netchan_subscription_free(oldest);
    netchan_subscription_free(newest);
    netchan_endpoint_free(ep);

    /* The endpoint's defaults for its subscriptions: capacity 2, newest
     * dropped. */
    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    CHECK_OK(netchan_options_set_subscribe_capacity(o, 2));
    CHECK_OK(netchan_options_set_subscribe_overflow(o, NETCHAN_OVERFLOW_DROP_NEWEST));
    CHECK_OK(netchan_endpoint_new(o, &ep));
    netchan_options_free(o);
    netchan_subscription *dflt = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "d/q", NULL, &dflt));
    for (int64_t i = 0; i < 5; i++)
        CHECK_OK(netchan_endpoint_publish(ep, "d/q", (const uint8_t *)&i, sizeof i));
    CHECK(netchan_subscription_dropped(dflt) == 3);
    CHECK(first_payload(dflt) == 0);
    CHECK(first_payload(dflt) == 1);
    CHECK(first_payload(dflt) == -1);
    netchan_subscription_free(dflt);
    netchan_endpoint_free(ep);
}

static void test_close_drains_then_closed(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "close/q", NULL, &sub));
    for (int64_t i = 0; i < 3; i++)
        CHECK_OK(netchan_endpoint_publish(ep, "close/q", (const uint8_t *)&i, sizeof i));
    CHECK_OK(netchan_subscription_close(sub));
    CHECK_OK(netchan_subscription_close(sub)); /* idempotent */
    /* Nothing new arrives after close... */
    int64_t late = 99;
    CHECK_OK(netchan_endpoint_publish(ep, "close/q", (const uint8_t *)&late, sizeof late));
    /* ...what was queued can still be received, in order, then CLOSED. */
    CHECK(first_payload(sub) == 0);
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_recv(sub, 5000, &m));
    netchan_message_free(m);
    CHECK(first_payload(sub) == 2);
    CHECK_RC(netchan_subscription_try_recv(sub, &m), NETCHAN_RESULT_CLOSED);
    CHECK_RC(netchan_subscription_recv(sub, -1, &m), NETCHAN_RESULT_CLOSED);
    netchan_subscription_free(sub);
    netchan_endpoint_free(ep);
}

static void test_stats_count_exactly(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "stats/*", NULL, &sub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "stats/x", 5000, &found));
    for (int i = 0; i < 10; i++) CHECK_OK(netchan_endpoint_publish(client, "stats/x", (const uint8_t *)"12345", 5));
    for (int i = 0; i < 10; i++) {
        netchan_message *m = NULL;
        CHECK_OK(netchan_subscription_recv(sub, 5000, &m));
        netchan_message_free(m);
    }
    /* The server counts a batch of frames once it has handled all of them
     * (a message can reach the subscription first): a ping on the same
     * link is answered after that. */
    CHECK_OK(netchan_endpoint_ping(client, server_name, NULL));
    netchan_stats st;
    memset(&st, 0, sizeof st);
    CHECK_OK(netchan_endpoint_stats(server, &st, sizeof st));
    if (st.msgs_in != 10 || st.bytes_in != 50)
        fprintf(stderr, "msgs_in %llu bytes_in %llu\n", (unsigned long long)st.msgs_in, (unsigned long long)st.bytes_in);
    CHECK(st.msgs_in == 10 && st.bytes_in == 50);
    CHECK(st.peers == 1 && st.subscriptions == 1);
    CHECK(st.dropped_queue_full == 0 && st.errors == 0);
    memset(&st, 0, sizeof st);
    CHECK_OK(netchan_endpoint_stats(client, &st, sizeof st));
    CHECK(st.msgs_out == 10 && st.bytes_out == 50);
    CHECK(st.peers == 1 && st.subscriptions == 0);
    netchan_subscription_free(sub);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    netchan_string_free(server_name);
}

#define RECEIVERS 4
typedef struct {
    netchan_subscription *sub;
    t_counter *total;
    unsigned char *seen; /* N entries: how often each message arrived */
    pthread_mutex_t *mu;
    netchan_result last;
} receiver_ctx;

static void *receive_until_closed(void *arg) {
    receiver_ctx *r = (receiver_ctx *)arg;
    for (;;) {
        netchan_message *m = NULL;
        r->last = netchan_subscription_recv(r->sub, -1, &m);
        if (r->last != NETCHAN_RESULT_OK) break;
        long v = -1;
        memcpy(&v, netchan_message_payload(m).data, sizeof v);
        netchan_message_free(m);
        pthread_mutex_lock(r->mu);
        if (v >= 0 && v < N) r->seen[v]++;
        pthread_mutex_unlock(r->mu);
        t_counter_add(r->total, 1);
    }
    return NULL;
}

static void test_concurrent_recv_each_message_once(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    t_pair(&server, &client, NULL);
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "many/*", NULL, &sub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "many/x", 5000, &found));
    t_counter total;
    t_counter_init(&total);
    unsigned char seen[N];
    memset(seen, 0, sizeof seen);
    pthread_mutex_t mu;
    pthread_mutex_init(&mu, NULL);
    receiver_ctx rs[RECEIVERS];
    pthread_t th[RECEIVERS];
    for (int i = 0; i < RECEIVERS; i++) {
        rs[i].sub = sub;
        rs[i].total = &total;
        rs[i].seen = seen;
        rs[i].mu = &mu;
        rs[i].last = NETCHAN_RESULT_OK;
        CHECK(pthread_create(&th[i], NULL, receive_until_closed, &rs[i]) == 0);
    }
    for (long i = 0; i < N; i++)
        CHECK_OK(netchan_endpoint_publish(client, "many/x", (const uint8_t *)&i, sizeof i));
    CHECK(t_counter_wait(&total, N, 10000) == N);
    CHECK_OK(netchan_subscription_close(sub));
    for (int i = 0; i < RECEIVERS; i++) {
        pthread_join(th[i], NULL);
        CHECK(rs[i].last == NETCHAN_RESULT_CLOSED);
    }
    CHECK(t_counter_get(&total) == N);
    int once = 1;
    for (int i = 0; i < N; i++)
        if (seen[i] != 1) once = 0;
    CHECK(once);
    netchan_subscription_free(sub);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    pthread_mutex_destroy(&mu);
    t_counter_destroy(&total);
}

#define PUBLISHERS 4
typedef struct {
    netchan_endpoint *ep;
    long base;
    int failures;
} publisher_ctx;

static void *publish_some(void *arg) {
    publisher_ctx *p = (publisher_ctx *)arg;
    for (long i = 0; i < N / PUBLISHERS; i++) {
        long v = p->base + i;
        if (netchan_endpoint_publish(p->ep, "par/x", (const uint8_t *)&v, sizeof v) != NETCHAN_RESULT_OK)
            p->failures++;
    }
    return NULL;
}

static void test_concurrent_publish_from_threads(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    t_pair(&server, &client, NULL);
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "par/*", NULL, &sub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "par/x", 5000, &found));
    publisher_ctx ps[PUBLISHERS];
    pthread_t th[PUBLISHERS];
    for (int i = 0; i < PUBLISHERS; i++) {
        ps[i].ep = client;
        ps[i].base = (long)i * (N / PUBLISHERS);
        ps[i].failures = 0;
        CHECK(pthread_create(&th[i], NULL, publish_some, &ps[i]) == 0);
    }
    for (int i = 0; i < PUBLISHERS; i++) {
        pthread_join(th[i], NULL);
        CHECK(ps[i].failures == 0);
    }
    /* Every message arrives once; each publisher's own in its order. */
    long next[PUBLISHERS];
    for (int i = 0; i < PUBLISHERS; i++) next[i] = ps[i].base;
    int ordered = 1, got = 0;
    for (int i = 0; i < N; i++) {
        netchan_message *m = NULL;
        if (netchan_subscription_recv(sub, 5000, &m) != NETCHAN_RESULT_OK) break;
        long v = -1;
        memcpy(&v, netchan_message_payload(m).data, sizeof v);
        netchan_message_free(m);
        int who = (int)(v / (N / PUBLISHERS));
        if (who < 0 || who >= PUBLISHERS || next[who] != v) ordered = 0;
        else next[who]++;
        got++;
    }
    CHECK(got == N);
    CHECK(ordered);
    netchan_message *m = NULL;
    CHECK_RC(netchan_subscription_try_recv(sub, &m), NETCHAN_RESULT_EMPTY);
    netchan_subscription_free(sub);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
}

int main(void) {
    t_watchdog(120);
    T_RUN(test_pull_subscription_over_tcp);
    T_RUN(test_borrowed_views_live_as_long_as_their_object);
    T_RUN(test_arguments_copied);
    T_RUN(test_recv_negative_timeout_waits);
    T_RUN(test_callback_delivery_in_order_one_at_a_time);
    T_RUN(test_overflow_policies);
    T_RUN(test_close_drains_then_closed);
    T_RUN(test_stats_count_exactly);
    T_RUN(test_concurrent_recv_each_message_once);
    T_RUN(test_concurrent_publish_from_threads);
    return t_finish("test_api_pubsub");
}
