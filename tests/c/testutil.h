/* Shared helpers of the C API tests: checks that count failures, a
 * watchdog against deadlocks, and a small waitable counter. The same
 * sources compile as C11 and as C++20, and (the portable tests, see
 * tests/platforms/run.sh) for Windows with mingw-w64. */
#ifndef NETCHAN_TESTUTIL_H
#define NETCHAN_TESTUTIL_H

#ifdef _WIN32
#ifndef _WIN32_WINNT
#define _WIN32_WINNT 0x0A00 /* GetThreadDescription: Windows 10 */
#endif
#include <stdint.h>
#include <wchar.h>
#include <windows.h>
/* Windows 10's; mingw-w64 10 exports it from kernel32 without declaring it. */
WINBASEAPI HRESULT WINAPI GetThreadDescription(HANDLE thread, PWSTR *description);
#endif
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "netchan.h"

static int t_failures = 0;

#define CHECK(cond)                                                          \
    do {                                                                     \
        if (!(cond)) {                                                       \
            fprintf(stderr, "%s:%d: CHECK failed: %s (last error: %s)\n",    \
                    __FILE__, __LINE__, #cond, netchan_last_error());        \
            __atomic_add_fetch(&t_failures, 1, __ATOMIC_SEQ_CST);           \
        }                                                                    \
    } while (0)

/* Checks that an expression returns the expected netchan_result. */
#define CHECK_RC(expr, want)                                                 \
    do {                                                                     \
        netchan_result t_rc_ = (expr);                                       \
        if (t_rc_ != (netchan_result)(want)) {                               \
            fprintf(stderr, "%s:%d: %s returned %s, want %s (%s)\n",         \
                    __FILE__, __LINE__, #expr, netchan_result_name(t_rc_),   \
                    netchan_result_name(want), netchan_last_error());        \
            __atomic_add_fetch(&t_failures, 1, __ATOMIC_SEQ_CST);           \
        }                                                                    \
    } while (0)

#define CHECK_OK(expr) CHECK_RC(expr, NETCHAN_RESULT_OK)

/* Processes a test started: the watchdog kills them before it exits. */
static pid_t t_children[16];
static int t_nchildren = 0;
static inline void t_track_child(pid_t pid) {
    if (pid > 0 && t_nchildren < 16) t_children[t_nchildren++] = pid;
}

/* Fails the test process if it runs longer than `seconds` (a deadlock). */
#ifdef _WIN32
/* No SIGALRM: a thread that sleeps, then ends the process. */
static inline void *t_watchdog_thread(void *arg) {
    Sleep((DWORD)(uintptr_t)arg * 1000);
    fputs("watchdog: test took too long (deadlock?)\n", stderr);
    _exit(3);
    return NULL;
}

static inline void t_watchdog(unsigned seconds) {
    pthread_t t;
    if (pthread_create(&t, NULL, t_watchdog_thread, (void *)(uintptr_t)seconds) == 0)
        pthread_detach(t);
}
#else
static inline void t_watchdog_fired(int sig) {
    (void)sig;
    static const char msg[] = "watchdog: test took too long (deadlock?)\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    for (int i = 0; i < t_nchildren; i++) kill(t_children[i], SIGKILL);
    _exit(3);
}

static inline void t_watchdog(unsigned seconds) {
    signal(SIGALRM, t_watchdog_fired);
    alarm(seconds);
}
#endif

/* Runs one test function and reports it by name. */
#define T_RUN(fn) t_run(#fn, fn)
static inline void t_run(const char *name, void (*fn)(void)) {
    int before = __atomic_load_n(&t_failures, __ATOMIC_SEQ_CST);
    fn();
    int n = __atomic_load_n(&t_failures, __ATOMIC_SEQ_CST) - before;
    if (n == 0) printf("ok      %s\n", name);
    else printf("FAILED  %s: %d check(s)\n", name, n);
    fflush(stdout);
}

/* True on one of netchan's runtime threads (they are named "netchan"). */
#ifdef _WIN32
static inline int t_on_netchan_thread(void) {
    PWSTR desc = NULL;
    if (FAILED(GetThreadDescription(GetCurrentThread(), &desc))) return 0;
    int on = desc != NULL && wcscmp(desc, L"netchan") == 0;
    LocalFree(desc);
    return on;
}
#else
static inline int t_on_netchan_thread(void) {
    char name[32] = "";
    if (pthread_getname_np(pthread_self(), name, sizeof name) != 0) return 0;
    return strcmp(name, "netchan") == 0;
}
#endif

/* Ends a test: shuts netchan down and reports. */
static inline int t_finish(const char *name) {
    CHECK_OK(netchan_runtime_shutdown(5000));
    if (t_failures == 0) {
        printf("ok %s\n", name);
        return 0;
    }
    printf("FAILED %s: %d check(s)\n", name, t_failures);
    return 1;
}

/* A counter that threads can wait on. */
typedef struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long value;
} t_counter;

static inline void t_counter_init(t_counter *c) {
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    c->value = 0;
}

static inline void t_counter_destroy(t_counter *c) {
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
}

static inline void t_counter_add(t_counter *c, long n) {
    pthread_mutex_lock(&c->mu);
    c->value += n;
    pthread_cond_broadcast(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static inline long t_counter_get(t_counter *c) {
    pthread_mutex_lock(&c->mu);
    long v = c->value;
    pthread_mutex_unlock(&c->mu);
    return v;
}

/* Waits until the counter reaches `at_least`, at most `ms`; returns the value. */
static inline long t_counter_wait(t_counter *c, long at_least, long ms) {
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += ms / 1000;
    dl.tv_nsec += (ms % 1000) * 1000000L;
    if (dl.tv_nsec >= 1000000000L) {
        dl.tv_sec++;
        dl.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&c->mu);
    while (c->value < at_least) {
        if (pthread_cond_timedwait(&c->cv, &c->mu, &dl) != 0) break;
    }
    long v = c->value;
    pthread_mutex_unlock(&c->mu);
    return v;
}

/* True if a netchan_str equals a C string. */
static inline int t_str_eq(netchan_str s, const char *want) {
    size_t n = strlen(want);
    return s.len == n && (n == 0 || memcmp(s.data, want, n) == 0);
}

static inline int t_slice_eq(netchan_slice s, const void *want, size_t n) {
    return s.len == n && (n == 0 || memcmp(s.data, want, n) == 0);
}

/* A listening endpoint and a second one connected to it, over TCP on
 * 127.0.0.1 port 0. */
static inline void t_pair(netchan_endpoint **server, netchan_endpoint **client, char **server_name) {
    char *addr = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, server));
    CHECK_OK(netchan_endpoint_new(NULL, client));
    CHECK_OK(netchan_endpoint_listen(*server, "tcp://127.0.0.1:0", &addr));
    CHECK(addr != NULL && strncmp(addr, "tcp://127.0.0.1:", 16) == 0);
    CHECK_OK(netchan_endpoint_connect(*client, addr, server_name));
    netchan_string_free(addr);
}

#endif
