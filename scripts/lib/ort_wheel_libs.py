#!/usr/bin/env python3
"""Unpacks ONNX Runtime's shared libraries from an onnxruntime or onnxruntime-gpu wheel.

  ort_wheel_libs.py WHEEL OUT_DIR

Writes every libonnxruntime*.so* of the wheel's onnxruntime/capi (the C API library and, in the
GPU build, the execution-provider plugins ORT loads from its own folder) into OUT_DIR, and prints
the requirements of the wheel's [cuda,cudnn] extras, one per line (none for the CPU build).
"""
import os
import re
import sys
import zipfile

wheel, out = sys.argv[1], sys.argv[2]
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        base = os.path.basename(name)
        if name.startswith("onnxruntime/capi/") and base.startswith("libonnxruntime") and ".so" in base:
            with z.open(name) as src, open(os.path.join(out, base), "wb") as dst:
                dst.write(src.read())
        if name.endswith(".dist-info/METADATA"):
            for line in z.read(name).decode().splitlines():
                m = re.match(r'Requires-Dist: (.+?);\s*extra == "(cuda|cudnn)"', line)
                if m:
                    print(m.group(1))
