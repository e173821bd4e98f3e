/* Bidirectional streams: open, send, receive, half-close, cancel, deadline,
 * credit with a small window, pulled and callback services, a message
 * callback per stream, WOULD_DEADLOCK from callbacks, freeing an
 * unfinished stream, NULL and invalid arguments. Every thread a test
 * starts is joined before it returns. */
#include "testutil.h"

static netchan_endpoint *server, *client;

/* ---- a pulled echo server on its own thread --------------------------------- */

typedef struct {
    netchan_stream_service *svc;
    int streams;   /* how many streams to serve */
    int failures;  /* checks failed on the server thread */
    char peer[64]; /* the opener's name, as the server saw it */
} echo_server;

/* Accepts `streams` streams one after the other; echoes the first payload
 * and every message, then finishes when the opener finished. */
static void *echo_thread(void *arg) {
    echo_server *e = (echo_server *)arg;
    for (int i = 0; i < e->streams; i++) {
        netchan_stream *s = NULL;
        netchan_result rc = netchan_stream_service_accept(e->svc, 20000, &s);
        if (rc != NETCHAN_RESULT_OK) {
            fprintf(stderr, "echo: accept: %s (%s)\n", netchan_result_name(rc), netchan_last_error());
            e->failures++;
            continue;
        }
        netchan_str peer = netchan_stream_peer(s);
        snprintf(e->peer, sizeof e->peer, "%.*s", (int)peer.len, peer.data);
        netchan_slice first = netchan_stream_first_payload(s);
        if (netchan_stream_send(s, first.data, first.len, -1) != NETCHAN_RESULT_OK) e->failures++;
        for (;;) {
            netchan_bytes *m = NULL;
            rc = netchan_stream_recv(s, 20000, &m);
            if (rc != NETCHAN_RESULT_OK) {
                fprintf(stderr, "echo: recv: %s (%s)\n", netchan_result_name(rc), netchan_last_error());
                e->failures++;
                break;
            }
            if (m == NULL) break; /* the opener finished */
            netchan_slice d = netchan_bytes_data(m);
            rc = netchan_stream_send(s, d.data, d.len, 20000);
            netchan_bytes_free(m);
            if (rc != NETCHAN_RESULT_OK) {
                e->failures++;
                break;
            }
        }
        if (netchan_stream_finish(s) != NETCHAN_RESULT_OK) e->failures++;
        netchan_stream_free(s);
    }
    return NULL;
}

/* Message i of the echo test: (i * 37) % 3000 bytes, byte j = i + j. */
static size_t msg_of(int i, uint8_t *buf) {
    size_t n = ((size_t)i * 37) % 3000;
    for (size_t j = 0; j < n; j++) buf[j] = (uint8_t)(i + j);
    return n;
}

/* One echo round trip on a stream from `from` to a service of `to`. */
static void echo_round_trip(netchan_endpoint *to, netchan_endpoint *from, const char *want_peer) {
    echo_server e;
    memset(&e, 0, sizeof e);
    e.streams = 1;
    CHECK_OK(netchan_endpoint_serve_stream(to, "echo/*", 0, 0, &e.svc));
    CHECK(t_str_eq(netchan_stream_service_pattern(e.svc), "echo/*"));
    pthread_t th;
    pthread_create(&th, NULL, echo_thread, &e);

    netchan_stream_options *o = NULL;
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_wait_for_responder(o, true));
    netchan_stream *s = NULL;
    CHECK_OK(netchan_endpoint_open_stream(from, "echo/a", (const uint8_t *)"hello", 5, o, &s));
    netchan_stream_options_free(o);
    CHECK(s != NULL);
    CHECK(t_str_eq(netchan_stream_path(s), "echo/a"));
    CHECK(netchan_stream_first_payload(s).len == 0); /* the opener's own side has none */
    CHECK(netchan_stream_remaining_ms(s) == UINT64_MAX);
    netchan_bytes *m = NULL;
    CHECK_OK(netchan_stream_recv(s, 10000, &m));
    CHECK(m != NULL && t_slice_eq(netchan_bytes_data(m), "hello", 5));
    netchan_bytes_free(m);

    static uint8_t buf[3000];
    enum { N = 300 }; /* about 450 KB each way: within both 1 MiB windows */
    for (int i = 0; i < N; i++) {
        size_t n = msg_of(i, buf);
        CHECK_OK(netchan_stream_send(s, buf, n, 10000));
    }
    CHECK_OK(netchan_stream_finish(s));
    CHECK_OK(netchan_stream_finish(s)); /* idempotent */
    CHECK_RC(netchan_stream_send(s, (const uint8_t *)"late", 4, 1000), NETCHAN_RESULT_INVALID_ARGUMENT);
    int exact = 0;
    for (int i = 0; i < N; i++) {
        size_t n = msg_of(i, buf);
        m = NULL;
        CHECK_OK(netchan_stream_recv(s, 10000, &m));
        if (m != NULL && t_slice_eq(netchan_bytes_data(m), buf, n)) exact++;
        netchan_bytes_free(m);
    }
    CHECK(exact == N);
    /* The server's end, and it stays ended. */
    m = (netchan_bytes *)&m;
    CHECK_OK(netchan_stream_recv(s, 10000, &m));
    CHECK(m == NULL);
    m = (netchan_bytes *)&m;
    CHECK_OK(netchan_stream_try_recv(s, &m));
    CHECK(m == NULL);
    pthread_join(th, NULL);
    CHECK(e.failures == 0);
    CHECK(strcmp(e.peer, want_peer) == 0);
    CHECK(t_str_eq(netchan_stream_peer(s), netchan_endpoint_name(to)));
    netchan_stream_free(s);
    netchan_stream_service_free(e.svc);
}

