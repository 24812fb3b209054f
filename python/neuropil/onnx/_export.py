"""``export(model, example_input, path)``: a neuropil model as an ONNX file."""
from __future__ import annotations

import numbers
import os

import numpy as np
import onnx
from onnx import helper

from .. import nn
from ..io import _atomic_write
from ._graph import ExportContext, Value, onnx_type
from ._registry import ExportError

__all__ = ["export", "OPSET", "IR_VERSION"]

OPSET = 17        # the default ONNX operator set ("ai.onnx" domain) of exported files
IR_VERSION = 8    # the file format version that goes with opset 17 (onnx 1.12)


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("neuropil")
    except Exception:  # not installed as a distribution (a source checkout)
        return "unknown"


def _example(example_input) -> np.ndarray:
    if example_input is None:
        raise TypeError("neuropil.onnx.export: example_input must be an array, got None")
    x = np.asarray(example_input)
    if x.dtype == np.bool_ or not (x.dtype.kind in "fiu"):
        raise TypeError(f"neuropil.onnx.export: example_input must hold numbers, "
                        f"got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"neuropil.onnx.export: example_input must be a batch (N, ...) with "
                         f"N >= 1, got shape {x.shape}")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise ValueError("neuropil.onnx.export: example_input contains NaN or inf")
        return np.ascontiguousarray(x, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.int64)  # indices (an Embedding first)


def _dynamic_axes(dynamic_axes, ndim: int) -> dict:
    if dynamic_axes is None:
        dynamic_axes = {0: "batch"}
    elif isinstance(dynamic_axes, (list, tuple)):
        dynamic_axes = {a: ("batch" if a == 0 else f"dim{a}") for a in dynamic_axes}
    if not isinstance(dynamic_axes, dict):
        raise TypeError(f"neuropil.onnx.export: dynamic_axes must be a dict {{axis: name}}, a "
                        f"list of axes or None, got {type(dynamic_axes).__name__}")
    out = {}
    for axis, name in dynamic_axes.items():
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) \
                or not -ndim <= axis < ndim:
            raise ValueError(f"neuropil.onnx.export: dynamic axis {axis!r} is not an axis of "
                             f"the {ndim}-D example input")
        if not isinstance(name, str) or not name:
            raise TypeError(f"neuropil.onnx.export: the name of dynamic axis {axis} must be a "
                            f"non-empty str, got {name!r}")
        out[int(axis) % ndim] = name
    return out


def _check_model_dtype(model) -> None:
    bad = [k for k, p in model.named_parameters() if p.data.dtype != np.float32]
    if bad:
        raise ExportError(f"neuropil.onnx.export: ONNX files are written in float32, but "
                          f"{bad[0]!r} is {model.state_dict()[bad[0]].dtype}; convert the "
                          f"model with model.float() first")


def export(model, example_input, path=None, *, input_name: str = "input",
           output_name: str = "output", dynamic_axes=None) -> onnx.ModelProto:
    """Write ``model`` as an ONNX file at ``path`` (opset 17) and return the ModelProto.

    ``example_input``: one batch as the model takes it (``(N, ...)`` floats, or integer
    indices for a model that starts with an Embedding); the exporter runs the model on it
    in eval mode to learn every tensor's shape. ``dynamic_axes``: the input axes whose size
    may change, ``{axis: name}`` (default ``{0: "batch"}``; ``{}`` fixes every size; a
    recurrent model may add ``{1: "time"}``). With ``path=None`` nothing is written.

    Initializers are named by the model's ``state_dict`` keys (``0.weight``, ...), in
    neuropil's (= PyTorch's) layouts, so :func:`load_weights` reads them back by name.
    Layers run in eval form (Dropout is the identity). The model must be float32. The
    file is checked with ``onnx.checker.check_model(full_check=True)`` before it is
    written (atomically: a temporary file renamed over ``path``).

    Raises ``ExportError`` (a ValueError) naming the layer that cannot be exported and why.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"neuropil.onnx.export: model must be a neuropil.nn.Module, "
                        f"got {type(model).__name__}")
    for label, name in (("input_name", input_name), ("output_name", output_name)):
        if not isinstance(name, str) or not name:
            raise TypeError(f"neuropil.onnx.export: {label} must be a non-empty str, "
                            f"got {name!r}")
    if input_name == output_name:
        raise ValueError("neuropil.onnx.export: input_name and output_name must differ")
    if path is not None:
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"neuropil.onnx.export: directory {directory!r} does not "
                                    f"exist")
    _check_model_dtype(model)
    x = _example(example_input)
    dynamic = _dynamic_axes(dynamic_axes, x.ndim)

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        ctx = ExportContext(model)
        ctx._names.update((input_name, output_name))
        out = ctx.convert(model, [Value(input_name, x)])
        out_dims = _output_dims(model, x, out.example.shape, dynamic, output_name)
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    ctx.nodes.append(helper.make_node("Identity", [out.name], [output_name], name=output_name))

    in_shape = [dynamic.get(a, int(s)) for a, s in enumerate(x.shape)]
    order = {k: i for i, k in enumerate(model.state_dict())}  # initializers in this order
    graph = helper.make_graph(
        ctx.nodes, type(model).__name__,
        [helper.make_tensor_value_info(input_name, onnx_type(x.dtype), in_shape)],
        [helper.make_tensor_value_info(output_name, onnx_type(out.example.dtype), out_dims)],
        initializer=sorted(ctx.initializers, key=lambda t: order.get(t.name, len(order))))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="neuropil", producer_version=_version(),
                              ir_version=IR_VERSION)
    proto.doc_string = repr(model)
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        _atomic_write(path, [proto.SerializeToString()])
    return proto


def _output_dims(model, x, out_shape, dynamic, output_name):
    """The output's dims: sizes, or names for the dims that follow a dynamic input axis.

    Found by running the model once more on the example grown by one along every dynamic
    axis: an output dim that changes takes the name of the input axis it equals in both
    runs (``batch``), or ``<output>_dim<i>`` when it is some other function of them."""
    if not dynamic:
        return [int(s) for s in out_shape]
    probe = x
    for axis in dynamic:
        probe = np.take(probe, np.r_[np.arange(probe.shape[axis]), 0], axis=axis)
    try:
        grown = np.asarray(model(probe)).shape
    except Exception:  # the model cannot take the grown input: name every dim
        grown = None
    dims = []
    for i, size in enumerate(out_shape):
        if grown is not None and len(grown) == len(out_shape) and grown[i] == size:
            dims.append(int(size))
            continue
        names = [dynamic[a] for a in dynamic if grown is not None and len(grown) ==
                 len(out_shape) and size == x.shape[a] and grown[i] == probe.shape[a]]
        dims.append(names[0] if len(names) == 1 else f"{output_name}_dim{i}")
    return dims
