// Dot-product kernels for the identify search, compiled for AVX-512 and AVX2 next to a portable
// fallback and chosen at run time from the CPU's features: Swift has no per-function target
// attributes, and building the whole binary for one CPU would break it on older ones.
#ifndef FS_VECTOR_KERNELS_H
#define FS_VECTOR_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// out[r] = dot(matrix[r * dim ..< (r + 1) * dim], query) for r in 0 ..< rows.
/// `dim` must be a multiple of 16; pointers need no particular alignment.
void fs_dot_rows(const float *matrix, size_t rows, size_t dim, const float *query, float *out);

/// Which kernel fs_dot_rows runs on this CPU: "avx512f", "avx2+fma" or "portable".
const char *fs_dot_rows_kernel(void);

/// Runs one named kernel ("avx512f", "avx2+fma" or "portable") so tests can check each against
/// the others; returns 0, or -1 when the name is unknown or this CPU lacks the kernel.
int fs_dot_rows_variant(const char *kernel, const float *matrix, size_t rows, size_t dim, const float *query,
                        float *out);

/// 8-bit rows for the large-gallery index: out[r] = sum over i of codes[r * dim + i] * query[i], with
/// the codes unsigned (a signed value plus 128) and the query signed, in exact 32-bit integers
/// (the caller subtracts 128 * sum(query)). `dim` must be a multiple of 16.
void fs_dot_u8s8_rows(const uint8_t *codes, size_t rows, size_t dim, const int8_t *query, int32_t *out);

/// Which kernel fs_dot_u8s8_rows runs on this CPU: "avx512vnni", "avx2" or "portable".
const char *fs_dot_u8s8_kernel(void);

/// Runs one named 8-bit kernel ("avx512vnni", "avx2" or "portable"); returns 0, or -1 when the name
/// is unknown or this CPU lacks it.
int fs_dot_u8s8_variant(const char *kernel, const uint8_t *codes, size_t rows, size_t dim, const int8_t *query,
                        int32_t *out);

#endif
