#include <stdio.h>
#include <turbojpeg.h>
#include <png.h>
#include <webp/decode.h>
// The encoder lives in the same libwebp; the tests use it to build WebP fixtures at run time.
#include <webp/encode.h>
// HEIC/HEIF, with its HEVC decoder (Debian's libheif1 carries libde265).
#include <libheif/heif.h>
