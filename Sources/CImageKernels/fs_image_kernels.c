#include "fs_image_kernels.h"

// The formula's multiplications and additions stay separate roundings (no fused multiply-add),
// so this kernel and FaceKit's scalar loop produce the same floats.
#pragma STDC FP_CONTRACT OFF

#if defined(__x86_64__)
#include <immintrin.h>

// Channel `shift` (0, 8, 16) of sixteen gathered little-endian RGBx words, as floats.
__attribute__((target("avx512f"))) static inline __m512 channel(__m512i words, int shift) {
    __m512i bytes = _mm512_and_si512(_mm512_srli_epi32(words, (unsigned)shift), _mm512_set1_epi32(0xFF));
    return _mm512_cvtepi32_ps(bytes);
}

__attribute__((target("avx512f"))) static size_t bilinear_row_avx512(
    const uint8_t *row0, const uint8_t *row1, const int32_t *x0, const int32_t *x1, const float *wx,
    size_t count, float wy, const float *mean, const float *scale, float *out[3]) {
    const __m512 vy = _mm512_set1_ps(wy);
    size_t i = 0;
    for (; i + 16 <= count; i += 16) {
        const __m512i left = _mm512_loadu_si512(x0 + i);
        const __m512i right = _mm512_loadu_si512(x1 + i);
        const __m512 w = _mm512_loadu_ps(wx + i);
        const __m512i a = _mm512_i32gather_epi32(left, row0, 1);
        const __m512i b = _mm512_i32gather_epi32(right, row0, 1);
        const __m512i c = _mm512_i32gather_epi32(left, row1, 1);
        const __m512i d = _mm512_i32gather_epi32(right, row1, 1);
        for (int k = 0; k < 3; k++) {
            const __m512 pa = channel(a, 8 * k), pb = channel(b, 8 * k);
            const __m512 pc = channel(c, 8 * k), pd = channel(d, 8 * k);
            const __m512 top = _mm512_add_ps(pa, _mm512_mul_ps(_mm512_sub_ps(pb, pa), w));
            const __m512 bottom = _mm512_add_ps(pc, _mm512_mul_ps(_mm512_sub_ps(pd, pc), w));
            const __m512 blended = _mm512_add_ps(top, _mm512_mul_ps(_mm512_sub_ps(bottom, top), vy));
            const __m512 value =
                _mm512_mul_ps(_mm512_sub_ps(blended, _mm512_set1_ps(mean[k])), _mm512_set1_ps(scale[k]));
            _mm512_storeu_ps(out[k] + i, value);
        }
    }
    return i;
}

static int has_avx512(void) { return __builtin_cpu_supports("avx512f"); }
#endif

size_t fs_bilinear_rgb_row(const uint8_t *row0, const uint8_t *row1, const int32_t *x0, const int32_t *x1,
                           const float *wx, size_t count, float wy, const float *mean, const float *scale,
                           float *out[3]) {
#if defined(__x86_64__)
    if (has_avx512()) return bilinear_row_avx512(row0, row1, x0, x1, wx, count, wy, mean, scale, out);
#endif
    return 0;
}
