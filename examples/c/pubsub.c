/* Shows: publish/subscribe between two endpoints over TCP, pulling messages with netchan_subscription_recv().
 * Run:   cc pubsub.c $(pkg-config --cflags --libs netchan) -o pubsub && ./pubsub
 * Prints: the three messages the subscriber received ("sensors/kitchen/temp <- 21.5" ...), then "done". */
#include <stdio.h>
#include <string.h>

#include "netchan.h"

/* Prints the failure and its detail, returns 1. */
static int fail(const char *what, netchan_result rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, netchan_result_name(rc), netchan_last_error());
    return 1;
}

int main(void) {
    netchan_endpoint *sub_ep = NULL, *pub_ep = NULL;
    netchan_subscription *sub = NULL;
    char *addr = NULL;
    int status = 1;
    const char *paths[3] = {"sensors/kitchen/temp", "sensors/kitchen/humidity", "sensors/hall/temp"};
    const char *values[3] = {"21.5", "40", "19.0"};
    netchan_result rc;

    /* The subscriber listens on a free port; the publisher connects to it. */
    if ((rc = netchan_endpoint_new(NULL, &sub_ep)) != NETCHAN_RESULT_OK) return fail("new", rc);
    if ((rc = netchan_endpoint_subscribe(sub_ep, "sensors/**", NULL, &sub)) != NETCHAN_RESULT_OK) {
        fail("subscribe", rc);
        goto out;
    }
    if ((rc = netchan_endpoint_listen(sub_ep, "tcp://127.0.0.1:0", &addr)) != NETCHAN_RESULT_OK) {
        fail("listen", rc);
        goto out;
    }
    if ((rc = netchan_endpoint_new(NULL, &pub_ep)) != NETCHAN_RESULT_OK) {
        fail("new", rc);
        goto out;
    }
    if ((rc = netchan_endpoint_connect(pub_ep, addr, NULL)) != NETCHAN_RESULT_OK) {
        fail("connect", rc);
        goto out;
    }

    for (int i = 0; i < 3; i++) {
        rc = netchan_endpoint_publish(pub_ep, paths[i], (const uint8_t *)values[i], strlen(values[i]));
        if (rc != NETCHAN_RESULT_OK) {
            fail("publish", rc);
            goto out;
        }
    }
    for (int i = 0; i < 3; i++) {
        netchan_message *m = NULL;
        if ((rc = netchan_subscription_recv(sub, 5000, &m)) != NETCHAN_RESULT_OK) {
            fail("recv", rc);
            goto out;
        }
        netchan_str path = netchan_message_path(m);
        netchan_slice payload = netchan_message_payload(m);
        printf("%.*s <- %.*s\n", (int)path.len, path.data, (int)payload.len, (const char *)payload.data);
        netchan_message_free(m);
    }
    printf("done\n");
    status = 0;

out:
    netchan_subscription_free(sub);
    netchan_endpoint_free(pub_ep);
    netchan_endpoint_free(sub_ep);
    netchan_string_free(addr);
    netchan_runtime_shutdown(5000);
    return status;
}
