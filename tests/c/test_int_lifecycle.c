/* The lifecycle through the C API: netchan_endpoint_suspend() takes every
 * link down and keeps subscriptions and counters, netchan_endpoint_resume()
 * brings the link back, netchan_endpoint_network_changed() drops and
 * redials it; each reports its events with every field (SUSPENDED,
 * RESUMED, PEER_DOWN, RECONNECTING with its attempt and delay, PEER_UP). */
#include "testutil.h"

#define MAX_EVENTS 64

typedef struct {
    pthread_mutex_t mu;
    netchan_event_kind kinds[MAX_EVENTS];
    uint64_t counts[MAX_EVENTS];
    uint64_t delays[MAX_EVENTS];
    int addr_set[MAX_EVENTS];
    int n;
    t_counter seen;
} events;

static void on_event(void *context, const netchan_event *e) {
    events *ev = (events *)context;
    pthread_mutex_lock(&ev->mu);
    if (ev->n < MAX_EVENTS) {
        ev->kinds[ev->n] = e->kind;
        ev->counts[ev->n] = e->count;
        ev->delays[ev->n] = e->delay_ms;
        ev->addr_set[ev->n] = e->addr.len > 0;
        ev->n++;
    }
    pthread_mutex_unlock(&ev->mu);
    t_counter_add(&ev->seen, 1);
}

static int count(events *ev) {
    pthread_mutex_lock(&ev->mu);
    int n = ev->n;
    pthread_mutex_unlock(&ev->mu);
    return n;
}

/* Waits until an event of `kind` at index >= `from` arrives; its index, or
 * -1 after 10 s. */
static int wait_kind(events *ev, netchan_event_kind kind, int from) {
    for (;;) {
        pthread_mutex_lock(&ev->mu);
        for (int i = from; i < ev->n; i++) {
            if (ev->kinds[i] == kind) {
                pthread_mutex_unlock(&ev->mu);
                return i;
            }
        }
        long have = ev->n;
        pthread_mutex_unlock(&ev->mu);
        if (t_counter_wait(&ev->seen, have + 1, 10000) <= have) return -1;
    }
}

static void test_suspend_resume_and_network_changed_with_their_events(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    static events ev;
    memset(&ev, 0, sizeof ev);
    pthread_mutex_init(&ev.mu, NULL);
    t_counter_init(&ev.seen);
    netchan_event_callback cb = {&ev, on_event, NULL};
    netchan_event_listener *l = NULL;
    CHECK_OK(netchan_endpoint_on_event(client, cb, &l));
    netchan_subscription *local = NULL;
    CHECK_OK(netchan_endpoint_subscribe(client, "local/t", NULL, &local));

    /* Suspended: the link goes down with an orderly close; local
     * publish/subscribe still works; a request to the server finds none. */
    CHECK_OK(netchan_endpoint_suspend(client));
    int s = wait_kind(&ev, NETCHAN_EVENT_KIND_SUSPENDED, 0);
    CHECK(s >= 0);
    CHECK(wait_kind(&ev, NETCHAN_EVENT_KIND_PEER_DOWN, 0) >= 0);
    CHECK_OK(netchan_endpoint_suspend(client)); /* idempotent */
    CHECK_OK(netchan_endpoint_publish(client, "local/t", (const uint8_t *)"x", 1));
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_recv(local, 5000, &m));
    CHECK(m != NULL);
    netchan_message_free(m);

    /* Resumed: RESUMED, then the peer is back. */
    int before = count(&ev);
    CHECK_OK(netchan_endpoint_resume(client));
    CHECK(wait_kind(&ev, NETCHAN_EVENT_KIND_RESUMED, before) >= 0);
    CHECK(wait_kind(&ev, NETCHAN_EVENT_KIND_PEER_UP, before) >= 0);

    /* The network changed: the link is dropped and redialled at once
     * (attempt 1, no delay), with the address it redials. */
    before = count(&ev);
    CHECK_OK(netchan_endpoint_network_changed(client));
    int r = wait_kind(&ev, NETCHAN_EVENT_KIND_RECONNECTING, before);
    CHECK(r >= 0);
    if (r >= 0) {
        CHECK(ev.counts[r] == 1);
        CHECK(ev.delays[r] == 0);
        CHECK(ev.addr_set[r]);
    }
    CHECK(wait_kind(&ev, NETCHAN_EVENT_KIND_PEER_UP, before) >= 0);

    /* From a callback these block, so they refuse. Not from here: a plain
     * thread. After close they report CLOSED. */
    CHECK_OK(netchan_endpoint_close(client));
    CHECK_RC(netchan_endpoint_suspend(client), NETCHAN_RESULT_CLOSED);
    CHECK_RC(netchan_endpoint_resume(client), NETCHAN_RESULT_CLOSED);
    CHECK_RC(netchan_endpoint_network_changed(client), NETCHAN_RESULT_CLOSED);
    CHECK_RC(netchan_endpoint_suspend(NULL), NETCHAN_RESULT_NULL_ARGUMENT);

    netchan_event_listener_free(l);
    netchan_subscription_free(local);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    netchan_string_free(server_name);
    t_counter_destroy(&ev.seen);
    pthread_mutex_destroy(&ev.mu);
}

int main(void) {
    t_watchdog(60);
    T_RUN(test_suspend_resume_and_network_changed_with_their_events);
    return t_finish("test_int_lifecycle");
}
