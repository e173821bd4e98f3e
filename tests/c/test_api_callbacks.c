/* Callback guarantees: drop exactly once after the last call, no call after
 * drop, freeing any handle from inside any callback (its own subscription,
 * its own service, the endpoint), two callbacks freeing each other's
 * subscriptions, a free from a plain thread waiting for a running call,
 * blocking calls from callbacks returning WOULD_DEADLOCK while
 * non-blocking ones work, publish never waiting inside a callback, closing
 * the endpoint dropping every callback, and the event callback. */
#include "testutil.h"

static netchan_endpoint *server, *client;
static char *server_name;

typedef struct {
    netchan_endpoint *ep;
    netchan_subscription *self;   /* freed from inside its own callback */
    netchan_subscription *other;  /* a pull subscription to try recv on */
    netchan_subscription *victim; /* freed by this callback (cross-free) */
    t_counter calls;
    t_counter drops;
    int dropped_flag;
    int call_after_drop;
    int deadlock_checks;
    int free_endpoint;
    int in_call;       /* a call is running now */
    int off_thread;    /* a call ran on a thread that is not netchan's */
    t_counter results; /* result callbacks of requests made in a call */
} cb_ctx;

static void ctx_init(cb_ctx *c) {
    memset(c, 0, sizeof *c);
    t_counter_init(&c->calls);
    t_counter_init(&c->drops);
    t_counter_init(&c->results);
}

static void ctx_destroy(cb_ctx *c) {
    t_counter_destroy(&c->calls);
    t_counter_destroy(&c->drops);
    t_counter_destroy(&c->results);
}

static t_counter all_drops; /* every on_drop, of every context */

static void on_drop(void *context) {
    cb_ctx *c = (cb_ctx *)context;
    t_counter_add(&all_drops, 1);
    __atomic_store_n(&c->dropped_flag, 1, __ATOMIC_SEQ_CST);
    t_counter_add(&c->drops, 1);
}

/* Frees its own subscription on the first message. */
static void free_self(void *context, const netchan_message *m) {
    (void)m;
    cb_ctx *c = (cb_ctx *)context;
    if (__atomic_load_n(&c->dropped_flag, __ATOMIC_SEQ_CST)) c->call_after_drop = 1;
    netchan_subscription *s = __atomic_exchange_n(&c->self, (netchan_subscription *)NULL, __ATOMIC_SEQ_CST);
    netchan_subscription_free(s);
    /* Freed from inside its own call: drop waits for the call to return. */
    if (__atomic_load_n(&c->dropped_flag, __ATOMIC_SEQ_CST)) c->call_after_drop = 1;
    t_counter_add(&c->calls, 1);
}

static void test_free_subscription_inside_own_callback(void) {
    cb_ctx a;
    ctx_init(&a);
    netchan_message_callback acb = {&a, free_self, on_drop};
    netchan_subscription *asub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "self/x", NULL, acb, &asub));
    __atomic_store_n(&a.self, asub, __ATOMIC_SEQ_CST);
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "self/x", 5000, &found));
    for (int i = 0; i < 100; i++)
        CHECK_OK(netchan_endpoint_publish(client, "self/x", (const uint8_t *)"m", 1));
    CHECK(t_counter_wait(&a.drops, 1, 5000) == 1);
    /* One call, then drop once, after that call; nothing after it. */
    CHECK(t_counter_get(&a.calls) == 1);
    CHECK(!a.call_after_drop);
    /* A round trip on the same link: later messages had their chance. */
    netchan_bytes *b = NULL;
    CHECK_RC(netchan_endpoint_request_blocking(client, "nobody", NULL, 0, 1000, &b), NETCHAN_RESULT_NO_RESPONDERS);
    CHECK(t_counter_get(&a.calls) == 1 && t_counter_get(&a.drops) == 1);
    ctx_destroy(&a);
}

static void count_result(void *context, netchan_result r, const uint8_t *p, size_t n, const char *e) {
    (void)p; (void)n; (void)e;
    cb_ctx *c = (cb_ctx *)context;
    if (r == NETCHAN_RESULT_NO_RESPONDERS) t_counter_add(&c->results, 1);
}

