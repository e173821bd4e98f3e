/* Every kind of handle created, used and freed, then netchan_runtime_shutdown():
 * run under valgrind memcheck, which must report "All heap blocks were
 * freed" and no errors (tests/c/run.sh). Also: netchan_runtime_shutdown() joins
 * every thread the library started. */
#include <dirent.h>

#include "testutil.h"

/* Threads of this process now (entries of /proc/self/task). */
static int thread_count(void) {
    DIR *d = opendir("/proc/self/task");
    if (d == NULL) return -1;
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.') n++;
    closedir(d);
    return n;
}

static void on_msg(void *context, const netchan_message *m) {
    (void)m;
    t_counter_add((t_counter *)context, 1);
}
static void on_event(void *context, const netchan_event *e) {
    (void)context;
    (void)e;
}
static void echo(void *context, const netchan_request *req, netchan_reply *reply) {
    (void)context;
    netchan_slice p = netchan_request_payload(req);
    netchan_reply_send(reply, p.data, p.len);
    netchan_reply_free(reply);
}
static void on_result(void *context, netchan_result r, const uint8_t *p, size_t n, const char *e) {
    (void)p;
    (void)n;
    (void)e;
    t_counter_add((t_counter *)context, r == NETCHAN_RESULT_OK ? 1 : 1000);
}

/* Streams: each message back; at the end, finish and free the stream. */
static void stream_msg(void *context, netchan_stream *s, const netchan_slice *m, netchan_result r) {
    (void)r;
    if (m != NULL) {
        netchan_stream_try_send(s, m->data, m->len);
        return;
    }
    netchan_stream_finish(s);
    netchan_stream_free(s);
    t_counter_add((t_counter *)context, 1);
}
static void stream_handler(void *context, netchan_stream *s) {
    netchan_stream_callback cb = {context, stream_msg, NULL};
    netchan_stream_on_message(s, cb);
}

static void test_every_kind_of_handle_freed(void) {
    t_counter got, results;
    t_counter_init(&got);
    t_counter_init(&results);
    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    CHECK_OK(netchan_options_set_name(o, "leak-server"));
    netchan_endpoint *server = NULL, *client = NULL;
    CHECK_OK(netchan_endpoint_new(o, &server));
    netchan_options_free(o);
    netchan_event_callback ecb = {NULL, on_event, NULL};
    netchan_event_listener *l = NULL;
    CHECK_OK(netchan_endpoint_on_event(server, ecb, &l));
    char *addr = NULL, *peer = NULL;
    CHECK_OK(netchan_endpoint_listen(server, "tcp://127.0.0.1:0", &addr));
    CHECK_OK(netchan_endpoint_new(NULL, &client));
    CHECK_OK(netchan_endpoint_connect(client, addr, &peer));

    netchan_subscription *pull = NULL, *cb = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "a/*", NULL, &pull));
    netchan_message_callback mcb = {&got, on_msg, NULL};
    CHECK_OK(netchan_endpoint_subscribe_callback(server, "a/**", NULL, mcb, &cb));
    netchan_request_handler h = {NULL, echo, NULL};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(server, "echo", h, &svc));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "a/b", 10000, &found));
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "echo", 10000, &found));

    for (int i = 0; i < 20; i++) CHECK_OK(netchan_endpoint_publish(client, "a/b", (const uint8_t *)"x", 1));
    for (int i = 0; i < 20; i++) {
        netchan_message *m = NULL;
        CHECK_OK(netchan_subscription_recv(pull, 10000, &m));
        netchan_message_free(m);
    }
    CHECK(t_counter_wait(&got, 20, 10000) == 20);
    netchan_bytes *r = NULL;
    CHECK_OK(netchan_endpoint_request_blocking(client, "echo", (const uint8_t *)"q", 1, 10000, &r));
    netchan_bytes_free(r);
    netchan_result_callback rcb = {&results, on_result, NULL};
    CHECK_OK(netchan_endpoint_request(client, "echo", NULL, 0, 10000, rcb));
    CHECK(t_counter_wait(&results, 1, 10000) == 1);
    uint64_t rtt = 0;
    CHECK_OK(netchan_endpoint_ping(client, peer, &rtt));
    CHECK_RC(netchan_endpoint_publish(client, "bad//", NULL, 0), NETCHAN_RESULT_INVALID_PATH);

    /* Streams: a pulled service, a handler's, options, a stream finished
     * both ways and one freed unfinished (cancelled). */
    t_counter ended;
    t_counter_init(&ended);
    netchan_stream_service *spull = NULL, *scb = NULL;
    CHECK_OK(netchan_endpoint_serve_stream(server, "pulled", 0, 0, &spull));
    netchan_stream_handler sh = {&ended, stream_handler, NULL};
    CHECK_OK(netchan_endpoint_serve_stream_callback(server, "streams", 0, 0, 0, sh, &scb));
    netchan_stream_options *so = NULL;
    CHECK_OK(netchan_stream_options_new(&so));
    CHECK_OK(netchan_stream_options_set_wait_for_responder(so, true));
    netchan_stream *st = NULL;
    CHECK_OK(netchan_endpoint_open_stream(client, "streams", (const uint8_t *)"q", 1, so, &st));
    CHECK_OK(netchan_stream_send(st, (const uint8_t *)"x", 1, 10000));
    CHECK_OK(netchan_stream_finish(st));
    netchan_bytes *sm = NULL;
    CHECK_OK(netchan_stream_recv(st, 10000, &sm));
    CHECK(sm != NULL && t_slice_eq(netchan_bytes_data(sm), "x", 1));
    netchan_bytes_free(sm);
    CHECK_OK(netchan_stream_recv(st, 10000, &sm));
    CHECK(sm == NULL);
    netchan_stream_free(st);
    CHECK_OK(netchan_endpoint_open_stream(client, "streams", NULL, 0, so, &st));
    netchan_stream_free(st);
    CHECK(t_counter_wait(&ended, 2, 10000) == 2);
    netchan_stream_options_free(so);
    netchan_stream_service_free(scb);
    netchan_stream_service_free(spull);
    t_counter_destroy(&ended);

    netchan_subscription_free(pull);
    netchan_subscription_free(cb);
    netchan_service_free(svc);
    netchan_event_listener_free(l);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    netchan_string_free(addr);
    netchan_string_free(peer);
    t_counter_destroy(&got);
    t_counter_destroy(&results);
}

static void test_shutdown_joins_threads(void) {
    int before = thread_count();
    CHECK(before >= 1);
    netchan_endpoint *server = NULL, *client = NULL;
    t_pair(&server, &client, NULL);
    CHECK(thread_count() > before); /* the runtime's worker threads */
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    CHECK_OK(netchan_runtime_shutdown(5000));
    CHECK(thread_count() == before);
}

int main(void) {
    t_watchdog(300);
    T_RUN(test_shutdown_joins_threads);
    T_RUN(test_every_kind_of_handle_freed);
    return t_finish("test_leak_shutdown");
}
