/* API conventions: version, result codes and texts, the per-thread last
 * error, NULL arguments, invalid UTF-8, NULL payloads, free(NULL), double
 * and foreign frees, outputs written only on success, callbacks taken over
 * when a call fails, enum arguments checked, a closed endpoint, stats sized
 * by the caller, options read by netchan_endpoint_new. */
#include <stddef.h>

#include "testutil.h"

static int drops = 0;
static void count_drop(void *ctx) { (void)ctx; __atomic_add_fetch(&drops, 1, __ATOMIC_SEQ_CST); }
static void never_msg(void *ctx, const netchan_message *m) { (void)ctx; (void)m; }
static void never_result(void *ctx, netchan_result r, const uint8_t *p, size_t n, const char *e) {
    (void)ctx; (void)r; (void)p; (void)n; (void)e;
}
static void never_req(void *ctx, const netchan_request *q, netchan_reply *r) {
    (void)ctx; (void)q; (void)r;
}
static void never_event(void *ctx, const netchan_event *e) { (void)ctx; (void)e; }

static const char *BAD_UTF8 = "bad\xff\xfe";

static void test_version(void) {
    CHECK(netchan_version() ==
          NETCHAN_VERSION_MAJOR * 10000 + NETCHAN_VERSION_MINOR * 100 + NETCHAN_VERSION_PATCH);
    char want[32];
    snprintf(want, sizeof want, "%d.%d.%d", NETCHAN_VERSION_MAJOR, NETCHAN_VERSION_MINOR,
             NETCHAN_VERSION_PATCH);
    CHECK(strcmp(netchan_version_string(), want) == 0);
}

static void test_result_codes(void) {
    /* Every code: its number (the core's for 100-999), name and text. */
    static const struct {
        unsigned code;
        unsigned number;
        const char *name, *text;
    } codes[] = {
        {NETCHAN_RESULT_OK, 0, "OK", "success"},
        {NETCHAN_RESULT_INVALID_ARGUMENT, 100, "INVALID_ARGUMENT", "invalid argument"},
        {NETCHAN_RESULT_INVALID_ADDRESS, 101, "INVALID_ADDRESS", "invalid address"},
        {NETCHAN_RESULT_INVALID_PATH, 102, "INVALID_PATH", "invalid path or pattern"},
        {NETCHAN_RESULT_MESSAGE_TOO_LARGE, 103, "MESSAGE_TOO_LARGE", "message too large"},
        {NETCHAN_RESULT_CONNECT_REFUSED, 200, "CONNECT_REFUSED", "connection refused or unreachable"},
        {NETCHAN_RESULT_ADDRESS_IN_USE, 201, "ADDRESS_IN_USE", "address in use"},
        {NETCHAN_RESULT_PEER_LOST, 202, "PEER_LOST", "peer lost"},
        {NETCHAN_RESULT_UNSUPPORTED_VERSION, 203, "UNSUPPORTED_VERSION", "unsupported protocol version"},
        {NETCHAN_RESULT_PROTOCOL_ERROR, 204, "PROTOCOL_ERROR", "protocol error"},
        {NETCHAN_RESULT_HANDSHAKE_REJECTED, 205, "HANDSHAKE_REJECTED", "handshake rejected"},
        {NETCHAN_RESULT_UNKNOWN_PEER, 206, "UNKNOWN_PEER", "unknown peer"},
        {NETCHAN_RESULT_IO, 207, "IO", "I/O error"},
        {NETCHAN_RESULT_NAME_IN_USE, 208, "NAME_IN_USE", "a peer with that name is already connected"},
        {NETCHAN_RESULT_OVERLOADED, 209, "OVERLOADED", "the peer is at a connection limit; try again"},
        {NETCHAN_RESULT_TIMEOUT, 300, "TIMEOUT", "timed out"},
        {NETCHAN_RESULT_NO_RESPONDERS, 301, "NO_RESPONDERS", "no responders"},
        {NETCHAN_RESULT_CANCELLED, 302, "CANCELLED", "cancelled"},
        {NETCHAN_RESULT_HANDLER_ERROR, 303, "HANDLER_ERROR", "handler error"},
        {NETCHAN_RESULT_BUFFER_FULL, 400, "BUFFER_FULL", "buffer full"},
        {NETCHAN_RESULT_CLOSED, 500, "CLOSED", "closed"},
        {NETCHAN_RESULT_WOULD_DEADLOCK, 501, "WOULD_DEADLOCK", "blocking call would deadlock"},
        {NETCHAN_RESULT_PLAINTEXT_REFUSED, 600, "PLAINTEXT_REFUSED", "plaintext refused; use tls:// or allow insecure"},
        {NETCHAN_RESULT_TLS_FAILED, 601, "TLS_FAILED", "TLS handshake failed"},
        {NETCHAN_RESULT_CERT_UNTRUSTED, 602, "CERT_UNTRUSTED", "certificate not trusted"},
        {NETCHAN_RESULT_CERT_NAME_MISMATCH, 603, "CERT_NAME_MISMATCH", "certificate name mismatch"},
        {NETCHAN_RESULT_CERT_EXPIRED, 604, "CERT_EXPIRED", "certificate expired or not yet valid"},
        {NETCHAN_RESULT_CLIENT_CERT_REQUIRED, 605, "CLIENT_CERT_REQUIRED", "client certificate required"},
        {NETCHAN_RESULT_PERMISSION_DENIED, 606, "PERMISSION_DENIED", "permission denied"},
        {NETCHAN_RESULT_SHARED_KEY_REFUSED, 607, "SHARED_KEY_REFUSED", "shared key refused"},
        {NETCHAN_RESULT_RATE_LIMITED, 608, "RATE_LIMITED", "rate limited"},
        {NETCHAN_RESULT_INTERNAL, 900, "INTERNAL", "internal error"},
        {NETCHAN_RESULT_NULL_ARGUMENT, 1000, "NULL_ARGUMENT", "a required pointer argument is NULL"},
        {NETCHAN_RESULT_INVALID_UTF8, 1001, "INVALID_UTF8", "a string argument is not valid UTF-8"},
        {NETCHAN_RESULT_EMPTY, 1100, "EMPTY", "nothing queued"},
        {NETCHAN_RESULT_PANIC, 1900, "PANIC", "internal panic caught at the API boundary"},
    };
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        if (codes[i].code != codes[i].number) {
            fprintf(stderr, "%s is %u, want %u\n", codes[i].name, codes[i].code, codes[i].number);
            CHECK(codes[i].code == codes[i].number);
        }
        CHECK(strcmp(netchan_result_name(codes[i].code), codes[i].name) == 0);
        CHECK(strcmp(netchan_result_str(codes[i].code), codes[i].text) == 0);
        /* Static strings: the same pointer every time, never freed. */
        CHECK(netchan_result_name(codes[i].code) == netchan_result_name(codes[i].code));
        CHECK(netchan_result_str(codes[i].code) == netchan_result_str(codes[i].code));
    }
    CHECK(strcmp(netchan_result_name(12345), "UNKNOWN") == 0);
    CHECK(strcmp(netchan_result_str(12345), "unknown result code") == 0);
}

