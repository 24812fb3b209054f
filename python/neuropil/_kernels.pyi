"""
neuropil's compiled kernels (private; use neuropil.functional)
"""
from __future__ import annotations
import collections.abc
import numpy
import typing
__all__: list[str] = ['activation_backward', 'activation_forward', 'adam_update', 'add', 'argmax', 'available_isas', 'avg_pool2d_backward', 'avg_pool2d_forward', 'batch_norm_backward', 'batch_norm_forward', 'bce_with_logits', 'bias_activation', 'bias_grad', 'binary_cross_entropy', 'build_info', 'col2im', 'concat', 'conv2d_backward', 'conv2d_forward', 'conv_transpose2d_backward', 'conv_transpose2d_forward', 'cross_entropy', 'dropout', 'dropout2d', 'elu', 'elu_backward', 'embedding_backward', 'embedding_forward', 'fma_peak_gflops', 'gelu', 'gelu_backward', 'gemm', 'gemm_prepacked', 'get_isa', 'get_num_threads', 'im2col', 'l1_loss', 'leaky_relu', 'leaky_relu_backward', 'linear_backward', 'linear_forward', 'max_pool2d_backward', 'max_pool2d_forward', 'mse_loss', 'nll_loss', 'parallel_team_size', 'rnn_backward', 'rnn_forward', 'scale_inplace', 'scale_loss_grad', 'set_isa', 'set_num_threads', 'sgd_update', 'softmax', 'softmax_backward', 'softplus', 'softplus_backward', 'split', 'sum_squares', 'upsample_backward', 'upsample_forward']
def activation_backward(y: numpy.ndarray, grad_out: numpy.ndarray, out: numpy.ndarray, act: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    out = grad_out * act'(.) from the cached output y = act(x). out may be grad_out.
    """
def activation_forward(x: numpy.ndarray, out: numpy.ndarray, act: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    out = act(x); act: 0 identity, 1 relu, 2 sigmoid, 3 tanh. out may be x.
    """
def adam_update(param: numpy.ndarray, grad: numpy.ndarray, exp_avg: numpy.ndarray, exp_avg_sq: numpy.ndarray, max_exp_avg_sq: typing.Any, lr: typing.SupportsFloat | typing.SupportsIndex, beta1: typing.SupportsFloat | typing.SupportsIndex, beta2: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex, weight_decay: typing.SupportsFloat | typing.SupportsIndex, step: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    One Adam/AMSGrad step on param, in place (see neuropil/optim.h for the formula).
    """
def add(a: numpy.ndarray, b: numpy.ndarray, out: numpy.ndarray) -> None:
    """
    out = a + b elementwise (same shape and dtype; out may be a or b)
    """
def argmax(x: numpy.ndarray, out: numpy.ndarray) -> None:
    """
    out[n] = argmax over the last axis of x (N, C); first maximum, NaN counts as maximum.
    """
def available_isas() -> list[str]:
    ...
def avg_pool2d_backward(grad_out: numpy.ndarray, grad_input: numpy.ndarray, kernel: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], count_include_pad: bool, ceil_mode: bool = False) -> None:
    ...
def avg_pool2d_forward(x: numpy.ndarray, out: numpy.ndarray, kernel: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], count_include_pad: bool, ceil_mode: bool = False) -> None:
    ...
def batch_norm_backward(x: numpy.ndarray, grad_out: numpy.ndarray, weight: typing.Any, mean: numpy.ndarray, invstd: numpy.ndarray, batch_stats: bool, grad_input: typing.Any, grad_weight: typing.Any, grad_bias: typing.Any, beta_weight: typing.SupportsFloat | typing.SupportsIndex = 0.0, beta_bias: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    """
    Gradients of batch_norm from the saved mean/invstd; each output may be None. grad_input is overwritten; grad_weight/grad_bias = beta * old + gradient (beta 0 or 1).
    """
def batch_norm_forward(x: numpy.ndarray, weight: typing.Any, bias: typing.Any, running_mean: typing.Any, running_var: typing.Any, save_mean: numpy.ndarray, save_invstd: numpy.ndarray, out: numpy.ndarray, batch_stats: bool, momentum: typing.SupportsFloat | typing.SupportsIndex, eps: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    out = (x - mean) * invstd * weight + bias over x (N, C, *); batch statistics (and a running-statistics update when given) or running statistics; writes save_mean, save_invstd (C,). See neuropil/norm.h.
    """
def bce_with_logits(input: numpy.ndarray, target: numpy.ndarray, grad: typing.Any = None, reduction: typing.SupportsInt | typing.SupportsIndex = 0, losses: typing.Any = None) -> float:
    ...
def bias_activation(x: numpy.ndarray, bias: typing.Any, out: numpy.ndarray, act: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    out[N, C] = act(x + bias[C]); bias may be None; out may be x.
    """
def bias_grad(grad_out: numpy.ndarray, out: numpy.ndarray, beta: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    """
    out[C] = beta * out + column sums of grad_out[N, C] (deterministic).
    """
def binary_cross_entropy(input: numpy.ndarray, target: numpy.ndarray, grad: typing.Any = None, reduction: typing.SupportsInt | typing.SupportsIndex = 0, losses: typing.Any = None) -> float:
    """
    binary cross-entropy of probabilities in [0, 1] (logs clamped to >= -100, as PyTorch).
    """
def build_info() -> dict:
    ...
def col2im(cols: numpy.ndarray, out: numpy.ndarray, kernel: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], dilation: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex]) -> None:
    """
    out[N, C, H, W] = col2im(cols[N, C*kH*kW, OH*OW]) (adjoint of im2col), in place.
    """
def concat(inputs: collections.abc.Sequence[numpy.ndarray], out: numpy.ndarray, axis: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Concatenate C-contiguous arrays along axis into out
    """
def conv2d_backward(x: numpy.ndarray, weight: numpy.ndarray, grad_out: numpy.ndarray, grad_input: typing.Any, grad_weight: typing.Any, grad_bias: typing.Any, stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], dilation: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], groups: typing.SupportsInt | typing.SupportsIndex = 1, beta: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    """
    Gradients of conv2d; each output may be None. grad_input is overwritten; grad_weight/grad_bias = beta * old + gradient.
    """
def conv2d_forward(x: numpy.ndarray, weight: numpy.ndarray, bias: typing.Any, out: numpy.ndarray, stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], dilation: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], groups: typing.SupportsInt | typing.SupportsIndex = 1) -> None:
    """
    out[N, OC, OH, OW] = conv2d(x[N, C, H, W], weight[OC, C/groups, kH, kW]) + bias[OC], in place.
    """
