"""Derived backward: the forward of a model is recorded, and replayed in reverse.

A *leaf* is a module whose class defines ``backward`` (every layer). A *composite* is a
module whose class does not (``Sequential``, a user's model whose ``forward`` calls its
child modules with any Python in between). Calling a composite in a thread with no
recording active starts a :class:`Recording`; every leaf called while it is active
becomes a node whose inputs are looked up by identity among the model's inputs and the
outputs of earlier nodes. Composites called inside it are transparent: their leaves join
the same recording, so nesting (a GAN's ``D(G(z))``) costs nothing.

``model.backward(grad_out)`` walks the nodes in reverse, hands each leaf the gradient of
its outputs and routes the gradients it returns to the producers of its inputs, summing
(in C++) where one output fed several layers. What nobody needs is skipped: a node is
visited only if one of its inputs needs a gradient or it has trainable parameters, and
an input gradient is asked of a leaf only where something upstream uses it (a model's
first layer gets ``backward_params``).

What cannot be differentiated is noted when it is recorded and refused by ``backward``
(the forward itself, e.g. for inference, still runs), so no gradient is ever dropped
silently: an array that no layer produced and that is not an input of the model (NumPy
arithmetic between layers), a slice or transpose of a layer's output, a float keyword
argument of a leaf, a leaf that keeps one call's state (``_reentrant`` unset) called twice.
A C-contiguous reshape of an output (``h.reshape(len(h), -1)``) is differentiable and
recorded as such. Constants may be used freely when registered with ``register_buffer``
or marked with :func:`detach`.
"""
from __future__ import annotations

import threading
import weakref

import numpy as np

from .. import functional as F

__all__ = ["no_grad", "is_grad_enabled", "detach", "trace", "Trace", "TracedCall", "Recording"]

_local = threading.local()  # .rec: the active Recording (or None); .off: no_grad depth


def active() -> "Recording | None":
    return getattr(_local, "rec", None)


def is_grad_enabled() -> bool:
    """False inside ``no_grad()``: composites then record nothing (inference)."""
    return not getattr(_local, "off", 0)


class no_grad:
    """Context manager (and decorator) for inference: models called inside record no
    graph, so nothing is kept for a backward (``evaluate`` and ``predict`` use it)."""

    def __enter__(self):
        _local.off = getattr(_local, "off", 0) + 1
        return self

    def __exit__(self, *exc):
        _local.off -= 1
        return False

    def __call__(self, fn):
        def wrapper(*args, **kwargs):
            with no_grad():
                return fn(*args, **kwargs)
        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper


def detach(array):
    """A view of ``array`` that the graph treats as a constant: no gradient flows back
    through it (PyTorch's ``tensor.detach()``). Use it for masks or targets computed with
    NumPy inside a model's forward. Outside a recording it returns ``array`` unchanged."""
    rec = active()
    if rec is None or not isinstance(array, np.ndarray):
        return array
    view = array.view()
    rec.producer[id(view)] = None
    rec.keep.append(view)
    return view


# -- arrays produced by modules called outside any recording ------------------------
# A model's input gradient is computed by default only when its input was produced by
# another module with something trainable upstream (PyTorch's requires_grad, inferred):
# the GAN's D(G(z)) gets it, a batch of data does not.
_PRODUCED: dict = {}


def _forget(key, ref):
    if _PRODUCED.get(key) is ref:
        del _PRODUCED[key]


def mark_produced(arr) -> None:
    key = id(arr)
    ref = _PRODUCED.get(key)
    if ref is not None and ref() is arr:
        return
    _PRODUCED[key] = weakref.ref(arr, lambda r, key=key: _forget(key, r))


def unmark(arr) -> None:
    ref = _PRODUCED.get(id(arr))
    if ref is not None and ref() is arr:
        del _PRODUCED[id(arr)]


def is_produced(arr) -> bool:
    ref = _PRODUCED.get(id(arr))
    return ref is not None and ref() is arr


# Bumped whenever a parameter's requires_grad or a module's children change, so that
# trainable() can be cached per module (it is asked for every recorded call).
_VERSION = [0]