static void test_stream_echo_half_close_tcp_unix_local(void) {
    /* TCP (the shared pair). */
    echo_round_trip(server, client, netchan_endpoint_name(client));
    /* The same-host transport: a Unix socket (a named pipe on Windows). */
    netchan_endpoint *a = NULL, *b = NULL;
    char path[128], *addr = NULL;
#ifdef _WIN32
    snprintf(path, sizeof path, "pipe://netchan-ctest-streams-%d", (int)getpid());
#else
    snprintf(path, sizeof path, "unix:///tmp/netchan-ctest-streams-%d.sock", (int)getpid());
#endif
    CHECK_OK(netchan_endpoint_new(NULL, &a));
    CHECK_OK(netchan_endpoint_new(NULL, &b));
    CHECK_OK(netchan_endpoint_listen(a, path, &addr));
    CHECK_OK(netchan_endpoint_connect(b, addr, NULL));
    echo_round_trip(a, b, netchan_endpoint_name(b));
    netchan_endpoint_free(b);
    netchan_endpoint_free(a);
    netchan_string_free(addr);
    /* Within one endpoint. */
    echo_round_trip(server, server, netchan_endpoint_name(server));
}

/* ---- 16 MiB through a 64 KiB window ----------------------------------------- */

enum { CHUNK = 64 * 1024, CHUNKS = 256 };

typedef struct {
    netchan_stream_service *svc;
    long bytes;
    long chunks_ok;
    int failures;
} sink_server;

static void *sink_thread(void *arg) {
    sink_server *k = (sink_server *)arg;
    netchan_stream *s = NULL;
    if (netchan_stream_service_accept(k->svc, 20000, &s) != NETCHAN_RESULT_OK) {
        k->failures++;
        return NULL;
    }
    long i = 0;
    for (;;) {
        netchan_bytes *m = NULL;
        netchan_result rc = netchan_stream_recv(s, 30000, &m);
        if (rc != NETCHAN_RESULT_OK) {
            fprintf(stderr, "sink: recv: %s (%s)\n", netchan_result_name(rc), netchan_last_error());
            k->failures++;
            break;
        }
        if (m == NULL) break;
        netchan_slice d = netchan_bytes_data(m);
        k->bytes += (long)d.len;
        /* Chunk i is filled with byte i, its first byte is i too. */
        int good = d.len == CHUNK;
        for (size_t j = 0; good && j < d.len; j += 4093) good = d.data[j] == (uint8_t)i;
        if (good && d.data[d.len - 1] == (uint8_t)i) k->chunks_ok++;
        netchan_bytes_free(m);
        i++;
    }
    char answer[64];
    int n = snprintf(answer, sizeof answer, "%ld %ld", k->bytes, k->chunks_ok);
    if (netchan_stream_send(s, (const uint8_t *)answer, (size_t)n, 20000) != NETCHAN_RESULT_OK) k->failures++;
    netchan_stream_finish(s);
    netchan_stream_free(s);
    return NULL;
}

static void test_stream_16mib_in_64k_chunks_with_a_small_window(void) {
    sink_server k;
    memset(&k, 0, sizeof k);
    CHECK_OK(netchan_endpoint_serve_stream(server, "sink", 0, CHUNK, &k.svc));
    pthread_t th;
    pthread_create(&th, NULL, sink_thread, &k);
    netchan_stream_options *o = NULL;
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_window(o, CHUNK));
    CHECK_OK(netchan_stream_options_set_wait_for_responder(o, true));
    netchan_stream *s = NULL;
    CHECK_OK(netchan_endpoint_open_stream(client, "sink", NULL, 0, o, &s));
    netchan_stream_options_free(o);
    uint8_t *chunk = (uint8_t *)malloc(CHUNK);
    int sent = 0, full = 0;
    for (int i = 0; i < CHUNKS; i++) {
        memset(chunk, i, CHUNK);
        /* try_send says BUFFER_FULL while the window is spent; send waits. */
        netchan_result rc = netchan_stream_try_send(s, chunk, CHUNK);
        if (rc == NETCHAN_RESULT_BUFFER_FULL) {
            full++;
            rc = netchan_stream_send(s, chunk, CHUNK, 30000);
        }
        if (rc == NETCHAN_RESULT_OK) sent++;
    }
    free(chunk);
    CHECK(sent == CHUNKS);
    CHECK(full > 0); /* a 64 KiB window cannot take 16 MiB at once */
    CHECK_OK(netchan_stream_finish(s));
    netchan_bytes *m = NULL;
    CHECK_OK(netchan_stream_recv(s, 30000, &m));
    char want[64];
    snprintf(want, sizeof want, "%ld %d", (long)CHUNK * CHUNKS, CHUNKS);
    CHECK(m != NULL && t_slice_eq(netchan_bytes_data(m), want, strlen(want)));
    netchan_bytes_free(m);
    m = (netchan_bytes *)&m;
    CHECK_OK(netchan_stream_recv(s, 10000, &m));
    CHECK(m == NULL);
    pthread_join(th, NULL);
    CHECK(k.failures == 0);
    CHECK(k.bytes == (long)CHUNK * CHUNKS);
    CHECK(k.chunks_ok == CHUNKS);
    netchan_stream_free(s);
    netchan_stream_service_free(k.svc);
}