static void never_msg(void *ctx, const netchan_message *m) { (void)ctx; (void)m; }

/* Tries every blocking function: each must refuse with WOULD_DEADLOCK; the
 * non-blocking ones work. */
static void try_blocking(void *context, const netchan_message *m) {
    (void)m;
    cb_ctx *c = (cb_ctx *)context;
    if (!t_on_netchan_thread()) c->off_thread = 1;
    netchan_message *got = NULL;
    netchan_bytes *reply = NULL;
    bool found = false;
    const netchan_result WD = NETCHAN_RESULT_WOULD_DEADLOCK;
    CHECK_RC(netchan_subscription_recv(c->other, 10, &got), WD);
    CHECK_RC(netchan_endpoint_request_blocking(c->ep, "x/y", NULL, 0, 100, &reply), WD);
    CHECK_RC(netchan_endpoint_listen(c->ep, "tcp://127.0.0.1:0", NULL), WD);
    CHECK_RC(netchan_endpoint_connect(c->ep, "tcp://127.0.0.1:1", NULL), WD);
    CHECK_RC(netchan_endpoint_ping(c->ep, "x", NULL), WD);
    CHECK_RC(netchan_endpoint_wait_for_subscribers(c->ep, "x", 10, &found), WD);
    CHECK_RC(netchan_endpoint_wait_for_servers(c->ep, "x", 10, &found), WD);
    CHECK_RC(netchan_runtime_shutdown(10), WD);
    /* Non-blocking ones work: publish does not wait inside callbacks. */
    CHECK_OK(netchan_endpoint_publish(c->ep, "echo/back", (const uint8_t *)"e", 1));
    CHECK_OK(netchan_endpoint_try_publish(c->ep, "echo/back", (const uint8_t *)"f", 1));
    CHECK_RC(netchan_subscription_try_recv(c->other, &got), NETCHAN_RESULT_EMPTY);
    netchan_result_callback rcb = {c, count_result, NULL};
    CHECK_OK(netchan_endpoint_request(c->ep, "nobody/here", NULL, 0, 1000, rcb));
    netchan_subscription *s = NULL;
    netchan_message_callback mcb = {NULL, never_msg, NULL};
    CHECK_OK(netchan_endpoint_subscribe_callback(c->ep, "made/in/callback", NULL, mcb, &s));
    netchan_subscription_free(s);
    netchan_stats st;
    CHECK_OK(netchan_endpoint_stats(c->ep, &st, sizeof st));
    c->deadlock_checks++;
    t_counter_add(&c->calls, 1);
}

static void test_blocking_calls_in_callback_would_deadlock(void) {
    cb_ctx b;
    ctx_init(&b);
    b.ep = server;
    CHECK_OK(netchan_endpoint_subscribe(server, "other/q", NULL, &b.other));
    netchan_message_callback bcb = {&b, try_blocking, on_drop};
    netchan_subscription *bsub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "block/x", NULL, bcb, &bsub));
    netchan_subscription *echo = NULL;
    CHECK_OK(netchan_endpoint_subscribe(client, "echo/back", NULL, &echo));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "block/x", 5000, &found));
    CHECK_OK(netchan_endpoint_wait_for_subscribers(server, "echo/back", 5000, &found));
    CHECK_OK(netchan_endpoint_publish(client, "block/x", (const uint8_t *)"m", 1));
    CHECK(t_counter_wait(&b.calls, 1, 5000) == 1);
    CHECK(b.deadlock_checks == 1);
    CHECK(!b.off_thread);
    /* The request made from the callback got its result. */
    CHECK(t_counter_wait(&b.results, 1, 5000) == 1);
    /* Both publishes made from the callback arrived. */
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_recv(echo, 5000, &m));
    CHECK(t_slice_eq(netchan_message_payload(m), "e", 1));
    netchan_message_free(m);
    CHECK_OK(netchan_subscription_recv(echo, 5000, &m));
    CHECK(t_slice_eq(netchan_message_payload(m), "f", 1));
    netchan_message_free(m);
    netchan_subscription_free(bsub);
    CHECK(t_counter_get(&b.drops) == 1);
    netchan_subscription_free(b.other);
    netchan_subscription_free(echo);
    ctx_destroy(&b);
}

