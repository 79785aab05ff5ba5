#!/usr/bin/env bash
# Fuzzes the image decoders (JPEG, PNG, WebP, HEIC) with libFuzzer for a bounded time, seeded with the shared test photos.
#   scripts/fuzz.sh [seconds]   (default 60)
# The harness is compiled with FaceKit's sources into one module by swiftc directly: SwiftPM's
# executable targets bring their own entry point, which collides with libFuzzer's main().
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
seconds=${1:-60}
out=.build-fuzz
mkdir -p "$out"
if [ ! -x "$out/ImageDecoderFuzz" ] ||
  [ -n "$(find Sources/FaceKit Sources/CImageKernels Fuzz -newer "$out/ImageDecoderFuzz" -print -quit)" ]; then
  # FaceKit's C kernels (the letterbox's resampling), instrumented like the Swift code.
  clang -c -O2 -g -fsanitize=fuzzer-no-link,address -I Sources/CImageKernels/include \
    Sources/CImageKernels/fs_image_kernels.c -o "$out/fs_image_kernels.o"
  swiftc -module-name ImageDecoderFuzz -parse-as-library -sanitize=fuzzer,address -O -g \
    -I Sources/CImageCodecs -I Sources/CImageKernels/include $(find Sources/FaceKit -name '*.swift') \
    Fuzz/ImageDecoderFuzz.swift "$out/fs_image_kernels.o" -lturbojpeg -lpng16 -lwebp -lheif -o "$out/ImageDecoderFuzz"
fi
corpus=$(mktemp -d)
trap 'rm -rf "$corpus"' EXIT
# Small seeds only: big photos slow every mutation.
find "${FACESOCIAL_TESTDATA:-$root/../shared/testdata}" -type f -size -120k \( -name '*.jpg' -o -name '*.png' \) \
  -exec cp {} "$corpus/" \;
# HEIC seeds made from the small photos (heif-enc, Debian's libheif-examples), so the fuzzer starts
# inside the HEIF container instead of having to find an ftyp box by itself.
for seed in "$corpus"/*.jpg; do
  heif-enc -q 50 -o "${seed%.jpg}.heic" "$seed" > /dev/null 2>&1 || true
done
"$out/ImageDecoderFuzz" "$corpus" -max_total_time="$seconds" -max_len=200000 -rss_limit_mb=2048 -timeout=10 \
  -print_final_stats=1