static void *fail_on_thread(void *arg) {
    char *seen = (char *)arg;
    /* A thread that never failed has an empty last error. */
    snprintf(seen, 128, "%s", netchan_last_error());
    CHECK_RC(netchan_options_new(NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(strcmp(netchan_last_error(), "argument `out` is NULL") == 0);
    return NULL;
}

static void test_last_error_is_per_thread(void) {
    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    CHECK_RC(netchan_options_set_name(NULL, "x"), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(strcmp(netchan_last_error(), "argument `options` is NULL") == 0);
    char seen[128] = "unset";
    pthread_t th;
    CHECK(pthread_create(&th, NULL, fail_on_thread, seen) == 0);
    pthread_join(th, NULL);
    CHECK(strcmp(seen, "") == 0);
    /* The other thread's failure did not touch this thread's detail... */
    CHECK(strcmp(netchan_last_error(), "argument `options` is NULL") == 0);
    /* ...and, like errno, a success does not clear it: the string read
     * before the success is still valid after it (ASan checks the read). */
    const char *before = netchan_last_error();
    CHECK_OK(netchan_options_set_name(o, "fine"));
    CHECK(strcmp(before, "argument `options` is NULL") == 0);
    CHECK(strcmp(netchan_last_error(), "argument `options` is NULL") == 0);
    netchan_options_free(o);
}

static void test_null_arguments(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep)); /* options may be NULL */
    netchan_options *o = NULL;
    netchan_subscribe_options *so = NULL;
    CHECK_OK(netchan_options_new(&o));
    CHECK_OK(netchan_subscribe_options_new(&so));
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "a/*", NULL, &sub)); /* options may be NULL */
    netchan_message_callback mcb = {NULL, never_msg, NULL};        /* drop may be NULL */
    netchan_result_callback rcb = {NULL, never_result, NULL};
    netchan_request_handler h = {NULL, never_req, NULL};
    netchan_event_callback ecb = {NULL, never_event, NULL};
    netchan_subscription *s2 = NULL;
    netchan_service *svc = NULL;
    netchan_event_listener *l = NULL;
    netchan_message *m = NULL;
    netchan_bytes *b = NULL;
    bool found = false;
    netchan_stats st;
    const netchan_result NA = NETCHAN_RESULT_NULL_ARGUMENT;

    CHECK_RC(netchan_endpoint_new(NULL, NULL), NA);
    CHECK(strstr(netchan_last_error(), "out") != NULL);
    CHECK_RC(netchan_endpoint_close(NULL), NA);
    CHECK_RC(netchan_endpoint_listen(NULL, "tcp://127.0.0.1:0", NULL), NA);
    CHECK_RC(netchan_endpoint_listen(ep, NULL, NULL), NA);
    CHECK_RC(netchan_endpoint_connect(NULL, "tcp://127.0.0.1:1", NULL), NA);
    CHECK_RC(netchan_endpoint_connect(ep, NULL, NULL), NA);
    CHECK_RC(netchan_endpoint_publish(NULL, "a", NULL, 0), NA);
    CHECK_RC(netchan_endpoint_publish(ep, NULL, NULL, 0), NA);
    CHECK_RC(netchan_endpoint_try_publish(NULL, "a", NULL, 0), NA);
    CHECK_RC(netchan_endpoint_try_publish(ep, NULL, NULL, 0), NA);
    CHECK_RC(netchan_endpoint_request(NULL, "a", NULL, 0, 100, rcb), NA);
    CHECK_RC(netchan_endpoint_request(ep, NULL, NULL, 0, 100, rcb), NA);
    CHECK_RC(netchan_endpoint_request_blocking(NULL, "a", NULL, 0, 100, &b), NA);
    CHECK_RC(netchan_endpoint_request_blocking(ep, NULL, NULL, 0, 100, &b), NA);
    CHECK_RC(netchan_endpoint_request_blocking(ep, "a", NULL, 0, 100, NULL), NA);
    CHECK_RC(netchan_endpoint_ping(NULL, "x", NULL), NA);
    CHECK_RC(netchan_endpoint_ping(ep, NULL, NULL), NA);
    CHECK_RC(netchan_endpoint_wait_for_subscribers(NULL, "a", 0, &found), NA);
    CHECK_RC(netchan_endpoint_wait_for_subscribers(ep, NULL, 0, &found), NA);
    CHECK_RC(netchan_endpoint_wait_for_subscribers(ep, "a", 0, NULL), NA);
    CHECK_RC(netchan_endpoint_wait_for_servers(NULL, "a", 0, &found), NA);
    CHECK_RC(netchan_endpoint_wait_for_servers(ep, NULL, 0, &found), NA);
    CHECK_RC(netchan_endpoint_wait_for_servers(ep, "a", 0, NULL), NA);
    CHECK_RC(netchan_endpoint_stats(NULL, &st, sizeof st), NA);
    CHECK_RC(netchan_endpoint_stats(ep, NULL, sizeof st), NA);
    CHECK_RC(netchan_endpoint_on_event(NULL, ecb, &l), NA);
    CHECK_RC(netchan_endpoint_on_event(ep, ecb, NULL), NA);
    CHECK_RC(netchan_endpoint_subscribe(NULL, "a", NULL, &s2), NA);
    CHECK_RC(netchan_endpoint_subscribe(ep, NULL, NULL, &s2), NA);
    CHECK_RC(netchan_endpoint_subscribe(ep, "a", NULL, NULL), NA);
    CHECK_RC(netchan_endpoint_subscribe_callback(NULL, "a", NULL, mcb, &s2), NA);
    CHECK_RC(netchan_endpoint_subscribe_callback(ep, NULL, NULL, mcb, &s2), NA);
    CHECK_RC(netchan_endpoint_subscribe_callback(ep, "a", NULL, mcb, NULL), NA);
    CHECK_RC(netchan_endpoint_serve(NULL, "a", h, &svc), NA);
    CHECK_RC(netchan_endpoint_serve(ep, NULL, h, &svc), NA);
    CHECK_RC(netchan_endpoint_serve(ep, "a", h, NULL), NA);
    CHECK_RC(netchan_options_new(NULL), NA);
    CHECK_RC(netchan_options_set_name(NULL, "x"), NA);
    CHECK_OK(netchan_options_set_name(o, NULL)); /* NULL: the random default name */
    CHECK_RC(netchan_options_set_max_frame_size(NULL, 1 << 20), NA);
    CHECK_RC(netchan_options_set_connect_timeout_ms(NULL, 5), NA);
    CHECK_RC(netchan_options_set_handshake_timeout_ms(NULL, 5), NA);
    CHECK_RC(netchan_options_set_heartbeat_interval_ms(NULL, 5), NA);
    CHECK_RC(netchan_options_set_send_buffer(NULL, 5), NA);
    CHECK_RC(netchan_options_set_send_timeout_ms(NULL, 5), NA);
    CHECK_RC(netchan_options_set_ping_timeout_ms(NULL, 5), NA);
    CHECK_RC(netchan_options_set_subscribe_capacity(NULL, 5), NA);
    CHECK_RC(netchan_options_set_subscribe_max_bytes(NULL, 5), NA);
    CHECK_RC(netchan_options_set_busy_poll_us(NULL, 5), NA);
    CHECK_RC(netchan_options_set_service_queue(NULL, 5), NA);
    CHECK_RC(netchan_options_set_max_connections(NULL, 5), NA);
    CHECK_RC(netchan_options_set_subscribe_overflow(NULL, NETCHAN_OVERFLOW_BLOCK), NA);
    CHECK_RC(netchan_subscribe_options_new(NULL), NA);
    CHECK_RC(netchan_subscribe_options_set_capacity(NULL, 5), NA);
    CHECK_RC(netchan_subscribe_options_set_max_bytes(NULL, 5), NA);
    CHECK_RC(netchan_subscribe_options_set_overflow(NULL, NETCHAN_OVERFLOW_BLOCK), NA);
    CHECK_RC(netchan_reply_send(NULL, NULL, 0), NA);
    CHECK_RC(netchan_reply_fail(NULL, NETCHAN_RESULT_HANDLER_ERROR, NULL), NA);
    CHECK_RC(netchan_message_clone(NULL, &m), NA);
    CHECK_RC(netchan_subscription_try_recv(NULL, &m), NA);
    CHECK_RC(netchan_subscription_try_recv(sub, NULL), NA);
    CHECK_RC(netchan_subscription_recv(NULL, 0, &m), NA);
    CHECK_RC(netchan_subscription_recv(sub, 0, NULL), NA);
    CHECK_RC(netchan_subscription_close(NULL), NA);

    /* Accessors return an empty value instead. */
    CHECK(netchan_endpoint_name(NULL) == NULL);
    CHECK(netchan_message_path(NULL).data == NULL && netchan_message_path(NULL).len == 0);
    CHECK(netchan_message_payload(NULL).data == NULL && netchan_message_payload(NULL).len == 0);
    CHECK(netchan_message_sender(NULL).data == NULL && netchan_message_sender(NULL).len == 0);
    CHECK(netchan_request_path(NULL).data == NULL && netchan_request_path(NULL).len == 0);
    CHECK(netchan_request_payload(NULL).data == NULL && netchan_request_payload(NULL).len == 0);
    CHECK(netchan_request_sender(NULL).data == NULL && netchan_request_sender(NULL).len == 0);
    CHECK(netchan_request_remaining_ms(NULL) == 0);
    CHECK(netchan_service_pattern(NULL).data == NULL && netchan_service_pattern(NULL).len == 0);
    CHECK(netchan_subscription_pattern(NULL).data == NULL && netchan_subscription_pattern(NULL).len == 0);
    CHECK(netchan_subscription_dropped(NULL) == 0);
    CHECK(netchan_bytes_data(NULL).data == NULL && netchan_bytes_data(NULL).len == 0);

    /* Nothing was created by any of the failed calls above. */
    CHECK(s2 == NULL && svc == NULL && l == NULL && m == NULL && b == NULL);
    netchan_subscription_free(sub);
    netchan_subscribe_options_free(so);
    netchan_options_free(o);
    netchan_endpoint_free(ep);
}

