"""The exporter's working state: the ONNX graph being built and the walk over the model.

``ExportContext`` owns the nodes and initializers of one export. Converters (see
``_registry``) talk to it only through ``node``, ``param``, ``constant``, ``fresh`` and
``convert``; they never touch ``onnx`` protobufs themselves, so a converter is a few
lines of "which ONNX operators compute this layer". A model without a converter (any
composite but ``Sequential``) is walked along its recorded forward (``nn.graph.trace``),
each layer call converted in turn.

Tensors flowing through the walk are ``Value``s: the ONNX tensor name plus neuropil's
own output for the example input, computed as the walk goes (eval mode). Converters
read static facts (rank, trailing dimensions, dtype) from that example; they must never
bake in a dimension the caller declared dynamic (the batch), which tests catch by running
the exported model at another batch size.
"""
from __future__ import annotations

from typing import NamedTuple

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from ..nn.module import Parameter
from ._registry import ExportError, find_converter

__all__ = ["Value", "ExportContext"]

_ONNX_TYPES = {np.dtype(np.float32): TensorProto.FLOAT, np.dtype(np.float64): TensorProto.DOUBLE,
               np.dtype(np.int64): TensorProto.INT64, np.dtype(np.int32): TensorProto.INT32}


def onnx_type(dtype) -> int:
    try:
        return _ONNX_TYPES[np.dtype(dtype)]
    except KeyError:
        raise ExportError(f"neuropil.onnx: no ONNX tensor type for dtype {np.dtype(dtype)}") \
            from None


class Value(NamedTuple):
    """An ONNX tensor (``name``) and neuropil's value of it on the example input."""
    name: str
    example: np.ndarray


