"""The converter registry: one function per layer class.

A converter has the signature ``fn(ctx, layer, inputs, output) -> str``:

* ``ctx``: the :class:`~neuropil.onnx._graph.ExportContext` (``ctx.node(op, inputs,
  **attrs)`` appends a node and returns its output name, ``ctx.param(layer, "weight")``
  the initializer of a parameter or buffer, ``ctx.constant(array)`` a constant,
  ``ctx.convert(child, [value])`` converts a child module, ``ctx.refuse(layer, why)``
  builds the error for an option ONNX cannot express);
* ``inputs``: the layer's inputs as ``Value(name, example)`` pairs (one per argument of
  ``forward``; merge layers get several);
* ``output``: neuropil's own output of the layer on the example (read shapes from it).

It returns the name of the tensor holding the layer's output, or a tuple of names for a
layer with several outputs. Such a layer (a recurrent layer inside a graph model, whose
state is an input and an output) registers a ``run(layer, examples) -> [arrays]`` that
calls it on the inputs' examples and returns every output (``output`` is then that list).

Composite models need no converter: the exporter walks their recorded forward
(``neuropil.nn.graph.trace``) and converts each layer call.
"""
from __future__ import annotations

from typing import Callable

__all__ = ["ExportError", "register", "register_existing", "find_converter", "converter_for",
           "registered"]

_CONVERTERS: dict[type, Callable] = {}
_RUNNERS: dict[type, Callable] = {}


class ExportError(ValueError):
    """A model (or one of its layers) cannot be written as ONNX; the message names it."""


def register(*classes: type, run: Callable | None = None):
    """Decorator: ``@register(nn.Linear)`` makes the function the converter of those classes.

    A subclass uses its nearest registered base's converter only if it keeps that base's
    ``forward`` (a subclass computing something else must register its own). ``run``: see
    the module docstring (layers with several inputs or outputs to route)."""
    if not classes or not all(isinstance(c, type) for c in classes):
        raise TypeError(f"register: pass one or more layer classes, got {classes!r}")

    def decorate(fn: Callable) -> Callable:
        if not callable(fn):
            raise TypeError(f"register: {fn!r} is not callable")
        for cls in classes:
            _CONVERTERS[cls] = fn
            if run is not None:
                _RUNNERS[cls] = run
            else:
                _RUNNERS.pop(cls, None)
        return fn

    return decorate


def register_existing(*names: str, run: Callable | None = None):
    """``register`` for the classes among ``names`` (of ``neuropil.nn``) that this build has:
    converters written for layers still landing elsewhere stay inert until they arrive."""
    from .. import nn
    classes = tuple(getattr(nn, n) for n in names if isinstance(getattr(nn, n, None), type))

    def decorate(fn: Callable) -> Callable:
        return register(*classes, run=run)(fn) if classes else fn
    return decorate


def find_converter(layer):
    """``(converter, run)`` for ``layer`` (``run`` None for a plain ``layer(*inputs)``),
    or ``(None, None)``."""
    return _lookup(type(layer))


def converter_for(cls: type):
    """The converter for instances of ``cls``, or None."""
    return _lookup(cls)[0]


def _lookup(cls: type):
    for klass in cls.__mro__:
        fn = _CONVERTERS.get(klass)
        if fn is None:
            continue
        if klass is cls or getattr(cls, "forward", None) is getattr(klass, "forward", None):
            return fn, _RUNNERS.get(klass)
        break  # a subclass with its own forward: the base's converter would lie
    return None, None


def registered() -> list[type]:
    """The layer classes that have a converter, in registration order."""
    return list(_CONVERTERS)
