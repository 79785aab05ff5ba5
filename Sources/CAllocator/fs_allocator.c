#include "fs_allocator.h"

// __GLIBC__ comes from <features.h>; <stddef.h> (the compiler's) does not define it, and without
// this include both functions below silently did nothing.
#if defined(__linux__)
#include <features.h>
#endif

#if defined(__GLIBC__)
#include <malloc.h>
#endif

int fs_malloc_trim(void) {
#if defined(__GLIBC__)
    return malloc_trim(0);
#else
    return 0;
#endif
}

int fs_limit_arenas(int count) {
#if defined(__GLIBC__)
    return mallopt(M_ARENA_MAX, count);
#else
    (void)count;
    return 0;
#endif
}

int fs_mallinfo(size_t out[5]) {
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 33))
    struct mallinfo2 info = mallinfo2();
    out[0] = info.arena;
    out[1] = info.uordblks;
    out[2] = info.fordblks;
    out[3] = info.hblkhd;
    out[4] = info.keepcost;
    return 0;
#else
    (void)out;
    return -1;
#endif
}
