/* Interop with the Rust side over a real socket: a C client requests from
 * `netchan serve --echo`, and a C publisher feeds `netchan sub`. The CLI
 * binary comes from $NETCHAN_CLI (default target/debug/netchan). Every
 * process started here is waited for; one left over after a failed check
 * is killed first. */
#include <spawn.h>
#include <sys/wait.h>

#include "testutil.h"

extern char **environ;

/* Starts the CLI with `argv`; its stdout and stderr come back as FILEs. */
static pid_t spawn_cli(char *const argv[], FILE **out, FILE **err) {
    int po[2], pe[2];
    if (pipe(po) != 0 || pipe(pe) != 0) return -1;
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, po[1], 1);
    posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
    posix_spawn_file_actions_addclose(&fa, po[0]);
    posix_spawn_file_actions_addclose(&fa, pe[0]);
    pid_t pid = -1;
    if (posix_spawn(&pid, argv[0], &fa, NULL, argv, environ) != 0) pid = -1;
    t_track_child(pid);
    posix_spawn_file_actions_destroy(&fa);
    close(po[1]);
    close(pe[1]);
    *out = fdopen(po[0], "r");
    *err = fdopen(pe[0], "r");
    return pid;
}

static int wait_exit(pid_t pid) {
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

static const char *cli;

/* Waits for a CLI process to exit 0; after a failed check (it may be
 * waiting for what never came) it is killed instead of left running. */
static void finish_cli(pid_t pid, int failures_before) {
    if (t_failures != failures_before) {
        kill(pid, SIGKILL);
        wait_exit(pid);
        return;
    }
    CHECK(wait_exit(pid) == 0);
}

static void test_c_requests_from_cli_server(void) {
    int before = t_failures;
    char *serve_argv[] = {(char *)cli, (char *)"serve", (char *)"demo/echo", (char *)"--listen",
                          (char *)"tcp://127.0.0.1:0", (char *)"--echo", (char *)"--count",
                          (char *)"2", NULL};
    FILE *out = NULL, *err = NULL;
    pid_t server = spawn_cli(serve_argv, &out, &err);
    CHECK(server > 0);
    if (server <= 0) return;
    char line[512] = "";
    char addr[256] = "";
    while (fgets(line, sizeof line, err) != NULL) {
        if (sscanf(line, "listening on %255s", addr) == 1) break;
    }
    CHECK(strncmp(addr, "tcp://", 6) == 0);
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    CHECK_OK(netchan_endpoint_connect(ep, addr, NULL));
    for (int i = 0; i < 2; i++) {
        netchan_bytes *reply = NULL;
        const char *msg = i == 0 ? "hello from C" : "";
        CHECK_OK(netchan_endpoint_request_blocking(ep, "demo/echo", (const uint8_t *)msg, strlen(msg),
                                                   5000, &reply));
        CHECK(t_slice_eq(netchan_bytes_data(reply), msg, strlen(msg)));
        netchan_bytes_free(reply);
    }
    /* --count 2: the server exits 0 after two requests. */
    finish_cli(server, before);
    fclose(out);
    fclose(err);
    netchan_endpoint_free(ep);
}

static void test_cli_subscribes_to_c_publisher(void) {
    int before = t_failures;
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(NULL, &ep));
    char *bound = NULL;
    CHECK_OK(netchan_endpoint_listen(ep, "tcp://127.0.0.1:0", &bound));
    char *sub_argv[] = {(char *)cli, (char *)"sub", (char *)"cli/**", (char *)"--connect", bound,
                        (char *)"--count", (char *)"3", NULL};
    FILE *out = NULL, *err = NULL;
    pid_t sub = spawn_cli(sub_argv, &out, &err);
    CHECK(sub > 0);
    if (sub <= 0) return;
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_subscribers(ep, "cli/c/temp", 10000, &found));
    CHECK(found);
    const char *payloads[3] = {"21.5", "hello world", "x"};
    for (int i = 0; i < 3; i++)
        CHECK_OK(netchan_endpoint_publish(ep, "cli/c/temp", (const uint8_t *)payloads[i],
                                          strlen(payloads[i])));
    char line[512] = "";
    for (int i = 0; i < 3; i++) {
        char want[128];
        snprintf(want, sizeof want, "cli/c/temp\t%s\n", payloads[i]);
        CHECK(fgets(line, sizeof line, out) != NULL && strcmp(line, want) == 0);
    }
    finish_cli(sub, before);
    fclose(out);
    fclose(err);
    netchan_string_free(bound);
    netchan_endpoint_free(ep);
}

int main(void) {
    t_watchdog(120);
    cli = getenv("NETCHAN_CLI");
    if (cli == NULL) cli = "target/debug/netchan";
    if (access(cli, X_OK) != 0) {
        fprintf(stderr, "the netchan CLI is not at %s (set NETCHAN_CLI)\n", cli);
        return 1;
    }
    T_RUN(test_c_requests_from_cli_server);
    T_RUN(test_cli_subscribes_to_c_publisher);
    return t_finish("test_int_cli");
}