class ExportContext:
    """Nodes, initializers and names of one export of ``model`` (see the module docstring)."""

    def __init__(self, model):
        self.model = model
        self.nodes: list = []
        self.initializers: list = []
        self._names: set[str] = set()
        self._param_names: dict[int, str] = {}     # id(Parameter) -> state_dict key
        self._buffer_owner: dict[tuple[int, str], str] = {}  # (id(module), attr) -> key
        self._paths: dict[int, str] = {}           # id(module) -> its name in the model
        self._stack: list[str] = []                # paths of the modules being converted
        for path, module in model.named_modules():
            self._paths.setdefault(id(module), path)
        for key, p in model.named_parameters():
            self._param_names.setdefault(id(p), key)
        for path, module in model.named_modules():
            for attr in module._buffers:
                self._buffer_owner.setdefault((id(module), attr),
                                              f"{path}.{attr}" if path else attr)
        self._emitted: dict[str, str] = {}        # state_dict key -> initializer name

    # -- names ----------------------------------------------------------------------
    def fresh(self, hint: str) -> str:
        """A tensor name not used yet, built from the current layer's path and ``hint``."""
        prefix = self._stack[-1] if self._stack and self._stack[-1] else "model"
        base = f"{prefix}/{hint}"
        name, i = base, 1
        while name in self._names:
            name = f"{base}_{i}"
            i += 1
        self._names.add(name)
        return name

    def path(self, module) -> str:
        return self._paths.get(id(module), "?")

    def describe(self, module) -> str:
        path = self.path(module)
        where = f"layer {path!r}" if path else "the model"
        if module._modules:  # a model: its name, not its whole repr
            return f"{where} ({type(module).__name__})"
        return f"{where} ({type(module).__name__}: {module!r})".replace("\n", " ")

    def refuse(self, module, why: str) -> ExportError:
        """The error a converter raises for an option it cannot express."""
        return ExportError(f"neuropil.onnx.export: cannot export {self.describe(module)}: {why}")

    # -- graph contents ---------------------------------------------------------------
    def node(self, op: str, inputs, hint: str | None = None, outputs: int = 1, **attrs):
        """Append ONNX node ``op`` and return its output name (a tuple if ``outputs > 1``).
        ``inputs`` are tensor names ("" for an omitted optional input)."""
        outs = [self.fresh(hint or op.lower()) for _ in range(outputs)]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(helper.make_node(op, list(inputs), outs, name=outs[0], **attrs))
        return outs[0] if outputs == 1 else tuple(outs)

    def param(self, module, attr: str) -> str:
        """The initializer holding ``module.<attr>`` (a Parameter or a buffer), named by its
        ``state_dict`` key and written once even when the module is used twice."""
        value = getattr(module, attr)
        is_param = isinstance(value, Parameter)
        data = value.data if is_param else value
        key = self._param_names.get(id(value)) if is_param else None
        if key is None and not is_param:
            key = self._buffer_owner.get((id(module), attr))
        if key is None:
            raise self.refuse(module, f"{attr!r} is neither a parameter nor a buffer of the "
                                      f"exported model")
        if key not in self._emitted:
            arr = np.asarray(data)
            if arr.dtype.kind == "f":
                arr = arr.astype(np.float32, copy=False)
            if key in self._names:
                raise ExportError(f"neuropil.onnx.export: tensor name {key!r} is used twice")
            self._names.add(key)
            self.initializers.append(numpy_helper.from_array(np.ascontiguousarray(arr), key))
            self._emitted[key] = key
        return self._emitted[key]

    def constant(self, value, hint: str = "const", dtype=None) -> str:
        """A Constant node (not an initializer: initializers are exactly the model's
        ``state_dict`` entries, which is what ``load_weights`` reads back)."""
        arr = np.asarray(value, dtype=dtype)
        name = self.fresh(hint)
        self.nodes.append(helper.make_node("Constant", [], [name], name=name,
                                           value=numpy_helper.from_array(arr, name)))
        return name

    # -- the walk ---------------------------------------------------------------------
    def convert(self, module, inputs) -> Value:
        """Emit the nodes of ``module`` applied to ``inputs`` (Values); return its (first)
        output. Runs neuropil's forward on the examples first, so the converter sees the
        real output (and a layer that fails on the example fails here, with neuropil's
        own message)."""
        return self.convert_all(module, inputs)[0]

    def convert_all(self, module, inputs) -> list:
        """Every output of ``module`` on ``inputs``, as Values (a layer's converter, or the
        walk of a composite model's recorded forward)."""
        fn, run = find_converter(module)
        if fn is None:
            if not type(module)._leaf:
                return self._convert_traced(module, inputs)
            raise ExportError(
                f"neuropil.onnx.export: no ONNX converter for {self.describe(module)} "
                f"(register one with @neuropil.onnx.register({type(module).__name__}), "
                f"see help(neuropil.onnx))")
        examples = [v.example for v in inputs]
        if run is not None:
            outputs = [np.array(o, copy=True) for o in run(module, examples)]
            given = outputs
        else:
            out = module(*examples)
            if not isinstance(out, np.ndarray):
                raise self.refuse(module, f"its forward returned {type(out).__name__}, "
                                          f"not one array")
            outputs = [np.array(out, copy=True)]  # layers may reuse their buffers
            given = outputs[0]
        self._stack.append(self.path(module))
        try:
            names = fn(self, module, list(inputs), given)
        finally:
            self._stack.pop()
        names = (names,) if isinstance(names, str) else tuple(names)
        if not names or not all(isinstance(n, str) for n in names) \
                or len(names) > len(outputs):
            raise ExportError(f"neuropil.onnx: the converter for {type(module).__name__} "
                              f"returned {names!r}, not one tensor name per output "
                              f"({len(outputs)})")
        return [Value(n, o) for n, o in zip(names, outputs)]

    def _convert_traced(self, model, inputs) -> list:
        """A composite model: walk its recorded forward (``nn.graph.trace``), converting
        each layer call on the values it was recorded with."""
        from ..nn.graph import trace  # the engine's exporter interface
        examples = [v.example for v in inputs]
        try:
            t = trace(model, *examples)
        except ValueError as err:
            raise self.refuse(model, f"its forward cannot be traced: {err}") from None
        if len(t.inputs) != len(inputs):
            raise self.refuse(model, f"its trace has {len(t.inputs)} inputs, the export "
                                     f"{len(inputs)}")
        values = dict(zip(t.inputs, inputs))
        for key, arr in t.constants.items():  # buffers and detached arrays
            values[key] = Value(self.constant(arr, "const"), np.asarray(arr))
        for call in t.calls:
            if call.module is None:  # a recorded reshape of a layer's output
                src = values[call.inputs[0]]
                shape = _batch_safe_shape(src.example.shape, call.reshape_to)
                name = self.node("Reshape", [src.name, self.constant(shape, "shape",
                                                                      np.int64)], "reshape")
                values[call.outputs[0]] = Value(name, src.example.reshape(call.reshape_to))
                continue
            layer = call.module
            if any(n is None for n in call.inputs):
                k = call.inputs.index(None)
                raise self.refuse(layer, f"its input {k} is not an array the model's trace "
                                         f"names (a Python value computed in the forward)")
            outs = self.convert_all(layer, [values[n] for n in call.inputs])
            if len(outs) < len(call.outputs):
                raise self.refuse(layer, f"it recorded {len(call.outputs)} outputs but its "
                                         f"converter gives {len(outs)}")
            values.update(zip(call.outputs, outs))
        missing = [k for k, n in enumerate(t.outputs) if n is None]
        if missing:
            raise self.refuse(model, f"its output {missing[0]} is not computed by a layer")
        return [values[n] for n in t.outputs]

    def prune(self, outputs) -> None:
        """Drop the nodes no graph output depends on (a recurrent layer's state outputs in
        a Sequential, say)."""
        needed = set(outputs)
        kept = []
        for node in reversed(self.nodes):
            if any(o in needed for o in node.output):
                kept.append(node)
                needed.update(i for i in node.input if i)
        self.nodes = kept[::-1]


def _batch_safe_shape(src_shape, dst_shape) -> list:
    """A Reshape target that holds for any batch size: the leading dim copied (0) when the
    reshape keeps it, inferred (-1) when it folds more into it; the rest as recorded."""
    dst = [int(d) for d in dst_shape]
    if dst:
        dst[0] = 0 if src_shape and dst[0] == src_shape[0] else -1
    return dst
