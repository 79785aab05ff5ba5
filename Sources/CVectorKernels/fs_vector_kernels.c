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

// MARK: - 8-bit rows

#if defined(__x86_64__)
// VPDPBUSD multiplies 64 unsigned code bytes by 64 signed query bytes and adds each group of four
// products into one of 16 int32 lanes: no intermediate saturation, so the sum is exact. Four rows
// at a time keep four accumulators in flight; the tail of a row shorter than 64 bytes is a masked load.
__attribute__((target("avx512f,avx512bw,avx512vnni"))) static void dot_u8s8_avx512vnni(
    const uint8_t *codes, size_t rows, size_t dim, const int8_t *query, int32_t *out) {
    size_t full = dim / 64;
    __mmask64 tail = (dim % 64) ? (((__mmask64)1 << (dim % 64)) - 1) : 0;
    __m512i q[8];  // up to 512-d held in registers; longer rows reload the query
    size_t held = full < 8 ? full : 8;
    for (size_t i = 0; i < held; i++) q[i] = _mm512_loadu_si512(query + i * 64);
    __m512i qt = tail ? _mm512_maskz_loadu_epi8(tail, query + full * 64) : _mm512_setzero_si512();
    size_t r = 0;
    for (; r + 4 <= rows; r += 4) {
        const uint8_t *a = codes + r * dim;
        __m512i s0 = _mm512_setzero_si512(), s1 = s0, s2 = s0, s3 = s0;
        for (size_t i = 0; i < full; i++) {
            __m512i qi = i < 8 ? q[i] : _mm512_loadu_si512(query + i * 64);
            s0 = _mm512_dpbusd_epi32(s0, _mm512_loadu_si512(a + i * 64), qi);
            s1 = _mm512_dpbusd_epi32(s1, _mm512_loadu_si512(a + dim + i * 64), qi);
            s2 = _mm512_dpbusd_epi32(s2, _mm512_loadu_si512(a + 2 * dim + i * 64), qi);
            s3 = _mm512_dpbusd_epi32(s3, _mm512_loadu_si512(a + 3 * dim + i * 64), qi);
        }
        if (tail) {
            s0 = _mm512_dpbusd_epi32(s0, _mm512_maskz_loadu_epi8(tail, a + full * 64), qt);
            s1 = _mm512_dpbusd_epi32(s1, _mm512_maskz_loadu_epi8(tail, a + dim + full * 64), qt);
            s2 = _mm512_dpbusd_epi32(s2, _mm512_maskz_loadu_epi8(tail, a + 2 * dim + full * 64), qt);
            s3 = _mm512_dpbusd_epi32(s3, _mm512_maskz_loadu_epi8(tail, a + 3 * dim + full * 64), qt);
        }
        out[r] = _mm512_reduce_add_epi32(s0);
        out[r + 1] = _mm512_reduce_add_epi32(s1);
        out[r + 2] = _mm512_reduce_add_epi32(s2);
        out[r + 3] = _mm512_reduce_add_epi32(s3);
    }
    for (; r < rows; r++) {
        const uint8_t *a = codes + r * dim;
        __m512i s = _mm512_setzero_si512();
        for (size_t i = 0; i < full; i++)
            s = _mm512_dpbusd_epi32(s, _mm512_loadu_si512(a + i * 64), _mm512_loadu_si512(query + i * 64));
        if (tail) s = _mm512_dpbusd_epi32(s, _mm512_maskz_loadu_epi8(tail, a + full * 64), qt);
        out[r] = _mm512_reduce_add_epi32(s);
    }
}

// AVX2 has no exact u8 x s8 product-sum (VPMADDUBSW saturates at 16 bits), so both sides widen to
// 16 bits and VPMADDWD adds pairs into int32 lanes, 16 bytes per step.
__attribute__((target("avx2"))) static void dot_u8s8_avx2(
    const uint8_t *codes, size_t rows, size_t dim, const int8_t *query, int32_t *out) {
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *a = codes + r * dim;
        __m256i s = _mm256_setzero_si256();
        for (size_t i = 0; i < dim; i += 16) {
            __m256i x = _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)(a + i)));
            __m256i y = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(query + i)));
            s = _mm256_add_epi32(s, _mm256_madd_epi16(x, y));
        }
        __m128i h = _mm_add_epi32(_mm256_castsi256_si128(s), _mm256_extracti128_si256(s, 1));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0x4E));
        h = _mm_add_epi32(h, _mm_shuffle_epi32(h, 0xB1));
        out[r] = _mm_cvtsi128_si32(h);
    }
}

static int has_avx512vnni(void) {
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vnni");
}
#else
static int has_avx512vnni(void) { return 0; }
#endif

static void dot_u8s8_portable(const uint8_t *codes, size_t rows, size_t dim, const int8_t *query, int32_t *out) {
    for (size_t r = 0; r < rows; r++) {
        const uint8_t *a = codes + r * dim;
        int32_t sum = 0;
        for (size_t i = 0; i < dim; i++) sum += (int32_t)a[i] * (int32_t)query[i];
        out[r] = sum;
    }
}

void fs_dot_u8s8_rows(const uint8_t *codes, size_t rows, size_t dim, const int8_t *query, int32_t *out) {
#if defined(__x86_64__)
    if (has_avx512vnni()) {
        dot_u8s8_avx512vnni(codes, rows, dim, query, out);
        return;
    }
    if (__builtin_cpu_supports("avx2")) {
        dot_u8s8_avx2(codes, rows, dim, query, out);
        return;
    }
#endif
    dot_u8s8_portable(codes, rows, dim, query, out);
}

const char *fs_dot_u8s8_kernel(void) {
#if defined(__x86_64__)
    if (has_avx512vnni()) return "avx512vnni";
    if (__builtin_cpu_supports("avx2")) return "avx2";
#endif
    return "portable";
}

int fs_dot_u8s8_variant(const char *kernel, const uint8_t *codes, size_t rows, size_t dim, const int8_t *query,
                        int32_t *out) {
    if (strcmp(kernel, "portable") == 0) {
        dot_u8s8_portable(codes, rows, dim, query, out);
        return 0;
    }
#if defined(__x86_64__)
    if (strcmp(kernel, "avx512vnni") == 0 && has_avx512vnni()) {
        dot_u8s8_avx512vnni(codes, rows, dim, query, out);
        return 0;
    }
    if (strcmp(kernel, "avx2") == 0 && __builtin_cpu_supports("avx2")) {
        dot_u8s8_avx2(codes, rows, dim, query, out);
        return 0;
    }
#endif
    return -1;
}
