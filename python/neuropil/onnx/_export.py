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

OPSET = 17        # the ONNX operator set ("ai.onnx" domain) of exported files
IR_VERSION = 8    # the file format version that goes with opset 17 (onnx 1.12)
_FN = "neuropil.onnx.export"


def _version() -> str:
    try:
        from importlib.metadata import version
        return version("neuropil")
    except Exception:  # not installed as a distribution (a source checkout)
        return "unknown"


def _example(x, label: str) -> np.ndarray:
    if x is None:
        raise TypeError(f"{_FN}: {label} must be an array, got None")
    x = np.asarray(x)
    if x.dtype == np.bool_ or x.dtype.kind not in "fiu":
        raise TypeError(f"{_FN}: {label} must hold numbers, got dtype {x.dtype}")
    if x.ndim == 0 or x.shape[0] == 0:
        raise ValueError(f"{_FN}: {label} must be a batch (N, ...) with N >= 1, got shape "
                         f"{x.shape}")
    if x.dtype.kind == "f":
        if not np.isfinite(x).all():
            raise ValueError(f"{_FN}: {label} contains NaN or inf")
        return np.ascontiguousarray(x, dtype=np.float32)
    return np.ascontiguousarray(x, dtype=np.int64)  # indices (an Embedding first)


def _examples(example_input) -> list:
    if isinstance(example_input, (tuple, list)):
        if not example_input:
            raise ValueError(f"{_FN}: example_input is an empty {type(example_input).__name__}")
        return [_example(x, f"example_input[{k}]") for k, x in enumerate(example_input)]
    return [_example(example_input, "example_input")]


def _names(given, n: int, default: str, label: str) -> list:
    if given is None:
        return [default] if n == 1 else [f"{default}{k}" for k in range(n)]
    names = [given] if isinstance(given, str) else list(given)
    if len(names) != n or not all(isinstance(s, str) and s for s in names):
        raise ValueError(f"{_FN}: {label} must give {n} non-empty name(s), got {given!r}")
    return names


def _dynamic_axes(dynamic_axes, ndim: int, label: str) -> dict:
    if dynamic_axes is None:
        dynamic_axes = {0: "batch"}
    elif isinstance(dynamic_axes, (list, tuple)):
        dynamic_axes = {a: ("batch" if a == 0 else f"dim{a}") for a in dynamic_axes}
    if not isinstance(dynamic_axes, dict):
        raise TypeError(f"{_FN}: dynamic_axes must be a dict {{axis: name}}, a list of axes or "
                        f"None, got {type(dynamic_axes).__name__}")
    out = {}
    for axis, name in dynamic_axes.items():
        if isinstance(axis, bool) or not isinstance(axis, numbers.Integral) \
                or not -ndim <= axis < ndim:
            raise ValueError(f"{_FN}: dynamic axis {axis!r} is not an axis of the {ndim}-D "
                             f"{label}")
        if not isinstance(name, str) or not name:
            raise TypeError(f"{_FN}: the name of dynamic axis {axis} must be a non-empty str, "
                            f"got {name!r}")
        out[int(axis) % ndim] = name
    return out


def _check_model_dtype(model) -> None:
    bad = [(k, p.data.dtype) for k, p in model.named_parameters() if p.data.dtype != np.float32]
    if bad:
        raise ExportError(f"{_FN}: ONNX files are written in float32, but {bad[0][0]!r} is "
                          f"{bad[0][1]}; convert the model with model.float() first")


def _flat_outputs(out) -> list:
    if isinstance(out, np.ndarray):
        return [out]
    flat: list = []
    for o in (out if isinstance(out, (tuple, list)) else ()):
        flat.extend(_flat_outputs(o))
    return flat