/* ---- helpers: one accepted stream ------------------------------------------ */

/* Opens a stream on `path` from `client` and accepts it at `svc` (its
 * opener waits to be accepted, so the open runs on a thread). */
typedef struct {
    const char *path;
    netchan_stream_options *opts;
    netchan_stream *s;
    netchan_result rc;
} opener;

static void *open_thread(void *arg) {
    opener *o = (opener *)arg;
    o->rc = netchan_endpoint_open_stream(client, o->path, (const uint8_t *)"first", 5, o->opts, &o->s);
    return NULL;
}

static void open_pair(netchan_stream_service *svc, const char *path, netchan_stream_options *opts,
                      netchan_stream **opened, netchan_stream **accepted) {
    opener o = {path, opts, NULL, NETCHAN_RESULT_INTERNAL};
    pthread_t th;
    pthread_create(&th, NULL, open_thread, &o);
    CHECK_OK(netchan_stream_service_accept(svc, 10000, accepted));
    pthread_join(th, NULL);
    CHECK_OK(o.rc);
    *opened = o.s;
    CHECK(t_slice_eq(netchan_stream_first_payload(*accepted), "first", 5));
}

static netchan_stream_service *pull_service(const char *pattern) {
    netchan_stream_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve_stream(server, pattern, 0, 0, &svc));
    return svc;
}

/* ---- cancel ------------------------------------------------------------------ */

static void test_stream_cancel_seen_by_the_other_side(void) {
    netchan_stream_service *svc = pull_service("cancel/*");
    netchan_stream_options *o = NULL;
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_wait_for_responder(o, true));
    netchan_stream *c = NULL, *srv = NULL;
    netchan_bytes *m = NULL;

    /* The opener cancels: the server gets what came before, then CANCELLED. */
    open_pair(svc, "cancel/a", o, &c, &srv);
    CHECK_OK(netchan_stream_send(c, (const uint8_t *)"one", 3, 5000));
    CHECK_OK(netchan_stream_cancel(c));
    CHECK_OK(netchan_stream_cancel(c)); /* idempotent */
    CHECK_RC(netchan_stream_recv(c, 5000, &m), NETCHAN_RESULT_CANCELLED);
    CHECK_RC(netchan_stream_send(c, (const uint8_t *)"x", 1, 5000), NETCHAN_RESULT_CANCELLED);
    CHECK_OK(netchan_stream_recv(srv, 10000, &m));
    CHECK(m != NULL && t_slice_eq(netchan_bytes_data(m), "one", 3));
    netchan_bytes_free(m);
    m = NULL;
    CHECK_RC(netchan_stream_recv(srv, 10000, &m), NETCHAN_RESULT_CANCELLED);
    CHECK(m == NULL);
    CHECK_RC(netchan_stream_send(srv, (const uint8_t *)"x", 1, 5000), NETCHAN_RESULT_CANCELLED);
    CHECK_RC(netchan_stream_try_send(srv, (const uint8_t *)"x", 1), NETCHAN_RESULT_CANCELLED);
    netchan_stream_free(c);
    netchan_stream_free(srv);

    /* The server ends it with its own code and text. */
    open_pair(svc, "cancel/b", o, &c, &srv);
    CHECK_RC(netchan_stream_cancel_with(srv, 7, "x"), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK_RC(netchan_stream_cancel_with(srv, NETCHAN_RESULT_EMPTY, "x"), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK_RC(netchan_stream_cancel_with(srv, NETCHAN_RESULT_HANDLER_ERROR, "bad\xff"), NETCHAN_RESULT_INVALID_UTF8);
    CHECK_OK(netchan_stream_send(srv, (const uint8_t *)"before", 6, 5000));
    CHECK_OK(netchan_stream_cancel_with(srv, NETCHAN_RESULT_HANDLER_ERROR, "disk full"));
    CHECK_OK(netchan_stream_recv(c, 10000, &m));
    CHECK(m != NULL && t_slice_eq(netchan_bytes_data(m), "before", 6));
    netchan_bytes_free(m);
    CHECK_RC(netchan_stream_recv(c, 10000, &m), NETCHAN_RESULT_HANDLER_ERROR);
    CHECK(strstr(netchan_last_error(), "disk full") != NULL);
    CHECK_RC(netchan_stream_try_recv(c, &m), NETCHAN_RESULT_HANDLER_ERROR);
    netchan_stream_free(c);
    netchan_stream_free(srv);
    netchan_stream_options_free(o);
    netchan_stream_service_free(svc);
}

/* ---- deadline ---------------------------------------------------------------- */

static void test_stream_deadline_ends_both_sides_with_timeout(void) {
    netchan_stream_service *svc = pull_service("deadline");
    netchan_stream_options *o = NULL;
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_wait_for_responder(o, true));
    CHECK_OK(netchan_stream_options_set_timeout_ms(o, 300));
    netchan_stream *c = NULL, *srv = NULL;
    open_pair(svc, "deadline", o, &c, &srv);
    netchan_stream_options_free(o);
    uint64_t left = netchan_stream_remaining_ms(c);
    CHECK(left <= 300);
    left = netchan_stream_remaining_ms(srv); /* carried on the wire */
    CHECK(left <= 300);
    netchan_bytes *m = NULL;
    /* No limit on the wait: the deadline ends it. */
    CHECK_RC(netchan_stream_recv(c, -1, &m), NETCHAN_RESULT_TIMEOUT);
    CHECK(m == NULL);
    CHECK_RC(netchan_stream_recv(srv, -1, &m), NETCHAN_RESULT_TIMEOUT);
    /* Ended, not a wait that timed out: try_recv says so too. */
    CHECK_RC(netchan_stream_try_recv(c, &m), NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_stream_try_recv(srv, &m), NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_stream_send(c, (const uint8_t *)"x", 1, -1), NETCHAN_RESULT_TIMEOUT);
    CHECK(netchan_stream_remaining_ms(c) == 0);
    netchan_stream_free(c);
    netchan_stream_free(srv);
    netchan_stream_service_free(svc);
}

