/* API conventions: result codes and texts, last error, NULL arguments,
 * invalid UTF-8, double free and free(NULL), outputs written only on
 * success, callbacks taken over (drop run) when a call fails. */
#include "testutil.h"

static int drops = 0;
static void count_drop(void *ctx) { (void)ctx; drops++; }
static void never_msg(void *ctx, const netchan_message *m) { (void)ctx; (void)m; }
static void never_result(void *ctx, netchan_result r, const uint8_t *p, size_t n, const char *e) {
    (void)ctx; (void)r; (void)p; (void)n; (void)e;
}
static void never_req(void *ctx, const netchan_request *q, netchan_reply *r) {
    (void)ctx; (void)q; (void)r;
}
static void never_event(void *ctx, const netchan_event *e) { (void)ctx; (void)e; }

int main(void) {
    t_watchdog(60);

    /* Version. */
    CHECK(netchan_version() ==
          NETCHAN_VERSION_MAJOR * 10000 + NETCHAN_VERSION_MINOR * 100 + NETCHAN_VERSION_PATCH);
    CHECK(strlen(netchan_version_string()) >= 5);

    /* Codes: same numbers as the core, static names and texts. */
    CHECK(NETCHAN_RESULT_OK == 0);
    CHECK(NETCHAN_RESULT_INVALID_PATH == 102);
    CHECK(NETCHAN_RESULT_TIMEOUT == 300);
    CHECK(NETCHAN_RESULT_NO_RESPONDERS == 301);
    CHECK(NETCHAN_RESULT_CLOSED == 500);
    CHECK(NETCHAN_RESULT_WOULD_DEADLOCK == 501);
    CHECK(strcmp(netchan_result_name(NETCHAN_RESULT_TIMEOUT), "TIMEOUT") == 0);
    CHECK(strcmp(netchan_result_str(NETCHAN_RESULT_TIMEOUT), "timed out") == 0);
    CHECK(strcmp(netchan_result_name(NETCHAN_RESULT_NULL_ARGUMENT), "NULL_ARGUMENT") == 0);
    CHECK(strcmp(netchan_result_name(12345), "UNKNOWN") == 0);
    CHECK(strcmp(netchan_result_str(12345), "unknown result code") == 0);
    CHECK(netchan_last_error() != NULL);

    /* NULL arguments everywhere: an error code, never a crash. */
    netchan_endpoint *ep = NULL;
    CHECK_RC(netchan_endpoint_new(NULL, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "out") != NULL);
    CHECK_RC(netchan_options_new(NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_options_set_name(NULL, "x"), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_options_set_send_timeout_ms(NULL, 5), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_subscribe_options_set_capacity(NULL, 5), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_close(NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_listen(NULL, "tcp://127.0.0.1:0", NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_publish(NULL, "a", NULL, 0), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_try_publish(NULL, "a", NULL, 0), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_ping(NULL, "x", NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_stats(NULL, NULL, 0), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_subscription_try_recv(NULL, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_subscription_recv(NULL, 0, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_subscription_close(NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_reply_send(NULL, NULL, 0), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_reply_fail(NULL, NETCHAN_RESULT_HANDLER_ERROR, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_message_clone(NULL, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(netchan_endpoint_name(NULL) == NULL);
    CHECK(netchan_message_path(NULL).len == 0 && netchan_message_path(NULL).data == NULL);
    CHECK(netchan_message_payload(NULL).len == 0);
    CHECK(netchan_request_path(NULL).len == 0);
    CHECK(netchan_subscription_pattern(NULL).len == 0);
    CHECK(netchan_subscription_dropped(NULL) == 0);
    CHECK(netchan_bytes_data(NULL).data == NULL);

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

    /* Options: a bad value is named by netchan_endpoint_new; out untouched. */
    netchan_options *opts = NULL;
    CHECK_OK(netchan_options_new(&opts));
    CHECK_OK(netchan_options_set_send_timeout_ms(opts, 0));
    netchan_endpoint *untouched = (netchan_endpoint *)&drops; /* sentinel */
    CHECK_RC(netchan_endpoint_new(opts, &untouched), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "send_timeout") != NULL);
    CHECK(untouched == (netchan_endpoint *)&drops);
    CHECK_RC(netchan_options_set_overflow(opts, 77), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK_OK(netchan_options_set_send_timeout_ms(opts, 2000));
    CHECK_RC(netchan_options_set_busy_poll_us(NULL, 5), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_OK(netchan_options_set_busy_poll_us(opts, 1000001));
    CHECK_RC(netchan_endpoint_new(opts, &untouched), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "busy_poll") != NULL);
    CHECK_OK(netchan_options_set_busy_poll_us(opts, 1000000));
    CHECK_OK(netchan_options_set_name(opts, "errors-test"));
    CHECK_RC(netchan_options_set_name(opts, "bad\xff\xfe"), NETCHAN_RESULT_INVALID_UTF8);
    CHECK_OK(netchan_endpoint_new(opts, &ep));
    netchan_options_free(opts);
    netchan_options_free(opts); /* double free: ignored */
    CHECK(strcmp(netchan_endpoint_name(ep), "errors-test") == 0);

    /* Invalid input reaches the core's codes. */
    CHECK_RC(netchan_endpoint_publish(ep, "bad//path", NULL, 0), NETCHAN_RESULT_INVALID_PATH);
    CHECK_RC(netchan_endpoint_publish(ep, "a/b", NULL, 3), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_publish(ep, "a/\xc3", NULL, 0), NETCHAN_RESULT_INVALID_UTF8);
    CHECK_RC(netchan_endpoint_listen(ep, "nonsense", NULL), NETCHAN_RESULT_INVALID_ADDRESS);
    CHECK_RC(netchan_endpoint_ping(ep, "nobody", NULL), NETCHAN_RESULT_UNKNOWN_PEER);
    netchan_bytes *reply = (netchan_bytes *)&drops;
    CHECK_RC(netchan_endpoint_request_blocking(ep, "svc/none", NULL, 0, 1000, &reply),
             NETCHAN_RESULT_NO_RESPONDERS);
    CHECK(reply == (netchan_bytes *)&drops);
    CHECK_RC(netchan_endpoint_request_blocking(ep, "svc/none", NULL, 0, 0, &reply),
             NETCHAN_RESULT_INVALID_ARGUMENT);

    /* Subscriptions: bad pattern, bad options, EMPTY, TIMEOUT. */
    netchan_subscription *sub = NULL;
    CHECK_RC(netchan_endpoint_subscribe(ep, "a/temp*", NULL, &sub), NETCHAN_RESULT_INVALID_PATH);
    netchan_subscribe_options *so = NULL;
    CHECK_OK(netchan_subscribe_options_new(&so));
    CHECK_OK(netchan_subscribe_options_set_capacity(so, 0));
    CHECK_RC(netchan_endpoint_subscribe(ep, "a/*", so, &sub), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(sub == NULL);
    netchan_subscribe_options_free(so);
    CHECK_OK(netchan_endpoint_subscribe(ep, "a/*", NULL, &sub));
    netchan_message *msg = NULL;
    CHECK_RC(netchan_subscription_try_recv(sub, &msg), NETCHAN_RESULT_EMPTY);
    CHECK_RC(netchan_subscription_recv(sub, 20, &msg), NETCHAN_RESULT_TIMEOUT);
    CHECK(msg == NULL);
    CHECK(t_str_eq(netchan_subscription_pattern(sub), "a/*"));
    netchan_subscription_free(sub);
    netchan_subscription_free(sub); /* double free: ignored */

    /* A callback handed to a failing call is dropped, never called. */
    drops = 0;
    netchan_message_callback mcb = {NULL, never_msg, count_drop};
    CHECK_RC(netchan_endpoint_subscribe_callback(NULL, "a", NULL, mcb, &sub), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_subscribe_callback(ep, "a//", NULL, mcb, &sub), NETCHAN_RESULT_INVALID_PATH);
    netchan_message_callback no_call = {NULL, NULL, count_drop};
    CHECK_RC(netchan_endpoint_subscribe_callback(ep, "a", NULL, no_call, &sub), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_result_callback rcb = {NULL, never_result, count_drop};
    CHECK_RC(netchan_endpoint_request(NULL, "a", NULL, 0, 100, rcb), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_request_handler h = {NULL, never_req, count_drop};
    CHECK_RC(netchan_endpoint_serve(ep, NULL, h, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_event_callback ecb = {NULL, never_event, count_drop};
    CHECK_RC(netchan_endpoint_on_event(ep, ecb, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK(drops == 6);

    /* Freeing something the library did not hand out is ignored. */
    netchan_string_free((char *)"not ours");
    netchan_message_free((netchan_message *)ep); /* wrong type: ignored */

    /* Stats; closed endpoint reports CLOSED. */
    netchan_stats st;
    memset(&st, 0, sizeof st);
    CHECK_OK(netchan_endpoint_stats(ep, &st, sizeof st));
    CHECK(st.peers == 0);
    CHECK_OK(netchan_endpoint_close(ep));
    CHECK_RC(netchan_endpoint_publish(ep, "a/b", (const uint8_t *)"x", 1), NETCHAN_RESULT_CLOSED);
    CHECK_RC(netchan_endpoint_subscribe(ep, "a/b", NULL, &sub), NETCHAN_RESULT_CLOSED);
    netchan_endpoint_free(ep);
    netchan_endpoint_free(ep); /* double free: ignored */

    return t_finish("test_api_errors");
}
