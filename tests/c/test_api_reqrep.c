/* Request/reply: a handler that replies now, later from another thread, or
 * fails; blocking and callback requests; timeouts, no responders, ping;
 * each result callback exactly once then its drop; handler calls one at a
 * time in arrival order. One server and client pair serves every test. */
#include "testutil.h"

/* Replies kept by the handler, answered by a worker thread. */
#define MAXQ 64
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    netchan_reply *q[MAXQ];
    char data[MAXQ][64];
    size_t len[MAXQ];
    int n;
    int stop;
    netchan_reply *never; /* kept unanswered until the end */
    int drops;
} server_ctx;

static server_ctx s;
static netchan_endpoint *server, *client;
static char *server_name;
static netchan_service *svc;

static void handle(void *context, const netchan_request *req, netchan_reply *reply) {
    server_ctx *sc = (server_ctx *)context;
    netchan_str path = netchan_request_path(req);
    netchan_slice p = netchan_request_payload(req);
    if (t_str_eq(path, "svc/echo")) {
        CHECK_OK(netchan_reply_send(reply, p.data, p.len));
        CHECK_RC(netchan_reply_send(reply, p.data, p.len), NETCHAN_RESULT_CLOSED);
        netchan_reply_free(reply);
    } else if (t_str_eq(path, "svc/fail")) {
        CHECK_RC(netchan_reply_fail(reply, 7, "x"), NETCHAN_RESULT_INVALID_ARGUMENT);
        CHECK_RC(netchan_reply_fail(reply, NETCHAN_RESULT_NULL_ARGUMENT, "x"), NETCHAN_RESULT_INVALID_ARGUMENT);
        CHECK_RC(netchan_reply_fail(reply, NETCHAN_RESULT_HANDLER_ERROR, "bad\xff"), NETCHAN_RESULT_INVALID_UTF8);
        CHECK_RC(netchan_reply_send(reply, NULL, 3), NETCHAN_RESULT_NULL_ARGUMENT);
        CHECK_OK(netchan_reply_fail(reply, NETCHAN_RESULT_HANDLER_ERROR, "nope"));
        CHECK_RC(netchan_reply_fail(reply, NETCHAN_RESULT_HANDLER_ERROR, "again"), NETCHAN_RESULT_CLOSED);
        netchan_reply_free(reply);
    } else if (t_str_eq(path, "svc/fail-null")) {
        CHECK_OK(netchan_reply_fail(reply, NETCHAN_RESULT_TIMEOUT, NULL)); /* detail may be NULL */
        netchan_reply_free(reply);
    } else if (t_str_eq(path, "svc/never")) {
        CHECK(netchan_request_remaining_ms(req) <= 200);
        if (sc->never) netchan_reply_free(sc->never);
        sc->never = reply;
    } else if (t_str_eq(path, "svc/dropped")) {
        netchan_reply_free(reply); /* unanswered: HANDLER_ERROR */
    } else {
        /* svc/later: answered from the worker thread. */
        pthread_mutex_lock(&sc->mu);
        if (sc->n < MAXQ && p.len <= 64) {
            memcpy(sc->data[sc->n], p.data, p.len);
            sc->len[sc->n] = p.len;
            sc->q[sc->n++] = reply;
            pthread_cond_signal(&sc->cv);
        } else {
            netchan_reply_free(reply);
        }
        pthread_mutex_unlock(&sc->mu);
    }
}

static void handler_drop(void *context) {
    server_ctx *sc = (server_ctx *)context;
    sc->drops++;
}

static void *worker(void *arg) {
    server_ctx *sc = (server_ctx *)arg;
    pthread_mutex_lock(&sc->mu);
    for (;;) {
        while (sc->n == 0 && !sc->stop) pthread_cond_wait(&sc->cv, &sc->mu);
        if (sc->n == 0 && sc->stop) break;
        netchan_reply *r = sc->q[--sc->n];
        char buf[80] = "later:";
        memcpy(buf + 6, sc->data[sc->n], sc->len[sc->n]);
        size_t len = 6 + sc->len[sc->n];
        pthread_mutex_unlock(&sc->mu);
        CHECK_OK(netchan_reply_send(r, (const uint8_t *)buf, len));
        netchan_reply_free(r);
        pthread_mutex_lock(&sc->mu);
    }
    pthread_mutex_unlock(&sc->mu);
    return NULL;
}