/* ---- no responders, bad options ---------------------------------------------- */

static void test_stream_no_responders_and_bad_options(void) {
    netchan_stream *s = (netchan_stream *)&s;
    netchan_stream *const before = s;
    CHECK_RC(netchan_endpoint_open_stream(client, "nobody/here", NULL, 0, NULL, &s), NETCHAN_RESULT_NO_RESPONDERS);
    CHECK_RC(netchan_endpoint_open_stream(server, "nobody/here", NULL, 0, NULL, &s), NETCHAN_RESULT_NO_RESPONDERS);
    /* Waiting for a responder that never comes: NO_RESPONDERS after the open timeout. */
    netchan_stream_options *o = NULL;
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_wait_for_responder(o, true));
    CHECK_OK(netchan_stream_options_set_open_timeout_ms(o, 100));
    CHECK_RC(netchan_endpoint_open_stream(client, "nobody/here", NULL, 0, o, &s), NETCHAN_RESULT_NO_RESPONDERS);
    CHECK_RC(netchan_endpoint_open_stream(client, "bad//path", NULL, 0, o, &s), NETCHAN_RESULT_INVALID_PATH);
    CHECK_RC(netchan_endpoint_open_stream(client, "bad\xff", NULL, 0, o, &s), NETCHAN_RESULT_INVALID_UTF8);
    /* Zeros are refused by the open. */
    CHECK_OK(netchan_stream_options_set_window(o, 0));
    CHECK_RC(netchan_endpoint_open_stream(client, "nobody/here", NULL, 0, o, &s), NETCHAN_RESULT_INVALID_ARGUMENT);
    netchan_stream_options_free(o);
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_timeout_ms(o, 0));
    CHECK_RC(netchan_endpoint_open_stream(client, "nobody/here", NULL, 0, o, &s), NETCHAN_RESULT_INVALID_ARGUMENT);
    netchan_stream_options_free(o);
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_open_timeout_ms(o, 0));
    CHECK_RC(netchan_endpoint_open_stream(client, "nobody/here", NULL, 0, o, &s), NETCHAN_RESULT_INVALID_ARGUMENT);
    netchan_stream_options_free(o);
    CHECK(s == before); /* never written on failure */
    netchan_stream_service *svc = (netchan_stream_service *)&svc;
    netchan_stream_service *const svc_before = svc;
    CHECK_RC(netchan_endpoint_serve_stream(server, "a//b", 0, 0, &svc), NETCHAN_RESULT_INVALID_PATH);
    CHECK_RC(netchan_endpoint_serve_stream(server, "w", 0, (size_t)1 << 33, &svc), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(svc == svc_before);
}

/* ---- receive timeouts ---------------------------------------------------------- */

