/* TLS from C (docs/SECURITY.md): settings by name with
 * netchan_options_set(), certificates made by `netchan cert` ($NETCHAN_CLI,
 * default target/debug/netchan), mutual TLS over tls://127.0.0.1, a
 * client without a certificate refused with CLIENT_CERT_REQUIRED, bad
 * settings named in the error, plaintext beyond this host refused
 * unless "insecure", and access rules, TLS settings and shared keys
 * (made by `netchan keygen`) replaced at run time. The certificate
 * directory is removed at the end. */
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "testutil.h"

extern char **environ;

static char dir[256];

static char *path_of(const char *file, char *buf, size_t n) {
    snprintf(buf, n, "%s/%s", dir, file);
    return buf;
}

/* Runs the CLI with `argv` (argv[0] its path) and waits: its exit status. */
static int run_cli(char *const argv[]) {
    pid_t pid = -1;
    if (posix_spawn(&pid, argv[0], NULL, NULL, argv, environ) != 0) return -1;
    t_track_child(pid);
    int st = 0;
    if (waitpid(pid, &st, 0) != pid) return -1;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Runs `netchan cert NAME --dir DIR`. */
static int make_cert(const char *cli, const char *name) {
    char *argv[] = {(char *)cli, (char *)"cert", (char *)name, (char *)"--dir", dir, NULL};
    return run_cli(argv);
}

/* The whole file as a NUL-terminated string (to pass PEM text). */
static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (f == NULL) return NULL;
    static char buf[16384];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Options with `name` and the settings in `kv` (name, value, ..., NULL). */
static netchan_options *options(const char *name, const char *const *kv) {
    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    CHECK_OK(netchan_options_set_name(o, name));
    for (; kv != NULL && kv[0] != NULL; kv += 2) CHECK_OK(netchan_options_set(o, kv[0], kv[1]));
    return o;
}

static netchan_endpoint *endpoint(const char *name, const char *const *kv) {
    netchan_options *o = options(name, kv);
    netchan_endpoint *ep = NULL;
    CHECK_OK(netchan_endpoint_new(o, &ep));
    netchan_options_free(o);
    return ep;
}

static void test_mutual_tls_carries_messages_and_refuses_a_client_without_a_certificate(void) {
    char cert[300], key[300], ca[300], ccert[300], ckey[300];
    path_of("server.pem", cert, sizeof cert);
    path_of("server-key.pem", key, sizeof key);
    path_of("ca.pem", ca, sizeof ca);
    path_of("client.pem", ccert, sizeof ccert);
    path_of("client-key.pem", ckey, sizeof ckey);
    /* The CA as PEM text, the rest as paths: both forms. */
    const char *ca_text = slurp(ca);
    CHECK(ca_text != NULL && strncmp(ca_text, "-----BEGIN", 10) == 0);
    const char *server_kv[] = {"tls.cert", cert, "tls.key", key, "tls.ca", ca_text,
                               "tls.client_auth", "required", NULL};
    netchan_endpoint *server = endpoint("server", server_kv);
    char *bound = NULL;
    CHECK_OK(netchan_endpoint_listen(server, "tls://127.0.0.1:0", &bound));
    CHECK(bound != NULL && strncmp(bound, "tls://127.0.0.1:", 16) == 0);
    netchan_subscription *sub = NULL;
    CHECK_OK(netchan_endpoint_subscribe(server, "c/**", NULL, &sub));

    const char *client_kv[] = {"tls.ca", ca, "tls.cert", ccert, "tls.key", ckey, NULL};
    netchan_endpoint *client = endpoint("client", client_kv);
    CHECK_OK(netchan_endpoint_connect(client, bound, NULL));
    CHECK_OK(netchan_endpoint_publish(client, "c/x", (const uint8_t *)"over tls", 8));
    netchan_message *m = NULL;
    CHECK_OK(netchan_subscription_recv(sub, 5000, &m));
    CHECK(m != NULL && t_slice_eq(netchan_message_payload(m), "over tls", 8));
    netchan_message_free(m);

    const char *anonymous_kv[] = {"tls.ca", ca, NULL};
    netchan_endpoint *anonymous = endpoint("tls-anonymous", anonymous_kv);
    CHECK_RC(netchan_endpoint_connect(anonymous, bound, NULL), NETCHAN_RESULT_CLIENT_CERT_REQUIRED);
    /* Without a CA it cannot check the server at all. */
    netchan_endpoint *plain = endpoint("tls-plain", NULL);
    CHECK_RC(netchan_endpoint_connect(plain, bound, NULL), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "tls.ca") != NULL);

    netchan_string_free(bound);
    netchan_subscription_free(sub);
    netchan_endpoint *all[] = {anonymous, plain, client, server};
    for (int i = 0; i < 4; i++) {
        CHECK_OK(netchan_endpoint_close(all[i]));
        netchan_endpoint_free(all[i]);
    }
}