def conv_transpose2d_backward(x: numpy.ndarray, weight: numpy.ndarray, grad_out: numpy.ndarray, grad_input: typing.Any, grad_weight: typing.Any, grad_bias: typing.Any, stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], dilation: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], groups: typing.SupportsInt | typing.SupportsIndex = 1, beta: typing.SupportsFloat | typing.SupportsIndex = 0.0) -> None:
    """
    Gradients of conv_transpose2d; each output may be None. grad_input is overwritten; grad_weight/grad_bias = beta * old + gradient.
    """
def conv_transpose2d_forward(x: numpy.ndarray, weight: numpy.ndarray, bias: typing.Any, out: numpy.ndarray, stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], dilation: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], groups: typing.SupportsInt | typing.SupportsIndex = 1) -> None:
    """
    out[N, Cout, Ho, Wo] = conv_transpose2d(x[N, Cin, H, W], weight[Cin, Cout/groups, kH, kW]) + bias[Cout], in place (out's shape sets the output size).
    """
def cross_entropy(input: numpy.ndarray, target: numpy.ndarray, grad: typing.Any = None, reduction: typing.SupportsInt | typing.SupportsIndex = 0, weight: typing.Any = None, ignore_index: typing.SupportsInt | typing.SupportsIndex = -100, losses: typing.Any = None) -> float:
    """
    fused softmax-cross-entropy over the class axis 1 of input (N, C, d1, ...): returns the loss (mean/sum) or writes losses (N, d1, ...) (none); writes d loss/d input into grad. target: int64 labels (N, d1, ...) or probabilities shaped like input.
    """