static void test_stream_recv_and_accept_timeouts(void) {
    netchan_stream_service *svc = pull_service("quiet");
    netchan_stream *c = NULL, *srv = (netchan_stream *)&srv;
    /* Nobody opened yet. */
    CHECK_RC(netchan_stream_service_accept(svc, 0, &srv), NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_stream_service_accept(svc, 50, &srv), NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_stream_service_try_accept(svc, &srv), NETCHAN_RESULT_EMPTY);
    CHECK(srv == (netchan_stream *)&srv);
    netchan_stream_options *o = NULL;
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_wait_for_responder(o, true));
    open_pair(svc, "quiet", o, &c, &srv);
    netchan_stream_options_free(o);
    netchan_bytes *m = (netchan_bytes *)&m;
    CHECK_RC(netchan_stream_recv(c, 0, &m), NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_stream_recv(c, 50, &m), NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_stream_try_recv(c, &m), NETCHAN_RESULT_EMPTY); /* the stream goes on */
    CHECK(m == (netchan_bytes *)&m);
    CHECK_OK(netchan_stream_send(srv, (const uint8_t *)"late", 4, 0));
    CHECK_OK(netchan_stream_recv(c, 10000, &m));
    CHECK(m != NULL && t_slice_eq(netchan_bytes_data(m), "late", 4));
    netchan_bytes_free(m);
    /* An empty message is a message, not the end. */
    CHECK_OK(netchan_stream_send(c, NULL, 0, 5000));
    CHECK_OK(netchan_stream_recv(srv, 10000, &m));
    CHECK(m != NULL && netchan_bytes_data(m).len == 0);
    netchan_bytes_free(m);
    CHECK_OK(netchan_stream_finish(c));
    CHECK_OK(netchan_stream_finish(srv));
    CHECK_OK(netchan_stream_recv(c, 10000, &m));
    CHECK(m == NULL);
    CHECK_OK(netchan_stream_recv(srv, 10000, &m));
    CHECK(m == NULL);
    netchan_stream_free(c);
    netchan_stream_free(srv);
    netchan_stream_service_free(svc);
}

/* ---- callbacks ------------------------------------------------------------------ */

typedef struct {
    netchan_endpoint *ep;
    netchan_stream_service *pull;
    t_counter handled, msgs, ends, drops, handler_drops;
    netchan_result end_result;
    char end_detail[128];
    int deadlock_checks;
    int off_thread;
    int free_in_end;
    netchan_stream *kept; /* the last stream the handler got */
} cb_ctx;

static void cb_init(cb_ctx *c) {
    memset(c, 0, sizeof *c);
    t_counter_init(&c->handled);
    t_counter_init(&c->msgs);
    t_counter_init(&c->ends);
    t_counter_init(&c->drops);
    t_counter_init(&c->handler_drops);
}

static void cb_destroy(cb_ctx *c) {
    t_counter_destroy(&c->handled);
    t_counter_destroy(&c->msgs);
    t_counter_destroy(&c->ends);
    t_counter_destroy(&c->drops);
    t_counter_destroy(&c->handler_drops);
}

/* Per message: echo it with try_send; at the end: finish and free its own stream. */
static void echo_msg(void *context, netchan_stream *s, const netchan_slice *m, netchan_result r) {
    cb_ctx *c = (cb_ctx *)context;
    if (!t_on_netchan_thread()) c->off_thread++;
    if (m != NULL) {
        CHECK(r == NETCHAN_RESULT_OK);
        CHECK_OK(netchan_stream_try_send(s, m->data, m->len));
        netchan_bytes *b = NULL;
        CHECK_RC(netchan_stream_recv(s, 0, &b), NETCHAN_RESULT_INVALID_ARGUMENT); /* the callback receives */
        t_counter_add(&c->msgs, 1);
        return;
    }
    c->end_result = r;
    snprintf(c->end_detail, sizeof c->end_detail, "%s", netchan_last_error());
    if (r == NETCHAN_RESULT_OK) CHECK_OK(netchan_stream_finish(s));
    if (c->free_in_end) netchan_stream_free(s); /* its own stream, inside its own call */
    t_counter_add(&c->ends, 1);
}

static void count_drop(void *context) { t_counter_add(&((cb_ctx *)context)->drops, 1); }
static void count_handler_drop(void *context) { t_counter_add(&((cb_ctx *)context)->handler_drops, 1); }

/* The handler: blocking calls refuse, non-blocking ones work, then the
 * messages go to echo_msg. */
static void handle_stream(void *context, netchan_stream *s) {
    cb_ctx *c = (cb_ctx *)context;
    if (!t_on_netchan_thread()) c->off_thread++;
    const netchan_result D = NETCHAN_RESULT_WOULD_DEADLOCK;
    netchan_bytes *b = NULL;
    netchan_stream *other = NULL;
    CHECK_RC(netchan_stream_send(s, (const uint8_t *)"x", 1, 1000), D);
    CHECK_RC(netchan_stream_recv(s, 1000, &b), D);
    CHECK_RC(netchan_endpoint_open_stream(c->ep, "cb/x", NULL, 0, NULL, &other), D);
    CHECK_RC(netchan_stream_service_accept(c->pull, 1000, &other), D);
    CHECK_RC(netchan_stream_service_try_accept(c->pull, &other), NETCHAN_RESULT_EMPTY);
    CHECK_RC(netchan_stream_try_recv(s, &b), NETCHAN_RESULT_EMPTY);
    c->deadlock_checks++;
    netchan_slice first = netchan_stream_first_payload(s);
    CHECK_OK(netchan_stream_try_send(s, first.data, first.len));
    netchan_stream_callback cb = {c, echo_msg, count_drop};
    CHECK_OK(netchan_stream_on_message(s, cb));
    /* Once per stream: the second callback is dropped at once. */
    netchan_stream_callback again = {c, echo_msg, count_drop};
    CHECK_RC(netchan_stream_on_message(s, again), NETCHAN_RESULT_INVALID_ARGUMENT);
    c->kept = s;
    t_counter_add(&c->handled, 1);
}