/* Publishes to a full local subscription that blocks when full. */
typedef struct {
    netchan_endpoint *ep;
    netchan_result rc;
    t_counter done;
} full_ctx;

static void publish_to_full(void *context, const netchan_message *m) {
    (void)m;
    full_ctx *f = (full_ctx *)context;
    f->rc = netchan_endpoint_publish(f->ep, "full/q", (const uint8_t *)"2", 1);
    t_counter_add(&f->done, 1);
}

static void test_publish_in_callback_never_waits(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    netchan_subscribe_options *so = NULL;
    CHECK_OK(netchan_subscribe_options_new(&so));
    CHECK_OK(netchan_subscribe_options_set_capacity(so, 1));
    CHECK_OK(netchan_subscribe_options_set_overflow(so, NETCHAN_OVERFLOW_BLOCK));
    netchan_subscription *full = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "full/q", so, &full));
    netchan_subscribe_options_free(so);
    CHECK_OK(netchan_endpoint_publish(ep, "full/q", (const uint8_t *)"1", 1)); /* now full */
    CHECK_RC(netchan_endpoint_try_publish(ep, "full/q", (const uint8_t *)"x", 1), NETCHAN_RESULT_BUFFER_FULL);
    full_ctx f;
    memset(&f, 0, sizeof f);
    f.ep = ep;
    f.rc = NETCHAN_RESULT_OK;
    t_counter_init(&f.done);
    netchan_message_callback cb = {&f, publish_to_full, NULL};
    netchan_subscription *trigger = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(ep, "trigger", NULL, cb, &trigger));
    CHECK_OK(netchan_endpoint_publish(ep, "trigger", NULL, 0));
    /* The watchdog catches a publish that waits for room (the default
     * send timeout is 10 s, and nobody makes room). */
    CHECK(t_counter_wait(&f.done, 1, 5000) == 1);
    CHECK(f.rc == NETCHAN_RESULT_BUFFER_FULL);
    /* Both skips are counted as drops of that subscription. */
    CHECK(netchan_subscription_dropped(full) == 2);
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_try_recv(full, &m));
    CHECK(t_slice_eq(netchan_message_payload(m), "1", 1));
    netchan_message_free(m);
    CHECK_RC(netchan_subscription_try_recv(full, &m), NETCHAN_RESULT_EMPTY);
    netchan_subscription_free(trigger);
    netchan_subscription_free(full);
    netchan_endpoint_free(ep);
    t_counter_destroy(&f.done);
}

/* Counts, marks itself running, and frees the endpoint or a victim if
 * asked. */
static void count_or_free_endpoint(void *context, const netchan_message *m) {
    (void)m;
    cb_ctx *c = (cb_ctx *)context;
    __atomic_store_n(&c->in_call, 1, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&c->dropped_flag, __ATOMIC_SEQ_CST)) c->call_after_drop = 1;
    if (c->free_endpoint) {
        netchan_endpoint *ep = __atomic_exchange_n(&c->ep, (netchan_endpoint *)NULL, __ATOMIC_SEQ_CST);
        netchan_endpoint_free(ep);
    }
    netchan_subscription *v = __atomic_exchange_n(&c->victim, (netchan_subscription *)NULL, __ATOMIC_SEQ_CST);
    netchan_subscription_free(v);
    for (int i = 0; i < 20; i++) sched_yield(); /* a call that takes a while */
    t_counter_add(&c->calls, 1);
    __atomic_store_n(&c->in_call, 0, __ATOMIC_SEQ_CST);
}