static void test_invalid_utf8(void) {
    const netchan_result IU = NETCHAN_RESULT_INVALID_UTF8;
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    netchan_message_callback mcb = {NULL, never_msg, NULL};
    netchan_result_callback rcb = {NULL, never_result, NULL};
    netchan_request_handler h = {NULL, never_req, NULL};
    netchan_subscription *sub = NULL;
    netchan_service *svc = NULL;
    netchan_bytes *b = NULL;
    bool found = false;
    CHECK_RC(netchan_options_set_name(o, BAD_UTF8), IU);
    CHECK(strstr(netchan_last_error(), "`name` is not valid UTF-8") != NULL);
    CHECK_RC(netchan_endpoint_listen(ep, BAD_UTF8, NULL), IU);
    CHECK_RC(netchan_endpoint_connect(ep, BAD_UTF8, NULL), IU);
    CHECK_RC(netchan_endpoint_publish(ep, "a/\xc3", NULL, 0), IU);
    CHECK_RC(netchan_endpoint_try_publish(ep, BAD_UTF8, NULL, 0), IU);
    CHECK_RC(netchan_endpoint_request(ep, BAD_UTF8, NULL, 0, 100, rcb), IU);
    CHECK_RC(netchan_endpoint_request_blocking(ep, BAD_UTF8, NULL, 0, 100, &b), IU);
    CHECK_RC(netchan_endpoint_ping(ep, BAD_UTF8, NULL), IU);
    CHECK_RC(netchan_endpoint_wait_for_subscribers(ep, BAD_UTF8, 0, &found), IU);
    CHECK_RC(netchan_endpoint_wait_for_servers(ep, BAD_UTF8, 0, &found), IU);
    CHECK_RC(netchan_endpoint_subscribe(ep, BAD_UTF8, NULL, &sub), IU);
    CHECK_RC(netchan_endpoint_subscribe_callback(ep, BAD_UTF8, NULL, mcb, &sub), IU);
    CHECK_RC(netchan_endpoint_serve(ep, BAD_UTF8, h, &svc), IU);
    CHECK(sub == NULL && svc == NULL && b == NULL);
    netchan_options_free(o);
    netchan_endpoint_free(ep);
}