def dropout(x: numpy.ndarray, out: numpy.ndarray, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex, backward: bool = False) -> None:
    """
    inverted dropout with a counter-based mask keyed by seed (same for any thread count).
    """
def dropout2d(x: numpy.ndarray, out: numpy.ndarray, p: typing.SupportsFloat | typing.SupportsIndex, seed: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    channel dropout of x (N, C, H, W): whole (n, c) planes kept (scaled 1/(1-p)) or zeroed by a counter-based hash of (seed, n*C + c); the same call on grad_out is the backward.
    """
def elu(x: numpy.ndarray, out: numpy.ndarray, alpha: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    out = x > 0 ? x : alpha * expm1(x). out may be x.
    """
def elu_backward(x: numpy.ndarray, grad_out: numpy.ndarray, out: numpy.ndarray, alpha: typing.SupportsFloat | typing.SupportsIndex, is_result: bool) -> None:
    """
    ELU gradient from the input x, or from the output y when is_result (alpha >= 0).
    """
def embedding_backward(dout: numpy.ndarray, indices: numpy.ndarray, dweight: numpy.ndarray) -> None:
    ...
def embedding_forward(weight: numpy.ndarray, indices: numpy.ndarray, out: numpy.ndarray) -> None:
    ...
def fma_peak_gflops(seconds: typing.SupportsFloat | typing.SupportsIndex = 1.0, threads: typing.SupportsInt | typing.SupportsIndex = 1) -> float:
    """
    float32 GFLOP/s of an FMA-bound loop on `threads` threads (benchmarks' peak).
    """
def gelu(x: numpy.ndarray, out: numpy.ndarray, approximate: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    out = x * Phi(x) (approximate 0) or PyTorch's tanh form (1). out may be x.
    """
def gelu_backward(x: numpy.ndarray, grad_out: numpy.ndarray, out: numpy.ndarray, approximate: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    GELU gradient from the input x. out may be grad_out.
    """
def gemm(a: numpy.ndarray, b: numpy.ndarray, out: numpy.ndarray, trans_a: bool = False, trans_b: bool = False, alpha: typing.SupportsFloat | typing.SupportsIndex = 1.0, beta: typing.SupportsFloat | typing.SupportsIndex = 0.0, reference: bool = False) -> None:
    """
    out = alpha * op(a) @ op(b) + beta * out, in place. Arrays must be C-contiguous float32 or float64 of one dtype; out must not overlap a or b. reference=True runs the plain triple-loop twin.
    """
def gemm_prepacked(a: numpy.ndarray, b: numpy.ndarray, out: numpy.ndarray, trans_a: bool = False, trans_b: bool = False, alpha: typing.SupportsFloat | typing.SupportsIndex = 1.0, beta: typing.SupportsFloat | typing.SupportsIndex = 0.0, max_threads: typing.SupportsInt | typing.SupportsIndex = 1048576, repeats: typing.SupportsInt | typing.SupportsIndex = 1) -> None:
    """
    gemm through the pack-once C++ API (b packed once, multiplied `repeats` times, each with the given beta); for tests and benchmarks.
    """
def get_isa() -> str:
    ...
def get_num_threads() -> int:
    ...
def im2col(x: numpy.ndarray, out: numpy.ndarray, kernel: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], dilation: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex]) -> None:
    """
    out[N, C*kH*kW, OH*OW] = im2col(x[N, C, H, W]), in place.
    """
def l1_loss(input: numpy.ndarray, target: numpy.ndarray, grad: typing.Any = None, reduction: typing.SupportsInt | typing.SupportsIndex = 0, losses: typing.Any = None) -> float:
    ...
