#include <stdio.h>
#include <turbojpeg.h>
#include <png.h>
#include <webp/decode.h>
// The encoder lives in the same libwebp; the tests use it to build WebP fixtures at run time.
#include <webp/encode.h>