static void test_blocking_request_reply(void) {
    netchan_bytes *reply = NULL;
    CHECK_OK(netchan_endpoint_request_blocking(client, "svc/echo", (const uint8_t *)"hi", 2, 5000, &reply));
    CHECK(t_slice_eq(netchan_bytes_data(reply), "hi", 2));
    netchan_bytes_free(reply);
    /* An empty request and reply. */
    CHECK_OK(netchan_endpoint_request_blocking(client, "svc/echo", NULL, 0, 5000, &reply));
    CHECK(netchan_bytes_data(reply).len == 0);
    netchan_bytes_free(reply);
    /* The same service reached locally. */
    CHECK_OK(netchan_endpoint_request_blocking(server, "svc/echo", (const uint8_t *)"local", 5, 5000, &reply));
    CHECK(t_slice_eq(netchan_bytes_data(reply), "local", 5));
    netchan_bytes_free(reply);
}

static void test_busy_poll_client(void) {
    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    CHECK_OK(netchan_options_set_busy_poll_us(o, 200));
    netchan_endpoint *busy = NULL;
    CHECK_OK(netchan_endpoint_new(o, &busy));
    netchan_options_free(o);
    char *addr = NULL;
    CHECK_OK(netchan_endpoint_listen(server, "tcp://127.0.0.1:0", &addr));
    CHECK_OK(netchan_endpoint_connect(busy, addr, NULL));
    netchan_string_free(addr);
    for (int i = 0; i < 20; i++) {
        netchan_bytes *r = NULL;
        CHECK_OK(netchan_endpoint_request_blocking(busy, "svc/echo", (const uint8_t *)"busy", 4, 5000, &r));
        CHECK(t_slice_eq(netchan_bytes_data(r), "busy", 4));
        netchan_bytes_free(r);
    }
    CHECK_OK(netchan_endpoint_close(busy));
    netchan_endpoint_free(busy);
}

static void test_reply_later_from_another_thread(void) {
    netchan_bytes *reply = NULL;
    CHECK_OK(netchan_endpoint_request_blocking(client, "svc/later", (const uint8_t *)"abc", 3, 5000, &reply));
    CHECK(t_slice_eq(netchan_bytes_data(reply), "later:abc", 9));
    netchan_bytes_free(reply);
}

static void test_handler_failures(void) {
    netchan_bytes *reply = NULL;
    CHECK_RC(netchan_endpoint_request_blocking(client, "svc/fail", NULL, 0, 5000, &reply),
             NETCHAN_RESULT_HANDLER_ERROR);
    CHECK(strcmp(netchan_last_error(), "nope") == 0);
    CHECK_RC(netchan_endpoint_request_blocking(client, "svc/fail-null", NULL, 0, 5000, &reply),
             NETCHAN_RESULT_TIMEOUT);
    CHECK(strcmp(netchan_last_error(), "") == 0);
    CHECK_RC(netchan_endpoint_request_blocking(client, "svc/dropped", NULL, 0, 5000, &reply),
             NETCHAN_RESULT_HANDLER_ERROR);
    CHECK(reply == NULL);
}

static void test_request_timeout_and_no_responders(void) {
    netchan_bytes *reply = NULL;
    CHECK_RC(netchan_endpoint_request_blocking(client, "svc/never", NULL, 0, 150, &reply),
             NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_endpoint_request_blocking(client, "other/x", NULL, 0, 5000, &reply),
             NETCHAN_RESULT_NO_RESPONDERS);
    CHECK_RC(netchan_endpoint_request_blocking(client, "bad//path", NULL, 0, 5000, &reply),
             NETCHAN_RESULT_INVALID_PATH);
    CHECK(reply == NULL);
}

/* One context per request: counts its calls and checks the drop. */
typedef struct {
    int calls;
    netchan_result result;
    int reply_ok;
    int off_thread;
    int dropped_before_call;
    t_counter *done;
} req_ctx;

