/* Shows: a bidirectional stream over TCP: a server thread accepts it and sends back each message in upper case; the client half-closes and reads to the end.
 * Run:   cc stream.c $(pkg-config --cflags --libs netchan) -lpthread -o stream && ./stream [ADDR]
 * Prints: "first payload: hello", the three replies ("HELLO, STREAM" ...), then "done". */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "netchan.h"

/* Prints the failure and its detail, returns 1. */
static int fail(const char *what, netchan_result rc) {
    fprintf(stderr, "%s: %s (%s)\n", what, netchan_result_name(rc), netchan_last_error());
    return 1;
}

/* The server: accepts one stream, answers each message in upper case until
 * the client finishes, then finishes its own direction. */
static void *serve_one(void *arg) {
    netchan_stream_service *svc = (netchan_stream_service *)arg;
    netchan_stream *s = NULL;
    netchan_result rc = netchan_stream_service_accept(svc, 10000, &s);
    if (rc != NETCHAN_RESULT_OK) {
        fail("accept", rc);
        return NULL;
    }
    netchan_slice first = netchan_stream_first_payload(s);
    printf("first payload: %.*s\n", (int)first.len, (const char *)first.data);
    for (;;) {
        netchan_bytes *m = NULL;
        if ((rc = netchan_stream_recv(s, 10000, &m)) != NETCHAN_RESULT_OK) {
            fail("server recv", rc);
            break;
        }
        if (m == NULL) break; /* the client finished */
        netchan_slice d = netchan_bytes_data(m);
        char up[256];
        size_t n = d.len < sizeof up ? d.len : sizeof up;
        for (size_t i = 0; i < n; i++) up[i] = (char)toupper(d.data[i]);
        netchan_bytes_free(m);
        if ((rc = netchan_stream_send(s, (const uint8_t *)up, n, 10000)) != NETCHAN_RESULT_OK) {
            fail("server send", rc);
            break;
        }
    }
    netchan_stream_finish(s);
    netchan_stream_free(s);
    return NULL;
}

int main(int argc, char **argv) {
    const char *listen = argc > 1 ? argv[1] : "tcp://127.0.0.1:0";
    netchan_endpoint *server = NULL, *client = NULL;
    netchan_stream_service *svc = NULL;
    netchan_stream *s = NULL;
    char *addr = NULL;
    pthread_t th;
    int started = 0, status = 1;
    const char *lines[3] = {"hello, stream", "half-close next", "bye"};
    netchan_result rc;

    if ((rc = netchan_endpoint_new(NULL, &server)) != NETCHAN_RESULT_OK) return fail("new", rc);
    if ((rc = netchan_endpoint_serve_stream(server, "upper/*", 0, 0, &svc)) != NETCHAN_RESULT_OK) {
        fail("serve_stream", rc);
        goto out;
    }
    if ((rc = netchan_endpoint_listen(server, listen, &addr)) != NETCHAN_RESULT_OK) {
        fail("listen", rc);
        goto out;
    }
    if ((rc = netchan_endpoint_new(NULL, &client)) != NETCHAN_RESULT_OK) {
        fail("new", rc);
        goto out;
    }
    if ((rc = netchan_endpoint_connect(client, addr, NULL)) != NETCHAN_RESULT_OK) {
        fail("connect", rc);
        goto out;
    }
    pthread_create(&th, NULL, serve_one, svc);
    started = 1;

    /* Blocks until the server thread accepts the stream. */
    if ((rc = netchan_endpoint_open_stream(client, "upper/demo", (const uint8_t *)"hello", 5, NULL, &s)) !=
        NETCHAN_RESULT_OK) {
        fail("open_stream", rc);
        goto out;
    }
    for (int i = 0; i < 3; i++) {
        if ((rc = netchan_stream_send(s, (const uint8_t *)lines[i], strlen(lines[i]), 10000)) != NETCHAN_RESULT_OK) {
            fail("send", rc);
            goto out;
        }
    }
    netchan_stream_finish(s); /* our direction ends; the replies still come */
    for (;;) {
        netchan_bytes *m = NULL;
        if ((rc = netchan_stream_recv(s, 10000, &m)) != NETCHAN_RESULT_OK) {
            fail("recv", rc);
            goto out;
        }
        if (m == NULL) break; /* the server finished too */
        netchan_slice d = netchan_bytes_data(m);
        printf("%.*s\n", (int)d.len, (const char *)d.data);
        netchan_bytes_free(m);
    }
    printf("done\n");
    status = 0;

out:
    netchan_stream_free(s);
    if (started) pthread_join(th, NULL); /* after a failure, its accept times out */
    netchan_stream_service_free(svc);
    netchan_endpoint_free(client);
    netchan_endpoint_free(server);
    netchan_string_free(addr);
    netchan_runtime_shutdown(5000);
    return status;
}
