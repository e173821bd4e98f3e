/* Requests in flight when their endpoint goes away, and handles that
 * outlive netchan_runtime_shutdown():
 * - freeing the endpoint: each pending request to a peer has its result
 *   callback run exactly once with CLOSED, then its drop; a request to a
 *   service of the same endpoint still gets its handler's answer;
 * - netchan_runtime_shutdown(): each runs exactly once with CANCELLED before
 *   shutdown returns, then its drop;
 * - after netchan_runtime_shutdown(), every function on a surviving handle returns
 *   CLOSED (a pull subscription first hands out what it had queued), no
 *   callback runs again, each drop runs once by the time its handle is
 *   freed, and a new endpoint starts a fresh runtime. */
#include "testutil.h"

#define K 20

typedef struct {
    pthread_mutex_t mu;
    netchan_reply *kept[K];
    int n;
    t_counter received;
} server_ctx;

/* Keeps every reply unanswered, so the requests stay in flight. */
static void keep(void *context, const netchan_request *req, netchan_reply *reply) {
    (void)req;
    server_ctx *s = (server_ctx *)context;
    pthread_mutex_lock(&s->mu);
    if (s->n < K) s->kept[s->n++] = reply;
    else netchan_reply_free(reply);
    pthread_mutex_unlock(&s->mu);
    t_counter_add(&s->received, 1);
}

static void server_init(server_ctx *s) {
    memset(s, 0, sizeof *s);
    pthread_mutex_init(&s->mu, NULL);
    t_counter_init(&s->received);
}

static void server_destroy(server_ctx *s) {
    for (int i = 0; i < s->n; i++) netchan_reply_free(s->kept[i]);
    t_counter_destroy(&s->received);
    pthread_mutex_destroy(&s->mu);
}

/* One context per request. */
typedef struct {
    int calls;
    netchan_result result;
    int error_ok;
    int dropped_before_call;
    t_counter *drops;
} req_ctx;

static void on_result(void *context, netchan_result r, const uint8_t *p, size_t n, const char *error) {
    req_ctx *c = (req_ctx *)context;
    c->result = r;
    c->error_ok = p == NULL && n == 0 && error != NULL && strlen(error) > 0;
    __atomic_add_fetch(&c->calls, 1, __ATOMIC_SEQ_CST);
}

static void on_drop(void *context) {
    req_ctx *c = (req_ctx *)context;
    if (c->calls == 0) c->dropped_before_call = 1;
    t_counter_add(c->drops, 1);
}

/* Sends K requests that the server keeps; returns once all arrived. */
static void send_k(netchan_endpoint *client, server_ctx *s, req_ctx ctx[K], t_counter *drops) {
    for (int i = 0; i < K; i++) {
        memset(&ctx[i], 0, sizeof ctx[i]);
        ctx[i].drops = drops;
        netchan_result_callback cb = {&ctx[i], on_result, on_drop};
        CHECK_OK(netchan_endpoint_request(client, "slow/x", NULL, 0, 60000, cb));
    }
    CHECK(t_counter_wait(&s->received, K, 5000) == K);
}

static void check_all(req_ctx ctx[K], netchan_result want) {
    int ok = 1;
    for (int i = 0; i < K; i++) {
        if (ctx[i].calls != 1 || ctx[i].result != want || !ctx[i].error_ok || ctx[i].dropped_before_call) {
            fprintf(stderr, "request %d: %d call(s), result %s, error ok %d, dropped before call %d\n", i,
                    ctx[i].calls, netchan_result_name(ctx[i].result), ctx[i].error_ok,
                    ctx[i].dropped_before_call);
            ok = 0;
        }
    }
    CHECK(ok);
}

