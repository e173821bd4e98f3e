/* Callback guarantees: drop exactly once after the last call, no call after
 * drop, freeing any handle from inside any callback (its own subscription,
 * its own service, the endpoint), two callbacks freeing each other's
 * subscriptions, blocking calls from callbacks returning WOULD_DEADLOCK,
 * and the event callback. */
#include "testutil.h"

typedef struct {
    netchan_endpoint *ep;
    netchan_subscription *self;  /* freed from inside its own callback */
    netchan_subscription *other; /* a pull subscription to try recv on */
    netchan_subscription *victim; /* freed by this callback (cross-free) */
    t_counter calls;
    t_counter drops;
    int dropped_flag;
    int call_after_drop;
    int deadlock_checks;
    int free_endpoint;
} cb_ctx;

static void ctx_init(cb_ctx *c) {
    memset(c, 0, sizeof *c);
    t_counter_init(&c->calls);
    t_counter_init(&c->drops);
}

static void ctx_destroy(cb_ctx *c) {
    t_counter_destroy(&c->calls);
    t_counter_destroy(&c->drops);
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
    t_counter_add(&c->calls, 1);
}

/* Tries every blocking function: each must refuse with WOULD_DEADLOCK. */
static void try_blocking(void *context, const netchan_message *m) {
    (void)m;
    cb_ctx *c = (cb_ctx *)context;
    netchan_message *got = NULL;
    netchan_bytes *reply = NULL;
    bool found = false;
    int ok = 1;
    ok &= netchan_subscription_recv(c->other, 10, &got) == NETCHAN_RESULT_WOULD_DEADLOCK;
    ok &= netchan_endpoint_request_blocking(c->ep, "x/y", NULL, 0, 100, &reply) ==
          NETCHAN_RESULT_WOULD_DEADLOCK;
    ok &= netchan_endpoint_listen(c->ep, "tcp://127.0.0.1:0", NULL) == NETCHAN_RESULT_WOULD_DEADLOCK;
    ok &= netchan_endpoint_connect(c->ep, "tcp://127.0.0.1:1", NULL) == NETCHAN_RESULT_WOULD_DEADLOCK;
    ok &= netchan_endpoint_ping(c->ep, "x", NULL) == NETCHAN_RESULT_WOULD_DEADLOCK;
    ok &= netchan_endpoint_wait_for_subscribers(c->ep, "x", 10, &found) ==
          NETCHAN_RESULT_WOULD_DEADLOCK;
    ok &= netchan_shutdown(10) == NETCHAN_RESULT_WOULD_DEADLOCK;
    /* Non-blocking ones work: publish does not wait inside callbacks. */
    ok &= netchan_endpoint_publish(c->ep, "echo/back", (const uint8_t *)"e", 1) == NETCHAN_RESULT_OK;
    ok &= netchan_subscription_try_recv(c->other, &got) == NETCHAN_RESULT_EMPTY;
    if (ok) c->deadlock_checks++;
    t_counter_add(&c->calls, 1);
}

/* Counts, and frees the endpoint on the first message if asked. */
static void count_or_free_endpoint(void *context, const netchan_message *m) {
    (void)m;
    cb_ctx *c = (cb_ctx *)context;
    if (__atomic_load_n(&c->dropped_flag, __ATOMIC_SEQ_CST)) c->call_after_drop = 1;
    if (c->free_endpoint) {
        netchan_endpoint *ep = __atomic_exchange_n(&c->ep, (netchan_endpoint *)NULL, __ATOMIC_SEQ_CST);
        netchan_endpoint_free(ep);
    }
    netchan_subscription *v = __atomic_exchange_n(&c->victim, (netchan_subscription *)NULL, __ATOMIC_SEQ_CST);
    netchan_subscription_free(v);
    t_counter_add(&c->calls, 1);
}

typedef struct {
    t_counter up, down, drops;
} ev_ctx;