static void on_result(void *context, netchan_result r, const uint8_t *reply, size_t len,
                      const char *error) {
    req_ctx *c = (req_ctx *)context;
    c->calls++;
    c->result = r;
    if (!t_on_netchan_thread()) c->off_thread = 1;
    if (r == NETCHAN_RESULT_OK) {
        c->reply_ok = error == NULL && len == 9 && memcmp(reply, "later:abc", 9) == 0;
    } else {
        c->reply_ok = error != NULL && strlen(error) > 0 && reply == NULL && len == 0;
    }
}

static void on_result_drop(void *context) {
    req_ctx *c = (req_ctx *)context;
    if (c->calls == 0) c->dropped_before_call = 1;
    t_counter_add(c->done, 1);
}

static void test_callback_request_once_then_drop(void) {
    enum { K = 50 };
    static req_ctx ctx[K + 2];
    t_counter done;
    t_counter_init(&done);
    memset(ctx, 0, sizeof ctx);
    for (int i = 0; i < K + 2; i++) ctx[i].done = &done;
    for (int i = 0; i < K; i++) {
        netchan_result_callback rcb = {&ctx[i], on_result, on_result_drop};
        CHECK_OK(netchan_endpoint_request(client, "svc/later", (const uint8_t *)"abc", 3, 5000, rcb));
    }
    netchan_result_callback nr = {&ctx[K], on_result, on_result_drop};
    CHECK_OK(netchan_endpoint_request(client, "nobody/here", NULL, 0, 5000, nr));
    netchan_result_callback to = {&ctx[K + 1], on_result, on_result_drop};
    CHECK_OK(netchan_endpoint_request(client, "svc/never", NULL, 0, 100, to));
    /* Every drop came (each after its call): then no call can follow. */
    CHECK(t_counter_wait(&done, K + 2, 10000) == K + 2);
    for (int i = 0; i < K + 2; i++) {
        CHECK(ctx[i].calls == 1);
        CHECK(ctx[i].reply_ok);
        CHECK(!ctx[i].off_thread);
        CHECK(!ctx[i].dropped_before_call);
    }
    for (int i = 0; i < K; i++) CHECK(ctx[i].result == NETCHAN_RESULT_OK);
    CHECK(ctx[K].result == NETCHAN_RESULT_NO_RESPONDERS);
    CHECK(ctx[K + 1].result == NETCHAN_RESULT_TIMEOUT);
    t_counter_destroy(&done);
}

static void test_ping(void) {
    uint64_t rtt = 0;
    CHECK_OK(netchan_endpoint_ping(client, server_name, &rtt));
    CHECK(rtt > 0);
    CHECK_OK(netchan_endpoint_ping(client, server_name, NULL)); /* rtt_us may be NULL */
}

/* Handler calls of one service: one at a time, in arrival order. The first
 * call holds the service until the rest have arrived and queue up behind
 * it; a second call running meanwhile, or one out of order, fails. */
typedef struct {
    int running, overlapped, in_order, off_thread;
    long next;
    t_counter calls, entered;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int release;
} seq_ctx;

static void seq_handle(void *context, const netchan_request *req, netchan_reply *reply) {
    seq_ctx *c = (seq_ctx *)context;
    if (__atomic_add_fetch(&c->running, 1, __ATOMIC_SEQ_CST) != 1) c->overlapped = 1;
    if (!t_on_netchan_thread()) c->off_thread = 1;
    long v = -1;
    netchan_slice p = netchan_request_payload(req);
    if (p.len == sizeof v) memcpy(&v, p.data, sizeof v);
    if (v != c->next) c->in_order = 0;
    c->next = v + 1;
    t_counter_add(&c->entered, 1);
    if (v == 0) {
        struct timespec dl;
        clock_gettime(CLOCK_REALTIME, &dl);
        dl.tv_sec += 20;
        pthread_mutex_lock(&c->mu);
        while (!c->release && pthread_cond_timedwait(&c->cv, &c->mu, &dl) == 0) {
        }
        pthread_mutex_unlock(&c->mu);
    }
    CHECK_OK(netchan_reply_send(reply, NULL, 0));
    netchan_reply_free(reply);
    __atomic_sub_fetch(&c->running, 1, __ATOMIC_SEQ_CST);
    t_counter_add(&c->calls, 1);
}