def leaky_relu(x: numpy.ndarray, out: numpy.ndarray, negative_slope: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    out = x > 0 ? x : negative_slope * x. out may be x.
    """
def leaky_relu_backward(x: numpy.ndarray, grad_out: numpy.ndarray, out: numpy.ndarray, negative_slope: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    out = x > 0 ? grad_out : negative_slope * grad_out; x may be the output when negative_slope >= 0. out may be grad_out.
    """
def linear_backward(input: numpy.ndarray, weight: numpy.ndarray, grad_out: numpy.ndarray, grad_weight: typing.Any, grad_bias: typing.Any, grad_input: typing.Any, beta_weight: typing.SupportsFloat | typing.SupportsIndex = 1.0, beta_bias: typing.SupportsFloat | typing.SupportsIndex = 1.0) -> None:
    """
    grad_weight = beta_weight * grad_weight + grad_out.T @ input; grad_bias = beta_bias * grad_bias + column sums; grad_input = grad_out @ weight. Any output may be None (skipped); beta 0 overwrites without reading.
    """
def linear_forward(input: numpy.ndarray, weight: numpy.ndarray, bias: typing.Any, out: numpy.ndarray, act: typing.SupportsInt | typing.SupportsIndex = 0) -> None:
    """
    out = act(input @ weight.T + bias): one gemm plus a fused epilogue.
    """
def max_pool2d_backward(grad_out: numpy.ndarray, indices: numpy.ndarray, grad_input: numpy.ndarray, kernel: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], ceil_mode: bool = False) -> None:
    ...
def max_pool2d_forward(x: numpy.ndarray, out: numpy.ndarray, indices: numpy.ndarray, kernel: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], stride: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], padding: tuple[typing.SupportsInt | typing.SupportsIndex, typing.SupportsInt | typing.SupportsIndex], ceil_mode: bool = False) -> None:
    ...
def mse_loss(input: numpy.ndarray, target: numpy.ndarray, grad: typing.Any = None, reduction: typing.SupportsInt | typing.SupportsIndex = 0, losses: typing.Any = None) -> float:
    ...
def nll_loss(input: numpy.ndarray, target: numpy.ndarray, grad: typing.Any = None, reduction: typing.SupportsInt | typing.SupportsIndex = 0, weight: typing.Any = None, ignore_index: typing.SupportsInt | typing.SupportsIndex = -100, losses: typing.Any = None) -> float:
    """
    negative log-likelihood of log-probabilities (N, C, d1, ...) at int64 labels (N, d1, ...).
    """
def parallel_team_size(threads: typing.SupportsInt | typing.SupportsIndex) -> int:
    """
    Threads a parallel region asking for `threads` gets now (a diagnostic for tests).
    """
def rnn_backward(mode: str, x: numpy.ndarray, w_ih: numpy.ndarray, w_hh: numpy.ndarray, lengths: typing.Any, gates: numpy.ndarray, xh: numpy.ndarray, c_prev: typing.Any, tanh_c: typing.Any, dy: typing.Any, dy_col: typing.SupportsInt | typing.SupportsIndex, dh_n: typing.Any, dc_n: typing.Any, dg: numpy.ndarray, dgh: typing.Any, dx: typing.Any, dx_accumulate: bool, dh0: numpy.ndarray, dc0: typing.Any, dw_ih: numpy.ndarray, dw_hh: numpy.ndarray, db_ih: typing.Any, db_hh: typing.Any, batch_first: bool, reverse: bool) -> None:
    """
    Backward through time of rnn_forward (see rnn.h).
    """