static void on_event(void *context, const netchan_event *e) {
    ev_ctx *c = (ev_ctx *)context;
    if (e->kind == NETCHAN_EVENT_KIND_PEER_UP) {
        CHECK(e->peer.len > 0 && e->addr.len > 0);
        t_counter_add(&c->up, 1);
    }
    if (e->kind == NETCHAN_EVENT_KIND_PEER_DOWN) t_counter_add(&c->down, 1);
}

static void on_event_drop(void *context) { t_counter_add(&((ev_ctx *)context)->drops, 1); }

static netchan_service *svc_self = NULL;
static int svc_drops = 0;
static void svc_free_self(void *context, const netchan_request *req, netchan_reply *reply) {
    (void)context;
    (void)req;
    CHECK_OK(netchan_reply_send(reply, (const uint8_t *)"bye", 3));
    netchan_reply_free(reply);
    netchan_service_free(svc_self);
}
static void svc_drop(void *context) { (void)context; __atomic_add_fetch(&svc_drops, 1, __ATOMIC_SEQ_CST); }

int main(void) {
    t_watchdog(120);
    t_counter_init(&all_drops);
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    ev_ctx ev;
    t_counter_init(&ev.up);
    t_counter_init(&ev.down);
    t_counter_init(&ev.drops);
    CHECK_OK(netchan_endpoint_new(NULL, &server));
    netchan_event_callback ecb = {&ev, on_event, on_event_drop};
    netchan_event_listener *listener = NULL;
    CHECK_OK(netchan_endpoint_on_event(server, ecb, &listener));
    char *addr = NULL;
    CHECK_OK(netchan_endpoint_listen(server, "tcp://127.0.0.1:0", &addr));
    CHECK_OK(netchan_endpoint_new(NULL, &client));
    CHECK_OK(netchan_endpoint_connect(client, addr, &server_name));
    CHECK(t_counter_wait(&ev.up, 1, 5000) == 1);
    bool found = false;

    /* 1. A subscription freed from inside its own callback: one call, then
     *    drop once, after that call. */
    cb_ctx a;
    ctx_init(&a);
    netchan_message_callback acb = {&a, free_self, on_drop};
    netchan_subscription *asub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "self/x", NULL, acb, &asub));
    __atomic_store_n(&a.self, asub, __ATOMIC_SEQ_CST);
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "self/x", 5000, &found));
    for (int i = 0; i < 100; i++)
        CHECK_OK(netchan_endpoint_publish(client, "self/x", (const uint8_t *)"m", 1));
    CHECK(t_counter_wait(&a.drops, 1, 5000) == 1);
    CHECK(t_counter_get(&a.calls) == 1);
    CHECK(!a.call_after_drop);

    /* 2. Blocking calls from a callback return WOULD_DEADLOCK. */
    cb_ctx b;
    ctx_init(&b);
    b.ep = server;
    CHECK_OK(netchan_endpoint_subscribe(server, "other/q", NULL, &b.other));
    netchan_message_callback bcb = {&b, try_blocking, on_drop};
    netchan_subscription *bsub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "block/x", NULL, bcb, &bsub));
    netchan_subscription *echo = NULL;
    CHECK_OK(netchan_endpoint_subscribe(client, "echo/back", NULL, &echo));
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "block/x", 5000, &found));
    CHECK_OK(netchan_endpoint_wait_for_subscribers(server, "echo/back", 5000, &found));
    CHECK_OK(netchan_endpoint_publish(client, "block/x", (const uint8_t *)"m", 1));
    CHECK(t_counter_wait(&b.calls, 1, 5000) == 1);
    CHECK(b.deadlock_checks == 1);
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_recv(echo, 5000, &m)); /* published from the callback */
    netchan_message_free(m);
    netchan_subscription_free(bsub);
    CHECK(t_counter_get(&b.drops) == 1);
    netchan_subscription_free(b.other);
    netchan_subscription_free(echo);

    /* 3. Freed from a plain thread while messages stream in: after free
     *    returns, drop has run and no call follows it. */
    cb_ctx c;
    ctx_init(&c);
    netchan_message_callback ccb = {&c, count_or_free_endpoint, on_drop};
    netchan_subscription *csub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "stream/x", NULL, ccb, &csub));
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "stream/x", 5000, &found));
    for (int i = 0; i < 2000; i++) {
        CHECK_OK(netchan_endpoint_publish(client, "stream/x", (const uint8_t *)"m", 1));
        if (i == 1000) {
            t_counter_wait(&c.calls, 1, 5000);
            netchan_subscription_free(csub);
            CHECK(t_counter_get(&c.drops) == 1);
        }
    }
    CHECK(!c.call_after_drop);

    /* 4. Two callbacks freeing each other's subscriptions: no deadlock,
     *    each drop exactly once. Whichever runs first frees the other; main
     *    frees what is left. */
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
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "cross/x", 5000, &found));
    long before = t_counter_get(&all_drops);
    for (int i = 0; i < 10; i++)
        CHECK_OK(netchan_endpoint_publish(client, "cross/x", (const uint8_t *)"m", 1));
    if (t_counter_wait(&all_drops, before + 1, 5000) < before + 1) {
        fprintf(stderr, "no drop: x.calls=%ld y.calls=%ld x.victim=%p y.victim=%p\n", t_counter_get(&x.calls),
                t_counter_get(&y.calls), (void *)x.victim, (void *)y.victim);
        t_failures++;
    }
    netchan_subscription_free(__atomic_exchange_n(&x.victim, (netchan_subscription *)NULL, __ATOMIC_SEQ_CST));
    netchan_subscription_free(__atomic_exchange_n(&y.victim, (netchan_subscription *)NULL, __ATOMIC_SEQ_CST));
    CHECK(t_counter_wait(&x.drops, 1, 5000) == 1);
    CHECK(t_counter_wait(&y.drops, 1, 5000) == 1);
    CHECK(!x.call_after_drop && !y.call_after_drop);

    /* 5. A service freed from inside its own handler. */
    netchan_request_handler h = {NULL, svc_free_self, svc_drop};
    CHECK_OK(netchan_endpoint_serve(server, "bye", h, &svc_self));
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "bye", 5000, &found));
    netchan_bytes *reply = NULL;
    CHECK_OK(netchan_endpoint_request_blocking(client, "bye", NULL, 0, 5000, &reply));
    CHECK(t_slice_eq(netchan_bytes_data(reply), "bye", 3));
    netchan_bytes_free(reply);
    for (int i = 0; i < 500 && __atomic_load_n(&svc_drops, __ATOMIC_SEQ_CST) == 0; i++) {
        uint64_t rtt;
        netchan_endpoint_ping(client, server_name, &rtt); /* a round trip, not a sleep */
    }
    CHECK(svc_drops == 1);

    /* 6. The endpoint freed from inside one of its callbacks: the callback
     *    is dropped once, peers see it go. */
    cb_ctx d;
    ctx_init(&d);
    d.ep = server;
    d.free_endpoint = 1;
    netchan_message_callback dcb = {&d, count_or_free_endpoint, on_drop};
    netchan_subscription *dsub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "kill/x", NULL, dcb, &dsub));
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "kill/x", 5000, &found));
    CHECK_OK(netchan_endpoint_publish(client, "kill/x", (const uint8_t *)"m", 1));
    CHECK(t_counter_wait(&d.drops, 1, 5000) == 1);
    CHECK(t_counter_get(&d.calls) == 1);
    CHECK(t_counter_wait(&ev.down, 1, 5000) >= 1);
    netchan_subscription_free(dsub); /* the handle outlives its endpoint */
    netchan_event_listener_free(listener);
    CHECK(t_counter_wait(&ev.drops, 1, 5000) == 1);

    netchan_endpoint_free(client);
    netchan_string_free(server_name);
    netchan_string_free(addr);
    ctx_destroy(&a);
    ctx_destroy(&b);
    ctx_destroy(&c);
    ctx_destroy(&d);
    ctx_destroy(&x);
    ctx_destroy(&y);
    t_counter_destroy(&ev.up);
    t_counter_destroy(&ev.down);
    t_counter_destroy(&ev.drops);
    return t_finish("test_api_callbacks");
}