typedef struct {
    int failed;
    t_counter done;
} results_ctx;

static void count_result(void *context, netchan_result r, const uint8_t *p, size_t n, const char *e) {
    (void)p; (void)n; (void)e;
    results_ctx *rc = (results_ctx *)context;
    if (r != NETCHAN_RESULT_OK) __atomic_add_fetch(&rc->failed, 1, __ATOMIC_SEQ_CST);
    t_counter_add(&rc->done, 1);
}

static uint64_t requests_in(netchan_endpoint *ep) {
    netchan_stats st;
    memset(&st, 0, sizeof st);
    CHECK_OK(netchan_endpoint_stats(ep, &st, sizeof st));
    return st.requests_in;
}

static void test_handler_calls_one_at_a_time_in_order(void) {
    enum { M = 20 };
    seq_ctx c;
    memset(&c, 0, sizeof c);
    c.in_order = 1;
    t_counter_init(&c.calls);
    t_counter_init(&c.entered);
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    netchan_request_handler h = {&c, seq_handle, NULL};
    netchan_service *seq = NULL;
    CHECK_OK(netchan_endpoint_serve(server, "seq/x", h, &seq));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "seq/x", 5000, &found));
    CHECK(found);
    static results_ctx results;
    results.failed = 0;
    t_counter_init(&results.done);
    uint64_t base = requests_in(server);
    for (long i = 0; i < M; i++) {
        netchan_result_callback rcb = {&results, count_result, NULL};
        CHECK_OK(netchan_endpoint_request(client, "seq/x", (const uint8_t *)&i, sizeof i, 20000, rcb));
        /* Send the next only once this one reached the server, so the
         * arrival order is the order of i. */
        if (i == 0) {
            CHECK(t_counter_wait(&c.entered, 1, 5000) == 1);
        } else {
            struct timespec t0, t1;
            clock_gettime(CLOCK_MONOTONIC, &t0);
            t1 = t0;
            while (requests_in(server) < base + (uint64_t)i + 1 && t1.tv_sec - t0.tv_sec < 10) {
                sched_yield();
                clock_gettime(CLOCK_MONOTONIC, &t1);
            }
            CHECK(requests_in(server) == base + (uint64_t)i + 1);
        }
    }
    /* All queued behind the first call, none started. */
    CHECK(t_counter_get(&c.entered) == 1);
    pthread_mutex_lock(&c.mu);
    c.release = 1;
    pthread_cond_broadcast(&c.cv);
    pthread_mutex_unlock(&c.mu);
    CHECK(t_counter_wait(&c.calls, M, 10000) == M);
    CHECK(c.in_order);
    CHECK(!c.overlapped);
    CHECK(!c.off_thread);
    CHECK(t_counter_wait(&results.done, M, 10000) == M);
    CHECK(results.failed == 0);
    netchan_service_free(seq);
    t_counter_destroy(&results.done);
    t_counter_destroy(&c.calls);
    t_counter_destroy(&c.entered);
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
}

static void test_reply_after_caller_gave_up_is_discarded(void) {
    /* svc/never kept its last reply; its caller timed out long ago. */
    CHECK(s.never != NULL);
    if (s.never) {
        CHECK_OK(netchan_reply_send(s.never, NULL, 0));
        netchan_reply_free(s.never);
        s.never = NULL;
    }
    /* The link is unharmed. */
    netchan_bytes *reply = NULL;
    CHECK_OK(netchan_endpoint_request_blocking(client, "svc/echo", (const uint8_t *)"x", 1, 5000, &reply));
    netchan_bytes_free(reply);
}

static void test_service_free_runs_drop_before_return(void) {
    CHECK(t_str_eq(netchan_service_pattern(svc), "svc/*"));
    CHECK(s.drops == 0);
    netchan_service_free(svc);
    CHECK(s.drops == 1);
    netchan_bytes *reply = NULL;
    CHECK_RC(netchan_endpoint_request_blocking(server, "svc/echo", NULL, 0, 300, &reply),
             NETCHAN_RESULT_NO_RESPONDERS);
}