static void test_bad_settings_are_named(void) {
    netchan_options *o = NULL;
    CHECK_OK(netchan_options_new(&o));
    CHECK_RC(netchan_options_set(o, "tls.client_auth", "sometimes"), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "tls.client_auth") != NULL);
    CHECK_RC(netchan_options_set(o, "no.such.setting", "1"), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK_RC(netchan_options_set(o, NULL, "1"), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_options_set(o, "insecure", NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_options_set(NULL, "insecure", "true"), NETCHAN_RESULT_NULL_ARGUMENT);
    /* Files are read when the endpoint is made. */
    CHECK_OK(netchan_options_set(o, "tls.cert", "/nonexistent/cert.pem"));
    CHECK_OK(netchan_options_set(o, "tls.key", "/nonexistent/key.pem"));
    netchan_endpoint *ep = NULL;
    CHECK_RC(netchan_endpoint_new(o, &ep), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "/nonexistent/cert.pem") != NULL);
    CHECK(ep == NULL);
    netchan_options_free(o);
}

static void test_plaintext_beyond_this_host_needs_insecure(void) {
    netchan_endpoint *ep = endpoint("plain", NULL);
    CHECK_RC(netchan_endpoint_listen(ep, "tcp://0.0.0.0:0", NULL), NETCHAN_RESULT_PLAINTEXT_REFUSED);
    CHECK(strstr(netchan_last_error(), "insecure") != NULL);
    CHECK_OK(netchan_endpoint_close(ep));
    netchan_endpoint_free(ep);
    const char *kv[] = {"insecure", "true", NULL};
    netchan_endpoint *open = endpoint("open", kv);
    CHECK_OK(netchan_endpoint_listen(open, "tcp://0.0.0.0:0", NULL));
    CHECK_OK(netchan_endpoint_close(open));
    netchan_endpoint_free(open);
}

static void echo(void *ctx, const netchan_request *q, netchan_reply *r) {
    (void)ctx;
    netchan_slice p = netchan_request_payload(q);
    CHECK_OK(netchan_reply_send(r, p.data, p.len));
    netchan_reply_free(r);
}

/* Access rules replaced at run time (docs/SECURITY.md, "Access rules"):
 * over loopback TCP without keys a peer is `anonymous`; a request outside
 * what the rules allow gets PERMISSION_DENIED and is counted; bad rules
 * are an error naming the line and leave the rules in use; NULL removes
 * them. */
