/* Loads a netchan_uniffi library the way the Kotlin bindings do, and makes
 * the checks they make on load: the uniffi contract version, and the
 * checksum of every exported function against the value the generated
 * Kotlin (netchan.kt) was made with. For the Windows and ARM libraries in
 * the jar, which no JVM runs here (tests/platforms/run.sh).
 *
 * Usage: uniffi_load LIBRARY CONTRACT_VERSION < "name value" lines
 * Exit 0 when every check holds; prints each failure.
 *
 * SPDX-License-Identifier: MIT OR Apache-2.0 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef _WIN32
#include <windows.h>
static void *open_lib(const char *path) { return (void *)LoadLibraryA(path); }
static void *symbol(void *lib, const char *name) {
    return (void *)GetProcAddress((HMODULE)lib, name);
}
#else
#include <dlfcn.h>
static void *open_lib(const char *path) { return dlopen(path, RTLD_NOW | RTLD_LOCAL); }
static void *symbol(void *lib, const char *name) { return dlsym(lib, name); }
#endif

typedef uint32_t (*contract_fn)(void);
typedef uint16_t (*checksum_fn)(void);

int main(int argc, char **argv) {
    if (argc != 3) {
        fprintf(stderr, "usage: %s LIBRARY CONTRACT_VERSION < checksums\n", argv[0]);
        return 2;
    }
    void *lib = open_lib(argv[1]);
    if (lib == NULL) {
        fprintf(stderr, "FAIL: cannot load %s\n", argv[1]);
        return 1;
    }
    contract_fn contract = (contract_fn)symbol(lib, "ffi_netchan_uniffi_uniffi_contract_version");
    if (contract == NULL) {
        fprintf(stderr, "FAIL: no ffi_netchan_uniffi_uniffi_contract_version in %s\n", argv[1]);
        return 1;
    }
    uint32_t want = (uint32_t)strtoul(argv[2], NULL, 10);
    int failures = 0;
    if (contract() != want) {
        fprintf(stderr, "FAIL: contract version %u, the bindings expect %u\n", contract(), want);
        failures++;
    }
    char name[256];
    unsigned value;
    int checked = 0;
    while (scanf("%255s %u", name, &value) == 2) {
        checksum_fn f = (checksum_fn)symbol(lib, name);
        if (f == NULL) {
            fprintf(stderr, "FAIL: %s is missing\n", name);
            failures++;
        } else if ((unsigned)f() != value) {
            fprintf(stderr, "FAIL: %s is %u, the bindings expect %u\n", name, (unsigned)f(), value);
            failures++;
        }
        checked++;
    }
    if (checked == 0) {
        fprintf(stderr, "FAIL: no checksums given\n");
        failures++;
    }
    printf("%s: contract version %u, %d checksums, %d failures\n", argv[1], contract(), checked, failures);
    return failures == 0 ? 0 : 1;
}
