/* The interop agent contract (tests/interop/README.md), in C over libnetchan.
 * Build: cc -std=c11 -Iinclude tests/interop/agent.c -Ltarget/debug -lnetchan -o agent-c
 * Prints: READY <addr>, then MSG/OK/ERR/SMSG/SAW lines as the contract says; exits 0. */
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "netchan.h"

static uint64_t fnv1a64(const uint8_t *p, size_t n) {
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}

/* "hex:<hex>" or "gen:<n>"; returns a malloc'd buffer (never NULL). */
static uint8_t *payload(const char *spec, size_t *len) {
    if (strncmp(spec, "hex:", 4) == 0) {
        const char *h = spec + 4;
        *len = strlen(h) / 2;
        uint8_t *b = malloc(*len + 1);
        for (size_t i = 0; i < *len; i++) {
            unsigned v;
            sscanf(h + 2 * i, "%2x", &v);
            b[i] = (uint8_t)v;
        }
        return b;
    }
    if (strncmp(spec, "gen:", 4) == 0) {
        *len = (size_t)strtoull(spec + 4, NULL, 10);
        uint8_t *b = malloc(*len + 1);
        for (size_t i = 0; i < *len; i++) b[i] = (uint8_t)(i % 251);
        return b;
    }
    fprintf(stderr, "bad payload spec %s\n", spec);
    exit(2);
}

static void check(netchan_result r, const char *what) {
    if (r != NETCHAN_RESULT_OK) {
        printf("ERR %s %s: %s\n", netchan_result_name(r), what, netchan_last_error());
        fflush(stdout);
        exit(1);
    }
}

static void on_request(void *ctx, const netchan_request *req, netchan_reply *reply) {
    (void)ctx;
    netchan_str path = netchan_request_path(req);
    if (path.len == 4 && memcmp(path.data, "echo", 4) == 0) {
        netchan_slice p = netchan_request_payload(req);
        netchan_reply_send(reply, p.data, p.len);
    } else {
        netchan_reply_fail(reply, NETCHAN_RESULT_HANDLER_ERROR, "boom");
    }
    netchan_reply_free(reply);
}

/* One pulled stream service per path, each on a thread of its own:
 * secho (every message back, the first payload too unless empty, then
 * the end), scancel (sends "hello", then cancels), swatch (receives until
 * the stream ends, prints SAW END|<CODE> <n>). */
static void *stream_server(void *arg) {
    netchan_stream_service *svc = arg;
    netchan_str pat = netchan_stream_service_pattern(svc);
    for (;;) {
        netchan_stream *s = NULL;
        if (netchan_stream_service_accept(svc, -1, &s) != NETCHAN_RESULT_OK) return NULL;
        if (pat.len == 5 && memcmp(pat.data, "secho", 5) == 0) {
            netchan_slice first = netchan_stream_first_payload(s);
            if (first.len > 0) netchan_stream_send(s, first.data, first.len, -1);
            for (;;) {
                netchan_bytes *m = NULL;
                if (netchan_stream_recv(s, -1, &m) != NETCHAN_RESULT_OK || m == NULL) break;
                netchan_slice d = netchan_bytes_data(m);
                netchan_result r = netchan_stream_send(s, d.data, d.len, -1);
                netchan_bytes_free(m);
                if (r != NETCHAN_RESULT_OK) break;
            }
            netchan_stream_finish(s);
        } else if (pat.len == 7 && memcmp(pat.data, "scancel", 7) == 0) {
            netchan_stream_send(s, (const uint8_t *)"hello", 5, -1);
            netchan_stream_cancel(s);
        } else {
            int n = 0;
            const char *end = "END";
            for (;;) {
                netchan_bytes *m = NULL;
                netchan_result r = netchan_stream_recv(s, -1, &m);
                if (r != NETCHAN_RESULT_OK) {
                    end = netchan_result_name(r);
                    break;
                }
                if (m == NULL) break;
                netchan_bytes_free(m);
                n++;
            }
            printf("SAW %s %d\n", end, n);
            fflush(stdout);
        }
        netchan_stream_free(s);
    }
}