static void test_stream_callbacks_and_would_deadlock(void) {
    cb_ctx c;
    cb_init(&c);
    c.ep = server;
    c.free_in_end = 1;
    CHECK_OK(netchan_endpoint_serve_stream(server, "pulled", 0, 0, &c.pull));
    netchan_stream_handler h = {&c, handle_stream, count_handler_drop};
    netchan_stream_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve_stream_callback(server, "cb/*", 0, 0, 0, h, &svc));
    netchan_stream *pulled = NULL;
    CHECK_RC(netchan_stream_service_accept(svc, 0, &pulled), NETCHAN_RESULT_INVALID_ARGUMENT);
    netchan_stream_options *o = NULL;
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_wait_for_responder(o, true));
    netchan_stream *s = NULL;
    CHECK_OK(netchan_endpoint_open_stream(client, "cb/echo", (const uint8_t *)"hi", 2, o, &s));
    netchan_stream_options_free(o);
    netchan_bytes *m = NULL;
    CHECK_OK(netchan_stream_recv(s, 10000, &m));
    CHECK(m != NULL && t_slice_eq(netchan_bytes_data(m), "hi", 2));
    netchan_bytes_free(m);
    const char *words[3] = {"a", "bb", "ccc"};
    for (int i = 0; i < 3; i++) CHECK_OK(netchan_stream_send(s, (const uint8_t *)words[i], strlen(words[i]), 5000));
    CHECK_OK(netchan_stream_finish(s));
    for (int i = 0; i < 3; i++) {
        CHECK_OK(netchan_stream_recv(s, 10000, &m));
        CHECK(m != NULL && t_slice_eq(netchan_bytes_data(m), words[i], strlen(words[i])));
        netchan_bytes_free(m);
    }
    m = (netchan_bytes *)&m;
    CHECK_OK(netchan_stream_recv(s, 10000, &m));
    CHECK(m == NULL); /* the callback finished, then freed its stream: a clean end */
    CHECK(t_counter_wait(&c.ends, 1, 10000) == 1);
    CHECK(c.end_result == NETCHAN_RESULT_OK);
    CHECK(t_counter_get(&c.msgs) == 3);
    CHECK(t_counter_wait(&c.drops, 2, 10000) == 2); /* the refused second one, and this one */
    CHECK(t_counter_get(&c.handled) == 1);
    CHECK(c.deadlock_checks == 1);
    CHECK(c.off_thread == 0);
    netchan_stream_free(s);

    /* A stream the opener cancels: the callback's last call says CANCELLED. */
    c.free_in_end = 0;
    CHECK_OK(netchan_endpoint_open_stream(client, "cb/cancel", NULL, 0, NULL, &s));
    CHECK_OK(netchan_stream_recv(s, 10000, &m)); /* the empty first payload, echoed */
    CHECK(m != NULL && netchan_bytes_data(m).len == 0);
    netchan_bytes_free(m);
    CHECK_OK(netchan_stream_cancel(s));
    CHECK(t_counter_wait(&c.ends, 2, 10000) == 2);
    CHECK(c.end_result == NETCHAN_RESULT_CANCELLED);
    CHECK(strstr(c.end_detail, "cancel") != NULL);
    CHECK(t_counter_wait(&c.drops, 4, 10000) == 4);
    netchan_stream_free(s);
    CHECK(t_counter_get(&c.handled) == 2);
    netchan_stream_free(c.kept); /* the handler's stream, whose callback ended */
    netchan_stream_service_free(svc);
    CHECK(t_counter_get(&c.handler_drops) == 1); /* ran before the free returned */
    netchan_stream_service_free(c.pull);
    CHECK(c.off_thread == 0);
    cb_destroy(&c);
}

/* ---- a handler's bounds ------------------------------------------------------------ */

typedef struct {
    pthread_mutex_t mu;
    netchan_stream *kept[8];
    t_counter got;
} keeper;

static void keep_stream(void *context, netchan_stream *s) {
    keeper *k = (keeper *)context;
    pthread_mutex_lock(&k->mu);
    long n = t_counter_get(&k->got);
    if (n < 8) k->kept[n] = s;
    else netchan_stream_free(s);
    pthread_mutex_unlock(&k->mu);
    t_counter_add(&k->got, 1);
}

static void *open_and_record(void *arg) {
    opener *o = (opener *)arg;
    o->rc = netchan_endpoint_open_stream(client, o->path, NULL, 0, o->opts, &o->s);
    return NULL;
}

