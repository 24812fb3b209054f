"""Gradient checking for users' own layers: float64 central differences.

    from neuropil.testing import gradcheck
    layer = MyLayer(...).double()
    gradcheck(layer, x)                      # random projection of the output
    gradcheck(model, x, loss=nn.MSELoss(), target=y)

``gradcheck`` compares the analytic gradients of a Module (``backward``: the input
gradient it returns and every parameter's ``.grad``) with central differences
``(L(v + eps) - L(v - eps)) / (2 eps)`` of a scalar ``L``. Without a loss,
``L = sum(forward(x) * R)`` with a seeded random ``R`` (so ``dL/dy = R``). It
raises ``GradcheckError`` naming the input or parameter, the worst index, both
values and the error; on success it returns a report of the worst errors.

Everything must be float64 (``module.double()``): float32 differences are too
noisy to check anything. Functions that are not differentiable everywhere (ReLU
at 0) must be checked at points at least ``eps`` away from their kinks. Layers
whose forward is random (Dropout in training mode) must be made deterministic
for the check (e.g. by fixing their seed).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["gradcheck", "gradcheck_loss", "GradcheckError", "GradcheckReport"]


class GradcheckError(AssertionError):
    """An analytic gradient disagrees with central differences."""


@dataclass
class GradcheckReport:
    """Worst relative error per checked array (``"input"`` or a parameter name)."""
    errors: dict = field(default_factory=dict)
    checked: dict = field(default_factory=dict)  # name -> number of elements checked

    def __str__(self) -> str:
        return "\n".join(f"{k}: worst error {v:.2e} over {self.checked[k]} element(s)"
                         for k, v in self.errors.items())


def _indices(size: int, max_checks: int | None, rng: np.random.Generator) -> np.ndarray:
    if max_checks is None or size <= max_checks:
        return np.arange(size)
    return np.sort(rng.choice(size, max_checks, replace=False))


def _central_differences(flat, idx, objective, eps):
    """(f(v + eps) - f(v - eps)) / (2 eps) for each index of ``flat`` (a view, restored after)."""
    numeric = np.empty(len(idx))
    for j, i in enumerate(idx):
        old = flat[i]
        flat[i] = old + eps
        plus = objective()
        flat[i] = old - eps
        minus = objective()
        flat[i] = old
        numeric[j] = (plus - minus) / (2 * eps)
    return numeric


def _compare(name, analytic, numeric, idx, shape, rtol, atol, report):
    err = np.abs(analytic - numeric) / np.maximum(
        np.maximum(np.abs(analytic), np.abs(numeric)), atol / rtol)
    report.checked[name] = len(idx)
    if len(idx) == 0:
        report.errors[name] = 0.0
        return
    bad = ~np.isfinite(analytic) | ~np.isfinite(numeric)
    worst = int(np.argmax(np.where(bad, np.inf, err)))
    worst_err = float(np.inf if bad[worst] else err[worst])
    report.errors[name] = worst_err
    if worst_err > rtol:
        where = tuple(int(i) for i in np.unravel_index(idx[worst], shape)) if shape else ()
        raise GradcheckError(
            f"gradcheck: gradient of {name} wrong at index {where}: analytic "
            f"{analytic[worst]!r}, numeric {numeric[worst]!r} (relative error {worst_err:.3e} "
            f"> rtol {rtol:g}; {int(np.sum(err > rtol) + np.sum(bad))} of {len(idx)} checked "
            f"element(s) fail)")


def _input_backward(module, grad_out):
    """``module.backward`` asked for the input gradient (models compute it on demand)."""
    if type(module)._leaf:
        return module.backward(grad_out)
    return module.backward(grad_out, input_grad=True)


def _check_float64(module, x):
    for name, p in module.named_parameters():
        if p.data.dtype != np.float64:
            raise TypeError(f"gradcheck: parameter {name} is {p.data.dtype}; call "
                            f"module.double() first (float32 is too noisy for finite differences)")
    if x.dtype != np.float64:
        raise TypeError(f"gradcheck: input is {x.dtype}; pass a float64 array")


def gradcheck(module, x, *, loss=None, target=None, eps: float = 1e-6, rtol: float = 1e-5,
              atol: float = 1e-8, seed: int = 0, check_input: bool = True,
              check_params: bool = True, max_checks: int | None = 200) -> GradcheckReport:
    """Check ``module.backward`` against central differences; raise GradcheckError if wrong.

    Parameters
    ----------
    module : a neuropil ``Module`` in float64 (``.double()``), in the mode to check.
    x : float64 input array.
    loss, target : an optional loss (``forward(pred, target) -> float``, ``backward()``);
        without one, ``L = sum(forward(x) * R)`` for a random ``R`` drawn with ``seed``.
    eps : step of the central difference.
    rtol, atol : an element passes when ``|a - n| <= rtol * max(|a|, |n|, atol / rtol)``.
    check_input / check_params : which gradients to check.
    max_checks : at most this many elements per array (a seeded random subset); None: all.
    """
    x = np.array(x, dtype=np.float64 if not isinstance(x, np.ndarray) else x.dtype, copy=True)
    _check_float64(module, x)
    rng = np.random.default_rng(seed)
    y0 = np.array(module.forward(x), copy=True)
    proj = rng.standard_normal(y0.shape) if loss is None else None

    def objective(inp) -> float:
        y = module.forward(inp)
        if loss is None:
            return float(np.sum(np.asarray(y, dtype=np.float64) * proj))
        return float(loss.forward(y, target))

    # Analytic gradients.
    module.zero_grad()
    if loss is None:
        module.forward(x)
        grad_y = proj.copy()
    else:
        objective(x)
        grad_y = np.array(loss.backward(), copy=True)
    grad_x = _input_backward(module, grad_y)
    grad_x = None if grad_x is None else np.array(grad_x, dtype=np.float64, copy=True)
    params = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    grads = {n: p.grad.copy() for n, p in params}

    report = GradcheckReport()
    if check_input:
        if grad_x is None or grad_x.shape != x.shape:
            raise GradcheckError(f"gradcheck: backward returned "
                                 f"{None if grad_x is None else grad_x.shape} for an input of "
                                 f"shape {x.shape}")
        idx = _indices(x.size, max_checks, rng)
        numeric = _central_differences(x.reshape(-1), idx, lambda: objective(x), eps)
        _compare("input", grad_x.reshape(-1)[idx], numeric, idx, x.shape, rtol, atol, report)
    if check_params:
        for name, p in params:
            idx = _indices(p.data.size, max_checks, rng)
            numeric = _central_differences(p.data.reshape(-1), idx, lambda: objective(x), eps)
            _compare(f"parameter '{name}'", grads[name].reshape(-1)[idx], numeric, idx,
                     p.data.shape, rtol, atol, report)
    return report


def gradcheck_loss(loss, pred, target, *, eps: float = 1e-6, rtol: float = 1e-5,
                   atol: float = 1e-8, seed: int = 0,
                   max_checks: int | None = 200) -> GradcheckReport:
    """Check a loss's ``backward()`` (dL/dpred) against central differences of ``forward``.

    A loss whose forward returns an array (``reduction='none'``) is checked through
    ``L = sum(losses * R)`` with a seeded random ``R`` of the losses' shape, whose
    analytic gradient is ``backward(R)``.
    """
    pred = np.array(pred, dtype=np.float64, copy=True)
    rng = np.random.default_rng(seed)
    first = loss.forward(pred, target)
    proj = rng.standard_normal(np.shape(first)) if np.ndim(first) > 0 else None

    def objective() -> float:
        value = loss.forward(pred, target)
        if proj is None:
            return float(value)
        return float(np.sum(np.asarray(value, dtype=np.float64) * proj))

    objective()
    analytic = np.array(loss.backward() if proj is None else loss.backward(proj.copy()),
                        dtype=np.float64, copy=True)
    if analytic.shape != pred.shape:
        raise GradcheckError(f"gradcheck_loss: backward returned {analytic.shape} for an input "
                             f"of shape {pred.shape}")
    idx = _indices(pred.size, max_checks, rng)
    numeric = _central_differences(pred.reshape(-1), idx, objective, eps)
    report = GradcheckReport()
    _compare("input", analytic.reshape(-1)[idx], numeric, idx, pred.shape, rtol, atol, report)
    return report
