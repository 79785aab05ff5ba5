// glibc's allocator controls, which Swift's Glibc module does not export (<malloc.h>).
#ifndef FS_ALLOCATOR_H
#define FS_ALLOCATOR_H

#include <stddef.h>

/// malloc_trim(0): returns freed heap pages to the kernel; 1 when memory was released.
int fs_malloc_trim(void);

/// mallopt(M_ARENA_MAX, count): at most `count` malloc arenas; 1 on success.
int fs_limit_arenas(int count);

/// mallinfo2 in bytes: arena, in use, free, mmap'd, releasable (top pad). 0 on success.
int fs_mallinfo(size_t out[5]);

#endif