static void test_free_from_plain_thread_waits_for_call(void) {
    cb_ctx c;
    ctx_init(&c);
    netchan_message_callback ccb = {&c, count_or_free_endpoint, on_drop};
    netchan_subscription *csub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "stream/x", NULL, ccb, &csub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "stream/x", 5000, &found));
    for (int i = 0; i < 2000; i++) {
        CHECK_OK(netchan_endpoint_publish(client, "stream/x", (const uint8_t *)"m", 1));
        if (i == 1000) {
            CHECK(t_counter_wait(&c.calls, 1, 5000) >= 1);
            netchan_subscription_free(csub);
            /* After free returns: no call is running, drop has run. */
            CHECK(__atomic_load_n(&c.in_call, __ATOMIC_SEQ_CST) == 0);
            CHECK(t_counter_get(&c.drops) == 1);
        }
    }
    long calls = t_counter_get(&c.calls);
    netchan_bytes *b = NULL; /* a round trip: late messages had their chance */
    CHECK_RC(netchan_endpoint_request_blocking(client, "nobody", NULL, 0, 1000, &b), NETCHAN_RESULT_NO_RESPONDERS);
    CHECK(t_counter_get(&c.calls) == calls);
    CHECK(!c.call_after_drop);
    CHECK(t_counter_get(&c.drops) == 1);
    ctx_destroy(&c);
}

static void test_callbacks_free_each_other(void) {
    /* Whichever runs first frees the other; main frees what is left. */
    cb_ctx x, y;
    ctx_init(&x);
    ctx_init(&y);
    netchan_message_callback xcb = {&x, count_or_free_endpoint, on_drop};
    netchan_message_callback ycb = {&y, count_or_free_endpoint, on_drop};
    netchan_subscription *xsub = NULL, *ysub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "cross/x", NULL, xcb, &xsub));
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "cross/x", NULL, ycb, &ysub));
    __atomic_store_n(&x.victim, ysub, __ATOMIC_SEQ_CST);
    __atomic_store_n(&y.victim, xsub, __ATOMIC_SEQ_CST);
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "cross/x", 5000, &found));
    long before = t_counter_get(&all_drops);
    for (int i = 0; i < 10; i++)
        CHECK_OK(netchan_endpoint_publish(client, "cross/x", (const uint8_t *)"m", 1));
    CHECK(t_counter_wait(&all_drops, before + 1, 5000) >= before + 1);
    netchan_subscription_free(__atomic_exchange_n(&x.victim, (netchan_subscription *)NULL, __ATOMIC_SEQ_CST));
    netchan_subscription_free(__atomic_exchange_n(&y.victim, (netchan_subscription *)NULL, __ATOMIC_SEQ_CST));
    /* No deadlock (the watchdog), each drop exactly once, none before a
     * call of its own. */
    CHECK(t_counter_wait(&x.drops, 1, 5000) == 1);
    CHECK(t_counter_wait(&y.drops, 1, 5000) == 1);
    CHECK(t_counter_wait(&all_drops, before + 2, 5000) == before + 2);
    CHECK(!x.call_after_drop && !y.call_after_drop);
    ctx_destroy(&x);
    ctx_destroy(&y);
}

static netchan_service *svc_self = NULL;
static t_counter svc_drops;
static void svc_free_self(void *context, const netchan_request *req, netchan_reply *reply) {
    (void)context;
    (void)req;
    CHECK_OK(netchan_reply_send(reply, (const uint8_t *)"bye", 3));
    netchan_reply_free(reply);
    netchan_service_free(svc_self);
    /* Freed from inside its own handler: drop waits for this call. */
    CHECK(t_counter_get(&svc_drops) == 0);
}
static void svc_drop(void *context) { (void)context; t_counter_add(&svc_drops, 1); }