/* Keeps the reply it gets. */
typedef struct {
    netchan_reply *reply;
    t_counter got;
} kept_reply;

static void keep_reply(void *context, const netchan_request *req, netchan_reply *reply) {
    (void)req;
    kept_reply *k = (kept_reply *)context;
    k->reply = reply;
    t_counter_add(&k->got, 1);
}

typedef struct {
    netchan_result result;
    t_counter done;
} one_result;

static void store_result(void *context, netchan_result r, const uint8_t *p, size_t n, const char *e) {
    (void)p; (void)n; (void)e;
    one_result *o = (one_result *)context;
    o->result = r;
    t_counter_add(&o->done, 1);
}

static void test_handles_outlive_their_endpoint(void) {
    netchan_endpoint *a = NULL, *b = NULL;
    t_pair(&a, &b, NULL);
    static kept_reply kept;
    kept.reply = NULL;
    t_counter_init(&kept.got);
    netchan_request_handler h = {&kept, keep_reply, NULL};
    netchan_service *keep = NULL;
    CHECK_OK(netchan_endpoint_serve(a, "keep", h, &keep));
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(a, "keep/sub", NULL, &sub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(b, "keep", 5000, &found));
    one_result o;
    o.result = NETCHAN_RESULT_OK;
    t_counter_init(&o.done);
    netchan_result_callback rcb = {&o, store_result, NULL};
    CHECK_OK(netchan_endpoint_request(b, "keep", NULL, 0, 5000, rcb));
    CHECK(t_counter_wait(&kept.got, 1, 5000) == 1);
    /* The endpoint goes first; its handles stay valid. */
    netchan_endpoint_free(a);
    netchan_message *m = NULL;
    CHECK_RC(netchan_subscription_recv(sub, 1000, &m), NETCHAN_RESULT_CLOSED);
    CHECK_RC(netchan_subscription_try_recv(sub, &m), NETCHAN_RESULT_CLOSED);
    CHECK(t_str_eq(netchan_service_pattern(keep), "keep"));
    /* The caller learnt its server went away; a late answer is discarded. */
    CHECK(t_counter_wait(&o.done, 1, 5000) == 1);
    CHECK(o.result == NETCHAN_RESULT_PEER_LOST);
    CHECK_OK(netchan_reply_send(kept.reply, (const uint8_t *)"late", 4));
    CHECK_RC(netchan_reply_send(kept.reply, (const uint8_t *)"late", 4), NETCHAN_RESULT_CLOSED);
    netchan_reply_free(kept.reply);
    netchan_service_free(keep);
    netchan_subscription_free(sub);
    CHECK(t_counter_get(&o.done) == 1);
    netchan_endpoint_free(b);
    t_counter_destroy(&o.done);
    t_counter_destroy(&kept.got);
}

/* Bounds of a service (issue 16): at most max_concurrent requests in the
 * handler's hands (from its call until answered), queue waiting, the rest
 * refused at once with BUFFER_FULL and counted. */
#define BMAX 16
typedef struct {
    pthread_mutex_t mu;
    netchan_reply *kept[BMAX];
    int n;
    t_counter got;
} bounded_ctx;

static void keep_bounded(void *context, const netchan_request *req, netchan_reply *reply) {
    (void)req;
    bounded_ctx *b = (bounded_ctx *)context;
    pthread_mutex_lock(&b->mu);
    if (b->n < BMAX) b->kept[b->n++] = reply;
    pthread_mutex_unlock(&b->mu);
    t_counter_add(&b->got, 1);
}

typedef struct {
    netchan_result result[BMAX];
    int n;
    pthread_mutex_t mu;
    t_counter done;
} bounded_results;

static void add_result(void *context, netchan_result r, const uint8_t *p, size_t n, const char *e) {
    (void)p; (void)n; (void)e;
    bounded_results *c = (bounded_results *)context;
    pthread_mutex_lock(&c->mu);
    if (c->n < BMAX) c->result[c->n++] = r;
    pthread_mutex_unlock(&c->mu);
    t_counter_add(&c->done, 1);
}