static void test_stream_handler_bounds_and_free_refuses_queued(void) {
    keeper k;
    memset(&k, 0, sizeof k);
    pthread_mutex_init(&k.mu, NULL);
    t_counter_init(&k.got);
    netchan_stream_handler h = {&k, keep_stream, NULL};
    netchan_stream_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve_stream_callback(server, "bounded", 1, 0, 0, h, &svc));
    netchan_stream_options *o = NULL;
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_wait_for_responder(o, true));
    netchan_stream *a = NULL, *b = NULL, *c = NULL;
    CHECK_OK(netchan_endpoint_open_stream(client, "bounded", NULL, 0, o, &a));
    CHECK(t_counter_wait(&k.got, 1, 10000) == 1);
    /* The handler holds its one stream: the next is not accepted. */
    CHECK_OK(netchan_stream_options_set_open_timeout_ms(o, 200));
    CHECK_RC(netchan_endpoint_open_stream(client, "bounded", NULL, 0, o, &b), NETCHAN_RESULT_TIMEOUT);
    CHECK(t_counter_get(&k.got) == 1);
    /* Freeing the handler's stream lets the next one in (the abandoned open
     * first, then a new one). */
    netchan_stream_free(k.kept[0]);
    CHECK(t_counter_wait(&k.got, 2, 10000) == 2);
    netchan_stream_free(k.kept[1]);
    CHECK_OK(netchan_stream_options_set_open_timeout_ms(o, 10000));
    CHECK_OK(netchan_endpoint_open_stream(client, "bounded", NULL, 0, o, &c));
    CHECK(t_counter_wait(&k.got, 3, 10000) == 3);
    /* One waits while the handler holds the third; freeing the service
     * refuses it: NO_RESPONDERS. */
    opener w = {"bounded", NULL, NULL, NETCHAN_RESULT_INTERNAL};
    pthread_t th;
    pthread_create(&th, NULL, open_and_record, &w);
    netchan_stream_service_free(svc);
    pthread_join(th, NULL);
    CHECK(w.rc == NETCHAN_RESULT_NO_RESPONDERS);
    CHECK(w.s == NULL);
    CHECK(t_counter_get(&k.got) == 3);
    netchan_stream_free(k.kept[2]);
    netchan_stream_free(a);
    netchan_stream_free(c);
    netchan_stream_options_free(o);
    pthread_mutex_destroy(&k.mu);
    t_counter_destroy(&k.got);
}

/* ---- free cancels --------------------------------------------------------------- */

static void test_stream_free_unfinished_cancels_it(void) {
    netchan_stream_service *svc = pull_service("dropped/*");
    netchan_stream_options *o = NULL;
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_wait_for_responder(o, true));
    netchan_stream *c = NULL, *srv = NULL;
    netchan_bytes *m = NULL;
    /* The opener frees its unfinished side. */
    open_pair(svc, "dropped/a", o, &c, &srv);
    netchan_stream_free(c);
    CHECK_RC(netchan_stream_recv(srv, 10000, &m), NETCHAN_RESULT_CANCELLED);
    netchan_stream_free(srv);
    /* The server frees its side while the opener still sends. */
    open_pair(svc, "dropped/b", o, &c, &srv);
    netchan_stream_free(srv);
    CHECK_RC(netchan_stream_recv(c, 10000, &m), NETCHAN_RESULT_CANCELLED);
    CHECK_RC(netchan_stream_send(c, (const uint8_t *)"x", 1, 10000), NETCHAN_RESULT_CANCELLED);
    netchan_stream_free(c);
    /* A side that finished, freed: the other side still reads everything, then the end. */
    open_pair(svc, "dropped/c", o, &c, &srv);
    CHECK_OK(netchan_stream_send(c, (const uint8_t *)"last", 4, 5000));
    CHECK_OK(netchan_stream_finish(c));
    CHECK_OK(netchan_stream_finish(srv));
    netchan_stream_free(c);
    CHECK_OK(netchan_stream_recv(srv, 10000, &m));
    CHECK(m != NULL && t_slice_eq(netchan_bytes_data(m), "last", 4));
    netchan_bytes_free(m);
    m = (netchan_bytes *)&m;
    CHECK_OK(netchan_stream_recv(srv, 10000, &m));
    CHECK(m == NULL);
    netchan_stream_free(srv);
    netchan_stream_options_free(o);
    netchan_stream_service_free(svc);
}

/* ---- NULL and invalid arguments -------------------------------------------------- */

static void never_msg(void *context, netchan_stream *s, const netchan_slice *m, netchan_result r) {
    (void)s;
    (void)m;
    (void)r;
    (void)context;
    t_failures++;
}
static void never_stream(void *context, netchan_stream *s) {
    (void)s;
    (void)context;
    t_failures++;
}

