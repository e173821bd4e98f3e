/* Publish/subscribe: pull (recv, try_recv, timeouts), callback delivery in
 * order, local and over TCP, overflow policy, close semantics, stats. */
#include "testutil.h"

#define N 1000

typedef struct {
    t_counter got;
    t_counter dropped;
    int in_order;
    long next;
} order_ctx;

static void on_msg(void *context, const netchan_message *m) {
    order_ctx *c = (order_ctx *)context;
    netchan_slice p = netchan_message_payload(m);
    long v = -1;
    if (p.len == sizeof v) memcpy(&v, p.data, sizeof v);
    if (v != c->next) c->in_order = 0;
    c->next = v + 1;
    t_counter_add(&c->got, 1);
}

static void on_drop(void *context) {
    order_ctx *c = (order_ctx *)context;
    t_counter_add(&c->dropped, 1);
}

int main(void) {
    t_watchdog(120);
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    CHECK(server_name != NULL && strcmp(server_name, netchan_endpoint_name(server)) == 0);

    /* Pull: the server subscribes, the client publishes over TCP. */
    netchan_subscription *pull = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "sensors/**", NULL, &pull));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "sensors/kitchen/temp", 5000, &found));
    CHECK(found);
    CHECK_OK(netchan_endpoint_publish(client, "sensors/kitchen/temp", (const uint8_t *)"21.5", 4));
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_recv(pull, 5000, &m));
    CHECK(t_str_eq(netchan_message_path(m), "sensors/kitchen/temp"));
    CHECK(t_slice_eq(netchan_message_payload(m), "21.5", 4));
    CHECK(t_str_eq(netchan_message_sender(m), netchan_endpoint_name(client)));
    netchan_message *copy = NULL;
    CHECK_OK(netchan_message_clone(m, &copy));
    netchan_message_free(m);
    CHECK(t_slice_eq(netchan_message_payload(copy), "21.5", 4));
    netchan_message_free(copy);

    /* Empty payloads and try_recv. */
    CHECK_OK(netchan_endpoint_publish(client, "sensors/x", NULL, 0));
    m = NULL;
    CHECK_OK(netchan_subscription_recv(pull, 5000, &m));
    CHECK(netchan_message_payload(m).len == 0);
    netchan_message_free(m);
    CHECK_RC(netchan_subscription_try_recv(pull, &m), NETCHAN_RESULT_EMPTY);

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

    /* Callback subscription: every message, in order, then drop once. */
    order_ctx oc;
    t_counter_init(&oc.got);
    t_counter_init(&oc.dropped);
    oc.in_order = 1;
    oc.next = 0;
    netchan_message_callback cb = {&oc, on_msg, on_drop};
    netchan_subscription *csub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "cb/*", NULL, cb, &csub));
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "cb/x", 5000, &found));
    CHECK(found);
    for (long i = 0; i < N; i++)
        CHECK_OK(netchan_endpoint_publish(client, "cb/x", (const uint8_t *)&i, sizeof i));
    CHECK(t_counter_wait(&oc.got, N, 10000) == N);
    CHECK(oc.in_order);
    CHECK_RC(netchan_subscription_recv(csub, 0, &m), NETCHAN_RESULT_INVALID_ARGUMENT);
    netchan_subscription_free(csub);
    /* Freed from a plain thread: drop has run before free returned. */
    CHECK(t_counter_get(&oc.dropped) == 1);

    /* Local delivery (same endpoint) and overflow DROP_OLDEST. */
    netchan_subscribe_options *so = NULL;
    CHECK_OK(netchan_subscribe_options_new(&so));
    CHECK_OK(netchan_subscribe_options_set_capacity(so, 4));
    CHECK_OK(netchan_subscribe_options_set_overflow(so, NETCHAN_OVERFLOW_DROP_OLDEST));
    netchan_subscription *small = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "local/q", so, &small));
    netchan_subscribe_options_free(so);
    for (long i = 0; i < 10; i++)
        CHECK_OK(netchan_endpoint_publish(server, "local/q", (const uint8_t *)&i, sizeof i));
    CHECK(netchan_subscription_dropped(small) == 6);
    m = NULL;
    CHECK_OK(netchan_subscription_try_recv(small, &m));
    long first = -1;
    if (m) memcpy(&first, netchan_message_payload(m).data, sizeof first);
    CHECK(first == 6);
    netchan_message_free(m);

    /* Close: queued messages can still be received, then CLOSED. */
    CHECK_OK(netchan_subscription_close(small));
    int left = 0;
    while (netchan_subscription_try_recv(small, &m) == NETCHAN_RESULT_OK) {
        left++;
        netchan_message_free(m);
    }
    CHECK(left == 3);
    CHECK_RC(netchan_subscription_try_recv(small, &m), NETCHAN_RESULT_CLOSED);
    CHECK_RC(netchan_subscription_recv(small, -1, &m), NETCHAN_RESULT_CLOSED);
    netchan_subscription_free(small);

    /* Stats. */
    netchan_stats st;
    memset(&st, 0, sizeof st);
    CHECK_OK(netchan_endpoint_stats(server, &st, sizeof st));
    CHECK(st.peers == 1);
    CHECK(st.msgs_in >= 2 * N);
    CHECK(st.subscriptions == 1);
    memset(&st, 0, sizeof st);
    CHECK_OK(netchan_endpoint_stats(client, &st, sizeof st));
    CHECK(st.msgs_out >= 2 * N);

    /* Closing the endpoint ends pull subscriptions. */
    netchan_endpoint_free(server);
    CHECK_RC(netchan_subscription_recv(pull, 5000, &m), NETCHAN_RESULT_CLOSED);
    netchan_subscription_free(pull);
    netchan_endpoint_free(client);
    netchan_string_free(server_name);
    t_counter_destroy(&oc.got);
    t_counter_destroy(&oc.dropped);
    return t_finish("test_api_pubsub");
}
