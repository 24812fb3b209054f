"""Module and Parameter: the protocol every layer and model follows.

A Module maps NumPy arrays to NumPy arrays. A *layer* (a leaf) defines both halves:

* ``forward(x)`` (also ``module(x)``) computes the output and caches what
  ``backward`` needs;
* ``backward(grad_out)`` returns the gradient with respect to the input and
  *accumulates* (``+=``) the gradients of its parameters into ``p.grad``, skipping
  parameters whose ``requires_grad`` is False; ``backward_params(grad_out)`` may do the
  same without the input gradient;
* ``zero_grad()`` resets those gradients.

A *model* (a composite: ``Sequential``, or any subclass whose ``forward`` calls child
modules and does not define ``backward``) gets its backward derived: the forward is
recorded and ``backward(grad_out, input_grad=None)`` replays it in reverse (see
``neuropil.nn.graph``). Skips, merges, several inputs and outputs, and models nested in
models all work, and a layer used twice (if it declares ``_reentrant``) shares its weights
and sums its gradients. The gradient with respect to the model's input is computed only
when someone can use it: by default when the input was itself produced by a module with
something trainable upstream (``D(G(z))`` in a GAN), never for a batch of data; pass
``input_grad=True`` to force it.

Buffers: in training mode a layer reuses its output and input-gradient
arrays from call to call (``_scratch``), so a steady-state training step
allocates (and page-faults) almost nothing. The array returned by
``forward``/``backward`` in training mode is therefore owned by the layer and
valid until that layer's next call: copy it to keep it. In eval mode
``forward`` returns fresh arrays.

Parameters are C-contiguous float arrays (float32 by default; ``.double()``
converts a whole model to float64, as gradient checks do). ``state_dict()``
keys follow PyTorch (``0.weight``, ``weight_ih_l0``...), so weights move
between the two without renaming.
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Iterator

import numpy as np

import functools

from ..io import load_module, save_module
from . import graph
from .graph import Recording, trainable as _trainable, _local as _graph_local

__all__ = ["Parameter", "Module"]

_FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))
_NO_SCRATCH: dict = {}


class Parameter:
    """A trainable array and its gradient (same shape and dtype).

    ``grad`` is allocated once and accumulated into by ``backward``; optimizers
    update ``data`` in place, so references held by layers stay valid.
    """

    __slots__ = ("data", "_grad", "_grad_zeroed", "_requires_grad", "_hooks")

    def __init__(self, data, requires_grad: bool = True, dtype=None):
        arr = np.array(data, dtype=dtype if dtype is not None else None, copy=True, order="C")
        if arr.dtype not in _FLOAT_DTYPES:
            if dtype is None and np.issubdtype(arr.dtype, np.number):
                arr = arr.astype(np.float32)
            else:
                raise TypeError(f"Parameter: data must be float32 or float64, got {arr.dtype}")
        self.data = arr
        self.grad = np.zeros_like(arr)
        self.requires_grad = bool(requires_grad)

    @property
    def requires_grad(self) -> bool:
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, value) -> None:
        self._requires_grad = bool(value)
        graph.bump_version()

    @property
    def shape(self):
        return self.data.shape

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def size(self):
        return self.data.size

    # zero_grad() only marks the gradient as zero; the array is filled on its next
    # read through ``.grad``. A kernel that would accumulate into it asks
    # ``_grad_for_write()`` instead and, told it is zero, overwrites it (beta = 0):
    # the fill pass and the kernel's read of the old gradient both disappear.
    @property
    def grad(self) -> np.ndarray:
        if self._grad_zeroed:
            self._grad.fill(0)
            self._grad_zeroed = False
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        self._grad = value
        self._grad_zeroed = False

    def zero_grad(self) -> None:
        self._grad_zeroed = True

    def register_post_accumulate_grad_hook(self, hook) -> "_HookHandle":
        """Call ``hook(param)`` once per model backward, as soon as this parameter's
        gradient is final (its last layer call has run its backward), while the rest of
        the backward goes on: what overlapping a gradient all-reduce needs (PyTorch's name).
        Fires inside a model's derived backward. Returns a handle with ``remove()``."""
        if not callable(hook):
            raise TypeError(f"register_post_accumulate_grad_hook: hook must be callable, "
                            f"got {type(hook).__name__}")
        hooks = getattr(self, "_hooks", None)
        if hooks is None:
            hooks = self._hooks = []
        hooks.append(hook)
        graph.hooks_changed(+1)
        return _HookHandle(self, hook)

    def _grad_for_write(self):
        """``(grad array, zeroed)``. With ``zeroed`` True the caller MUST overwrite every
        element (it is logically zero); either way the array is current afterwards."""
        zeroed = self._grad_zeroed
        self._grad_zeroed = False
        return self._grad, zeroed

    def requires_grad_(self, requires_grad: bool = True) -> "Parameter":
        """Freeze (False) or unfreeze this parameter: a frozen parameter gets no gradient
        from ``backward`` and optimizers leave it alone. Returns the parameter."""
        self.requires_grad = bool(requires_grad)
        return self

    def _set_dtype(self, dtype) -> None:
        dtype = np.dtype(dtype)
        if self.data.dtype != dtype:
            self.data = np.ascontiguousarray(self.data, dtype=dtype)
            self.grad = np.ascontiguousarray(self.grad, dtype=dtype)

    def __repr__(self) -> str:
        return f"Parameter(shape={self.data.shape}, dtype={self.data.dtype})"


class _HookHandle:
    def __init__(self, param, hook):
        self.param, self.hook = param, hook

    def remove(self) -> None:
        hooks = getattr(self.param, "_hooks", None)
        if hooks and self.hook in hooks:
            hooks.remove(self.hook)
            graph.hooks_changed(-1)


def _recorded(forward):
    """Wrap a class's ``forward`` so that calls are recorded for the derived backward,
    whether made as ``module(x)`` or ``module.forward(x)``."""
    @functools.wraps(forward)
    def recorded_forward(self, *args, **kwargs):
        rec = getattr(graph._local, "rec", None)
        if type(self)._leaf:
            if rec is not None:
                return rec.call_leaf(self, forward, args, kwargs)
            out = forward(self, *args, **kwargs)
            _mark_outputs(self, args, out, _trainable(self))
            return out
        if rec is not None or not graph.is_grad_enabled():
            return forward(self, *args, **kwargs)
        d = self.__dict__
        d["_recording"] = None
        rec = Recording(self, args, kwargs)
        graph._local.rec = rec
        try:
            out = forward(self, *args, **kwargs)
        finally:
            graph._local.rec = None
        rec.finish(out)
        d["_recording"] = rec
        _mark_outputs(self, args, out, rec.needs_grad())
        return out

    recorded_forward._neuropil_recorded = True
    return recorded_forward


def _mark_outputs(module, args, out, trainable_upstream: bool) -> None:
    """Outputs of a module called outside any recording are 'produced' (so a model they
    feed computes its input gradient) when something trainable lies upstream."""
    if not graph.is_grad_enabled():
        return
    # (an output buffer is reused from call to call: mark or unmark it every time)
    mark = graph.mark_produced if (trainable_upstream or any(
        isinstance(a, np.ndarray) and graph.is_produced(a) for a in args)) else graph.unmark
    if isinstance(out, np.ndarray):
        mark(out)
    elif isinstance(out, (tuple, list)):
        for o in out:
            if isinstance(o, np.ndarray):
                mark(o)


class Module:
    """Base class of layers and models (see the module docstring for the protocol)."""

    _leaf = False        # set per class: True when the class defines its own backward
    _reentrant = False   # a leaf whose per-call state is all rebound by forward (or in
    #                      _scratch buffers) may be called several times in one forward
    _record = True       # False: calls are never recorded (losses)
    _raw_forward = None  # the class's own forward, unwrapped (what a recording calls)
    # A leaf with state to route in a graph (see nn.graph._leaf_backward); None: plain.
    _graph_kwargs: tuple = ()
    _graph_outputs = None
    _graph_backward = None

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls._leaf = cls.backward is not Module.backward
        fwd = cls.__dict__.get("forward")
        if fwd is not None and cls._record and not getattr(fwd, "_neuropil_recorded", False):
            cls._raw_forward = fwd
            cls.forward = _recorded(fwd)

    def __init__(self):
        object.__setattr__(self, "_parameters", OrderedDict())
        object.__setattr__(self, "_modules", OrderedDict())
        object.__setattr__(self, "_buffers", OrderedDict())
        object.__setattr__(self, "training", True)

    # -- registration -------------------------------------------------------
    def __setattr__(self, name, value):
        if "_parameters" not in self.__dict__:
            raise AttributeError(
                f"{type(self).__name__}.__init__ must call super().__init__() before "
                f"assigning attributes")
        params, modules, buffers = self._parameters, self._modules, self._buffers
        if isinstance(value, Module) and any(m is self for m in value.modules()):
            raise ValueError(f"{type(self).__name__}: assigning {name!r} would make the module "
                             f"contain itself (a cycle); a module can only hold modules "
                             f"outside its own ancestry")
        for d in (params, modules, buffers):
            d.pop(name, None)
        graph.bump_version()
        if isinstance(value, Parameter):
            params[name] = value
        elif isinstance(value, Module):
            modules[name] = value
        object.__setattr__(self, name, value)

    def __delattr__(self, name):
        for d in (self._parameters, self._modules, self._buffers):
            d.pop(name, None)
        graph.bump_version()
        object.__delattr__(self, name)

    def register_buffer(self, name: str, array: np.ndarray) -> None:
        """A non-trainable array saved in ``state_dict`` (e.g. running statistics)."""
        object.__setattr__(self, name, array)
        self._buffers[name] = name

    def add_module(self, name: str, module: "Module") -> None:
        if not isinstance(module, Module):
            raise TypeError(f"add_module: {name!r} must be a Module, got {type(module).__name__}")
        setattr(self, name, module)

    # -- computation --------------------------------------------------------
    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} does not implement forward()")

    def backward(self, grad_out, *, input_grad=None):
        """The derived backward of a model (layers define their own).

        ``grad_out``: the gradient of the last forward's output (for several outputs, a
        tuple/list in the same structure, None where an output gets no gradient).
        Accumulates every trainable parameter's gradient and returns the gradient of the
        input (a tuple for several float inputs), or None where it was not computed.
        ``input_grad``: None (default) computes an input's gradient only if that input was
        produced by a module with something trainable upstream (a GAN's ``D(G(z))``);
        True always; False never (what ``fit`` uses); or one bool per float input.
        """
        rec = self.__dict__.get("_recording")
        if rec is None:
            raise RuntimeError(f"{type(self).__name__}.backward called without a recorded "
                               f"forward (call the model first, outside no_grad())")
        return rec.backward(grad_out, input_grad)

    def backward_params(self, grad_out) -> None:
        """Accumulate parameter gradients only; the input gradient is not wanted.

        Training loops call this on the whole model: layers may then skip work
        whose only product is the gradient with respect to the model's input
        (``Linear`` skips one of its three GEMMs). A layer's default runs ``backward``.
        """
        if type(self)._leaf:
            self.backward(grad_out)
        else:
            self.backward(grad_out, input_grad=False)

    def requires_grad_(self, requires_grad: bool = True) -> "Module":
        """Freeze (False) or unfreeze every parameter of this module and its children: a
        frozen parameter gets no gradient and optimizers skip it (a GAN's D during the G
        step). Returns the module."""
        for p in self.parameters():
            p.requires_grad = bool(requires_grad)
        return self

    def __call__(self, *args, **kwargs):
        cls = type(self)
        if cls._leaf and cls._raw_forward is not None and "forward" not in self.__dict__:
            rec = getattr(_graph_local, "rec", None)
            if rec is not None:  # the hot path inside a model: one call less
                return rec.call_leaf(self, cls._raw_forward, args, kwargs)
        return self.forward(*args, **kwargs)

    def _scratch(self, name: str, shape, dtype) -> np.ndarray:
        """A C-contiguous array owned by this layer, reused while shape and dtype hold.

        In eval mode a fresh array is returned every call (callers may keep it).
        Contents are undefined: kernels write every element.
        """
        if self.training:  # hot path: the cached array still fits (no normalisation)
            arr = self.__dict__.get("_scratch_arrays", _NO_SCRATCH).get(name)
            if arr is not None and arr.shape == shape and arr.dtype == dtype:
                return arr
        shape = tuple(int(s) for s in shape)
        dtype = np.dtype(dtype)
        if not self.training:
            return np.empty(shape, dtype)
        cache = self.__dict__.setdefault("_scratch_arrays", {})
        arr = cache.get(name)
        if arr is None or arr.shape != shape or arr.dtype != dtype:
            arr = np.empty(shape, dtype)
            cache[name] = arr
        return arr

    # -- traversal ----------------------------------------------------------
    def named_children(self) -> Iterator[tuple[str, "Module"]]:
        yield from self._modules.items()

    def children(self) -> Iterator["Module"]:
        for _, m in self.named_children():
            yield m

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, "Module"]]:
        yield prefix, self
        for name, m in self._modules.items():
            yield from m.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator["Module"]:
        for _, m in self.named_modules():
            yield m

    def named_parameters(self, prefix: str = "") -> Iterator[tuple[str, Parameter]]:
        seen = set()
        for mod_name, mod in self.named_modules(prefix):
            for name, p in mod._parameters.items():
                if id(p) in seen:
                    continue
                seen.add(id(p))
                yield (f"{mod_name}.{name}" if mod_name else name), p

    def parameters(self) -> list[Parameter]:
        return [p for _, p in self.named_parameters()]

    def named_buffers(self) -> Iterator[tuple[str, np.ndarray]]:
        for mod_name, mod in self.named_modules():
            for name in mod._buffers:
                yield (f"{mod_name}.{name}" if mod_name else name), getattr(mod, name)

    # -- state ----------------------------------------------------------------
    def zero_grad(self) -> None:
        for p in self.parameters():
            p.zero_grad()

    def train(self, mode: bool = True) -> "Module":
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> "Module":
        return self.train(False)

    def to(self, dtype) -> "Module":
        """Convert every parameter and buffer to ``dtype`` (float32 or float64), in place."""
        dtype = np.dtype(dtype)
        if dtype not in _FLOAT_DTYPES:
            raise TypeError(f"to: dtype must be float32 or float64, got {dtype}")
        for p in self.parameters():
            p._set_dtype(dtype)
        for m in self.modules():
            for name in m._buffers:
                arr = getattr(m, name)
                if isinstance(arr, np.ndarray) and arr.dtype in _FLOAT_DTYPES:
                    object.__setattr__(m, name, np.ascontiguousarray(arr, dtype=dtype))
        return self

    def double(self) -> "Module":
        return self.to(np.float64)

    def float(self) -> "Module":
        return self.to(np.float32)

    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.parameters()))

    def state_dict(self) -> "OrderedDict[str, np.ndarray]":
        """Copies of every parameter and buffer, keyed as PyTorch would key them."""
        out = OrderedDict()
        for name, p in self.named_parameters():
            out[name] = p.data.copy()
        for name, b in self.named_buffers():
            out[name] = np.array(b, copy=True)
        return out

    def load_state_dict(self, state: dict, strict: bool = True) -> None:
        """Copy arrays from ``state`` into the parameters, in place.

        Validates everything before changing anything: unknown or missing
        names (with ``strict``), shapes, and non-float values raise ValueError
        listing every difference. Values are cast to each parameter's dtype.
        """
        params = dict(self.named_parameters())
        buffers = dict(self.named_buffers())
        targets = {**params, **buffers}
        problems = []
        missing = [k for k in targets if k not in state]
        unexpected = [k for k in state if k not in targets]
        if strict and missing:
            problems.append(f"missing keys: {missing}")
        if strict and unexpected:
            problems.append(f"unexpected keys: {unexpected}")
        staged = {}
        for name, value in state.items():
            if name not in targets:
                continue
            arr = np.asarray(value)
            target = params[name].data if name in params else targets[name]
            if arr.shape != target.shape:
                problems.append(f"{name}: expected shape {target.shape}, got {arr.shape}")
                continue
            if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)):
                problems.append(f"{name}: expected a numeric array, got dtype {arr.dtype}")
                continue
            staged[name] = arr
        if problems:
            raise ValueError(f"load_state_dict into {type(self).__name__}: " + "; ".join(problems))
        for name, arr in staged.items():
            if name in params:
                np.copyto(params[name].data, arr, casting="unsafe")
            else:
                np.copyto(targets[name], arr, casting="unsafe")

    # -- saving and training (implemented in neuropil.io / neuropil.training) --
    def save(self, path, metadata=None) -> None:
        """Write ``state_dict()`` to ``path`` (safetensors, atomic); see ``neuropil.io``."""
        save_module(self, path, metadata)

    def load(self, path, strict: bool = True) -> "Module":
        """Load weights from a safetensors file, checking names, shapes and dtypes first."""
        load_module(self, path, strict)
        return self

    # The loops live above nn, in neuropil.training, which registers them here when it is
    # imported (``import neuropil`` does): nn never imports upwards (DESIGN.md layering).
    def fit(self, x, y=None, **kwargs):
        """Keras-style training loop; returns a History. See ``neuropil.training.fit``."""
        return _loop("fit")(self, x, y, **kwargs)

    def evaluate(self, x, y=None, **kwargs) -> dict:
        """Loss and metrics over (x, y), batched, in eval mode. See ``neuropil.training.evaluate``."""
        return _loop("evaluate")(self, x, y, **kwargs)

    def predict(self, x, batch_size: int = 256, **kwargs):
        """Outputs for x, batched, in eval mode. See ``neuropil.training.predict``."""
        return _loop("predict")(self, x, batch_size=batch_size, **kwargs)

    # -- display ------------------------------------------------------------
    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        extra = self.extra_repr()
        if not self._modules:
            return f"{type(self).__name__}({extra})"
        lines = [f"{type(self).__name__}(" + (extra if extra else "")]
        for name, m in self._modules.items():
            body = repr(m).replace("\n", "\n  ")
            lines.append(f"  ({name}): {body}")
        lines.append(")")
        return "\n".join(lines)


_LOOPS: dict = {}


def register_loops(**loops) -> None:
    """Install the training loops behind ``Module.fit/evaluate/predict`` (called by
    ``neuropil.training`` on import)."""
    _LOOPS.update(loops)


def _loop(name: str):
    try:
        return _LOOPS[name]
    except KeyError:
        raise RuntimeError(f"Module.{name} needs neuropil.training: import neuropil (or "
                           f"neuropil.training) first") from None