static void test_free_endpoint_with_requests_in_flight(void) {
    server_ctx s;
    server_init(&s);
    netchan_endpoint *server = NULL, *client = NULL;
    t_pair(&server, &client, NULL);
    netchan_request_handler h = {&s, keep, NULL};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(server, "slow/*", h, &svc));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "slow/x", 5000, &found));
    static req_ctx ctx[K];
    t_counter drops;
    t_counter_init(&drops);
    send_k(client, &s, ctx, &drops);
    for (int i = 0; i < K; i++) CHECK(ctx[i].calls == 0);
    netchan_endpoint_free(client);
    CHECK(t_counter_wait(&drops, K, 5000) == K);
    check_all(ctx, NETCHAN_RESULT_CLOSED);
    netchan_service_free(svc);
    netchan_endpoint_free(server);
    server_destroy(&s);
    t_counter_destroy(&drops);
}

static void test_shutdown_with_requests_in_flight(void) {
    server_ctx s;
    server_init(&s);
    netchan_endpoint *server = NULL, *client = NULL;
    t_pair(&server, &client, NULL);
    netchan_request_handler h = {&s, keep, NULL};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(server, "slow/*", h, &svc));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "slow/x", 5000, &found));
    static req_ctx ctx[K];
    t_counter drops;
    t_counter_init(&drops);
    send_k(client, &s, ctx, &drops);
    CHECK_OK(netchan_runtime_shutdown(5000));
    /* Every callback and drop ran before shutdown returned. */
    CHECK(t_counter_get(&drops) == K);
    check_all(ctx, NETCHAN_RESULT_CANCELLED);
    /* Handles outlive the runtime; freeing them is still fine. */
    netchan_service_free(svc);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    server_destroy(&s);
    t_counter_destroy(&drops);
}

/* A request to a service of the requesting endpoint itself ends with
 * CLOSED when that endpoint is freed, as a request to a peer does, even
 * while its handler holds the reply; the handler's late answer goes
 * nowhere. */
typedef struct {
    netchan_reply *kept;
    t_counter kept_n, done;
    netchan_result result;
    int reply_ok;
} local_ctx;

static void keep_local(void *context, const netchan_request *req, netchan_reply *reply) {
    (void)req;
    local_ctx *l = (local_ctx *)context;
    l->kept = reply;
    t_counter_add(&l->kept_n, 1);
}

static void local_result(void *context, netchan_result r, const uint8_t *p, size_t n, const char *e) {
    local_ctx *l = (local_ctx *)context;
    l->result = r;
    l->reply_ok = r == NETCHAN_RESULT_OK && e == NULL && n == 4 && memcmp(p, "late", 4) == 0;
    t_counter_add(&l->done, 1);
}

static void test_local_request_fails_closed_with_its_endpoint(void) {
    static local_ctx l;
    memset(&l, 0, sizeof l);
    t_counter_init(&l.kept_n);
    t_counter_init(&l.done);
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    netchan_request_handler h = {&l, keep_local, NULL};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(ep, "local/svc", h, &svc));
    netchan_result_callback cb = {&l, local_result, NULL};
    CHECK_OK(netchan_endpoint_request(ep, "local/svc", NULL, 0, 60000, cb));
    CHECK(t_counter_wait(&l.kept_n, 1, 5000) == 1);
    netchan_endpoint_free(ep);
    /* Ended by the free, not by the 60 s deadline nor by the answer. */
    CHECK(t_counter_wait(&l.done, 1, 5000) == 1);
    CHECK(l.result == NETCHAN_RESULT_CLOSED);
    CHECK_OK(netchan_reply_send(l.kept, (const uint8_t *)"late", 4));
    /* The late answer runs no second callback. */
    CHECK(t_counter_wait(&l.done, 2, 200) == 1);
    netchan_reply_free(l.kept);
    netchan_service_free(svc);
    t_counter_destroy(&l.kept_n);
    t_counter_destroy(&l.done);
}

