/* Request/reply: serve with a handler that replies now, later from another
 * thread, or fails; blocking and callback requests; timeouts, no
 * responders, ping. */
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

static void handle(void *context, const netchan_request *req, netchan_reply *reply) {
    server_ctx *s = (server_ctx *)context;
    netchan_str path = netchan_request_path(req);
    netchan_slice p = netchan_request_payload(req);
    if (t_str_eq(path, "svc/echo")) {
        CHECK_OK(netchan_reply_send(reply, p.data, p.len));
        CHECK_RC(netchan_reply_send(reply, p.data, p.len), NETCHAN_RESULT_CLOSED);
        netchan_reply_free(reply);
    } else if (t_str_eq(path, "svc/fail")) {
        CHECK_RC(netchan_reply_fail(reply, 7, "x"), NETCHAN_RESULT_INVALID_ARGUMENT);
        CHECK_OK(netchan_reply_fail(reply, NETCHAN_RESULT_HANDLER_ERROR, "nope"));
        netchan_reply_free(reply);
    } else if (t_str_eq(path, "svc/never")) {
        CHECK(netchan_request_remaining_ms(req) <= 200);
        if (s->never) netchan_reply_free(s->never);
        s->never = reply;
    } else if (t_str_eq(path, "svc/dropped")) {
        netchan_reply_free(reply); /* unanswered: HANDLER_ERROR */
    } else {
        /* svc/later: answered from the worker thread. */
        pthread_mutex_lock(&s->mu);
        if (s->n < MAXQ && p.len <= 64) {
            memcpy(s->data[s->n], p.data, p.len);
            s->len[s->n] = p.len;
            s->q[s->n++] = reply;
            pthread_cond_signal(&s->cv);
        } else {
            netchan_reply_free(reply);
        }
        pthread_mutex_unlock(&s->mu);
    }
}

static void handler_drop(void *context) {
    server_ctx *s = (server_ctx *)context;
    s->drops++;
}

