"""``load_weights(model, path)``: an ONNX file's initializers into a matching model."""
from __future__ import annotations

import os

import numpy as np
import onnx
from google.protobuf.message import DecodeError
from onnx import numpy_helper

from .. import nn

__all__ = ["load_weights"]


def _read(source):
    if isinstance(source, onnx.ModelProto):
        return source, "the given ModelProto"
    try:
        path = os.fspath(source)
    except TypeError:
        raise TypeError(f"neuropil.onnx.load_weights: path must be a str, os.PathLike or an "
                        f"onnx.ModelProto, got {type(source).__name__}") from None
    if not os.path.isfile(path):
        raise FileNotFoundError(f"neuropil.onnx.load_weights: no file {path!r}")
    try:
        return onnx.load(path), repr(path)
    except (DecodeError, ValueError, OSError) as err:
        raise ValueError(f"neuropil.onnx.load_weights: {path!r} is not a readable ONNX file "
                         f"({err})") from None


def load_weights(model, path, strict: bool = True):
    """Copy the initializers of the ONNX file at ``path`` into ``model``; return ``model``.

    Initializers are matched to the model's ``state_dict`` keys by name, in neuropil's
    (PyTorch's) layouts: files written by :func:`export`, or by any exporter that keeps
    those names and layouts, load into a model of the same architecture, which can then
    be fine-tuned. Everything is validated before anything changes: every parameter and
    every floating-point buffer (BatchNorm's running statistics) must be in the file with
    its shape; integer buffers (counters) are loaded when present. With ``strict`` an
    initializer the model has no place for is an error too. Raises ``ValueError`` listing
    every missing, unexpected and mis-shaped tensor.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"neuropil.onnx.load_weights: model must be a neuropil.nn.Module, "
                        f"got {type(model).__name__}")
    proto, where = _read(path)
    found = {}
    for init in proto.graph.initializer:
        found[init.name] = init
    targets = {k: (p.data, True) for k, p in model.named_parameters()}
    for k, b in model.named_buffers():
        b = np.asarray(b)
        targets[k] = (b, b.dtype.kind == "f")
    problems, staged = [], {}
    missing = [f"{k} {tuple(arr.shape)}" for k, (arr, required) in targets.items()
               if required and k not in found]
    if missing:
        problems.append(f"missing initializers: {', '.join(missing)}")
    unexpected = [k for k in found if k not in targets]
    if strict and unexpected:
        problems.append(f"initializers the model has no place for: {', '.join(unexpected)}")
    for key, (arr, _) in targets.items():
        if key not in found:
            continue
        value = numpy_helper.to_array(found[key])
        if value.shape != arr.shape:
            problems.append(f"{key}: the model has shape {tuple(arr.shape)}, the file "
                            f"{tuple(value.shape)}")
        elif value.dtype.kind not in "fiu":
            problems.append(f"{key}: expected numbers, the file holds {value.dtype}")
        else:
            staged[key] = value
    if problems:
        names = sorted(found)
        raise ValueError(f"neuropil.onnx.load_weights: {where} does not match the model "
                         f"{type(model).__name__}: " + "; ".join(problems) +
                         f" (the file's initializers: {', '.join(names) or 'none'})")
    model.load_state_dict(staged, strict=False)
    return model