int main(int argc, char **argv) {
    if (argc < 3) {
        fprintf(stderr, "usage: agent-c sub|pub|serve|req|sserve|sopen ADDR ...\n");
        return 2;
    }
    char name[64];
    snprintf(name, sizeof name, "c-agent-%d", (int)getpid());
    netchan_options *opts = NULL;
    check(netchan_options_new(&opts), "options");
    check(netchan_options_set_name(opts, name), "name");
    /* Settings by name from NETCHAN_SETTINGS (`KEY=VALUE` lines): the
     * matrix's TLS cells pass certificates this way to every language. */
    const char *env = getenv("NETCHAN_SETTINGS");
    size_t env_len = env != NULL ? strlen(env) : 0;
    char *settings = malloc(env_len + 1);
    if (settings == NULL) return 1;
    memcpy(settings, env != NULL ? env : "", env_len + 1);
    /* strtok: one thread, before the endpoint starts any. */
    for (char *line = strtok(settings, "\n"); line != NULL; line = strtok(NULL, "\n")) {
        char *eq = strchr(line, '=');
        if (eq == NULL) continue;
        *eq = '\0';
        check(netchan_options_set(opts, line, eq + 1), "setting");
    }
    free(settings);
    netchan_endpoint *ep = NULL;
    check(netchan_endpoint_new(opts, &ep), "endpoint");
    netchan_options_free(opts);
    const char *cmd = argv[1], *addr = argv[2];
    if (strcmp(cmd, "sub") == 0 && argc == 5) {
        netchan_subscription *sub = NULL;
        check(netchan_endpoint_subscribe(ep, argv[3], NULL, &sub), "subscribe");
        char *bound = NULL;
        check(netchan_endpoint_listen(ep, addr, &bound), "listen");
        printf("READY %s\n", bound);
        fflush(stdout);
        netchan_string_free(bound);
        long count = atol(argv[4]);
        for (long i = 0; i < count; i++) {
            netchan_message *m = NULL;
            check(netchan_subscription_recv(sub, -1, &m), "recv");
            netchan_str path = netchan_message_path(m);
            netchan_slice p = netchan_message_payload(m);
            printf("MSG %.*s %zu %016" PRIx64 "\n", (int)path.len, path.data, p.len, fnv1a64(p.data, p.len));
            fflush(stdout);
            netchan_message_free(m);
        }
        netchan_subscription_free(sub);
    } else if (strcmp(cmd, "pub") == 0 && argc >= 4) {
        check(netchan_endpoint_connect(ep, addr, NULL), "connect");
        bool found = false;
        check(netchan_endpoint_wait_for_subscribers(ep, argv[3], 10000, &found), "wait");
        if (!found) {
            printf("ERR TIMEOUT no subscriber\n");
            return 1;
        }
        for (int i = 4; i < argc; i++) {
            size_t n = 0;
            uint8_t *b = payload(argv[i], &n);
            check(netchan_endpoint_publish(ep, argv[3], b, n), "publish");
            free(b);
        }
        printf("DONE\n");
    } else if (strcmp(cmd, "serve") == 0) {
        netchan_request_handler h = {NULL, on_request, NULL};
        netchan_service *echo = NULL, *fail = NULL;
        check(netchan_endpoint_serve(ep, "echo", h, &echo), "serve echo");
        check(netchan_endpoint_serve(ep, "fail", h, &fail), "serve fail");
        char *bound = NULL;
        check(netchan_endpoint_listen(ep, addr, &bound), "listen");
        printf("READY %s\n", bound);
        fflush(stdout);
        netchan_string_free(bound);
        for (;;) pause();
    } else if (strcmp(cmd, "sserve") == 0) {
        const char *paths[] = {"secho", "scancel", "swatch"};
        for (int i = 0; i < 3; i++) {
            netchan_stream_service *svc = NULL;
            check(netchan_endpoint_serve_stream(ep, paths[i], 0, 0, &svc), "serve_stream");
            pthread_t t;
            if (pthread_create(&t, NULL, stream_server, svc) != 0) return 1;
        }
        char *bound = NULL;
        check(netchan_endpoint_listen(ep, addr, &bound), "listen");
        printf("READY %s\n", bound);
        fflush(stdout);
        netchan_string_free(bound);
        for (;;) pause();
    } else if (strcmp(cmd, "sopen") == 0 && argc >= 4) {
        /* sopen ADDR PATH [--cancel] SPEC... */
        check(netchan_endpoint_connect(ep, addr, NULL), "connect");
        int cancel = argc >= 5 && strcmp(argv[4], "--cancel") == 0;
        netchan_stream *s = NULL;
        netchan_result r = netchan_endpoint_open_stream(ep, argv[3], NULL, 0, NULL, &s);
        for (int i = cancel ? 5 : 4; r == NETCHAN_RESULT_OK && i < argc; i++) {
            size_t n = 0;
            uint8_t *b = payload(argv[i], &n);
            r = netchan_stream_send(s, b, n, -1);
            free(b);
        }
        if (r == NETCHAN_RESULT_OK && cancel) {
            netchan_stream_cancel(s);
            printf("CANCELLED\n");
        } else if (r == NETCHAN_RESULT_OK) {
            netchan_stream_finish(s);
            for (;;) {
                netchan_bytes *m = NULL;
                r = netchan_stream_recv(s, -1, &m);
                if (r != NETCHAN_RESULT_OK || m == NULL) break;
                netchan_slice d = netchan_bytes_data(m);
                printf("SMSG %zu %016" PRIx64 "\n", d.len, fnv1a64(d.data, d.len));
                netchan_bytes_free(m);
            }
            if (r == NETCHAN_RESULT_OK) printf("SEND\n");
        }
        if (r != NETCHAN_RESULT_OK) printf("ERR %s %s\n", netchan_result_name(r), netchan_last_error());
        netchan_stream_free(s);
    } else if (strcmp(cmd, "req") == 0 && argc == 5) {
        /* A refused connection is an answer too (the TLS refusal cells). */
        netchan_result r = netchan_endpoint_connect(ep, addr, NULL);
        netchan_bytes *reply = NULL;
        if (r == NETCHAN_RESULT_OK) {
            size_t n = 0;
            uint8_t *b = payload(argv[4], &n);
            r = netchan_endpoint_request_blocking(ep, argv[3], b, n, 10000, &reply);
            free(b);
        }
        if (r == NETCHAN_RESULT_OK) {
            netchan_slice s = netchan_bytes_data(reply);
            printf("OK %zu %016" PRIx64 "\n", s.len, fnv1a64(s.data, s.len));
            netchan_bytes_free(reply);
        } else {
            /* The detail is the handler's text for errors that crossed the wire. */
            printf("ERR %s %s\n", netchan_result_name(r), netchan_last_error());
        }
    } else {
        fprintf(stderr, "bad arguments\n");
        return 2;
    }
    fflush(stdout);
    netchan_endpoint_close(ep);
    netchan_endpoint_free(ep);
    netchan_runtime_shutdown(2000);
    return 0;
}