static void test_stream_null_and_invalid_arguments(void) {
    const netchan_result N = NETCHAN_RESULT_NULL_ARGUMENT;
    netchan_stream *s = NULL;
    netchan_stream_service *svc = NULL;
    netchan_stream_options *o = NULL;
    netchan_bytes *m = NULL;
    CHECK_RC(netchan_stream_options_new(NULL), N);
    CHECK_RC(netchan_stream_options_set_timeout_ms(NULL, 1), N);
    CHECK_RC(netchan_stream_options_set_open_timeout_ms(NULL, 1), N);
    CHECK_RC(netchan_stream_options_set_window(NULL, 1), N);
    CHECK_RC(netchan_stream_options_set_wait_for_responder(NULL, true), N);
    CHECK_RC(netchan_endpoint_open_stream(NULL, "p", NULL, 0, NULL, &s), N);
    CHECK_RC(netchan_endpoint_open_stream(client, NULL, NULL, 0, NULL, &s), N);
    CHECK_RC(netchan_endpoint_open_stream(client, "p", NULL, 3, NULL, &s), N);
    CHECK_RC(netchan_endpoint_open_stream(client, "p", NULL, 0, NULL, NULL), N);
    CHECK_RC(netchan_stream_send(NULL, NULL, 0, 0), N);
    CHECK_RC(netchan_stream_try_send(NULL, NULL, 0), N);
    CHECK_RC(netchan_stream_recv(NULL, 0, &m), N);
    CHECK_RC(netchan_stream_try_recv(NULL, &m), N);
    CHECK_RC(netchan_stream_finish(NULL), N);
    CHECK_RC(netchan_stream_cancel(NULL), N);
    CHECK_RC(netchan_stream_cancel_with(NULL, NETCHAN_RESULT_HANDLER_ERROR, NULL), N);
    CHECK_RC(netchan_endpoint_serve_stream(NULL, "p", 0, 0, &svc), N);
    CHECK_RC(netchan_endpoint_serve_stream(server, NULL, 0, 0, &svc), N);
    CHECK_RC(netchan_endpoint_serve_stream(server, "p", 0, 0, NULL), N);
    CHECK_RC(netchan_stream_service_accept(NULL, 0, &s), N);
    CHECK_RC(netchan_stream_service_try_accept(NULL, &s), N);
    CHECK(s == NULL && svc == NULL && m == NULL);
    /* Accessors of NULL are empty. */
    CHECK(netchan_stream_path(NULL).data == NULL && netchan_stream_path(NULL).len == 0);
    CHECK(netchan_stream_peer(NULL).len == 0);
    CHECK(netchan_stream_first_payload(NULL).data == NULL);
    CHECK(netchan_stream_remaining_ms(NULL) == 0);
    CHECK(netchan_stream_service_pattern(NULL).len == 0);
    netchan_stream_free(NULL);
    netchan_stream_service_free(NULL);
    netchan_stream_options_free(NULL);

    /* Callbacks are taken over even when refused: drop has run. */
    cb_ctx c;
    cb_init(&c);
    netchan_stream_handler bad_h = {&c, NULL, count_drop};
    CHECK_RC(netchan_endpoint_serve_stream_callback(server, "p", 0, 0, 0, bad_h, &svc), N);
    CHECK(t_counter_get(&c.drops) == 1);
    netchan_stream_handler h = {&c, never_stream, count_drop};
    CHECK_RC(netchan_endpoint_serve_stream_callback(server, "p", 0, 0, 0, h, NULL), N);
    CHECK(t_counter_get(&c.drops) == 2);
    CHECK_RC(netchan_endpoint_serve_stream_callback(server, "a//b", 0, 0, 0, h, &svc), NETCHAN_RESULT_INVALID_PATH);
    CHECK(t_counter_get(&c.drops) == 3);
    netchan_stream_callback mcb = {&c, never_msg, count_drop};
    CHECK_RC(netchan_stream_on_message(NULL, mcb), N);
    CHECK(t_counter_get(&c.drops) == 4);
    CHECK(svc == NULL);

    /* Invalid uses of a live stream and service. */
    netchan_stream_service *pull = pull_service("args");
    CHECK_OK(netchan_stream_options_new(&o));
    CHECK_OK(netchan_stream_options_set_wait_for_responder(o, true));
    netchan_stream *c_side = NULL, *srv = NULL;
    open_pair(pull, "args", o, &c_side, &srv);
    netchan_stream_options_free(o);
    CHECK_RC(netchan_stream_send(c_side, NULL, 2, 0), N);
    CHECK_RC(netchan_stream_recv(c_side, 0, NULL), N);
    CHECK_RC(netchan_stream_try_recv(c_side, NULL), N);
    netchan_stream_callback nocall = {&c, NULL, count_drop};
    CHECK_RC(netchan_stream_on_message(c_side, nocall), N);
    CHECK(t_counter_get(&c.drops) == 5);
    CHECK_OK(netchan_stream_finish(c_side));
    CHECK_RC(netchan_stream_try_send(c_side, (const uint8_t *)"x", 1), NETCHAN_RESULT_INVALID_ARGUMENT);
    /* Double free and a free of the wrong kind are ignored. */
    netchan_stream_free(c_side);
    netchan_stream_free(c_side);
    netchan_stream_service_free((netchan_stream_service *)srv);
    netchan_stream_options_free((netchan_stream_options *)srv);
    CHECK(t_slice_eq(netchan_stream_first_payload(srv), "first", 5)); /* still alive */
    netchan_stream_free(srv);
    netchan_stream_service_free(pull);
    netchan_stream_service_free(pull);
    cb_destroy(&c);
}

int main(void) {
    t_watchdog(240);
    t_pair(&server, &client, NULL);

    T_RUN(test_stream_echo_half_close_tcp_unix_local);
    T_RUN(test_stream_16mib_in_64k_chunks_with_a_small_window);
    T_RUN(test_stream_cancel_seen_by_the_other_side);
    T_RUN(test_stream_deadline_ends_both_sides_with_timeout);
    T_RUN(test_stream_no_responders_and_bad_options);
    T_RUN(test_stream_recv_and_accept_timeouts);
    T_RUN(test_stream_callbacks_and_would_deadlock);
    T_RUN(test_stream_handler_bounds_and_free_refuses_queued);
    T_RUN(test_stream_free_unfinished_cancels_it);
    T_RUN(test_stream_null_and_invalid_arguments);

    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    return t_finish("test_api_streams");
}
