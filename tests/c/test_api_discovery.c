/* Who is there, and the calls that close the C column's gaps in
 * docs/CAPABILITIES.md: discovery (subscribers, publishers, servers,
 * stream servers), peers with their stats, per-subscription stats,
 * failed attempts, reconnect_now, declared publishers, publish_many,
 * recv_many, requests that wait for a responder, cancelled requests the
 * handler sees, services pulled from, all over TCP on loopback, as a C
 * program would use them. */
#include <stddef.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "testutil.h"

/* Whether `s` contains `want`. */
static int contains(netchan_str s, const char *want) {
    size_t n = strlen(want);
    for (size_t i = 0; i + n <= s.len; i++)
        if (memcmp(s.data + i, want, n) == 0) return 1;
    return 0;
}

/* Whether `names` holds `want`. */
static int has_name(const netchan_names *names, const char *want) {
    for (size_t i = 0; i < netchan_names_len(names); i++)
        if (t_str_eq(netchan_names_get(names, i), want)) return 1;
    return 0;
}

typedef netchan_result (*discover_fn)(const netchan_endpoint *, const char *, netchan_names **);

/* Polls a discovery call for up to 5 s until `want` is in its answer. */
static int eventually_has(discover_fn f, const netchan_endpoint *ep, const char *pattern,
                          const char *want) {
    for (int i = 0; i < 500; i++) {
        netchan_names *names = NULL;
        if (f(ep, pattern, &names) != NETCHAN_RESULT_OK) return 0;
        int found = has_name(names, want);
        netchan_names_free(names);
        if (found) return 1;
        usleep(10000);
    }
    return 0;
}

static void noop_request(void *context, const netchan_request *req, netchan_reply *reply) {
    (void)context;
    (void)req;
    CHECK_OK(netchan_reply_send(reply, NULL, 0));
    netchan_reply_free(reply);
}