static void test_free_service_inside_own_handler(void) {
    t_counter_init(&svc_drops);
    netchan_request_handler h = {NULL, svc_free_self, svc_drop};
    CHECK_OK(netchan_endpoint_serve(server, "bye", h, &svc_self));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "bye", 5000, &found));
    netchan_bytes *reply = NULL;
    CHECK_OK(netchan_endpoint_request_blocking(client, "bye", NULL, 0, 5000, &reply));
    CHECK(t_slice_eq(netchan_bytes_data(reply), "bye", 3));
    netchan_bytes_free(reply);
    CHECK(t_counter_wait(&svc_drops, 1, 5000) == 1);
    /* The service is gone: the server answers NO_RESPONDERS itself. */
    CHECK_RC(netchan_endpoint_request_blocking(server, "bye", NULL, 0, 1000, &reply), NETCHAN_RESULT_NO_RESPONDERS);
    CHECK(t_counter_get(&svc_drops) == 1);
    t_counter_destroy(&svc_drops);
}

typedef struct {
    t_counter up, down, drops;
    int off_thread;
    int fields_ok;
    int running, overlapped; /* calls in progress; one started during another */
    int down_before_up;
} ev_ctx;

static void on_event(void *context, const netchan_event *e) {
    ev_ctx *c = (ev_ctx *)context;
    if (__atomic_add_fetch(&c->running, 1, __ATOMIC_SEQ_CST) != 1) c->overlapped = 1;
    if (!t_on_netchan_thread()) c->off_thread = 1;
    if (e->kind == NETCHAN_EVENT_KIND_PEER_DOWN && t_counter_get(&c->up) == 0) c->down_before_up = 1;
    __atomic_sub_fetch(&c->running, 1, __ATOMIC_SEQ_CST);
    if (e->kind == NETCHAN_EVENT_KIND_PEER_UP) {
        if (!(e->peer.len > 0 && e->addr.len > 0 && e->code == NETCHAN_RESULT_OK)) c->fields_ok = 0;
        t_counter_add(&c->up, 1);
    }
    if (e->kind == NETCHAN_EVENT_KIND_PEER_DOWN) {
        if (!(e->peer.len > 0 && e->detail.len > 0)) c->fields_ok = 0;
        t_counter_add(&c->down, 1);
    }
}

static void on_event_drop(void *context) { t_counter_add(&((ev_ctx *)context)->drops, 1); }

static void test_event_callback(void) {
    netchan_endpoint *a = NULL, *b = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &a));
    ev_ctx ev;
    memset(&ev, 0, sizeof ev);
    ev.fields_ok = 1;
    t_counter_init(&ev.up);
    t_counter_init(&ev.down);
    t_counter_init(&ev.drops);
    netchan_event_callback ecb = {&ev, on_event, on_event_drop};
    netchan_event_listener *listener = NULL;
    CHECK_OK(netchan_endpoint_on_event(a, ecb, &listener));
    char *addr = NULL;
    CHECK_OK(netchan_endpoint_listen(a, "tcp://127.0.0.1:0", &addr));
    CHECK_OK(netchan_endpoint_new(NULL, &b));
    CHECK_OK(netchan_endpoint_connect(b, addr, NULL));
    CHECK(t_counter_wait(&ev.up, 1, 5000) == 1);
    netchan_endpoint_free(b);
    CHECK(t_counter_wait(&ev.down, 1, 5000) == 1);
    netchan_event_listener_free(listener);
    /* Freed from a plain thread: drop has run; no call follows it. */
    CHECK(t_counter_get(&ev.drops) == 1);
    CHECK(t_counter_get(&ev.up) == 1 && t_counter_get(&ev.down) == 1);
    CHECK(ev.fields_ok && !ev.off_thread && !ev.overlapped && !ev.down_before_up);
    netchan_endpoint_free(a);
    netchan_string_free(addr);
    t_counter_destroy(&ev.up);
    t_counter_destroy(&ev.down);
    t_counter_destroy(&ev.drops);
}

static void never_req(void *ctx, const netchan_request *q, netchan_reply *r) { (void)ctx; (void)q; (void)r; }
static void never_event(void *ctx, const netchan_event *e) { (void)ctx; (void)e; }