static void test_null_payload_needs_zero_length(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "p/*", NULL, &sub));
    CHECK_OK(netchan_endpoint_publish(ep, "p/a", NULL, 0));
    CHECK_OK(netchan_endpoint_try_publish(ep, "p/b", NULL, 0));
    CHECK_RC(netchan_endpoint_publish(ep, "p/c", NULL, 3), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(strcmp(netchan_last_error(), "argument `data` is NULL") == 0);
    CHECK_RC(netchan_endpoint_try_publish(ep, "p/c", NULL, 3), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_bytes *b = NULL;
    CHECK_RC(netchan_endpoint_request_blocking(ep, "p/c", NULL, 3, 100, &b), NETCHAN_RESULT_NULL_ARGUMENT);
    drops = 0;
    netchan_result_callback rcb = {NULL, never_result, count_drop};
    CHECK_RC(netchan_endpoint_request(ep, "p/c", NULL, 3, 100, rcb), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(drops == 1);
    /* The two empty messages arrived, nothing else. */
    netchan_message *m = NULL;
    for (int i = 0; i < 2; i++) {
        CHECK_OK(netchan_subscription_try_recv(sub, &m));
        CHECK(netchan_message_payload(m).len == 0);
        netchan_message_free(m);
    }
    CHECK_RC(netchan_subscription_try_recv(sub, &m), NETCHAN_RESULT_EMPTY);
    netchan_subscription_free(sub);
    netchan_endpoint_free(ep);
}

static void echo(void *ctx, const netchan_request *q, netchan_reply *r) {
    (void)ctx;
    netchan_slice p = netchan_request_payload(q);
    CHECK_OK(netchan_reply_send(r, p.data, p.len));
    netchan_reply_free(r);
    netchan_reply_free(r); /* double free: ignored */
}

static void free_borrowed(void *ctx, const netchan_message *m) {
    /* The message a callback gets is borrowed: freeing it is ignored and
     * it stays readable for the rest of the call. */
    netchan_message_free((netchan_message *)m);
    CHECK(t_slice_eq(netchan_message_payload(m), "borrowed", 8));
    t_counter_add((t_counter *)ctx, 1);
}

static void test_free_null_double_and_foreign(void) {
    /* free(NULL) of every kind is harmless. */
    netchan_endpoint_free(NULL);
    netchan_options_free(NULL);
    netchan_subscribe_options_free(NULL);
    netchan_subscription_free(NULL);
    netchan_service_free(NULL);
    netchan_reply_free(NULL);
    netchan_message_free(NULL);
    netchan_bytes_free(NULL);
    netchan_string_free(NULL);
    netchan_event_listener_free(NULL);

    /* A second free of every kind is ignored (ASan would report a double
     * free of the memory otherwise). */
    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    netchan_options_free(o);
    netchan_options_free(o);
    netchan_subscribe_options *so = NULL;
    CHECK_OK(netchan_subscribe_options_new(&so));
    netchan_subscribe_options_free(so);
    netchan_subscribe_options_free(so);
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    char *bound = NULL;
    CHECK_OK(netchan_endpoint_listen(ep, "tcp://127.0.0.1:0", &bound));
    netchan_string_free(bound);
    netchan_string_free(bound);
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "d/*", NULL, &sub));
    CHECK_OK(netchan_endpoint_publish(ep, "d/x", (const uint8_t *)"x", 1));
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_try_recv(sub, &m));
    netchan_message_free(m);
    netchan_message_free(m);
    netchan_request_handler h = {NULL, echo, NULL};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(ep, "d/echo", h, &svc));
    netchan_bytes *b = NULL;
    CHECK_OK(netchan_endpoint_request_blocking(ep, "d/echo", (const uint8_t *)"e", 1, 5000, &b));
    netchan_bytes_free(b);
    netchan_bytes_free(b);
    netchan_service_free(svc);
    netchan_service_free(svc);
    netchan_event_callback ecb = {NULL, never_event, NULL};
    netchan_event_listener *l = NULL;
    CHECK_OK(netchan_endpoint_on_event(ep, ecb, &l));
    netchan_event_listener_free(l);
    netchan_event_listener_free(l);
    netchan_subscription_free(sub);
    netchan_subscription_free(sub);

    /* Something the library did not hand out, or of the wrong kind, or
     * borrowed, is ignored: the endpoint passed as a message still works. */
    netchan_string_free((char *)"not ours");
    netchan_message_free((netchan_message *)ep);
    netchan_bytes_free((netchan_bytes *)ep);
    netchan_subscription_free((netchan_subscription *)ep);
    t_counter got;
    t_counter_init(&got);
    netchan_message_callback mcb = {&got, free_borrowed, NULL};
    CHECK_OK(netchan_endpoint_subscribe_callback(ep, "d/borrowed", NULL, mcb, &sub));
    CHECK_OK(netchan_endpoint_publish(ep, "d/borrowed", (const uint8_t *)"borrowed", 8));
    CHECK(t_counter_wait(&got, 1, 5000) == 1);
    netchan_subscription_free(sub);
    netchan_endpoint_free(ep);
    netchan_endpoint_free(ep);
    t_counter_destroy(&got);
}

