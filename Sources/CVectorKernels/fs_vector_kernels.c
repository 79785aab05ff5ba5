#include "fs_vector_kernels.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>

// Two accumulators per row hide the FMA latency; the horizontal sum happens once per row.
__attribute__((target("avx512f"))) static void dot_rows_avx512(
    const float *matrix, size_t rows, size_t dim, const float *query, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = matrix + r * dim;
        __m512 a = _mm512_setzero_ps();
        __m512 b = _mm512_setzero_ps();
        size_t i = 0;
        for (; i + 32 <= dim; i += 32) {
            a = _mm512_fmadd_ps(_mm512_loadu_ps(row + i), _mm512_loadu_ps(query + i), a);
            b = _mm512_fmadd_ps(_mm512_loadu_ps(row + i + 16), _mm512_loadu_ps(query + i + 16), b);
        }
        if (i < dim) a = _mm512_fmadd_ps(_mm512_loadu_ps(row + i), _mm512_loadu_ps(query + i), a);
        out[r] = _mm512_reduce_add_ps(_mm512_add_ps(a, b));
    }
}

__attribute__((target("avx2,fma"))) static void dot_rows_avx2(
    const float *matrix, size_t rows, size_t dim, const float *query, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = matrix + r * dim;
        __m256 a = _mm256_setzero_ps();
        __m256 b = _mm256_setzero_ps();
        for (size_t i = 0; i < dim; i += 16) {
            a = _mm256_fmadd_ps(_mm256_loadu_ps(row + i), _mm256_loadu_ps(query + i), a);
            b = _mm256_fmadd_ps(_mm256_loadu_ps(row + i + 8), _mm256_loadu_ps(query + i + 8), b);
        }
        __m256 s = _mm256_add_ps(a, b);
        __m128 h = _mm_add_ps(_mm256_castps256_ps128(s), _mm256_extractf128_ps(s, 1));
        h = _mm_add_ps(h, _mm_movehl_ps(h, h));
        h = _mm_add_ss(h, _mm_shuffle_ps(h, h, 1));
        out[r] = _mm_cvtss_f32(h);
    }
}

#endif

// Plain C: the compiler vectorises it for the baseline target (SSE2 on x86-64, NEON on arm64).
static void dot_rows_portable(const float *matrix, size_t rows, size_t dim, const float *query, float *out) {
    for (size_t r = 0; r < rows; r++) {
        const float *row = matrix + r * dim;
        float lanes[16] = {0};
        for (size_t i = 0; i < dim; i += 16)
            for (size_t j = 0; j < 16; j++) lanes[j] += row[i + j] * query[i + j];
        float sum = 0;
        for (size_t j = 0; j < 16; j++) sum += lanes[j];
        out[r] = sum;
    }
}

#if defined(__x86_64__)
static int has_avx512(void) { return __builtin_cpu_supports("avx512f"); }
static int has_avx2(void) { return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"); }
#else
static int has_avx512(void) { return 0; }
static int has_avx2(void) { return 0; }
#endif

void fs_dot_rows(const float *matrix, size_t rows, size_t dim, const float *query, float *out) {
#if defined(__x86_64__)
    if (has_avx512()) {
        dot_rows_avx512(matrix, rows, dim, query, out);
        return;
    }
    if (has_avx2()) {
        dot_rows_avx2(matrix, rows, dim, query, out);
        return;
    }
#endif
    dot_rows_portable(matrix, rows, dim, query, out);
}

const char *fs_dot_rows_kernel(void) {
    if (has_avx512()) return "avx512f";
    if (has_avx2()) return "avx2+fma";
    return "portable";
}

int fs_dot_rows_variant(const char *kernel, const float *matrix, size_t rows, size_t dim, const float *query,
                        float *out) {
    if (strcmp(kernel, "portable") == 0) {
        dot_rows_portable(matrix, rows, dim, query, out);
        return 0;
    }
#if defined(__x86_64__)
    if (strcmp(kernel, "avx512f") == 0 && has_avx512()) {
        dot_rows_avx512(matrix, rows, dim, query, out);
        return 0;
    }
    if (strcmp(kernel, "avx2+fma") == 0 && has_avx2()) {
        dot_rows_avx2(matrix, rows, dim, query, out);
        return 0;
    }
#endif
    return -1;
}