static void test_endpoint_close_drops_callbacks(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    cb_ctx m, r, e;
    ctx_init(&m);
    ctx_init(&r);
    ctx_init(&e);
    netchan_message_callback mcb = {&m, never_msg, on_drop};
    netchan_request_handler rh = {&r, never_req, on_drop};
    netchan_event_callback ecb = {&e, never_event, on_drop};
    netchan_subscription *sub = NULL;
    netchan_service *svc = NULL;
    netchan_event_listener *l = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(ep, "c/x", NULL, mcb, &sub));
    CHECK_OK(netchan_endpoint_serve(ep, "c/y", rh, &svc));
    CHECK_OK(netchan_endpoint_on_event(ep, ecb, &l));
    CHECK_OK(netchan_endpoint_close(ep));
    /* Each drop runs once when the endpoint closes... */
    CHECK(t_counter_wait(&m.drops, 1, 5000) == 1);
    CHECK(t_counter_wait(&r.drops, 1, 5000) == 1);
    CHECK(t_counter_wait(&e.drops, 1, 5000) == 1);
    /* ...the handles stay valid, and freeing them runs nothing again. */
    CHECK(t_str_eq(netchan_subscription_pattern(sub), "c/x"));
    CHECK(t_str_eq(netchan_service_pattern(svc), "c/y"));
    netchan_subscription_free(sub);
    netchan_service_free(svc);
    netchan_event_listener_free(l);
    netchan_endpoint_free(ep);
    CHECK(t_counter_get(&m.drops) == 1 && t_counter_get(&r.drops) == 1 && t_counter_get(&e.drops) == 1);
    ctx_destroy(&m);
    ctx_destroy(&r);
    ctx_destroy(&e);
}

static void test_free_endpoint_inside_callback(void) {
    /* The endpoint freed from inside one of its callbacks: the callback
     * is dropped once, and the peer sees the endpoint go. */
    ev_ctx ev;
    memset(&ev, 0, sizeof ev);
    ev.fields_ok = 1;
    t_counter_init(&ev.up);
    t_counter_init(&ev.down);
    t_counter_init(&ev.drops);
    netchan_event_callback ecb = {&ev, on_event, on_event_drop};
    netchan_event_listener *listener = NULL;
    CHECK_OK(netchan_endpoint_on_event(client, ecb, &listener));
    cb_ctx d;
    ctx_init(&d);
    d.ep = server;
    d.free_endpoint = 1;
    netchan_message_callback dcb = {&d, count_or_free_endpoint, on_drop};
    netchan_subscription *dsub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "kill/x", NULL, dcb, &dsub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "kill/x", 5000, &found));
    CHECK_OK(netchan_endpoint_publish(client, "kill/x", (const uint8_t *)"m", 1));
    CHECK(t_counter_wait(&d.drops, 1, 5000) == 1);
    CHECK(t_counter_get(&d.calls) == 1);
    CHECK(t_counter_wait(&ev.down, 1, 5000) == 1);
    server = NULL;
    netchan_subscription_free(dsub); /* the handle outlives its endpoint */
    netchan_event_listener_free(listener);
    CHECK(t_counter_get(&ev.drops) == 1);
    CHECK(t_counter_get(&ev.down) == 1);
    ctx_destroy(&d);
    t_counter_destroy(&ev.up);
    t_counter_destroy(&ev.down);
    t_counter_destroy(&ev.drops);
}

int main(void) {
    t_watchdog(120);
    t_counter_init(&all_drops);
    t_pair(&server, &client, &server_name);

    T_RUN(test_free_subscription_inside_own_callback);
    T_RUN(test_blocking_calls_in_callback_would_deadlock);
    T_RUN(test_publish_in_callback_never_waits);
    T_RUN(test_free_from_plain_thread_waits_for_call);
    T_RUN(test_callbacks_free_each_other);
    T_RUN(test_free_service_inside_own_handler);
    T_RUN(test_event_callback);
    T_RUN(test_endpoint_close_drops_callbacks);
    T_RUN(test_free_endpoint_inside_callback); /* frees `server` */

    netchan_endpoint_free(server);
    netchan_endpoint_free(client);
    netchan_string_free(server_name);
    t_counter_destroy(&all_drops);
    return t_finish("test_api_callbacks");
}