def bump_version() -> None:
    _VERSION[0] += 1


_HOOKS = [0]  # parameters' post-accumulate-grad hooks registered (0: skip the bookkeeping)


def hooks_changed(delta: int) -> None:
    _HOOKS[0] += delta


def _hook_schedule(nodes) -> dict:
    """node index -> parameters whose gradient is final once that node's backward ran:
    for each hooked parameter, the first call (in forward order) of any layer owning it."""
    first: dict = {}
    for i, node in enumerate(nodes):
        m = node.module
        if m is None:
            continue
        for p in m.parameters():
            if getattr(p, "_hooks", None) and id(p) not in first:
                first[id(p)] = (i, p)
    out: dict = {}
    for i, p in first.values():
        out.setdefault(i, []).append(p)
    return out


def trainable(module) -> bool:
    """Whether ``module`` has a parameter that requires a gradient."""
    d = module.__dict__
    cached = d.get("_trainable_cache")
    if cached is not None and cached[0] == _VERSION[0]:
        return cached[1]
    if not module._modules:
        value = any(p.requires_grad for p in module._parameters.values() if p is not None)
    else:
        value = any(p.requires_grad for p in module.parameters())
    d["_trainable_cache"] = (_VERSION[0], value)
    return value


def _flatten(obj, out: list) -> None:
    """The arrays of a (nested) tuple/list/dict output, in order."""
    if isinstance(obj, np.ndarray):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            _flatten(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _flatten(o, out)


_MISSING = object()


def _is_float(a) -> bool:
    return type(a) is np.ndarray and a.dtype.kind == "f"


class TracedCall:
    """One layer call of a traced forward: ``module`` (None for a recorded reshape), its
    dotted ``name`` in the model, and the names of its input and output values."""
    __slots__ = ("name", "module", "inputs", "outputs", "shapes", "reshape_to")

    def __init__(self, name, module, inputs, outputs, shapes, reshape_to):
        self.name, self.module, self.inputs, self.outputs = name, module, inputs, outputs
        self.shapes, self.reshape_to = shapes, reshape_to

    def __repr__(self) -> str:
        kind = type(self.module).__name__ if self.module is not None else "reshape"
        return f"TracedCall({self.name or kind!r}: {self.inputs} -> {self.outputs})"


class Trace:
    """The graph of one forward, for exporters and ``summary``: ``inputs`` and ``outputs``
    are value names (``"input0"``: the model's array inputs in order, integer ones
    included; ``"%3.0"``: output 0 of call 3; ``"const0"``: a buffer or detached array,
    kept in ``constants``), ``calls`` the layer calls in order (a name ``None`` marks a
    non-array argument), ``shapes`` maps each value name to its shape."""

    def __init__(self, inputs, outputs, calls, shapes, constants=None):
        self.inputs, self.outputs, self.calls, self.shapes = inputs, outputs, calls, shapes
        self.constants = constants or {}


def _value_name(ref):
    if ref is None:
        return None
    return f"input{ref[1]}" if ref[0] < 0 else f"%{ref[0]}.{ref[1]}"


def trace(model, *inputs, **kwargs) -> Trace:
    """Run ``model`` once on ``inputs`` (in eval mode, restored after) and return its
    :class:`Trace`. A single layer traces as one call. A forward that only reuses a layer
    keeping one call's state (fine for inference and export) traces; NumPy data flow
    between layers does not."""
    was_training = model.training
    model.eval()
    try:
        if type(model)._leaf:
            out = model(*inputs, **kwargs)
            outs: list = []
            _flatten(out, outs)
            names = [f"%0.{j}" for j in range(len(outs))]
            ins = [f"input{k}" for k in range(len(inputs))]
            shapes = {n: a.shape for n, a in zip(ins + names, list(inputs) + outs)}
            call = TracedCall("", model, ins, names, [a.shape for a in outs], None)
            return Trace(ins, names, [call], shapes)
        _local.tracing = True
        try:
            with _recording_enabled():
                model(*inputs, **kwargs)
        finally:
            _local.tracing = False
        rec = model.__dict__.get("_recording")
    finally:
        model.train(was_training)
    if rec.poison and not rec.reuse_only:
        raise ValueError(f"trace: {type(model).__name__}'s forward cannot be traced: "
                         f"{rec.poison[0]}")
    return _to_trace(rec)


def _to_trace(rec) -> Trace:
    names = rec._names()
    positions = {id(a): k for k, a in enumerate(rec.all_inputs)}
    constants: dict = {}
    shapes = {f"input{k}": a.shape for k, a in enumerate(rec.all_inputs)}

    def name(ref, raw):
        if ref is not None:
            return f"input{rec.float_pos[ref[1]]}" if ref[0] < 0 else f"%{ref[0]}.{ref[1]}"
        if not isinstance(raw, np.ndarray):
            return None
        if id(raw) in positions:
            return f"input{positions[id(raw)]}"
        key = f"const{len(constants)}"  # a buffer, or an array marked with detach()
        constants[key], shapes[key] = raw, raw.shape
        return key

    calls = []
    for i, node in enumerate(rec.nodes):
        outs = [f"%{i}.{j}" for j in range(len(node.outs))]
        for n, a in zip(outs, node.outs):
            shapes[n] = a.shape
        raw = node.raw if node.raw is not None else [None] * len(node.ins)
        ins = [name(r, a) for r, a in zip(node.ins, raw)]
        calls.append(TracedCall(names.get(id(node.module), "") if node.module is not None else "",
                                node.module, ins, outs, [a.shape for a in node.outs],
                                node.outs[0].shape if node.module is None else None))
    t = Trace([f"input{k}" for k in range(len(rec.all_inputs))],
              [name(r, None) for r in rec.out_refs], calls, shapes)
    t.constants = constants
    return t


class _recording_enabled:
    """Lift an enclosing no_grad() for one call (trace needs the recording)."""

    def __enter__(self):
        self.saved = getattr(_local, "off", 0)
        _local.off = 0

    def __exit__(self, *exc):
        _local.off = self.saved
        return False


class _Node:
    __slots__ = ("module", "ins", "outs", "snapshot", "reshape_of", "req", "mask", "simple",
                 "raw")

    def __init__(self, module, ins, outs, nodes, train):
        self.module = module      # the leaf (None for a recorded reshape)
        self.ins = ins            # per recorded input: a ref (node, index), or None
        self.outs = outs          # output arrays (kept alive: ids stay unique)
        self.snapshot = None      # the leaf's __dict__ after this call, if it is called again
        self.reshape_of = None    # for a reshape node: the source's shape
        self.raw = None           # when tracing: the input objects, aligned with ins
        # Whether the outputs need a gradient: req, when something trainable lies upstream
        # (as requires_grad was at the forward, as in PyTorch); else if one of the model
        # inputs in the bit mask is asked for.
        req, mask = train, 0
        for ref in ins:
            if ref is not None:
                if ref[0] < 0:
                    mask |= 1 << ref[1]
                else:
                    src = nodes[ref[0]]
                    mask |= src.mask
                    req = req or src.req
        self.req, self.mask = req, mask
        # one input, one output, the plain backward/backward_params protocol
        self.simple = (len(ins) == 1 and len(outs) == 1 and module is not None
                       and type(module)._graph_backward is None)


class Recording:
    """One forward of a composite model: its inputs, the leaf calls, its outputs."""

    def __init__(self, owner, args, kwargs):
        self.owner = owner
        self.nodes: list = []
        self.producer: dict = {}      # id(array) -> ref: (node index, output index)
        self.inputs: list = []        # the model's float array inputs, in order
        self.input_produced: list = []
        self.calls: dict = {}         # id(leaf) -> its node's index (a list once called again)
        self.poison: list = []        # why a backward through this recording is impossible
        self.reuse_only = True        # ...and whether only because a layer was reused
        self.keep: list = []          # detached views (kept alive: ids stay unique)
        self.out_refs: list = []
        self.out_arrays: list = []
        self.structure = None
        self.tracing = getattr(_local, "tracing", False)
        self.all_inputs: list = []    # every array input (integer ones too), in order
        self.float_pos: list = []     # float input j is all_inputs[float_pos[j]]
        flat: list = []
        _flatten(args, flat)
        _flatten(kwargs, flat)
        seen = set()
        for a in flat:
            if id(a) in seen:
                continue
            seen.add(id(a))
            if a.dtype.kind == "f":
                self.producer[id(a)] = (-1, len(self.inputs))
                self.inputs.append(a)
                self.float_pos.append(len(self.all_inputs))
                self.input_produced.append(is_produced(a))
            self.all_inputs.append(a)

    # -- forward ------------------------------------------------------------------
    def call_leaf(self, module, forward, args, kwargs):
        # (the hot path of every recorded layer call: kept lean on purpose)
        producer = self.producer
        if len(args) == 1 and not kwargs and type(args[0]) is np.ndarray:
            a = args[0]
            if a.dtype.kind == "f":
                ref = producer.get(id(a), _MISSING)
                ins = [ref if ref is not _MISSING else self._resolve(a, module, 0)]
            else:
                ins = [None]
        else:
            ins = self._ins(module, args, kwargs)
        nodes = self.nodes
        idx = len(nodes)
        key = id(module)
        previous = self.calls.get(key)
        if previous is not None:
            previous = self._called_again(module, previous)
        _local.rec = None  # a leaf's own forward is opaque: its inner calls are not recorded
        try:
            out = forward(module, *args, **kwargs)
        except (ValueError, TypeError) as err:
            raise _with_context(err, f"in {self._label(module)}, whose inputs are "
                                     f"{self._describe(args)}") from None
        finally:
            _local.rec = self
        cls = type(module)
        if type(out) is np.ndarray and cls._graph_outputs is None:
            outs = [out]
        else:
            outs = []
            _flatten(out, outs)
            if cls._graph_outputs is not None:
                outs.extend(cls._graph_outputs(module))
        node = _Node(module, ins, outs, nodes, trainable(module))
        if self.tracing:
            node.raw = _raw_inputs(module, args, kwargs)
        if previous is not None:
            previous.append(idx)
            node.snapshot = dict(module.__dict__)
        else:
            self.calls[key] = idx
        nodes.append(node)
        if len(outs) == 1:
            producer[id(outs[0])] = (idx, 0)
        else:
            for j, o in enumerate(outs):
                producer[id(o)] = (idx, j)
        return out

    def _called_again(self, module, previous) -> list:
        """A leaf's second (third...) call in this forward: the list of its node indices."""
        if not isinstance(previous, list):
            previous = [previous]
            self.calls[id(module)] = previous
        # Its own buffers for this call in any case, so that the earlier call's output
        # stays intact (the forward is right even where the backward is refused).
        self._prepare_reuse(module, previous)
        if not type(module)._reentrant and len(previous) == 1:
            self._poison(
                f"{self._label(module)} is called a second time in one forward of "
                f"{type(self.owner).__name__}, but {type(module).__name__} keeps the state "
                f"of one call only (it does not declare _reentrant = True), so the first "
                f"call's gradient cannot be computed: use a separate layer for each call",
                reuse=True)
        return previous

    def _ins(self, module, args, kwargs) -> list:
        """Refs of a leaf's float inputs: positional ones, then routed keyword ones."""
        ins = []
        for a in args:
            if _is_float(a):
                key = id(a)
                ref = self.producer[key] if key in self.producer else \
                    self._resolve(a, module, len(ins))
                ins.append(ref)
            else:
                if isinstance(a, (list, tuple)) and any(_is_float(e) for e in a):
                    self._poison(
                        f"{self._label(module)} got a list or tuple of float arrays as "
                        f"positional argument {len(ins)}: in a graph model pass arrays as "
                        f"separate arguments (e.g. concat(a, b)), so that their gradients can "
                        f"be routed")
                ins.append(None)
        if kwargs:
            routed = type(module)._graph_kwargs
            for key, value in kwargs.items():
                if key not in routed:
                    self._check_kwargs(module, key, value)
                    continue
                flat: list = []
                _flatten(value, flat)
                for a in flat:  # routed keyword inputs follow the positional ones
                    key_a = id(a)
                    ins.append(self.producer[key_a] if key_a in self.producer else
                               self._resolve(a, module, len(ins)))
        return ins

    def _poison(self, message: str, reuse: bool = False) -> None:
        self.poison.append(message)
        self.reuse_only = self.reuse_only and reuse

    def _prepare_reuse(self, module, previous):
        """A reentrant leaf called again: keep the state of its earlier calls (restored
        before each call's backward) and give this call its own scratch buffers (kept on
        the layer, so they are reused from step to step)."""
        for i in previous:
            if self.nodes[i].snapshot is None:  # only the first call lacks one
                self.nodes[i].snapshot = dict(module.__dict__)
        used = {id(self.nodes[i].snapshot.get("_scratch_arrays")) for i in previous}
        pool = module.__dict__.setdefault("_call_scratch", [])
        for d in pool:
            if id(d) not in used:
                break
        else:
            d = {}
            pool.append(d)
        module.__dict__["_scratch_arrays"] = d

    def _check_kwargs(self, module, key, value):
        flat: list = []
        _flatten(value, flat)
        if any(a.dtype.kind == "f" and self.producer.get(id(a), 0) is not None for a in flat):
            self._poison(
                f"{self._label(module)} got float array(s) as keyword argument {key!r}: "
                f"gradients are derived for positional inputs only, so the gradient for "
                f"{key!r} would be lost. Pass it positionally if the layer accepts that, "
                f"or mark it constant with neuropil.nn.detach()")

    def _resolve(self, a, consumer, position):
        """``a`` is not a recorded output or input: a reshape of one, a buffer, or an error."""
        for name, buf in self.owner.named_buffers():
            if buf is a:
                return None
        ptr, size = a.__array_interface__["data"][0], a.size
        for i in range(len(self.nodes) - 1, -2, -1):
            arrays = self.nodes[i].outs if i >= 0 else self.inputs
            for j, v in enumerate(arrays):
                if not np.may_share_memory(a, v):
                    continue
                if (v.__array_interface__["data"][0] == ptr and v.size == size
                        and a.flags.c_contiguous and v.flags.c_contiguous):
                    return self._add_reshape(a, (i, j), v.shape)
                self._poison(
                    f"{self._label(consumer)}: its input {position} (shape {a.shape}) is a "
                    f"view (a slice, transpose or broadcast) of {self._source((i, j))}, "
                    f"which cannot be differentiated; use a layer for it (nn.Flatten, "
                    f"nn.Concat, ...) or a contiguous reshape")
                return None
        self._poison(
            f"{self._label(consumer)}: its input {position} (shape {a.shape}, {a.dtype}) was "
            f"neither produced by a layer of {type(self.owner).__name__} nor passed to it as "
            f"an input. Arrays computed with NumPy between layers cannot be differentiated "
            f"(their gradient would be lost): use layers for that arithmetic (nn.Add, "
            f"nn.Concat, ...), and mark constants with neuropil.nn.detach() or "
            f"register_buffer")
        return None

    def _add_reshape(self, a, src_ref, src_shape):
        node = _Node(None, [src_ref], [a], self.nodes, False)
        node.reshape_of = src_shape
        idx = len(self.nodes)
        self.nodes.append(node)
        self.producer[id(a)] = (idx, 0)
        return (idx, 0)

    def needs_grad(self) -> bool:
        """Whether an output depends on something trainable (at the forward)."""
        return any(ref is not None and ref[0] >= 0 and self.nodes[ref[0]].req
                   for ref in self.out_refs)

    def finish(self, out):
        outs: list = []
        _flatten(out, outs)
        refs = []
        for k, o in enumerate(outs):
            if o.dtype.kind != "f":
                refs.append(None)
                continue
            key = id(o)
            ref = self.producer[key] if key in self.producer else self._resolve(o, None, k)
            refs.append(ref)
        self.out_refs = refs
        self.out_arrays = outs
        self.structure = out

    # -- names for messages -----------------------------------------------------------
    def _names(self) -> dict:
        return {id(m): name for name, m in self.owner.named_modules()}

    def _label(self, module) -> str:
        if module is None:
            return f"the output of {type(self.owner).__name__}"
        name = self._names().get(id(module))
        return f"layer {name!r} ({type(module).__name__})" if name else repr(module)

    def _source(self, ref) -> str:
        i, j = ref
        if i < 0:
            return f"input {j} of {type(self.owner).__name__}"
        node = self.nodes[i]
        if node.module is None:
            return f"a reshape of {self._source(node.ins[0])}"
        suffix = f" (output {j})" if len(node.outs) > 1 else ""
        return f"the output of {self._label(node.module)}{suffix}"

    def _describe(self, args) -> str:
        parts = []
        for a in args:
            if not isinstance(a, np.ndarray):
                continue
            ref = self.producer.get(id(a))
            src = self._source(ref) if ref is not None else "an array from outside"
            parts.append(f"{src} with shape {a.shape}")
        return "; ".join(parts) if parts else "(no arrays)"

    # -- backward -----------------------------------------------------------------------
    def backward(self, grad_out, input_grad):
        owner = type(self.owner).__name__
        if self.poison:
            raise ValueError(f"{owner}.backward: the last forward cannot be differentiated: "
                             f"{self.poison[0]}")
        grads: list = []
        if isinstance(grad_out, np.ndarray) or grad_out is None:
            grads = [grad_out]
        else:
            _flatten_grads(grad_out, grads)
        if len(grads) != len(self.out_refs):
            raise ValueError(f"{owner}.backward: grad_out must hold one gradient (or None) per "
                             f"output: {len(self.out_refs)} output(s), got {len(grads)}")
        n_in = len(self.inputs)
        want_in = self._wanted_inputs(input_grad, n_in, owner)
        wmask = 0
        for k, w in enumerate(want_in):
            if w:
                wmask |= 1 << k
        nodes = self.nodes
        fire = _hook_schedule(nodes) if _HOOKS[0] else None

        acc: dict = {}
        for k, (ref, g) in enumerate(zip(self.out_refs, grads)):
            if g is None or ref is None:
                continue
            o = self.out_arrays[k]
            if not isinstance(g, np.ndarray) or g.shape != o.shape or g.dtype != o.dtype:
                raise ValueError(
                    f"{owner}.backward: the gradient of output {k} must be a {o.dtype} array of "
                    f"shape {o.shape}, got "
                    f"{getattr(g, 'dtype', type(g).__name__)} {getattr(g, 'shape', '')}")
            self._accumulate(acc, ref, g)

        for i in range(len(nodes) - 1, -1, -1):
            if fire:
                self._fire(fire, i + 1)
            node = nodes[i]
            if not (node.req or node.mask & wmask):
                continue
            if node.simple:  # the common case, without the general machinery below
                g = acc.pop((i, 0), None)
                ref = node.ins[0]
                if g is None or ref is None:
                    continue
                if node.snapshot is not None:
                    node.module.__dict__.update(node.snapshot)
                if ref[0] < 0:
                    need = want_in[ref[1]]
                else:
                    src = nodes[ref[0]]
                    need = src.req or bool(src.mask & wmask)
                if need:
                    g = node.module.backward(g)
                    if g is not None:
                        self._accumulate(acc, ref, g)
                else:
                    node.module.backward_params(g)
                continue
            out_grads = [acc.pop((i, j), None) for j in range(len(node.outs))]
            if all(g is None for g in out_grads):
                continue
            need = []
            for ref in node.ins:
                if ref is None:
                    need.append(False)
                elif ref[0] < 0:
                    need.append(want_in[ref[1]])
                else:
                    src = nodes[ref[0]]
                    need.append(src.req or bool(src.mask & wmask))
            if node.module is None:  # a recorded reshape
                if need[0]:
                    self._accumulate(acc, node.ins[0], out_grads[0].reshape(node.reshape_of))
                continue
            if node.snapshot is not None:
                node.module.__dict__.update(node.snapshot)
            in_grads = _leaf_backward(node.module, out_grads, need)
            for ref, g, nd in zip(node.ins, in_grads, need):
                if nd and g is not None:
                    self._accumulate(acc, ref, g)

        if fire:
            self._fire(fire, 0)
        result = []
        for k in range(n_in):
            g = acc.get((-1, k)) if want_in[k] else None
            if want_in[k] and g is None and input_grad is True:
                raise ValueError(f"{owner}.backward: input {k} (shape {self.inputs[k].shape}) "
                                 f"was not used by any layer, so it has no gradient")
            result.append(g)
        if n_in == 1:
            return result[0]
        return tuple(result)

    @staticmethod
    def _fire(fire, i):
        """Run the hooks of the parameters made final by node ``i``'s backward."""
        for p in fire.pop(i, ()):
            if p.requires_grad:
                for hook in list(p._hooks):
                    hook(p)

    def _wanted_inputs(self, input_grad, n_in, owner):
        if input_grad is None:
            return list(self.input_produced)
        if isinstance(input_grad, bool):
            return [input_grad] * n_in
        flags = list(input_grad)
        if len(flags) != n_in or not all(isinstance(f, bool) for f in flags):
            raise ValueError(f"{owner}.backward: input_grad must be None, a bool or one bool "
                             f"per float input ({n_in}), got {input_grad!r}")
        return flags

    def _accumulate(self, acc, ref, g):
        prev = acc.get(ref)
        if prev is None:
            acc[ref] = g
            return
        if prev.shape != g.shape or prev.dtype != g.dtype:
            raise ValueError(f"gradients reaching {self._source(ref)} disagree: {prev.shape} "
                             f"{prev.dtype} and {g.shape} {g.dtype}")
        # The first gradient belongs to the layer that returned it: sum into our own buffer.
        buf = self.owner._scratch(f"_grad_sum_{ref[0]}_{ref[1]}", g.shape, g.dtype)
        if prev is buf:
            F.add(buf, g, out=buf)
        else:
            F.add(prev, g, out=buf)
        acc[ref] = buf


def _with_context(err, context: str):
    """The same exception with ``context`` appended to its message (or itself, unchanged,
    when its type takes other constructor arguments)."""
    try:
        new = type(err)(f"{err}\n  ({context})")
    except Exception:
        return err
    return new


def _raw_inputs(module, args, kwargs) -> list:
    """A leaf call's inputs in the order of its refs (positional, then routed keywords)."""
    raw = list(args)
    for key in type(module)._graph_kwargs:
        if key in kwargs:
            flat: list = []
            _flatten(kwargs[key], flat)
            raw.extend(flat)
    return raw


def _flatten_grads(obj, out: list) -> None:
    if obj is None or isinstance(obj, np.ndarray):
        out.append(obj)
    elif isinstance(obj, (tuple, list)):
        for o in obj:
            _flatten_grads(o, out)
    elif isinstance(obj, dict):
        for o in obj.values():
            _flatten_grads(o, out)
    else:
        out.append(obj)


def _leaf_backward(module, out_grads, need):
    """Run a leaf's backward for one recorded call; returns one gradient per input.

    A leaf with more to route than one output and positional inputs (a recurrent layer's
    state) declares ``_graph_kwargs`` (keyword inputs recorded after the positional ones),
    ``_graph_outputs(self)`` (arrays recorded after its returned ones) and implements
    ``_graph_backward(out_grads, need) -> one gradient per recorded input``."""
    custom = type(module)._graph_backward
    if custom is not None:
        return custom(module, out_grads, need)
    if len(out_grads) != 1:
        raise TypeError(f"{type(module).__name__} returned {len(out_grads)} arrays; a leaf with "
                        f"several outputs must define _graph_backward(out_grads, need)")
    g = out_grads[0]
    if len(need) == 1:
        if need[0]:
            return (module.backward(g),)
        module.backward_params(g)
        return (None,)
    if not any(need) and not trainable(module):
        return (None,) * len(need)
    res = module.backward(g)
    if not isinstance(res, (tuple, list)) or len(res) != len(need):
        raise TypeError(f"{type(module).__name__}.backward must return one gradient per input "
                        f"({len(need)}), got {type(res).__name__}")
    return tuple(res)