/* A request answered while netchan_runtime_shutdown() is stopping the runtime: a
 * callback that is running when shutdown starts waits until shutdown has
 * begun (its endpoint starts answering CLOSED), then answers a request that
 * its handler kept. The worker that runs the callback has not stopped yet,
 * so it goes on to finish that request with the reply; the caller must
 * still see CANCELLED, as for every request in flight when shutdown was
 * called. A second callback holds the runtime's other worker until the
 * request's outcome is decided, so that worker cannot cancel the request
 * first. (If both callbacks were queued on one worker, the holder lets go
 * so the other can run; with more than two workers an idle one may cancel
 * the request first. Either way the caller must see CANCELLED: the test
 * then only shows the race less often.) */
typedef struct {
    netchan_endpoint *ep;
    netchan_reply *kept;
    t_counter kept_n, started;
    int trigger_running;
    int saw_closed;
    netchan_result answered;
    int *decided; /* the request's result callback ran */
} race_ctx;

/* Spins (never sleeps) until *flag, at most `ms` milliseconds. */
static int spin_until(int *flag, long ms) {
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    t1 = t0;
    while (!__atomic_load_n(flag, __ATOMIC_SEQ_CST) &&
           (t1.tv_sec - t0.tv_sec) * 1000 + (t1.tv_nsec - t0.tv_nsec) / 1000000 < ms) {
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t1);
    }
    return __atomic_load_n(flag, __ATOMIC_SEQ_CST);
}

static void hold_a_worker(void *context, const netchan_message *m) {
    (void)m;
    race_ctx *r = (race_ctx *)context;
    /* The other callback runs on another worker: hold this one. */
    if (spin_until(&r->trigger_running, 500)) spin_until(r->decided, 20000);
}

static void keep_one(void *context, const netchan_request *req, netchan_reply *reply) {
    (void)req;
    race_ctx *r = (race_ctx *)context;
    r->kept = reply;
    t_counter_add(&r->kept_n, 1);
}

static void answer_during_shutdown(void *context, const netchan_message *m) {
    (void)m;
    race_ctx *r = (race_ctx *)context;
    __atomic_store_n(&r->trigger_running, 1, __ATOMIC_SEQ_CST);
    t_counter_add(&r->started, 1);
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    t1 = t0;
    while (t1.tv_sec - t0.tv_sec < 20) {
        if (netchan_endpoint_try_publish(r->ep, "race/nobody", NULL, 0) == NETCHAN_RESULT_CLOSED) {
            r->saw_closed = 1;
            break;
        }
        sched_yield();
        clock_gettime(CLOCK_MONOTONIC, &t1);
    }
    r->answered = netchan_reply_send(r->kept, (const uint8_t *)"late", 4);
}

static void test_request_answered_during_shutdown_is_cancelled(void) {
    static race_ctx r;
    memset(&r, 0, sizeof r);
    t_counter_init(&r.kept_n);
    t_counter_init(&r.started);
    r.answered = NETCHAN_RESULT_INTERNAL;
    CHECK_OK(netchan_endpoint_new(NULL, &r.ep));
    netchan_request_handler h = {&r, keep_one, NULL};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(r.ep, "race/svc", h, &svc));
    netchan_message_callback mcb = {&r, answer_during_shutdown, NULL};
    netchan_message_callback hcb = {&r, hold_a_worker, NULL};
    netchan_subscription *trigger = NULL, *hold = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(r.ep, "race/trigger", NULL, mcb, &trigger));
    CHECK_OK(netchan_endpoint_subscribe_callback(r.ep, "race/hold", NULL, hcb, &hold));
    static req_ctx ctx;
    t_counter drops;
    t_counter_init(&drops);
    memset(&ctx, 0, sizeof ctx);
    ctx.drops = &drops;
    r.decided = &ctx.calls;
    netchan_result_callback cb = {&ctx, on_result, on_drop};
    CHECK_OK(netchan_endpoint_request(r.ep, "race/svc", NULL, 0, 60000, cb));
    CHECK(t_counter_wait(&r.kept_n, 1, 5000) == 1);
    CHECK_OK(netchan_endpoint_publish(r.ep, "race/hold", NULL, 0));
    CHECK_OK(netchan_endpoint_publish(r.ep, "race/trigger", NULL, 0));
    CHECK(t_counter_wait(&r.started, 1, 5000) == 1);
    CHECK_OK(netchan_runtime_shutdown(30000));
    CHECK(r.saw_closed);
    CHECK(r.answered == NETCHAN_RESULT_OK);
    CHECK(t_counter_get(&drops) == 1);
    CHECK(ctx.calls == 1 && !ctx.dropped_before_call);
    if (ctx.result != NETCHAN_RESULT_CANCELLED)
        fprintf(stderr, "the request finished during shutdown with %s\n", netchan_result_name(ctx.result));
    CHECK(ctx.result == NETCHAN_RESULT_CANCELLED && ctx.error_ok);
    netchan_reply_free(r.kept);
    netchan_subscription_free(hold);
    netchan_subscription_free(trigger);
    netchan_service_free(svc);
    netchan_endpoint_free(r.ep);
    t_counter_destroy(&drops);
    t_counter_destroy(&r.kept_n);
    t_counter_destroy(&r.started);
}