def export(model, example_input, path=None, *, input_name=None, output_name=None,
           dynamic_axes=None) -> onnx.ModelProto:
    """Write ``model`` as an ONNX file at ``path`` (opset 17) and return the ModelProto.

    ``example_input``: one batch as the model takes it (``(N, ...)`` floats, or integer
    indices for a Sequential that starts with an Embedding), or a tuple of them for a
    model with several inputs; the exporter runs the model on it in eval mode to learn
    every shape. ``Sequential`` models (nested too) and single layers are walked layer by
    layer; any other model is walked along its recorded forward (``nn.graph.trace``),
    merges, reshapes and several outputs included. ``dynamic_axes``: the input axes whose
    size may change, ``{axis: name}`` (default ``{0: "batch"}``; ``{}`` fixes every size; a
    recurrent model may add ``{1: "time"}``), or a list of such dicts, one per input.
    ``input_name``/``output_name``: a name or a list (default ``input``/``output``, or
    ``input0``, ``input1``... when there are several). With ``path=None`` nothing is written.

    Initializers are named by the model's ``state_dict`` keys (``0.weight``, ...), in
    neuropil's (= PyTorch's) layouts, so :func:`load_weights` reads them back by name.
    Layers run in eval form (Dropout is the identity). The model must be float32. The
    file is checked with ``onnx.checker.check_model(full_check=True)`` before it is
    written (atomically: a temporary file renamed over ``path``).

    Raises ``ExportError`` (a ValueError) naming the layer that cannot be exported and why.
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"{_FN}: model must be a neuropil.nn.Module, got {type(model).__name__}")
    if path is not None:
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        if not os.path.isdir(directory):
            raise FileNotFoundError(f"{_FN}: directory {directory!r} does not exist")
    _check_model_dtype(model)
    xs = _examples(example_input)
    in_names = _names(input_name, len(xs), "input", "input_name")
    per_input = dynamic_axes if isinstance(dynamic_axes, (list, tuple)) and dynamic_axes \
        and all(isinstance(d, dict) for d in dynamic_axes) else [dynamic_axes] * len(xs)
    if len(per_input) != len(xs):
        raise ValueError(f"{_FN}: dynamic_axes lists {len(per_input)} dicts for {len(xs)} "
                         f"inputs")
    dynamic = [_dynamic_axes(d, x.ndim, f"example input {k}")
               for k, (d, x) in enumerate(zip(per_input, xs))]

    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with nn.no_grad():  # replays record nothing (trace records what it needs itself)
            ctx = ExportContext(model)
            ctx._names.update(in_names)
            inputs = [Value(n, x) for n, x in zip(in_names, xs)]
            outs = ctx.convert_all(model, inputs) if not type(model)._leaf \
                else [ctx.convert(model, inputs)]
            own = _flat_outputs(model(*xs))
            _check_replay(model, outs, own)
            out_names = _names(output_name, len(outs), "output", "output_name")
            clash = set(out_names) & set(in_names)
            if clash:
                raise ValueError(f"{_FN}: {sorted(clash)[0]!r} names an input and an output")
            out_dims = _output_dims(model, xs, [o.example.shape for o in outs], dynamic,
                                    out_names)
    finally:
        for m, mode in modes:
            object.__setattr__(m, "training", mode)
    for value, name in zip(outs, out_names):
        ctx.nodes.append(helper.make_node("Identity", [value.name], [name], name=name))
    ctx.prune(out_names)

    order = {k: i for i, k in enumerate(model.state_dict())}  # initializers in this order
    graph = helper.make_graph(
        ctx.nodes, type(model).__name__,
        [helper.make_tensor_value_info(n, onnx_type(x.dtype),
                                       [d.get(a, int(s)) for a, s in enumerate(x.shape)])
         for n, x, d in zip(in_names, xs, dynamic)],
        [helper.make_tensor_value_info(n, onnx_type(v.example.dtype), dims)
         for n, v, dims in zip(out_names, outs, out_dims)],
        initializer=sorted(ctx.initializers, key=lambda t: order.get(t.name, len(order))))
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="neuropil", producer_version=_version(),
                              ir_version=IR_VERSION)
    proto.doc_string = repr(model)
    onnx.checker.check_model(proto, full_check=True)
    if path is not None:
        _atomic_write(path, [proto.SerializeToString()])
    return proto


def _check_replay(model, outs, own) -> None:
    """The walk recomputed every layer on its own; its outputs must be the model's (a layer
    given an argument the walk does not see, such as lengths=, would differ)."""
    if len(own) != len(outs):
        raise ExportError(f"{_FN}: {type(model).__name__} returns {len(own)} arrays, the "
                          f"export walk found {len(outs)} outputs")
    for k, (mine, theirs) in enumerate(zip(outs, own)):
        theirs = np.asarray(theirs)
        if mine.example.shape != theirs.shape or not np.allclose(
                mine.example, theirs, rtol=1e-5, atol=1e-6, equal_nan=True):
            raise ExportError(f"{_FN}: replaying {type(model).__name__}'s layers one by one "
                              f"does not reproduce its output {k}: some layer is called with "
                              f"an argument the export cannot see (lengths=, a keyword "
                              f"setting, or NumPy arithmetic between layers)")


def _output_dims(model, xs, out_shapes, dynamic, out_names) -> list:
    """Each output's dims: sizes, or names for the dims that follow a dynamic input axis.

    Found by running the model once more on the examples grown by one along every dynamic
    axis: an output dim that changes takes the name of the input axis it equals in both
    runs (``batch``), or ``<output>_dim<i>`` when it is some other function of them."""
    if not any(dynamic):
        return [[int(s) for s in shape] for shape in out_shapes]
    probes = []
    for x, dyn in zip(xs, dynamic):
        for axis in dyn:
            x = np.take(x, np.r_[np.arange(x.shape[axis]), 0], axis=axis)
        probes.append(x)
    try:
        grown = [np.asarray(o).shape for o in _flat_outputs(model(*probes))]
    except Exception:  # the model cannot take the grown input: name every dim
        grown = None
    if grown is not None and len(grown) != len(out_shapes):
        grown = None
    axes = [(x.shape[a], p.shape[a], name) for x, p, dyn in zip(xs, probes, dynamic)
            for a, name in dyn.items()]
    result = []
    for k, shape in enumerate(out_shapes):
        g = grown[k] if grown is not None and len(grown[k]) == len(shape) else None
        dims = []
        for i, size in enumerate(shape):
            if g is not None and g[i] == size:
                dims.append(int(size))
                continue
            names = {name for before, after, name in axes
                     if g is not None and size == before and g[i] == after}
            dims.append(names.pop() if len(names) == 1 else f"{out_names[k]}_dim{i}")
        result.append(dims)
    return result