static void test_access_rules_at_run_time(void) {
    netchan_endpoint *server = endpoint("acl-server", NULL);
    char *bound = NULL;
    CHECK_OK(netchan_endpoint_listen(server, "tcp://127.0.0.1:0", &bound));
    netchan_request_handler h = {NULL, echo, NULL};
    netchan_service *svc = NULL;
    CHECK_OK(netchan_endpoint_serve(server, "echo/*", h, &svc));
    netchan_endpoint *client = endpoint("acl-client", NULL);
    CHECK_OK(netchan_endpoint_connect(client, bound, NULL));
    bool found = false;
    CHECK_OK(netchan_endpoint_wait_for_servers(client, "echo/secret", 5000, &found));
    CHECK(found);

    CHECK_OK(netchan_endpoint_set_acl(server, "# who may do what\nallow anonymous request echo/public\n"));
    netchan_bytes *reply = NULL;
    CHECK_OK(netchan_endpoint_request_blocking(client, "echo/public", (const uint8_t *)"hi", 2, 5000, &reply));
    netchan_bytes_free(reply);
    reply = NULL;
    CHECK_RC(netchan_endpoint_request_blocking(client, "echo/secret", (const uint8_t *)"hi", 2, 5000, &reply),
             NETCHAN_RESULT_PERMISSION_DENIED);
    CHECK(reply == NULL);
    netchan_stats st;
    memset(&st, 0, sizeof st);
    CHECK_OK(netchan_endpoint_stats(server, &st, sizeof st));
    CHECK(st.denied == 1);
    CHECK(st.rate_limited == 0);

    CHECK_RC(netchan_endpoint_set_acl(server, "allow anonymous shout **"), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "line 1") != NULL);
    CHECK_RC(netchan_endpoint_request_blocking(client, "echo/secret", NULL, 0, 5000, &reply),
             NETCHAN_RESULT_PERMISSION_DENIED);
    CHECK_OK(netchan_endpoint_reload_keys(server));
    CHECK_OK(netchan_endpoint_set_acl(server, NULL));
    CHECK_OK(netchan_endpoint_request_blocking(client, "echo/secret", (const uint8_t *)"hi", 2, 5000, &reply));
    CHECK(reply != NULL);
    netchan_bytes_free(reply);
    CHECK_RC(netchan_endpoint_set_acl(NULL, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    CHECK_RC(netchan_endpoint_reload_keys(NULL), NETCHAN_RESULT_NULL_ARGUMENT);

    netchan_service_free(svc);
    netchan_string_free(bound);
    netchan_endpoint *all[] = {client, server};
    for (int i = 0; i < 2; i++) {
        CHECK_OK(netchan_endpoint_close(all[i]));
        netchan_endpoint_free(all[i]);
    }
}

/* Runs `netchan keygen ID --out DIR/FILE`. */
static int make_keys(const char *cli, const char *id, const char *file) {
    char out[300];
    path_of(file, out, sizeof out);
    char *argv[] = {(char *)cli, (char *)"keygen", (char *)id, (char *)"--out", out, NULL};
    return run_cli(argv);
}

static const char *cli_path(void) {
    const char *cli = getenv("NETCHAN_CLI");
    return cli != NULL ? cli : "target/debug/netchan";
}

/* An endpoint made without TLS gets it at run time, a bad replacement
 * leaves the settings in use, and NULL removes them. */
static void test_tls_settings_replaced_at_run_time(void) {
    char cert[300], key[300], ca[300];
    path_of("server.pem", cert, sizeof cert);
    path_of("server-key.pem", key, sizeof key);
    path_of("ca.pem", ca, sizeof ca);
    netchan_endpoint *server = endpoint("server", NULL); /* the name its certificate was issued */
    char *bound = NULL;
    CHECK(netchan_endpoint_listen(server, "tls://127.0.0.1:0", &bound) != NETCHAN_RESULT_OK);
    const char *tls_kv[] = {"tls.cert", cert, "tls.key", key, NULL};
    netchan_options *tls = options("unused-name", tls_kv);
    CHECK_OK(netchan_endpoint_set_tls(server, tls));
    netchan_options_free(tls);
    CHECK_OK(netchan_endpoint_listen(server, "tls://127.0.0.1:0", &bound));
    const char *client_kv[] = {"tls.ca", ca, NULL};
    netchan_endpoint *client = endpoint("rt-client", client_kv);
    CHECK_OK(netchan_endpoint_connect(client, bound, NULL));
    /* A certificate file that is not there: refused, named; TLS stays. */
    const char *bad_kv[] = {"tls.cert", "/nonexistent/cert.pem", "tls.key", key, NULL};
    netchan_options *bad = options("unused-name", bad_kv);
    CHECK_RC(netchan_endpoint_set_tls(server, bad), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "/nonexistent/cert.pem") != NULL);
    netchan_options_free(bad);
    netchan_endpoint *client2 = endpoint("rt-client2", client_kv);
    CHECK_OK(netchan_endpoint_connect(client2, bound, NULL));
    /* Removed: a new listener on tls:// is refused. */
    CHECK_OK(netchan_endpoint_set_tls(server, NULL));
    char *again = NULL;
    CHECK(netchan_endpoint_listen(server, "tls://127.0.0.1:0", &again) != NETCHAN_RESULT_OK);
    CHECK_RC(netchan_endpoint_set_tls(NULL, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_string_free(bound);
    netchan_endpoint *all[] = {client2, client, server};
    for (int i = 0; i < 3; i++) netchan_endpoint_free(all[i]);
}

/* Shared keys set at run time: a peer without them is refused, one with
 * them connects; removed, a keyless peer connects again. */
static void test_shared_keys_replaced_at_run_time(void) {
    char keys[300];
    path_of("rt.keys", keys, sizeof keys);
    CHECK(make_keys(cli_path(), "rt1", "rt.keys") == 0);
    netchan_endpoint *server = endpoint("psk-server", NULL);
    CHECK_OK(netchan_endpoint_set_shared_keys(server, keys));
    char *bound = NULL;
    CHECK_OK(netchan_endpoint_listen(server, "tcp://127.0.0.1:0", &bound));
    netchan_endpoint *plain = endpoint("psk-plain", NULL);
    CHECK(netchan_endpoint_connect(plain, bound, NULL) != NETCHAN_RESULT_OK);
    const char *keyed_kv[] = {"psk", keys, NULL};
    netchan_endpoint *keyed = endpoint("psk-keyed", keyed_kv);
    CHECK_OK(netchan_endpoint_connect(keyed, bound, NULL));
    CHECK_RC(netchan_endpoint_set_shared_keys(server, "/nonexistent/keys"), NETCHAN_RESULT_INVALID_ARGUMENT);
    CHECK(strstr(netchan_last_error(), "/nonexistent/keys") != NULL);
    CHECK_OK(netchan_endpoint_set_shared_keys(server, NULL));
    netchan_endpoint *plain2 = endpoint("psk-plain2", NULL);
    CHECK_OK(netchan_endpoint_connect(plain2, bound, NULL));
    CHECK_RC(netchan_endpoint_set_shared_keys(NULL, NULL), NETCHAN_RESULT_NULL_ARGUMENT);
    netchan_string_free(bound);
    netchan_endpoint *all[] = {plain2, keyed, plain, server};
    for (int i = 0; i < 4; i++) netchan_endpoint_free(all[i]);
    unlink(keys);
}

int main(void) {
    t_watchdog(60);
    const char *cli = getenv("NETCHAN_CLI");
    if (cli == NULL) cli = "target/debug/netchan";
    snprintf(dir, sizeof dir, "/tmp/netchan-c-tls-%d", (int)getpid());
    CHECK(make_cert(cli, "server") == 0);
    CHECK(make_cert(cli, "client") == 0);
    T_RUN(test_mutual_tls_carries_messages_and_refuses_a_client_without_a_certificate);
    T_RUN(test_bad_settings_are_named);
    T_RUN(test_plaintext_beyond_this_host_needs_insecure);
    T_RUN(test_access_rules_at_run_time);
    T_RUN(test_tls_settings_replaced_at_run_time);
    T_RUN(test_shared_keys_replaced_at_run_time);
    const char *files[] = {"ca.pem", "ca-key.pem", "server.pem", "server-key.pem", "client.pem",
                           "client-key.pem"};
    char p[300];
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) unlink(path_of(files[i], p, sizeof p));
    rmdir(dir);
    return t_failures == 0 ? 0 : 1;
}
