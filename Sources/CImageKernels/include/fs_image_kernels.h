// Image kernels for FaceKit that Swift cannot vectorise itself: the letterbox's bilinear
// resampling gathers four neighbours per output pixel, which AVX-512 does sixteen at a time. The
// kernel is compiled for AVX-512 and chosen at run time; without it FaceKit's Swift loop runs.
#ifndef FS_IMAGE_KERNELS_H
#define FS_IMAGE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

/// One output row of bilinear resampling from packed 8-bit RGB: for column i of the first `count`,
///   top    = p(row0, x0[i]) + (p(row0, x1[i]) − p(row0, x0[i])) · wx[i]
///   bottom = p(row1, x0[i]) + (p(row1, x1[i]) − p(row1, x0[i])) · wx[i]
///   value  = (top + (bottom − top) · wy − mean[c]) · scale[c]
/// per channel c (R, G, B written to out[0], out[1], out[2]), in exactly that order of float
/// operations, so the result equals the scalar formula's to the bit. x0 and x1 are byte offsets of
/// pixels in a row; every x1[i] + 3 must be a readable byte (the kernel loads 4 bytes per pixel).
/// Returns the number of columns written, a multiple of 16 (0 on a CPU without AVX-512): the caller
/// writes the rest.
size_t fs_bilinear_rgb_row(const uint8_t *row0, const uint8_t *row1, const int32_t *x0, const int32_t *x1,
                           const float *wx, size_t count, float wy, const float *mean, const float *scale,
                           float *out[3]);

#endif
