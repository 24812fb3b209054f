"""NumPy-in, NumPy-out wrappers over neuropil's C++ kernels, one module per kernel family.

This package is the only Python code that imports the compiled extension. Each function
allocates its output with ``numpy.empty`` (or writes into ``out=``), makes any layout
copy visibly here, and lets the binding validate the rest. Everything is re-exported
here, so ``neuropil.functional.conv2d`` and ``from neuropil.functional import gemm``
work whatever module a function lives in (``functional.gemm`` and ``functional.dropout``
name the functions; their modules stay importable as ``neuropil.functional.gemm`` etc.).

Modules: ``gemm``; ``dense`` (linear, activations, softmax); ``loss``; ``dropout``;
``optim`` (fused optimizer updates); ``conv``; ``pool``; ``rnn`` (and embeddings);
``tensor`` (add, cat, split); ``norm`` (batch normalisation); ``resample`` (interpolate).
"""
from __future__ import annotations

from ._common import _k, _as_array, _float_input, _float_tensor, _out_array, _out_for, _pair
from ._common import _reduction_code, _REDUCTION
from . import dense, loss, optim, conv, pool, rnn, tensor
from .gemm import gemm
from .dense import *  # noqa: F401,F403
from .dense import _ACT, _activation_backward_into, _activation_into, _linear_backward_into
from .dense import _linear_into, _pointwise_into, _pointwise_backward_into
from .loss import *  # noqa: F401,F403
from .loss import _labels, _loss_into, _scale_loss_grad
from .dropout import dropout, dropout_backward, dropout2d, dropout2d_backward, _check_p
from .optim import *  # noqa: F401,F403
from .conv import *  # noqa: F401,F403
from .pool import *  # noqa: F401,F403
from .rnn import *  # noqa: F401,F403
from .tensor import *  # noqa: F401,F403
from . import norm, resample
from .norm import *  # noqa: F401,F403
from .norm import _batch_norm_backward_into, _batch_norm_into
from .resample import *  # noqa: F401,F403
from .resample import _interpolate_plan, _interpolate_into, _interpolate_backward_into

__all__ = (["gemm"] + dense.__all__ + loss.__all__ + ["dropout", "dropout_backward"]
           + optim.__all__ + conv.__all__ + pool.__all__ + rnn.__all__ + tensor.__all__
           + ["dropout2d", "dropout2d_backward"] + norm.__all__ + resample.__all__)
