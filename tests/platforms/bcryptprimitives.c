/* A stand-in for Windows' bcryptprimitives.dll, for running Windows
 * programs under wine 8.0 (Debian 12's), which lacks it. Rust's standard
 * library (since 1.78) takes its random numbers from ProcessPrng there; this
 * gives them from RtlGenRandom (advapi32's SystemFunction036), which wine has.
 * Only tests/platforms/run.sh uses it, copied beside the programs it runs;
 * Windows itself has the real library. */
#include <windows.h>
#define SystemFunction036 NTAPI SystemFunction036
#include <ntsecapi.h>
#undef SystemFunction036

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG n = len > 0x10000000 ? 0x10000000 : (ULONG)len;
        if (!RtlGenRandom(data, n))
            return FALSE;
        data += n;
        len -= n;
    }
    return TRUE;
}