static void *worker(void *arg) {
    server_ctx *s = (server_ctx *)arg;
    pthread_mutex_lock(&s->mu);
    for (;;) {
        while (s->n == 0 && !s->stop) pthread_cond_wait(&s->cv, &s->mu);
        if (s->n == 0 && s->stop) break;
        netchan_reply *r = s->q[--s->n];
        char buf[80] = "later:";
        memcpy(buf + 6, s->data[s->n], s->len[s->n]);
        size_t len = 6 + s->len[s->n];
        pthread_mutex_unlock(&s->mu);
        CHECK_OK(netchan_reply_send(r, (const uint8_t *)buf, len));
        netchan_reply_free(r);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

typedef struct {
    t_counter done;
    t_counter dropped;
    int ok;
    int codes[4];
} client_ctx;

static void on_result(void *context, netchan_result r, const uint8_t *reply, size_t len,
                      const char *error) {
    client_ctx *c = (client_ctx *)context;
    if (r == NETCHAN_RESULT_OK) {
        if (error == NULL && len == 9 && memcmp(reply, "later:abc", 9) == 0)
            __atomic_add_fetch(&c->ok, 1, __ATOMIC_SEQ_CST); /* calls run concurrently */
        else fprintf(stderr, "unexpected reply: %.*s\n", (int)len, (const char *)reply);
    } else {
        CHECK(error != NULL && reply == NULL && len == 0);
        if (r == NETCHAN_RESULT_NO_RESPONDERS) __atomic_add_fetch(&c->codes[0], 1, __ATOMIC_SEQ_CST);
        if (r == NETCHAN_RESULT_TIMEOUT) __atomic_add_fetch(&c->codes[1], 1, __ATOMIC_SEQ_CST);
        if (r != NETCHAN_RESULT_NO_RESPONDERS && r != NETCHAN_RESULT_TIMEOUT)
            fprintf(stderr, "unexpected result: %s (%s)\n", netchan_result_name(r), error);
    }
    t_counter_add(&c->done, 1);
}

static void on_result_drop(void *context) {
    t_counter_add(&((client_ctx *)context)->dropped, 1);
}

int main(void) {
    t_watchdog(120);
    server_ctx s;
    memset(&s, 0, sizeof s);
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    pthread_t th;
    pthread_create(&th, NULL, worker, &s);

    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    netchan_request_handler h = {&s, handle, handler_drop};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(server, "svc/*", h, &svc));
    CHECK(t_str_eq(netchan_service_pattern(svc), "svc/*"));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "svc/echo", 5000, &found));
    CHECK(found);

    /* Blocking requests. */
    netchan_bytes *reply = NULL;
    CHECK_OK(netchan_endpoint_request_blocking(client, "svc/echo", (const uint8_t *)"hi", 2, 5000, &reply));
    CHECK(t_slice_eq(netchan_bytes_data(reply), "hi", 2));
    netchan_bytes_free(reply);
    netchan_bytes_free(reply); /* double free: ignored */

    /* The same from a client that busy-polls while it waits. */
    {
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
    reply = NULL;
    CHECK_OK(netchan_endpoint_request_blocking(client, "svc/later", (const uint8_t *)"abc", 3, 5000, &reply));
    CHECK(t_slice_eq(netchan_bytes_data(reply), "later:abc", 9));
    netchan_bytes_free(reply);
    CHECK_RC(netchan_endpoint_request_blocking(client, "svc/fail", NULL, 0, 5000, &reply),
             NETCHAN_RESULT_HANDLER_ERROR);
    CHECK(strcmp(netchan_last_error(), "nope") == 0);
    CHECK_RC(netchan_endpoint_request_blocking(client, "svc/dropped", NULL, 0, 5000, &reply),
             NETCHAN_RESULT_HANDLER_ERROR);
    CHECK_RC(netchan_endpoint_request_blocking(client, "svc/never", NULL, 0, 150, &reply),
             NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_endpoint_request_blocking(client, "other/x", NULL, 0, 5000, &reply),
             NETCHAN_RESULT_NO_RESPONDERS);
    /* The same service reached locally. */
    CHECK_OK(netchan_endpoint_request_blocking(server, "svc/echo", (const uint8_t *)"local", 5, 5000, &reply));
    CHECK(t_slice_eq(netchan_bytes_data(reply), "local", 5));
    netchan_bytes_free(reply);

    /* Callback requests, many in flight at once. */
    client_ctx c;
    memset(&c, 0, sizeof c);
    t_counter_init(&c.done);
    t_counter_init(&c.dropped);
    const int K = 50;
    for (int i = 0; i < K; i++) {
        netchan_result_callback rcb = {&c, on_result, on_result_drop};
        CHECK_OK(netchan_endpoint_request(client, "svc/later", (const uint8_t *)"abc", 3, 5000, rcb));
    }
    netchan_result_callback nr = {&c, on_result, on_result_drop};
    CHECK_OK(netchan_endpoint_request(client, "nobody/here", NULL, 0, 5000, nr));
    netchan_result_callback to = {&c, on_result, on_result_drop};
    CHECK_OK(netchan_endpoint_request(client, "svc/never", NULL, 0, 100, to));
    CHECK(t_counter_wait(&c.done, K + 2, 10000) == K + 2);
    CHECK(t_counter_wait(&c.dropped, K + 2, 10000) == K + 2);
    CHECK(c.ok == K);
    CHECK(c.codes[0] == 1 && c.codes[1] == 1);

    /* Ping. */
    uint64_t rtt = 0;
    CHECK_OK(netchan_endpoint_ping(client, server_name, &rtt));
    CHECK(rtt > 0);

    /* A reply answered after its caller gave up is discarded quietly. */
    if (s.never) {
        CHECK_OK(netchan_reply_send(s.never, NULL, 0));
        netchan_reply_free(s.never);
    }
    netchan_service_free(svc);
    CHECK(s.drops == 1);
    CHECK_RC(netchan_endpoint_request_blocking(client, "svc/echo", NULL, 0, 300, &reply),
             NETCHAN_RESULT_NO_RESPONDERS);

    pthread_mutex_lock(&s.mu);
    s.stop = 1;
    pthread_cond_signal(&s.cv);
    pthread_mutex_unlock(&s.mu);
    pthread_join(th, NULL);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    netchan_string_free(server_name);
    t_counter_destroy(&c.done);
    t_counter_destroy(&c.dropped);
    pthread_mutex_destroy(&s.mu);
    pthread_cond_destroy(&s.cv);
    return t_finish("test_api_reqrep");
}
