/* Freeing the endpoint while requests are in flight: each pending result
 * callback runs exactly once with CLOSED, then its drop. Shutting netchan
 * down while requests are in flight: each runs once with CANCELLED. */
#include "testutil.h"

#define K 20

typedef struct {
    pthread_mutex_t mu;
    netchan_reply *kept[2 * K];
    int n;
    t_counter received;
} server_ctx;

static void keep(void *context, const netchan_request *req, netchan_reply *reply) {
    (void)req;
    server_ctx *s = (server_ctx *)context;
    pthread_mutex_lock(&s->mu);
    if (s->n < 2 * K) s->kept[s->n++] = reply;
    else netchan_reply_free(reply);
    pthread_mutex_unlock(&s->mu);
    t_counter_add(&s->received, 1);
}

typedef struct {
    t_counter calls, drops;
    int closed, cancelled, other;
} client_ctx;

static void on_result(void *context, netchan_result r, const uint8_t *p, size_t n, const char *error) {
    (void)p;
    (void)n;
    client_ctx *c = (client_ctx *)context;
    if (r == NETCHAN_RESULT_CLOSED) __atomic_add_fetch(&c->closed, 1, __ATOMIC_SEQ_CST);
    else if (r == NETCHAN_RESULT_CANCELLED) __atomic_add_fetch(&c->cancelled, 1, __ATOMIC_SEQ_CST);
    else __atomic_add_fetch(&c->other, 1, __ATOMIC_SEQ_CST);
    CHECK(error != NULL && strlen(error) > 0);
    t_counter_add(&c->calls, 1);
}

static void on_drop(void *context) { t_counter_add(&((client_ctx *)context)->drops, 1); }

int main(void) {
    t_watchdog(120);
    server_ctx s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    t_counter_init(&s.received);
    netchan_endpoint *server = NULL, *client = NULL;
    t_pair(&server, &client, NULL);
    netchan_request_handler h = {&s, keep, NULL};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(server, "slow/*", h, &svc));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "slow/x", 5000, &found));

    /* Phase 1: free the client endpoint with K requests in flight. */
    client_ctx c;
    memset(&c, 0, sizeof c);
    t_counter_init(&c.calls);
    t_counter_init(&c.drops);
    for (int i = 0; i < K; i++) {
        netchan_result_callback cb = {&c, on_result, on_drop};
        CHECK_OK(netchan_endpoint_request(client, "slow/x", NULL, 0, 60000, cb));
    }
    CHECK(t_counter_wait(&s.received, K, 5000) == K);
    CHECK(t_counter_get(&c.calls) == 0);
    netchan_endpoint_free(client);
    CHECK(t_counter_wait(&c.calls, K, 5000) == K);
    CHECK(t_counter_wait(&c.drops, K, 5000) == K);
    CHECK(c.closed == K && c.other == 0);

    /* Phase 2: shut netchan down with K requests in flight. */
    client_ctx d;
    memset(&d, 0, sizeof d);
    t_counter_init(&d.calls);
    t_counter_init(&d.drops);
    netchan_endpoint *client2 = NULL;
    char *addr = NULL;
    CHECK_OK(netchan_endpoint_listen(server, "tcp://127.0.0.1:0", &addr));
    CHECK_OK(netchan_endpoint_new(NULL, &client2));
    CHECK_OK(netchan_endpoint_connect(client2, addr, NULL));
    for (int i = 0; i < K; i++) {
        netchan_result_callback cb = {&d, on_result, on_drop};
        CHECK_OK(netchan_endpoint_request(client2, "slow/y", NULL, 0, 60000, cb));
    }
    CHECK(t_counter_wait(&s.received, 2 * K, 5000) == 2 * K);
    CHECK_OK(netchan_shutdown(5000));
    CHECK(t_counter_get(&d.calls) == K);
    CHECK(t_counter_get(&d.drops) == K);
    CHECK(d.calls.value == d.cancelled + d.closed + d.other && d.other == 0);

    /* Handles outlive the runtime; freeing them is still fine. */
    for (int i = 0; i < s.n; i++) netchan_reply_free(s.kept[i]);
    netchan_service_free(svc);
    netchan_endpoint_free(client2);
    netchan_endpoint_free(server);
    netchan_string_free(addr);
    t_counter_destroy(&c.calls);
    t_counter_destroy(&c.drops);
    t_counter_destroy(&d.calls);
    t_counter_destroy(&d.drops);
    t_counter_destroy(&s.received);
    pthread_mutex_destroy(&s.mu);
    return t_finish("test_int_inflight");
}