static void test_discovery_names_each_declaration(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    const char *client_name = netchan_endpoint_name(client);
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "sensors/**", NULL, &sub));
    netchan_request_handler h = {NULL, noop_request, NULL};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(server, "svc/*", h, &svc));
    netchan_stream_service *streams = NULL;
    CHECK_OK(netchan_endpoint_serve_stream(server, "st/*", 0, 0, &streams));
    netchan_publisher *pub = NULL;
    CHECK_OK(netchan_endpoint_declare_publisher(client, "sensors/kitchen/*", &pub));
    CHECK(t_str_eq(netchan_publisher_pattern(pub), "sensors/kitchen/*"));

    CHECK(eventually_has(netchan_endpoint_subscribers, client, "sensors/kitchen/temp", server_name));
    CHECK(eventually_has(netchan_endpoint_servers, client, "svc/x", server_name));
    CHECK(eventually_has(netchan_endpoint_stream_servers, client, "st/**", server_name));
    CHECK(eventually_has(netchan_endpoint_publishers, server, "sensors/**", client_name));
    /* This endpoint counts itself among the subscribers. */
    CHECK(eventually_has(netchan_endpoint_subscribers, server, "sensors/a", server_name));

    netchan_names *names = NULL;
    CHECK_OK(netchan_endpoint_servers(client, "nothing/*", &names));
    CHECK(netchan_names_len(names) == 0);
    CHECK(netchan_names_get(names, 0).data == NULL && netchan_names_get(names, 0).len == 0);
    netchan_names_free(names);
    names = NULL;
    CHECK_RC(netchan_endpoint_servers(client, "bad//path", &names), NETCHAN_RESULT_INVALID_PATH);
    CHECK(names == NULL);
    CHECK_RC(netchan_endpoint_servers(client, "svc/*", NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_servers(NULL, "svc/*", &names), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(netchan_names_len(NULL) == 0);
    netchan_names_free(NULL);

    /* Freeing the publisher withdraws the declaration. */
    netchan_publisher_free(pub);
    int gone = 0;
    for (int i = 0; i < 500 && !gone; i++) {
        CHECK_OK(netchan_endpoint_publishers(server, "sensors/**", &names));
        gone = !has_name(names, client_name);
        netchan_names_free(names);
        if (!gone) usleep(10000);
    }
    CHECK(gone);

    netchan_stream_service_free(streams);
    netchan_service_free(svc);
    netchan_subscription_free(sub);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    netchan_string_free(server_name);
}

static void test_peers_with_their_stats(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "m/*", NULL, &sub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "m/x", 5000, &found));
    CHECK(found);
    for (int i = 0; i < 10; i++) CHECK_OK(netchan_endpoint_publish(client, "m/x", (const uint8_t *)"abcd", 4));
    for (int i = 0; i < 10; i++) {
        netchan_message *m = NULL;
        CHECK_OK(netchan_subscription_recv(sub, 5000, &m));
        netchan_message_free(m);
    }
    uint64_t rtt = 0;
    CHECK_OK(netchan_endpoint_ping(client, server_name, &rtt));

    netchan_peer_list *peers = NULL;
    CHECK_OK(netchan_endpoint_peers(client, &peers));
    CHECK(netchan_peer_list_len(peers) == 1);
    netchan_peer_info info;
    memset(&info, 0, sizeof info);
    CHECK_OK(netchan_peer_list_get(peers, 0, &info, sizeof info));
    CHECK(t_str_eq(info.name, server_name));
    CHECK(contains(info.addr, "127.0.0.1"));
    CHECK(t_str_eq(info.identity, "anonymous"));
    CHECK(!info.inbound);
    CHECK(info.has_rtt && info.rtt_us > 0);
    CHECK(info.stats.msgs_out == 10 && info.stats.bytes_out == 40);
    CHECK(info.stats.peers == 0 && info.stats.subscriptions == 0);
    /* An older program's smaller struct: the fields past `size` are left
     * as they were. */
    netchan_peer_info old;
    memset(&old, 0xAB, sizeof old);
    CHECK_OK(netchan_peer_list_get(peers, 0, &old, offsetof(netchan_peer_info, stats)));
    CHECK(t_str_eq(old.name, server_name));
    CHECK(old.stats.msgs_out == 0xABABABABABABABABULL);
    CHECK_RC(netchan_peer_list_get(peers, 1, &info, sizeof info), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK_RC(netchan_peer_list_get(peers, 0, NULL, sizeof info), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_peer_list_get(NULL, 0, &info, sizeof info), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_peer_list_free(peers);

    /* The server sees the client as inbound, with what it received. */
    CHECK_OK(netchan_endpoint_peers(server, &peers));
    CHECK(netchan_peer_list_len(peers) == 1);
    CHECK_OK(netchan_peer_list_get(peers, 0, &info, sizeof info));
    CHECK(t_str_eq(info.name, netchan_endpoint_name(client)));
    CHECK(info.inbound);
    CHECK(info.stats.msgs_in == 10 && info.stats.bytes_in == 40);
    netchan_peer_list_free(peers);
    CHECK(netchan_peer_list_len(NULL) == 0);
    netchan_peer_list_free(NULL);

    netchan_subscription_free(sub);
    netchan_endpoint_free(client);
    /* Once the client is gone the server lists no peer. */
    int none = 0;
    for (int i = 0; i < 500 && !none; i++) {
        CHECK_OK(netchan_endpoint_peers(server, &peers));
        none = netchan_peer_list_len(peers) == 0;
        netchan_peer_list_free(peers);
        if (!none) usleep(10000);
    }
    CHECK(none);
    netchan_endpoint_free(server);
    netchan_string_free(server_name);
}

static void test_subscription_stats_count_exactly(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    netchan_subscribe_options *o = NULL;
    CHECK_OK(netchan_subscribe_options_new(&o));
    CHECK_OK(netchan_subscribe_options_set_capacity(o, 4));
    CHECK_OK(netchan_subscribe_options_set_overflow(o, NETCHAN_OVERFLOW_DROP_NEWEST));
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "s/*", o, &sub));
    netchan_subscribe_options_free(o);
    for (int i = 0; i < 10; i++) netchan_endpoint_publish(ep, "s/x", (const uint8_t *)"x", 1);
    netchan_subscription_stats st;
    memset(&st, 0, sizeof st);
    CHECK_OK(netchan_subscription_get_stats(sub, &st, sizeof st));
    CHECK(st.queued == 4 && st.dropped == 6 && st.delivered == 0);
    CHECK(netchan_subscription_dropped(sub) == 6);
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_recv(sub, 1000, &m));
    netchan_message_free(m);
    CHECK_OK(netchan_subscription_get_stats(sub, &st, sizeof st));
    CHECK(st.queued == 3 && st.dropped == 6 && st.delivered == 1);
    CHECK_RC(netchan_subscription_get_stats(NULL, &st, sizeof st), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_subscription_get_stats(sub, NULL, sizeof st), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_subscription_free(sub);
    netchan_endpoint_free(ep);
}