def rnn_forward(mode: str, x: numpy.ndarray, w_ih: numpy.ndarray, w_hh: numpy.ndarray, b_ih: typing.Any, b_hh: typing.Any, h0: typing.Any, c0: typing.Any, lengths: typing.Any, y: numpy.ndarray, y_col: typing.SupportsInt | typing.SupportsIndex, h_n: numpy.ndarray, c_n: typing.Any, gates: numpy.ndarray, xh: numpy.ndarray, c_prev: typing.Any, tanh_c: typing.Any, batch_first: bool, reverse: bool) -> None:
    """
    One layer, one direction of an RNN/LSTM/GRU over a whole sequence (see rnn.h).
    """
def scale_inplace(x: numpy.ndarray, alpha: typing.SupportsFloat | typing.SupportsIndex) -> None:
    ...
def scale_loss_grad(grad: numpy.ndarray, grad_out: numpy.ndarray, out: numpy.ndarray, class_axis: bool) -> None:
    """
    out = grad * grad_out, grad_out broadcast over the class axis 1 when class_axis: the input gradient of a reduction-none loss given the upstream gradient of its losses.
    """
def set_isa(name: str) -> None:
    ...
def set_num_threads(n: typing.SupportsInt | typing.SupportsIndex) -> None:
    ...
def sgd_update(param: numpy.ndarray, grad: numpy.ndarray, momentum_buf: typing.Any, lr: typing.SupportsFloat | typing.SupportsIndex, momentum: typing.SupportsFloat | typing.SupportsIndex, dampening: typing.SupportsFloat | typing.SupportsIndex, weight_decay: typing.SupportsFloat | typing.SupportsIndex, l1: typing.SupportsFloat | typing.SupportsIndex, nesterov: bool, first_step: bool) -> None:
    """
    One SGD step on param, in place (see neuropil/optim.h for the formula).
    """
def softmax(x: numpy.ndarray, out: numpy.ndarray, log: bool = False) -> None:
    """
    softmax (or log_softmax) over the last axis; out may be x.
    """
def softmax_backward(y: numpy.ndarray, grad_out: numpy.ndarray, out: numpy.ndarray, log: bool = False) -> None:
    """
    gradient of (log_)softmax over the last axis from its output y.
    """
def softplus(x: numpy.ndarray, out: numpy.ndarray, beta: typing.SupportsFloat | typing.SupportsIndex, threshold: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    out = beta*x > threshold ? x : log1p(exp(beta*x)) / beta. out may be x.
    """
def softplus_backward(x: numpy.ndarray, grad_out: numpy.ndarray, out: numpy.ndarray, beta: typing.SupportsFloat | typing.SupportsIndex, threshold: typing.SupportsFloat | typing.SupportsIndex) -> None:
    """
    out = beta*x > threshold ? grad_out : grad_out * sigmoid(beta*x). out may be grad_out.
    """
def split(src: numpy.ndarray, outs: collections.abc.Sequence[numpy.ndarray], axis: typing.SupportsInt | typing.SupportsIndex) -> None:
    """
    Copy consecutive pieces of src along axis into outs (the adjoint of concat)
    """
def sum_squares(x: numpy.ndarray) -> float:
    ...
def upsample_backward(grad_out: numpy.ndarray, grad_input: numpy.ndarray, mode: typing.SupportsInt | typing.SupportsIndex, scale_h: typing.SupportsFloat | typing.SupportsIndex, scale_w: typing.SupportsFloat | typing.SupportsIndex, align_corners: bool) -> None:
    """
    grad_input[N, C, H, W] = adjoint of upsample_forward applied to grad_out (overwritten; deterministic).
    """
def upsample_forward(x: numpy.ndarray, out: numpy.ndarray, mode: typing.SupportsInt | typing.SupportsIndex, scale_h: typing.SupportsFloat | typing.SupportsIndex, scale_w: typing.SupportsFloat | typing.SupportsIndex, align_corners: bool) -> None:
    """
    out[N, C, OH, OW] = nearest (mode 0) or bilinear (mode 1) resampling of x[N, C, H, W] with PyTorch's index rules; scale_h/scale_w: the scale factors given to interpolate (<= 0: none, the ratio of sizes is used). See neuropil/resample.h.
    """
__version__: str = '0.1.0'
