/* A Rust panic inside the library comes back to C as NETCHAN_RESULT_PANIC
 * with the panic text as the last error, never as an abort, and the library
 * keeps working. Needs the test-only export netchan_test_panic(), which
 * only a library built with netchan-ffi's `test-panic` feature has
 * (tests/c/run.sh builds target/PROFILE/libnetchan_ffi.{a,so} for this test
 * alone; libnetchan never has it), so the prototype is declared here rather
 * than in netchan.h. */
#include "testutil.h"

#ifdef __cplusplus
extern "C" {
#endif
netchan_result netchan_test_panic(const char *msg);
#ifdef __cplusplus
}
#endif

static void test_panic_becomes_result_code(void) {
    CHECK_RC(netchan_test_panic("injected panic 1234"), NETCHAN_RESULT_PANIC);
    /* The text the panic carried, behind the library's prefix. */
    const char *want = "internal panic (a bug in netchan, please report it): injected panic 1234";
    CHECK(strcmp(netchan_last_error(), want) == 0);
    CHECK(strcmp(netchan_result_name(NETCHAN_RESULT_PANIC), "PANIC") == 0);
    /* A second panic on the same thread replaces the detail. */
    CHECK_RC(netchan_test_panic("second"), NETCHAN_RESULT_PANIC);
    CHECK(strstr(netchan_last_error(), ": second") != NULL);
    /* The boundary checks arguments first, as every function does. */
    CHECK_RC(netchan_test_panic(NULL), NETCHAN_RESULT_NULL_ARGUMENT);
}

static void *panic_on_thread(void *arg) {
    (void)arg;
    netchan_result r = netchan_test_panic("on another thread");
    CHECK(r == NETCHAN_RESULT_PANIC);
    CHECK(strstr(netchan_last_error(), "on another thread") != NULL);
    return NULL;
}

static void test_library_works_after_panic(void) {
    CHECK_RC(netchan_test_panic("before the endpoints"), NETCHAN_RESULT_PANIC);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, panic_on_thread, NULL) == 0);
    pthread_join(th, NULL);
    /* The last error of this thread is its own, not the other thread's. */
    CHECK(strstr(netchan_last_error(), "before the endpoints") != NULL);

    netchan_endpoint *server = NULL, *client = NULL;
    t_pair(&server, &client, NULL);
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "after/panic", NULL, &sub));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(client, "after/panic", 5000, &found));
    CHECK(found);
    CHECK_RC(netchan_test_panic("between calls"), NETCHAN_RESULT_PANIC);
    CHECK_OK(netchan_endpoint_publish(client, "after/panic", (const uint8_t *)"ok", 2));
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_recv(sub, 5000, &m));
    CHECK(t_slice_eq(netchan_message_payload(m), "ok", 2));
    netchan_message_free(m);
    netchan_subscription_free(sub);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
}

int main(void) {
    t_watchdog(60);
    T_RUN(test_panic_becomes_result_code);
    T_RUN(test_library_works_after_panic);
    return t_finish("test_api_panic");
}