static void test_declared_publisher_and_publish_many(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "p/**", NULL, &sub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "p/a", 5000, &found));
    CHECK(found);
    netchan_publisher *pub = NULL;
    CHECK_OK(netchan_endpoint_declare_publisher(client, "p/*", &pub));
    CHECK_OK(netchan_publisher_publish(pub, "p/a", (const uint8_t *)"one", 3));
    CHECK_OK(netchan_publisher_try_publish(pub, "p/a", (const uint8_t *)"two", 3));
    CHECK_RC(netchan_publisher_publish(pub, "q/a", (const uint8_t *)"x", 1), NETCHAN_RESULT_INVALID_PATH);
    CHECK_RC(netchan_publisher_publish(NULL, "p/a", (const uint8_t *)"x", 1), NETCHAN_RESULT_NULL_ARGUMENT);

    /* 100 payloads in one call, received in order after the two above. */
    uint32_t values[100];
    netchan_slice slices[100];
    for (uint32_t i = 0; i < 100; i++) {
        values[i] = i;
        slices[i].data = (const uint8_t *)&values[i];
        slices[i].len = sizeof values[i];
    }
    size_t published = 0;
    CHECK_OK(netchan_endpoint_publish_many(client, "p/many", slices, 100, &published));
    CHECK(published == 100);
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_recv(sub, 5000, &m));
    CHECK(t_slice_eq(netchan_message_payload(m), "one", 3));
    netchan_message_free(m);
    CHECK_OK(netchan_subscription_recv(sub, 5000, &m));
    CHECK(t_slice_eq(netchan_message_payload(m), "two", 3));
    netchan_message_free(m);
    int ordered = 1;
    for (uint32_t i = 0; i < 100; i++) {
        m = NULL;
        if (netchan_subscription_recv(sub, 5000, &m) != NETCHAN_RESULT_OK) {
            ordered = 0;
            break;
        }
        uint32_t v = 999;
        memcpy(&v, netchan_message_payload(m).data, sizeof v);
        if (v != i || !t_str_eq(netchan_message_path(m), "p/many")) ordered = 0;
        netchan_message_free(m);
    }
    CHECK(ordered);
    /* A bad payload stops the call there; those before it were sent. */
    slices[2].data = NULL;
    published = 99;
    CHECK_RC(netchan_endpoint_publish_many(client, "p/many", slices, 5, &published), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(published == 2);
    CHECK(strstr(netchan_last_error(), "payload 2") != NULL);
    CHECK_OK(netchan_endpoint_publish_many(client, "p/many", NULL, 0, &published));
    CHECK(published == 0);
    CHECK_RC(netchan_endpoint_publish_many(client, "p/many", NULL, 3, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_publish_many(client, "p//bad", slices, 1, NULL), NETCHAN_RESULT_INVALID_PATH);
    for (int i = 0; i < 2; i++) {
        CHECK_OK(netchan_subscription_recv(sub, 5000, &m));
        netchan_message_free(m);
    }
    CHECK_RC(netchan_subscription_recv(sub, 50, &m), NETCHAN_RESULT_TIMEOUT);
    netchan_publisher_free(pub);
    netchan_publisher_free(pub); /* a double free is ignored */
    netchan_subscription_free(sub);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    netchan_string_free(server_name);
}

static void *publish_later(void *arg) {
    usleep(100000);
    CHECK_OK(netchan_endpoint_publish((netchan_endpoint *)arg, "r/x", (const uint8_t *)"late", 4));
    return NULL;
}

static void test_recv_many_takes_batches(void) {
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(ep, "r/*", NULL, &sub));
    for (uint8_t i = 0; i < 10; i++) CHECK_OK(netchan_endpoint_publish(ep, "r/x", &i, 1));
    netchan_message *batch[4];
    size_t n = 99, total = 0;
    int ordered = 1;
    size_t sizes[3];
    for (int round = 0; round < 3; round++) {
        CHECK_OK(netchan_subscription_recv_many(sub, 1000, batch, 4, &n));
        sizes[round] = n;
        for (size_t i = 0; i < n; i++) {
            if (netchan_message_payload(batch[i]).data[0] != total + i) ordered = 0;
            netchan_message_free(batch[i]);
        }
        total += n;
    }
    CHECK(sizes[0] == 4 && sizes[1] == 4 && sizes[2] == 2 && ordered);
    CHECK_RC(netchan_subscription_recv_many(sub, 0, batch, 4, &n), NETCHAN_RESULT_TIMEOUT);
    CHECK(n == 0);
    CHECK_RC(netchan_subscription_recv_many(sub, 30, batch, 4, &n), NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_subscription_recv_many(sub, 30, batch, 0, &n), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK_RC(netchan_subscription_recv_many(sub, 30, NULL, 4, &n), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_subscription_recv_many(sub, 30, batch, 4, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    /* Waiting without a limit: a message from another thread ends it. */
    pthread_t t;
    pthread_create(&t, NULL, publish_later, ep);
    CHECK_OK(netchan_subscription_recv_many(sub, -1, batch, 4, &n));
    CHECK(n == 1 && t_slice_eq(netchan_message_payload(batch[0]), "late", 4));
    if (n == 1) netchan_message_free(batch[0]);
    pthread_join(t, NULL);
    netchan_subscription_close(sub);
    CHECK_RC(netchan_subscription_recv_many(sub, 1000, batch, 4, &n), NETCHAN_RESULT_CLOSED);
    netchan_subscription_free(sub);
    netchan_endpoint_free(ep);
}

/* What a result callback saw. */
typedef struct {
    t_counter done;
    netchan_result rc;
    char reply[16];
    int drops;
} outcome;

static void on_result(void *context, netchan_result rc, const uint8_t *reply, size_t len, const char *error) {
    (void)error;
    outcome *o = (outcome *)context;
    o->rc = rc;
    if (reply && len < sizeof o->reply) memcpy(o->reply, reply, len);
    t_counter_add(&o->done, 1);
}

static void on_result_drop(void *context) { ((outcome *)context)->drops++; }

/* A handler that keeps every reply unanswered for the test to look at. */
typedef struct {
    t_counter got;
    netchan_reply *kept;
    int cancelled_in_handler;
} keeper;

static void keep_request(void *context, const netchan_request *req, netchan_reply *reply) {
    keeper *k = (keeper *)context;
    k->cancelled_in_handler = netchan_request_is_cancelled(req);
    k->kept = reply;
    t_counter_add(&k->got, 1);
}

static void echo_request(void *context, const netchan_request *req, netchan_reply *reply) {
    (void)context;
    netchan_slice p = netchan_request_payload(req);
    CHECK_OK(netchan_reply_send(reply, p.data, p.len));
    netchan_reply_free(reply);
}

static void test_request_waits_for_a_responder(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    netchan_request_options *o = NULL;
    CHECK_OK(netchan_request_options_new(&o));
    CHECK_RC(netchan_request_options_set_timeout_ms(o, 0), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK_RC(netchan_request_options_set_timeout_ms(NULL, 10), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_OK(netchan_request_options_set_timeout_ms(o, 5000));
    /* Without waiting: NO_RESPONDERS at once. */
    netchan_bytes *reply = NULL;
    CHECK_RC(netchan_endpoint_request_blocking_with(client, "late/x", NULL, 0, o, &reply), NETCHAN_RESULT_NO_RESPONDERS);
    CHECK_RC(netchan_endpoint_request_blocking_with(client, "late/x", NULL, 0, NULL, &reply), NETCHAN_RESULT_NO_RESPONDERS);
    /* Waiting: the service made after the request started answers it. */
    CHECK_OK(netchan_request_options_set_wait_for_responder(o, true));
    outcome out;
    memset(&out, 0, sizeof out);
    t_counter_init(&out.done);
    netchan_result_callback cb = {&out, on_result, on_result_drop};
    CHECK_OK(netchan_endpoint_request_with(client, "late/x", (const uint8_t *)"hi", 2, o, cb, NULL));
    usleep(100000);
    CHECK(t_counter_get(&out.done) == 0);
    netchan_request_handler h = {NULL, echo_request, NULL};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(server, "late/*", h, &svc));
    CHECK(t_counter_wait(&out.done, 1, 5000) == 1);
    CHECK(out.rc == NETCHAN_RESULT_OK && memcmp(out.reply, "hi", 2) == 0);
    /* The blocking form waits too. */
    CHECK_OK(netchan_endpoint_request_blocking_with(client, "late/y", (const uint8_t *)"yo", 2, o, &reply));
    CHECK(t_slice_eq(netchan_bytes_data(reply), "yo", 2));
    netchan_bytes_free(reply);
    netchan_request_options_free(o);
    netchan_service_free(svc);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    for (int i = 0; i < 100 && out.drops == 0; i++) usleep(10000);
    CHECK(out.drops == 1);
    t_counter_destroy(&out.done);
    netchan_string_free(server_name);
}

static void test_cancelled_request_is_seen_by_the_handler(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    keeper k;
    memset(&k, 0, sizeof k);
    t_counter_init(&k.got);
    netchan_request_handler h = {&k, keep_request, NULL};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(server, "slow/*", h, &svc));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "slow/x", 5000, &found));
    CHECK(found);
    outcome out;
    memset(&out, 0, sizeof out);
    t_counter_init(&out.done);
    netchan_result_callback cb = {&out, on_result, on_result_drop};
    netchan_pending_request *pending = NULL;
    netchan_request_options *o = NULL;
    CHECK_OK(netchan_request_options_new(&o));
    CHECK_OK(netchan_request_options_set_timeout_ms(o, 30000));
    CHECK_OK(netchan_endpoint_request_with(client, "slow/x", NULL, 0, o, cb, &pending));
    netchan_request_options_free(o);
    CHECK(pending != NULL);
    CHECK(t_counter_wait(&k.got, 1, 5000) == 1);
    CHECK(!k.cancelled_in_handler);
    CHECK(!netchan_reply_is_cancelled(k.kept));
    CHECK(t_counter_get(&out.done) == 0);
    CHECK_OK(netchan_pending_request_cancel(pending));
    CHECK(t_counter_wait(&out.done, 1, 5000) == 1);
    CHECK(out.rc == NETCHAN_RESULT_CANCELLED);
    /* The server sees it within a round trip. */
    int seen = 0;
    for (int i = 0; i < 500 && !seen; i++) {
        seen = netchan_reply_is_cancelled(k.kept);
        if (!seen) usleep(10000);
    }
    CHECK(seen);
    /* Cancelling again, or after the end, changes nothing. */
    CHECK_OK(netchan_pending_request_cancel(pending));
    CHECK(t_counter_get(&out.done) == 1);
    CHECK_RC(netchan_pending_request_cancel(NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_pending_request_free(pending);
    CHECK_OK(netchan_reply_send(k.kept, NULL, 0)); /* discarded */
    CHECK(!netchan_reply_is_cancelled(k.kept));    /* answered */
    netchan_reply_free(k.kept);
    CHECK(!netchan_reply_is_cancelled(NULL) && !netchan_request_is_cancelled(NULL));
    /* A refused call runs only the callback's drop. */
    int drops_before = out.drops;
    CHECK_RC(netchan_endpoint_request_with(client, NULL, NULL, 0, NULL, cb, &pending), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(out.drops == drops_before + 1);
    netchan_service_free(svc);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    t_counter_destroy(&out.done);
    t_counter_destroy(&k.got);
    netchan_string_free(server_name);
}

static void test_failed_attempts_are_counted_per_address(void) {
    netchan_endpoint *ep = NULL;
    char *addr = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    CHECK_OK(netchan_endpoint_listen(ep, "tcp://127.0.0.1:0", &addr));
    int port = addr ? atoi(strrchr(addr, ':') + 1) : 0;
    netchan_attempts *a = NULL;
    CHECK_OK(netchan_endpoint_failed_attempts(ep, &a));
    CHECK(netchan_attempts_len(a) == 0);
    netchan_attempts_free(a);
    /* Garbage instead of a handshake, twice. */
    for (int i = 0; i < 2; i++) {
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in sa;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        sa.sin_port = htons((uint16_t)port);
        sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        CHECK(connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0);
        const char junk[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
        CHECK(write(fd, junk, sizeof junk - 1) == (ssize_t)(sizeof junk - 1));
        char buf[64];
        while (read(fd, buf, sizeof buf) > 0) {
        } /* until the endpoint closes it */
        close(fd);
    }
    uint64_t count = 0;
    for (int i = 0; i < 500 && count < 2; i++) {
        CHECK_OK(netchan_endpoint_failed_attempts(ep, &a));
        if (netchan_attempts_len(a) == 1) {
            netchan_str who = {NULL, 0};
            CHECK_OK(netchan_attempts_get(a, 0, &who, &count));
            CHECK(t_str_eq(who, "tcp://127.0.0.1"));
        }
        netchan_attempts_free(a);
        if (count < 2) usleep(10000);
    }
    CHECK(count == 2);
    CHECK_OK(netchan_endpoint_failed_attempts(ep, &a));
    CHECK_OK(netchan_attempts_get(a, 0, NULL, NULL));
    CHECK_RC(netchan_attempts_get(a, 1, NULL, &count), NETCHAN_RESULT_INVALID_ARGUMENT);
    netchan_attempts_free(a);
    CHECK_RC(netchan_attempts_get(NULL, 0, NULL, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(netchan_attempts_len(NULL) == 0);
    netchan_endpoint_free(ep);
    netchan_string_free(addr);
}

static void count_reconnecting(void *context, const netchan_event *e) {
    if (e->kind == NETCHAN_EVENT_KIND_RECONNECTING) t_counter_add((t_counter *)context, 1);
}

static netchan_endpoint *named(const char *name) {
    netchan_options *o = NULL;
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_options_new(&o));
    CHECK_OK(netchan_options_set_name(o, name));
    CHECK_OK(netchan_options_set(o, "reconnect.min_delay", "60s"));
    CHECK_OK(netchan_options_set(o, "reconnect.max_delay", "60s"));
    CHECK_OK(netchan_endpoint_new(o, &ep));
    netchan_options_free(o);
    return ep;
}

static size_t peer_count(const netchan_endpoint *ep) {
    netchan_peer_list *peers = NULL;
    if (netchan_endpoint_peers(ep, &peers) != NETCHAN_RESULT_OK) return 99;
    size_t n = netchan_peer_list_len(peers);
    netchan_peer_list_free(peers);
    return n;
}

/* A dialler waiting out a 60 s redial delay redials at once when told. */
static void test_reconnect_now_skips_the_backoff(void) {
    netchan_endpoint *server = named("disc-gone");
    netchan_endpoint *client = named("disc-dialler");
    t_counter reconnecting;
    t_counter_init(&reconnecting);
    netchan_event_callback ecb = {&reconnecting, count_reconnecting, NULL};
    netchan_event_listener *listener = NULL;
    CHECK_OK(netchan_endpoint_on_event(client, ecb, &listener));
    char *addr = NULL, *peer = NULL;
    CHECK_OK(netchan_endpoint_listen(server, "tcp://127.0.0.1:0", &addr));
    CHECK_OK(netchan_endpoint_connect(client, addr, &peer));
    CHECK(peer_count(client) == 1);
    netchan_endpoint_free(server);
    /* The first redial is announced 60 s away (reconnect.min_delay). */
    CHECK(t_counter_wait(&reconnecting, 1, 10000) >= 1);
    server = named("disc-gone");
    char *again = NULL;
    CHECK_OK(netchan_endpoint_listen(server, addr, &again));
    usleep(200000);
    CHECK(peer_count(client) == 0); /* still waiting out the delay */
    CHECK_OK(netchan_endpoint_reconnect_now(client));
    int back = 0;
    for (int i = 0; i < 500 && !back; i++) {
        back = peer_count(client) == 1;
        if (!back) usleep(10000);
    }
    CHECK(back);
    CHECK_RC(netchan_endpoint_reconnect_now(NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_event_listener_free(listener);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    t_counter_destroy(&reconnecting);
    netchan_string_free(addr);
    netchan_string_free(again);
    netchan_string_free(peer);
}

typedef struct {
    netchan_endpoint *client;
    const char *path;
    netchan_result rc;
    char reply[32];
} caller;

static void *call_blocking(void *arg) {
    caller *c = (caller *)arg;
    netchan_bytes *reply = NULL;
    c->rc = netchan_endpoint_request_blocking(c->client, c->path, (const uint8_t *)"q", 1, 10000, &reply);
    if (c->rc == NETCHAN_RESULT_OK) {
        netchan_slice b = netchan_bytes_data(reply);
        if (b.len < sizeof c->reply) memcpy(c->reply, b.data, b.len);
        netchan_bytes_free(reply);
    }
    return NULL;
}

/* Requests pulled by the program's own thread, answered out of order. */
static void test_pull_service_accepts_requests(void) {
    netchan_endpoint *server = NULL, *client = NULL;
    char *server_name = NULL;
    t_pair(&server, &client, &server_name);
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve_pull(server, "pull/*", 0, &svc));
    CHECK(t_str_eq(netchan_service_pattern(svc), "pull/*"));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "pull/a", 5000, &found));
    CHECK(found);
    netchan_request *req = NULL;
    netchan_reply *reply = NULL;
    CHECK_RC(netchan_service_try_accept(svc, &req, &reply), NETCHAN_RESULT_EMPTY);
    CHECK_RC(netchan_service_accept(svc, 0, &req, &reply), NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_service_accept(svc, 20, &req, &reply), NETCHAN_RESULT_TIMEOUT);
    CHECK_RC(netchan_service_accept(svc, 20, NULL, &reply), NETCHAN_RESULT_NULL_ARGUMENT);
    caller a = {client, "pull/a", NETCHAN_RESULT_INTERNAL, ""};
    caller b = {client, "pull/b", NETCHAN_RESULT_INTERNAL, ""};
    pthread_t ta, tb;
    pthread_create(&ta, NULL, call_blocking, &a);
    netchan_request *ra = NULL, *rb = NULL;
    netchan_reply *pa = NULL, *pb = NULL;
    CHECK_OK(netchan_service_accept(svc, 5000, &ra, &pa));
    pthread_create(&tb, NULL, call_blocking, &b);
    CHECK_OK(netchan_service_accept(svc, -1, &rb, &pb));
    CHECK(t_str_eq(netchan_request_path(ra), "pull/a") && t_str_eq(netchan_request_path(rb), "pull/b"));
    CHECK(t_slice_eq(netchan_request_payload(rb), "q", 1));
    CHECK(t_str_eq(netchan_request_sender(ra), netchan_endpoint_name(client)));
    CHECK(!netchan_request_is_cancelled(ra) && netchan_request_remaining_ms(ra) > 0);
    /* The second is answered first; the request handles outlive nothing. */
    CHECK_OK(netchan_reply_send(pb, (const uint8_t *)"B", 1));
    netchan_request_free(rb);
    netchan_reply_free(pb);
    pthread_join(tb, NULL);
    CHECK(b.rc == NETCHAN_RESULT_OK && strcmp(b.reply, "B") == 0);
    CHECK_OK(netchan_reply_fail(pa, NETCHAN_RESULT_HANDLER_ERROR, "no"));
    netchan_reply_free(pa);
    netchan_request_free(ra);
    netchan_request_free(ra); /* a double free is ignored */
    pthread_join(ta, NULL);
    CHECK(a.rc == NETCHAN_RESULT_HANDLER_ERROR);
    /* A handler service cannot be accepted from. */
    netchan_request_handler h = {NULL, noop_request, NULL};
    netchan_service *handled = NULL;
    CHECK_OK(netchan_endpoint_serve(server, "handled/*", h, &handled));
    CHECK_RC(netchan_service_try_accept(handled, &req, &reply), NETCHAN_RESULT_INVALID_ARGUMENT);
    netchan_service_free(handled);
    netchan_service_free(svc);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    netchan_string_free(server_name);
}

int main(void) {
    t_watchdog(120);
    T_RUN(test_discovery_names_each_declaration);
    T_RUN(test_peers_with_their_stats);
    T_RUN(test_subscription_stats_count_exactly);
    T_RUN(test_declared_publisher_and_publish_many);
    T_RUN(test_recv_many_takes_batches);
    T_RUN(test_request_waits_for_a_responder);
    T_RUN(test_cancelled_request_is_seen_by_the_handler);
    T_RUN(test_failed_attempts_are_counted_per_address);
    T_RUN(test_reconnect_now_skips_the_backoff);
    T_RUN(test_pull_service_accepts_requests);
    return t_finish("test_api_discovery");
}