static void test_outputs_untouched_on_error(void) {
    /* Each out-parameter holds a sentinel that a failing call must keep. */
    static int sentinel_storage;
    void *S = &sentinel_storage;
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));

    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    CHECK_OK(netchan_options_set_send_timeout_ms(o, 0));
    netchan_endpoint *ep2 = (netchan_endpoint *)S;
    CHECK_RC(netchan_endpoint_new(o, &ep2), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(ep2 == (netchan_endpoint *)S);
    netchan_options_free(o);

    char *str = (char *)S;
    CHECK_RC(netchan_endpoint_listen(ep, "nonsense", &str), NETCHAN_RESULT_INVALID_ADDRESS);
    CHECK(str == (char *)S);
    CHECK_RC(netchan_endpoint_connect(ep, "nonsense", &str), NETCHAN_RESULT_INVALID_ADDRESS);
    CHECK(str == (char *)S);
    uint64_t rtt = 77;
    CHECK_RC(netchan_endpoint_ping(ep, "nobody", &rtt), NETCHAN_RESULT_UNKNOWN_PEER);
    CHECK(rtt == 77);
    netchan_bytes *b = (netchan_bytes *)S;
    CHECK_RC(netchan_endpoint_request_blocking(ep, "svc/none", NULL, 0, 1000, &b), NETCHAN_RESULT_NO_RESPONDERS);
    CHECK(b == (netchan_bytes *)S);
    CHECK_RC(netchan_endpoint_request_blocking(ep, "svc/none", NULL, 0, 0, &b), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(b == (netchan_bytes *)S);
    bool found = true;
    CHECK_RC(netchan_endpoint_wait_for_subscribers(ep, "bad//path", 0, &found), NETCHAN_RESULT_INVALID_PATH);
    CHECK(found == true);
    CHECK_RC(netchan_endpoint_wait_for_servers(ep, "bad//path", 0, &found), NETCHAN_RESULT_INVALID_PATH);
    CHECK(found == true);

    netchan_subscription *sub = (netchan_subscription *)S;
    CHECK_RC(netchan_endpoint_subscribe(ep, "a/temp*", NULL, &sub), NETCHAN_RESULT_INVALID_PATH);
    CHECK(sub == (netchan_subscription *)S);
    netchan_subscribe_options *so = NULL;
    CHECK_OK(netchan_subscribe_options_new(&so));
    CHECK_OK(netchan_subscribe_options_set_capacity(so, 0));
    CHECK_RC(netchan_endpoint_subscribe(ep, "a/*", so, &sub), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(sub == (netchan_subscription *)S);
    netchan_subscribe_options_free(so);
    netchan_message_callback mcb = {NULL, never_msg, NULL};
    CHECK_RC(netchan_endpoint_subscribe_callback(ep, "a//", NULL, mcb, &sub), NETCHAN_RESULT_INVALID_PATH);
    CHECK(sub == (netchan_subscription *)S);
    netchan_service *svc = (netchan_service *)S;
    netchan_request_handler h = {NULL, never_req, NULL};
    CHECK_RC(netchan_endpoint_serve(ep, "a//", h, &svc), NETCHAN_RESULT_INVALID_PATH);
    CHECK(svc == (netchan_service *)S);
    netchan_event_listener *l = (netchan_event_listener *)S;
    netchan_event_callback no_call = {NULL, NULL, NULL};
    CHECK_RC(netchan_endpoint_on_event(ep, no_call, &l), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(l == (netchan_event_listener *)S);

    netchan_subscription *pull = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "q/*", NULL, &pull));
    netchan_message *m = (netchan_message *)S;
    CHECK_RC(netchan_subscription_try_recv(pull, &m), NETCHAN_RESULT_EMPTY);
    CHECK(m == (netchan_message *)S);
    CHECK_RC(netchan_subscription_recv(pull, 20, &m), NETCHAN_RESULT_TIMEOUT);
    CHECK(m == (netchan_message *)S);
    CHECK_RC(netchan_message_clone(NULL, &m), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(m == (netchan_message *)S);
    netchan_stats st;
    memset(&st, 0xab, sizeof st);
    CHECK_RC(netchan_endpoint_stats(NULL, &st, sizeof st), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(st.msgs_in == 0xababababababababULL);
    netchan_subscription_free(pull);
    netchan_endpoint_free(ep);
}

static void test_callback_taken_over_on_failure(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    netchan_subscription *sub = NULL;
    netchan_service *svc = NULL;
    netchan_event_listener *l = NULL;
    drops = 0;
    netchan_message_callback mcb = {NULL, never_msg, count_drop};
    CHECK_RC(netchan_endpoint_subscribe_callback(NULL, "a", NULL, mcb, &sub), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_subscribe_callback(ep, "a//", NULL, mcb, &sub), NETCHAN_RESULT_INVALID_PATH);
    netchan_message_callback mno = {NULL, NULL, count_drop};
    CHECK_RC(netchan_endpoint_subscribe_callback(ep, "a", NULL, mno, &sub), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_result_callback rcb = {NULL, never_result, count_drop};
    CHECK_RC(netchan_endpoint_request(NULL, "a", NULL, 0, 100, rcb), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_result_callback rno = {NULL, NULL, count_drop};
    CHECK_RC(netchan_endpoint_request(ep, "a", NULL, 0, 100, rno), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_request_handler h = {NULL, never_req, count_drop};
    CHECK_RC(netchan_endpoint_serve(ep, NULL, h, &svc), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_request_handler hno = {NULL, NULL, count_drop};
    CHECK_RC(netchan_endpoint_serve(ep, "a", hno, &svc), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_event_callback ecb = {NULL, never_event, count_drop};
    CHECK_RC(netchan_endpoint_on_event(ep, ecb, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_event_callback eno = {NULL, NULL, count_drop};
    CHECK_RC(netchan_endpoint_on_event(ep, eno, &l), NETCHAN_RESULT_NULL_ARGUMENT);
    /* Each drop ran before its function returned; no call ran (never_*
     * would not count, but ASan/UBSan would flag a call through NULL). */
    CHECK(drops == 9);
    netchan_endpoint_free(ep);
}

static void test_enum_arguments_checked(void) {
    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    CHECK_RC(netchan_options_set_subscribe_overflow(o, 77), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "77") != NULL);
    CHECK_OK(netchan_options_set_subscribe_overflow(o, NETCHAN_OVERFLOW_DROP_NEWEST));
    netchan_subscribe_options *so = NULL;
    CHECK_OK(netchan_subscribe_options_new(&so));
    CHECK_RC(netchan_subscribe_options_set_overflow(so, 4), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK_OK(netchan_subscribe_options_set_overflow(so, NETCHAN_OVERFLOW_DROP_OLDEST));
    CHECK_OK(netchan_subscribe_options_set_overflow(so, NETCHAN_OVERFLOW_DISCONNECT));
    netchan_subscribe_options_free(so);
    netchan_options_free(o);
}

static void test_options_read_by_endpoint_new(void) {
    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    /* A bad value is named by netchan_endpoint_new, not by the setter. */
    CHECK_OK(netchan_options_set_send_timeout_ms(o, 0));
    netchan_endpoint *ep = NULL;
    CHECK_RC(netchan_endpoint_new(o, &ep), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "send_timeout") != NULL);
    CHECK_OK(netchan_options_set_send_timeout_ms(o, 2000));
    CHECK_OK(netchan_options_set_busy_poll_us(o, 1000001));
    CHECK_RC(netchan_endpoint_new(o, &ep), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "busy_poll") != NULL);
    CHECK_OK(netchan_options_set_busy_poll_us(o, 1000000));
    /* The name string is copied: the caller's buffer may change at once. */
    char name[32] = "errors-test";
    CHECK_OK(netchan_options_set_name(o, name));
    memset(name, 'x', sizeof name - 1);
    CHECK_OK(netchan_endpoint_new(o, &ep));
    /* Options are only read: freeing them leaves the endpoint as made. */
    netchan_options_free(o);
    CHECK(strcmp(netchan_endpoint_name(ep), "errors-test") == 0);
    netchan_endpoint_free(ep);
}

static void test_closed_endpoint_reports_closed(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    CHECK_OK(netchan_endpoint_close(ep));
    CHECK_OK(netchan_endpoint_close(ep)); /* idempotent */
    netchan_subscription *sub = NULL;
    netchan_bytes *b = NULL;
    CHECK_RC(netchan_endpoint_publish(ep, "a/b", (const uint8_t *)"x", 1), NETCHAN_RESULT_CLOSED);
    CHECK_RC(netchan_endpoint_subscribe(ep, "a/b", NULL, &sub), NETCHAN_RESULT_CLOSED);
    CHECK_RC(netchan_endpoint_request_blocking(ep, "a/b", NULL, 0, 100, &b), NETCHAN_RESULT_CLOSED);
    CHECK_RC(netchan_endpoint_listen(ep, "tcp://127.0.0.1:0", NULL), NETCHAN_RESULT_CLOSED);
    netchan_endpoint_free(ep);
}

static void test_stats_size_from_caller(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "s/*", NULL, &sub));
    /* An older program knows fewer fields: only those are written. */
    netchan_stats st;
    memset(&st, 0xab, sizeof st);
    CHECK_OK(netchan_endpoint_stats(ep, &st, offsetof(netchan_stats, peers)));
    CHECK(st.msgs_in == 0 && st.errors == 0);
    CHECK(st.peers == 0xababababababababULL && st.subscriptions == 0xababababababababULL);
    /* A newer program's larger struct: the fields the library does not
     * know are left as they were. */
    unsigned char big[sizeof(netchan_stats) + 16];
    memset(big, 0xcd, sizeof big);
    CHECK_OK(netchan_endpoint_stats(ep, (netchan_stats *)(void *)big, sizeof big));
    netchan_stats got;
    memcpy(&got, big, sizeof got);
    CHECK(got.peers == 0 && got.subscriptions == 1);
    for (size_t i = sizeof(netchan_stats); i < sizeof big; i++) CHECK(big[i] == 0xcd);
    netchan_subscription_free(sub);
    netchan_endpoint_free(ep);
}

int main(void) {
    t_watchdog(60);
    T_RUN(test_version);
    T_RUN(test_result_codes);
    T_RUN(test_last_error_is_per_thread);
    T_RUN(test_null_arguments);
    T_RUN(test_invalid_utf8);
    T_RUN(test_null_payload_needs_zero_length);
    T_RUN(test_free_null_double_and_foreign);
    T_RUN(test_outputs_untouched_on_error);
    T_RUN(test_callback_taken_over_on_failure);
    T_RUN(test_enum_arguments_checked);
    T_RUN(test_options_read_by_endpoint_new);
    T_RUN(test_closed_endpoint_reports_closed);
    T_RUN(test_stats_size_from_caller);
    return t_finish("test_api_errors");
}
