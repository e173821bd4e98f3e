/* Shows: a request/reply client: blocking requests, then one with a result callback.
 * Run:   ./reqrep_client ADDR [N]  (ADDR as printed by reqrep_server; N requests in all, default 3)
 * Prints: one "greet/<name> -> hello, <name>" line per request; exits 0 if every request got its reply. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netchan.h"

/* The callback request's outcome, handed from a netchan thread to main. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int done;
    netchan_result result;
    char text[300];
} outcome;

static void on_result(void *context, netchan_result result, const uint8_t *reply, size_t len,
                      const char *error) {
    outcome *o = (outcome *)context;
    pthread_mutex_lock(&o->mu);
    o->result = result;
    if (result == NETCHAN_RESULT_OK) snprintf(o->text, sizeof o->text, "%.*s", (int)len, (const char *)reply);
    else snprintf(o->text, sizeof o->text, "%s", error);
    o->done = 1;
    pthread_cond_signal(&o->cv);
    pthread_mutex_unlock(&o->mu);
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: %s ADDR [N]\n", argv[0]);
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 3;
    const char *names[] = {"ana", "bo", "chen", "dana", "eli"};
    netchan_endpoint *ep = NULL;
    netchan_result rc = netchan_endpoint_new(NULL, &ep);
    if (rc == NETCHAN_RESULT_OK) rc = netchan_endpoint_connect(ep, argv[1], NULL);
    int status = rc == NETCHAN_RESULT_OK ? 0 : 1;
    if (rc != NETCHAN_RESULT_OK) fprintf(stderr, "connect: %s (%s)\n", netchan_result_name(rc), netchan_last_error());

    /* All but the last: blocking requests. */
    for (int i = 0; status == 0 && i < n - 1; i++) {
        const char *name = names[i % 5];
        char path[64];
        snprintf(path, sizeof path, "greet/%s", name);
        netchan_bytes *reply = NULL;
        rc = netchan_endpoint_request_blocking(ep, path, (const uint8_t *)name, strlen(name), 5000, &reply);
        if (rc != NETCHAN_RESULT_OK) {
            fprintf(stderr, "request: %s (%s)\n", netchan_result_name(rc), netchan_last_error());
            status = 1;
            break;
        }
        netchan_slice s = netchan_bytes_data(reply);
        printf("%s -> %.*s\n", path, (int)s.len, (const char *)s.data);
        netchan_bytes_free(reply);
    }

    /* The last one: a callback request. */
    if (status == 0 && n > 0) {
        outcome o;
        memset(&o, 0, sizeof o);
        pthread_mutex_init(&o.mu, NULL);
        pthread_cond_init(&o.cv, NULL);
        const char *name = names[(n - 1) % 5];
        char path[64];
        snprintf(path, sizeof path, "greet/%s", name);
        netchan_result_callback cb = {&o, on_result, NULL};
        rc = netchan_endpoint_request(ep, path, (const uint8_t *)name, strlen(name), 5000, cb);
        if (rc == NETCHAN_RESULT_OK) {
            pthread_mutex_lock(&o.mu);
            while (!o.done) pthread_cond_wait(&o.cv, &o.mu);
            pthread_mutex_unlock(&o.mu);
            rc = o.result;
        }
        if (rc == NETCHAN_RESULT_OK) printf("%s -> %s\n", path, o.text);
        else {
            fprintf(stderr, "request: %s (%s)\n", netchan_result_name(rc), o.text);
            status = 1;
        }
        pthread_mutex_destroy(&o.mu);
        pthread_cond_destroy(&o.cv);
    }

    netchan_endpoint_free(ep);
    netchan_runtime_shutdown(5000);
    return status;
}
