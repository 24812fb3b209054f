"""Containers: ``Sequential`` (a stack, itself a model), ``ModuleList`` and ``ModuleDict``
(registries of children for models that call them in their own ``forward``).

None defines ``backward``: a ``Sequential``'s is derived from its recorded forward like any
other model's (``neuropil.nn.graph``), and lists and dicts are never called themselves.
Children are named as in PyTorch (``"0"``, ``"1"``, ... or the dict's keys), so
``state_dict`` keys match (``blocks.0.weight``).
"""
from __future__ import annotations

from .module import Module

__all__ = ["Sequential", "ModuleList", "ModuleDict"]


def _check_module(value, where: str) -> Module:
    if not isinstance(value, Module):
        raise TypeError(f"{where} must be a Module, got {type(value).__name__}")
    return value


class Sequential(Module):
    """Modules applied in order; children are named ``"0"``, ``"1"``, ... as in PyTorch."""

    def __init__(self, *modules: Module):
        super().__init__()
        for i, m in enumerate(modules):
            self.add_module(str(i), _check_module(m, f"Sequential: argument {i}"))

    def append(self, module: Module) -> "Sequential":
        self.add_module(str(len(self._modules)), _check_module(module, "Sequential.append"))
        return self

    def __len__(self) -> int:
        return len(self._modules)

    def __getitem__(self, idx):
        layers = list(self._modules.values())
        if isinstance(idx, slice):
            return Sequential(*layers[idx])
        return layers[idx]

    def __iter__(self):
        return iter(self._modules.values())

    def forward(self, x):
        for m in self._modules.values():
            x = m(x)
        return x


class ModuleList(Module):
    """A list of modules registered as children ``"0"``, ``"1"``, ... (PyTorch's
    ``nn.ModuleList``): index, slice, iterate, ``append``, ``extend``, ``insert``."""

    def __init__(self, modules=()):
        super().__init__()
        self.extend(modules)

    def _reindex(self, items) -> None:
        for name in list(self._modules):
            self.__delattr__(name)
        for i, m in enumerate(items):
            self.add_module(str(i), m)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules.values()))

    def __getitem__(self, idx):
        items = list(self._modules.values())
        if isinstance(idx, slice):
            return ModuleList(items[idx])
        return items[idx]

    def __setitem__(self, idx, module) -> None:
        items = list(self._modules.values())
        items[idx] = _check_module(module, "ModuleList: item")
        self._reindex(items)

    def __delitem__(self, idx) -> None:
        items = list(self._modules.values())
        del items[idx]
        self._reindex(items)

    def append(self, module) -> "ModuleList":
        self.add_module(str(len(self._modules)), _check_module(module, "ModuleList.append"))
        return self

    def extend(self, modules) -> "ModuleList":
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module) -> None:
        items = list(self._modules.values())
        items.insert(index, _check_module(module, "ModuleList.insert"))
        self._reindex(items)

    def __iadd__(self, modules) -> "ModuleList":
        return self.extend(modules)


class ModuleDict(Module):
    """An ordered dict of modules registered under their keys (PyTorch's ``nn.ModuleDict``)."""

    def __init__(self, modules=None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    @staticmethod
    def _key(key) -> str:
        if not isinstance(key, str) or not key or "." in key:
            raise KeyError(f"ModuleDict: keys must be non-empty strings without '.', got {key!r}")
        return key

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module) -> None:
        self.add_module(self._key(key), _check_module(module, f"ModuleDict[{key!r}]"))

    def __delitem__(self, key: str) -> None:
        if key not in self._modules:
            raise KeyError(key)
        self.__delattr__(key)

    def __contains__(self, key) -> bool:
        return key in self._modules

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self):
        return iter(list(self._modules))

    def keys(self):
        return list(self._modules.keys())

    def values(self):
        return list(self._modules.values())

    def items(self):
        return list(self._modules.items())

    def pop(self, key: str) -> Module:
        m = self._modules[key]
        self.__delattr__(key)
        return m

    def update(self, modules) -> None:
        for key, m in (modules.items() if hasattr(modules, "items") else modules):
            self[key] = m
