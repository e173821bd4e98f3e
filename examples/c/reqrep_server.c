/* Shows: a request/reply server whose handler keeps each reply handle and answers later from a worker thread.
 * Run:   ./reqrep_server [ADDR [N]]  (default tcp://127.0.0.1:0, N=3), then ./reqrep_client ADDR N
 * Prints: "listening on ADDR" first, then "answered N requests" once N requests were answered; exits 0. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "netchan.h"

#define MAXQ 256

/* Replies waiting for the worker thread. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    netchan_reply *replies[MAXQ];
    char *names[MAXQ];
    int n;
    int answered;
    int want;
} work_queue;

/* Runs on a netchan thread: must not block, so it only queues the reply. */
static void handle(void *context, const netchan_request *req, netchan_reply *reply) {
    work_queue *q = (work_queue *)context;
    netchan_slice p = netchan_request_payload(req);
    char *name = (char *)malloc(p.len + 1);
    if (name != NULL) {
        memcpy(name, p.data, p.len);
        name[p.len] = '\0';
    }
    pthread_mutex_lock(&q->mu);
    if (name != NULL && q->n < MAXQ) {
        q->replies[q->n] = reply;
        q->names[q->n++] = name;
        pthread_cond_signal(&q->cv);
        reply = NULL;
        name = NULL;
    }
    pthread_mutex_unlock(&q->mu);
    if (reply != NULL) { /* queue full: fail it now */
        netchan_reply_fail(reply, NETCHAN_RESULT_BUFFER_FULL, "server busy");
        netchan_reply_free(reply);
    }
    free(name);
}

static void *worker(void *arg) {
    work_queue *q = (work_queue *)arg;
    pthread_mutex_lock(&q->mu);
    while (q->answered < q->want) {
        while (q->n == 0) pthread_cond_wait(&q->cv, &q->mu);
        netchan_reply *reply = q->replies[--q->n];
        char *name = q->names[q->n];
        pthread_mutex_unlock(&q->mu);
        char text[300];
        int len = snprintf(text, sizeof text, "hello, %.200s", name);
        netchan_result rc = netchan_reply_send(reply, (const uint8_t *)text, (size_t)len);
        if (rc != NETCHAN_RESULT_OK) fprintf(stderr, "reply: %s\n", netchan_result_name(rc));
        netchan_reply_free(reply);
        free(name);
        pthread_mutex_lock(&q->mu);
        q->answered++;
    }
    pthread_mutex_unlock(&q->mu);
    return NULL;
}

int main(int argc, char **argv) {
    const char *listen_addr = argc > 1 ? argv[1] : "tcp://127.0.0.1:0";
    work_queue q;
    memset(&q, 0, sizeof q);
    pthread_mutex_init(&q.mu, NULL);
    pthread_cond_init(&q.cv, NULL);
    q.want = argc > 2 ? atoi(argv[2]) : 3;

    netchan_endpoint *ep = NULL;
    netchan_service *svc = NULL;
    char *bound = NULL;
    netchan_result rc = netchan_endpoint_new(NULL, &ep);
    if (rc == NETCHAN_RESULT_OK) {
        netchan_request_handler h = {&q, handle, NULL};
        rc = netchan_endpoint_serve(ep, "greet/*", h, &svc);
    }
    if (rc == NETCHAN_RESULT_OK) rc = netchan_endpoint_listen(ep, listen_addr, &bound);
    if (rc != NETCHAN_RESULT_OK) {
        fprintf(stderr, "setup: %s (%s)\n", netchan_result_name(rc), netchan_last_error());
        netchan_service_free(svc);
        netchan_endpoint_free(ep);
        netchan_runtime_shutdown(5000);
        return 1;
    }
    printf("listening on %s\n", bound);
    fflush(stdout);

    pthread_t th;
    pthread_create(&th, NULL, worker, &q);
    pthread_join(th, NULL);
    printf("answered %d requests\n", q.answered);

    netchan_service_free(svc); /* requests that came after are failed */
    for (int i = 0; i < q.n; i++) {
        netchan_reply_free(q.replies[i]);
        free(q.names[i]);
    }
    netchan_endpoint_free(ep);
    netchan_string_free(bound);
    netchan_runtime_shutdown(5000);
    pthread_mutex_destroy(&q.mu);
    pthread_cond_destroy(&q.cv);
    return 0;
}
