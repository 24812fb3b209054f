"""Batch normalisation layers (PyTorch's ``nn.BatchNorm1d`` / ``nn.BatchNorm2d``)."""
from __future__ import annotations

import math

import numpy as np

from .. import functional as F
from .module import Module, Parameter

__all__ = ["BatchNorm1d", "BatchNorm2d"]


def _is_real(v) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


class _BatchNorm(Module):
    """Shared body of BatchNorm1d/2d; subclasses say which input ranks they take.

    forward caches the input (a reference), the mean and invstd it normalised with
    (from ``_scratch``) and whether those were batch statistics; every attribute is
    rebound by each call, so one layer may be called several times in a forward
    (``_reentrant``). The running statistics are updated in place by every training
    call, as PyTorch does.
    """

    _reentrant = True
    _ranks: tuple = ()
    _shapes: str = ""

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, dtype=np.float32):
        super().__init__()
        name = type(self).__name__
        if isinstance(num_features, bool) or not isinstance(num_features, (int, np.integer)) \
                or num_features < 1:
            raise ValueError(f"{name}: num_features must be a positive int, got {num_features!r}")
        if not _is_real(eps) or not math.isfinite(eps) or eps < 0:
            raise ValueError(f"{name}: eps must be a finite number >= 0, got {eps!r}")
        if momentum is not None and (not _is_real(momentum) or not math.isfinite(momentum)):
            raise ValueError(f"{name}: momentum must be a finite number or None (cumulative "
                             f"average), got {momentum!r}")
        for arg, v in (("affine", affine), ("track_running_stats", track_running_stats)):
            if not isinstance(v, (bool, np.bool_)):
                raise TypeError(f"{name}: {arg} must be a bool, got {v!r}")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise TypeError(f"{name}: dtype must be float32 or float64, got {dtype}")
        self.num_features = int(num_features)
        self.eps = float(eps)
        self.momentum = None if momentum is None else float(momentum)
        self.affine = bool(affine)
        self.track_running_stats = bool(track_running_stats)
        c = self.num_features
        if self.affine:
            self.weight = Parameter(np.ones(c, dtype))
            self.bias = Parameter(np.zeros(c, dtype))
        else:
            self.weight = None
            self.bias = None
        if self.track_running_stats:
            self.register_buffer("running_mean", np.zeros(c, dtype))
            self.register_buffer("running_var", np.ones(c, dtype))
            self.register_buffer("num_batches_tracked", np.array(0, dtype=np.int64))
        else:
            self.running_mean = None
            self.running_var = None
            self.num_batches_tracked = None
        self._x = None

    def reset_running_stats(self) -> None:
        if self.track_running_stats:
            self.running_mean.fill(0)
            self.running_var.fill(1)
            self.num_batches_tracked.fill(0)

    def reset_parameters(self) -> None:
        """Running statistics reset; weight 1, bias 0 (PyTorch's initialisation)."""
        self.reset_running_stats()
        if self.affine:
            self.weight.data.fill(1)
            self.bias.data.fill(0)

    def _layer_dtype(self):
        if self.weight is not None:
            return self.weight.dtype
        if self.running_mean is not None:
            return self.running_mean.dtype
        return None  # no state: any float dtype goes

    def _check_input(self, x) -> np.ndarray:
        if not isinstance(x, np.ndarray):
            x = np.asarray(x)
        c = self.num_features
        if x.ndim not in self._ranks:
            raise ValueError(f"{self!r}: expected {self._shapes.format(c=c)} input, got "
                             f"{x.ndim}-D input of shape {x.shape}")
        if x.shape[1] != c:
            raise ValueError(f"{self!r}: expected {c} channels (axis 1 of "
                             f"{self._shapes.format(c=c)}), got {x.shape[1]} in input of shape "
                             f"{x.shape}")
        if x.shape[0] == 0:
            raise ValueError(f"{self!r}: empty batch: input shape {x.shape}")
        want = self._layer_dtype()
        if x.dtype not in (np.float32, np.float64) or (want is not None and x.dtype != want):
            raise TypeError(f"{self!r}: input is {x.dtype} but the layer is "
                            f"{want if want is not None else 'float32 or float64'}; use "
                            f".to(dtype) or cast the input")
        return np.ascontiguousarray(x)

    def forward(self, x):
        x = self._check_input(x)
        update = self.training and self.track_running_stats
        batch_stats = self.training or self.running_mean is None
        if batch_stats and math.prod(x.shape) // x.shape[1] <= 1:
            raise ValueError(f"{self!r}: expected more than 1 value per channel when using "
                             f"batch statistics, got input of shape {x.shape}")
        factor = 0.0
        if update:
            # in place (item assignment: `self.x += 1` would go through __setattr__, which
            # unregisters the buffer)
            self.num_batches_tracked[()] += 1
            factor = (1.0 / float(self.num_batches_tracked) if self.momentum is None
                      else self.momentum)
        c = self.num_features
        y = self._scratch("out", x.shape, x.dtype)
        mean = self._scratch("mean", (c,), x.dtype)
        invstd = self._scratch("invstd", (c,), x.dtype)
        use_running = update or not batch_stats
        F._batch_norm_into(x, self.running_mean if use_running else None,
                           self.running_var if use_running else None,
                           None if self.weight is None else self.weight.data,
                           None if self.bias is None else self.bias.data,
                           batch_stats, factor, self.eps, y, mean, invstd)
        self._x, self._mean, self._invstd, self._batch_stats = x, mean, invstd, batch_stats
        return y

    def _grads(self, grad_out, grad_input) -> None:
        if self._x is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        x = self._x
        grad_out = np.asarray(grad_out)
        if grad_out.shape != x.shape:
            raise ValueError(f"{self!r}: grad_out must have the shape of the input {x.shape}, "
                             f"got {grad_out.shape}")
        grad_out = np.ascontiguousarray(grad_out, dtype=x.dtype)
        gw = gb = None
        bw = bb = 0.0
        if self.weight is not None and self.weight.requires_grad:
            gw, zeroed = self.weight._grad_for_write()
            bw = 0.0 if zeroed else 1.0
        if self.bias is not None and self.bias.requires_grad:
            gb, zeroed = self.bias._grad_for_write()
            bb = 0.0 if zeroed else 1.0
        if grad_input is None and gw is None and gb is None:
            return
        F._batch_norm_backward_into(x, grad_out,
                                    None if self.weight is None else self.weight.data,
                                    self._mean, self._invstd, self._batch_stats, grad_input,
                                    gw, gb, bw, bb)

    def backward(self, grad_out):
        """dL/dx; accumulates weight.grad (Σ dy·x̂) and bias.grad (Σ dy) when they require
        gradients. Through batch statistics: dx = γ·invstd·(dy − mean(dy) − x̂·mean(dy·x̂));
        through running statistics (eval): dx = γ·invstd·dy."""
        if self._x is None:
            raise RuntimeError(f"{self!r}: backward called before forward")
        gi = self._scratch("grad_in", self._x.shape, self._x.dtype)
        self._grads(grad_out, gi)
        return gi

    def backward_params(self, grad_out) -> None:
        self._grads(grad_out, None)

    def extra_repr(self) -> str:
        return (f"{self.num_features}, eps={self.eps:g}, momentum={self.momentum}, "
                f"affine={self.affine}, track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch normalisation of (N, C) or (N, C, L) inputs over N (and L), per channel.

    ``y = (x − E[x]) / sqrt(Var[x] + eps) · weight + bias``. Training mode uses the
    batch's mean and biased variance and updates ``running_mean``/``running_var``
    (buffers, in ``state_dict``): ``r = (1 − momentum)·r + momentum·stat`` with the
    unbiased variance; ``momentum=None`` gives the cumulative average
    (factor 1/``num_batches_tracked``). Eval mode uses the running statistics (the batch's
    when ``track_running_stats=False``). ``weight`` (C,) starts at 1, ``bias`` at 0
    (``affine=False``: neither). state_dict keys as PyTorch: weight, bias, running_mean,
    running_var, num_batches_tracked.
    """

    _ranks = (2, 3)
    _shapes = "(N, {c}) or (N, {c}, L)"


class BatchNorm2d(_BatchNorm):
    """Batch normalisation of (N, C, H, W) inputs over N, H and W, per channel.

    Same arithmetic, buffers and state_dict keys as ``BatchNorm1d`` (see there).
    """

    _ranks = (4,)
    _shapes = "(N, {c}, H, W)"