static void never_msg(void *ctx, const netchan_message *m) { (void)ctx; (void)m; }
static void never_req(void *ctx, const netchan_request *q, netchan_reply *r) { (void)ctx; (void)q; (void)r; }
static void never_event(void *ctx, const netchan_event *e) { (void)ctx; (void)e; }
static void count_drop(void *ctx) { t_counter_add((t_counter *)ctx, 1); }

typedef struct {
    int calls;
    t_counter drops;
} refused_ctx;
static void refused_call(void *ctx, netchan_result r, const uint8_t *p, size_t n, const char *e) {
    (void)r; (void)p; (void)n; (void)e;
    __atomic_add_fetch(&((refused_ctx *)ctx)->calls, 1, __ATOMIC_SEQ_CST);
}
static void refused_drop(void *ctx) { t_counter_add(&((refused_ctx *)ctx)->drops, 1); }

static void test_handles_after_shutdown(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    netchan_subscription *pull = NULL, *cb = NULL;
    netchan_service *svc = NULL;
    netchan_event_listener *l = NULL;
    t_counter drops;
    t_counter_init(&drops);
    netchan_message_callback mcb = {&drops, never_msg, count_drop};
    netchan_request_handler h = {&drops, never_req, count_drop};
    netchan_event_callback ecb = {&drops, never_event, count_drop};
    CHECK_OK(netchan_endpoint_subscribe(server, "left/*", NULL, &pull));
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "cb/*", NULL, mcb, &cb));
    CHECK_OK(netchan_endpoint_serve(server, "svc", h, &svc));
    CHECK_OK(netchan_endpoint_on_event(server, ecb, &l));
    CHECK_OK(netchan_endpoint_publish(server, "left/a", (const uint8_t *)"queued", 6));

    CHECK_OK(netchan_runtime_shutdown(5000));

    const netchan_result C = NETCHAN_RESULT_CLOSED;
    netchan_bytes *b = NULL;
    netchan_message *m = NULL;
    netchan_subscription *s2 = NULL;
    netchan_service *svc2 = NULL;
    netchan_event_listener *l2 = NULL;
    bool found = false;
    uint64_t rtt = 0;
    refused_ctx refused;
    memset(&refused, 0, sizeof refused);
    t_counter_init(&refused.drops);
    CHECK_RC(netchan_endpoint_listen(client, "tcp://127.0.0.1:0", NULL), C);
    CHECK(strcmp(netchan_last_error(), "netchan_runtime_shutdown() stopped the runtime this handle ran on") == 0);
    CHECK_RC(netchan_endpoint_connect(client, "tcp://127.0.0.1:1", NULL), C);
    CHECK_RC(netchan_endpoint_publish(client, "left/a", (const uint8_t *)"x", 1), C);
    CHECK_RC(netchan_endpoint_try_publish(client, "left/a", (const uint8_t *)"x", 1), C);
    CHECK_RC(netchan_endpoint_request_blocking(client, "svc", NULL, 0, 100, &b), C);
    /* A refused request: call never runs, drop before the return. */
    netchan_result_callback rcb = {&refused, refused_call, refused_drop};
    CHECK_RC(netchan_endpoint_request(client, "svc", NULL, 0, 100, rcb), C);
    CHECK(t_counter_get(&refused.drops) == 1);
    CHECK_RC(netchan_endpoint_ping(client, server_name, &rtt), C);
    CHECK_RC(netchan_endpoint_wait_for_subscribers(client, "left/a", 100, &found), C);
    CHECK_RC(netchan_endpoint_wait_for_servers(client, "svc", 100, &found), C);
    CHECK_RC(netchan_endpoint_subscribe(client, "x", NULL, &s2), C);
    CHECK_RC(netchan_endpoint_subscribe_callback(client, "x", NULL, mcb, &s2), C);
    CHECK_RC(netchan_endpoint_serve(client, "x", h, &svc2), C);
    CHECK_RC(netchan_endpoint_on_event(client, ecb, &l2), C);
    CHECK(b == NULL && s2 == NULL && svc2 == NULL && l2 == NULL && rtt == 0);
    /* The three callbacks refused just now were dropped at once. */
    CHECK(t_counter_get(&drops) == 3);
    /* What the pull subscription had queued, then CLOSED (never a wait on
     * the stopped runtime). */
    CHECK_OK(netchan_subscription_recv(pull, -1, &m));
    CHECK(t_slice_eq(netchan_message_payload(m), "queued", 6));
    netchan_message_free(m);
    CHECK_RC(netchan_subscription_recv(pull, -1, &m), C);
    CHECK_RC(netchan_subscription_try_recv(pull, &m), C);
    /* What still works: names, stats, patterns, close, free. */
    CHECK(strlen(netchan_endpoint_name(client)) > 0);
    netchan_stats st;
    CHECK_OK(netchan_endpoint_stats(server, &st, sizeof st));
    CHECK(t_str_eq(netchan_subscription_pattern(pull), "left/*"));
    CHECK(t_str_eq(netchan_service_pattern(svc), "svc"));
    CHECK_OK(netchan_endpoint_close(client));
    CHECK_OK(netchan_subscription_close(pull));
    /* Each drop of the callbacks registered before the shutdown has run
     * once by the time its handle is freed. */
    netchan_subscription_free(cb);
    netchan_service_free(svc);
    netchan_event_listener_free(l);
    CHECK(t_counter_get(&drops) == 6);
    netchan_subscription_free(pull);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    netchan_string_free(server_name);
    CHECK(refused.calls == 0 && t_counter_get(&refused.drops) == 1);
    CHECK(t_counter_get(&drops) == 6);

    /* A new endpoint starts a fresh runtime. */
    netchan_endpoint *a = NULL, *z = NULL;
    t_pair(&a, &z, NULL);
    netchan_subscription *fresh = NULL;
    CHECK_OK(netchan_endpoint_subscribe(a, "fresh", NULL, &fresh));
    CHECK_OK(netchan_endpoint_wait_for_subscribers(z, "fresh", 5000, &found));
    CHECK(found);
    CHECK_OK(netchan_endpoint_publish(z, "fresh", (const uint8_t *)"new", 3));
    CHECK_OK(netchan_subscription_recv(fresh, 5000, &m));
    CHECK(t_slice_eq(netchan_message_payload(m), "new", 3));
    netchan_message_free(m);
    netchan_subscription_free(fresh);
    netchan_endpoint_free(z);
    netchan_endpoint_free(a);
    t_counter_destroy(&refused.drops);
    t_counter_destroy(&drops);
}

int main(void) {
    t_watchdog(120);
    T_RUN(test_free_endpoint_with_requests_in_flight);
    T_RUN(test_local_request_fails_closed_with_its_endpoint);
    T_RUN(test_shutdown_with_requests_in_flight);
    T_RUN(test_request_answered_during_shutdown_is_cancelled);
    T_RUN(test_handles_after_shutdown);
    return t_finish("test_int_inflight");
}
