"""Unpacks OpenVINO's C API headers and shared libraries from its PyPI wheel.

Usage: unpack_openvino.py WHEEL DEST -> DEST/include/openvino/..., DEST/lib/*.so*
Only the runtime is taken; the Python bindings are left in the wheel.
"""

import os
import sys
import zipfile

wheel, dest = sys.argv[1], sys.argv[2]
lib_dir = os.path.join(dest, "lib")
os.makedirs(lib_dir, exist_ok=True)
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if name.startswith("openvino/include/") and not name.endswith("/"):
            target = os.path.join(dest, name[len("openvino/"):])
        elif name.startswith("openvino/libs/") and ".so" in name:
            target = os.path.join(lib_dir, os.path.basename(name))
        else:
            continue
        os.makedirs(os.path.dirname(target), exist_ok=True)
        with archive.open(name) as src, open(target, "wb") as out:
            out.write(src.read())

# The wheel ships only versioned names (libopenvino_c.so.2641); the linker wants the plain one.
for name in os.listdir(lib_dir):
    base, sep, version = name.partition(".so.")
    if sep and version.isdigit():
        link = os.path.join(lib_dir, base + ".so")
        if not os.path.exists(link):
            os.symlink(name, link)
print(f"unpacked OpenVINO into {dest}")