static void answer_kept(bounded_ctx *b, int from, int to) {
    for (int i = from; i < to; i++) {
        pthread_mutex_lock(&b->mu);
        netchan_reply *r = b->kept[i];
        pthread_mutex_unlock(&b->mu);
        CHECK_OK(netchan_reply_send(r, (const uint8_t *)"ok", 2));
        netchan_reply_free(r);
    }
}

static void test_serve_with_bounds(void) {
    netchan_endpoint *a = NULL, *b = NULL;
    t_pair(&a, &b, NULL);
    static bounded_ctx bc;
    memset(&bc, 0, sizeof bc);
    pthread_mutex_init(&bc.mu, NULL);
    t_counter_init(&bc.got);
    static bounded_results rc;
    memset(&rc, 0, sizeof rc);
    pthread_mutex_init(&rc.mu, NULL);
    t_counter_init(&rc.done);
    netchan_request_handler h = {&bc, keep_bounded, NULL};
    netchan_service *bounded = NULL;
    CHECK_OK(netchan_endpoint_serve_with(a, "bounded", 2, 3, h, &bounded));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(b, "bounded", 5000, &found));
    CHECK(found);
    netchan_result_callback cb = {&rc, add_result, NULL};
    for (int i = 0; i < 2; i++)
        CHECK_OK(netchan_endpoint_request(b, "bounded", NULL, 0, 5000, cb));
    CHECK(t_counter_wait(&bc.got, 2, 5000) == 2);
    for (int i = 0; i < 8; i++)
        CHECK_OK(netchan_endpoint_request(b, "bounded", NULL, 0, 5000, cb));
    /* Three wait, five are refused at once; the handler gets no third. */
    CHECK(t_counter_wait(&rc.done, 5, 5000) == 5);
    for (int i = 0; i < 5; i++) CHECK(rc.result[i] == NETCHAN_RESULT_BUFFER_FULL);
    CHECK(t_counter_get(&bc.got) == 2);
    answer_kept(&bc, 0, 2);
    CHECK(t_counter_wait(&bc.got, 4, 5000) == 4);
    answer_kept(&bc, 2, 4);
    CHECK(t_counter_wait(&bc.got, 5, 5000) == 5);
    answer_kept(&bc, 4, 5);
    CHECK(t_counter_wait(&rc.done, 10, 5000) == 10);
    for (int i = 5; i < 10; i++) CHECK(rc.result[i] == NETCHAN_RESULT_OK);
    netchan_stats st;
    memset(&st, 0, sizeof st);
    CHECK_OK(netchan_endpoint_stats(a, &st, sizeof st));
    CHECK(st.requests_refused == 5);
    netchan_service_free(bounded);
    netchan_endpoint_free(b);
    netchan_endpoint_free(a);
    t_counter_destroy(&rc.done);
    t_counter_destroy(&bc.got);
}

int main(void) {
    t_watchdog(120);
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    pthread_t th;
    pthread_create(&th, NULL, worker, &s);
    t_pair(&server, &client, &server_name);
    netchan_request_handler h = {&s, handle, handler_drop};
    CHECK_OK(netchan_endpoint_serve(server, "svc/*", h, &svc));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "svc/echo", 5000, &found));
    CHECK(found);

    T_RUN(test_blocking_request_reply);
    T_RUN(test_busy_poll_client);
    T_RUN(test_reply_later_from_another_thread);
    T_RUN(test_handler_failures);
    T_RUN(test_request_timeout_and_no_responders);
    T_RUN(test_callback_request_once_then_drop);
    T_RUN(test_ping);
    T_RUN(test_handler_calls_one_at_a_time_in_order);
    T_RUN(test_reply_after_caller_gave_up_is_discarded);
    T_RUN(test_service_free_runs_drop_before_return);
    T_RUN(test_handles_outlive_their_endpoint);
    T_RUN(test_serve_with_bounds);

    pthread_mutex_lock(&s.mu);
    s.stop = 1;
    pthread_cond_signal(&s.cv);
    pthread_mutex_unlock(&s.mu);
    pthread_join(th, NULL);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    netchan_string_free(server_name);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    return t_finish("test_api_reqrep");
}
