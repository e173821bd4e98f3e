/* Signals: netchan installs no signal handler and changes no signal
 * disposition or mask of the calling thread, and a peer that goes away
 * while this side is writing to it never raises SIGPIPE (left at its
 * default, which would kill this process). */
#include <signal.h>

#include "testutil.h"

#define MAXSIG 65

typedef struct {
    struct sigaction act[MAXSIG];
    sigset_t mask;
} sig_state;

static void snapshot(sig_state *st) {
    memset(st, 0, sizeof *st);
    for (int s = 1; s < MAXSIG; s++) sigaction(s, NULL, &st->act[s]);
    pthread_sigmask(SIG_SETMASK, NULL, &st->mask);
}

/* The signals whose handler, flags or blocked state differ. */
static int differences(const sig_state *a, const sig_state *b) {
    int n = 0;
    for (int s = 1; s < MAXSIG; s++) {
        const struct sigaction *x = &a->act[s], *y = &b->act[s];
        int same = x->sa_handler == y->sa_handler && x->sa_flags == y->sa_flags &&
                   sigismember(&a->mask, s) == sigismember(&b->mask, s);
        if (!same) {
            fprintf(stderr, "signal %d changed\n", s);
            n++;
        }
    }
    return n;
}

static void on_msg(void *ctx, const netchan_message *m) {
    (void)m;
    t_counter_add((t_counter *)ctx, 1);
}

static void test_no_signal_handlers_installed(void) {
    sig_state before, during, after;
    snapshot(&before);
    netchan_endpoint *server = NULL, *client = NULL;
    t_pair(&server, &client, NULL);
    t_counter got;
    t_counter_init(&got);
    netchan_message_callback cb = {&got, on_msg, NULL};
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "sig/x", NULL, cb, &sub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "sig/x", 5000, &found));
    for (int i = 0; i < 100; i++) CHECK_OK(netchan_endpoint_publish(client, "sig/x", (const uint8_t *)"s", 1));
    CHECK(t_counter_wait(&got, 100, 5000) == 100);
    netchan_bytes *b = NULL;
    CHECK_RC(netchan_endpoint_request_blocking(client, "nobody", NULL, 0, 1000, &b), NETCHAN_RESULT_NO_RESPONDERS);
    snapshot(&during);
    CHECK(differences(&before, &during) == 0);
    netchan_subscription_free(sub);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    CHECK_OK(netchan_runtime_shutdown(5000));
    snapshot(&after);
    CHECK(differences(&before, &after) == 0);
    t_counter_destroy(&got);
}

static void test_no_sigpipe_when_peer_closes(void) {
    struct sigaction dfl, old;
    memset(&dfl, 0, sizeof dfl);
    dfl.sa_handler = SIG_DFL;
    sigemptyset(&dfl.sa_mask);
    CHECK(sigaction(SIGPIPE, &dfl, &old) == 0);
    /* The subscriber stops reading (queue of 1 that blocks), so the
     * publisher's socket buffers fill; then the subscriber's endpoint goes
     * with unread bytes in its socket (a reset), while the publisher still
     * has bytes to write. */
    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    CHECK_OK(netchan_options_set_subscribe_capacity(o, 1));
    netchan_endpoint *server = NULL, *client = NULL;
    CHECK_OK(netchan_endpoint_new(o, &server));
    netchan_options_free(o);
    char *addr = NULL;
    CHECK_OK(netchan_endpoint_listen(server, "tcp://127.0.0.1:0", &addr));
    CHECK_OK(netchan_endpoint_new(NULL, &client));
    CHECK_OK(netchan_endpoint_connect(client, addr, NULL));
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "pipe/x", NULL, &sub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "pipe/x", 5000, &found));
    static uint8_t big[64 * 1024];
    memset(big, 'p', sizeof big);
    int full = 0;
    for (int i = 0; i < 100000 && !full; i++)
        full = netchan_endpoint_try_publish(client, "pipe/x", big, sizeof big) == NETCHAN_RESULT_BUFFER_FULL;
    CHECK(full);
    netchan_endpoint_free(server);
    /* Keep writing until the link is seen gone; a SIGPIPE would end the
     * process here. */
    netchan_stats st;
    for (int i = 0; i < 100000; i++) {
        netchan_endpoint_try_publish(client, "pipe/x", big, 1024);
        memset(&st, 0, sizeof st);
        CHECK_OK(netchan_endpoint_stats(client, &st, sizeof st));
        if (st.peers == 0) break;
        sched_yield();
    }
    CHECK(st.peers == 0);
    netchan_subscription_free(sub);
    netchan_endpoint_free(client);
    netchan_string_free(addr);
    CHECK(sigaction(SIGPIPE, &old, NULL) == 0);
}

int main(void) {
    t_watchdog(120);
    T_RUN(test_no_signal_handlers_installed);
    T_RUN(test_no_sigpipe_when_peer_closes);
    return t_finish("test_int_signals");
}
