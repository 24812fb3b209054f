"""conv2d on every kernel path (generic, avx2, avx512), grouped and depthwise convolution,
tails of the direct tiles, 1-vs-2-thread bitwise results and the layer's gradient protocol."""
import numpy as np
import pytest

import neuropil
import neuropil.functional as F
from neuropil import nn

from _conv_reference import conv2d_grouped_backward_ref, conv2d_grouped_ref, gradcheck_module

ISAS = ["generic", "avx2", "avx512"]


def use_isa(isa):
    if isa not in neuropil.functional._k.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)


def check(x, w, b, s, p, d, groups, rng, tol=2e-4):
    y = F.conv2d(x, w, b, s, p, d, groups)
    np.testing.assert_allclose(y, conv2d_grouped_ref(x, w, b, s, p, d, groups), rtol=tol, atol=tol)
    dy = rng.standard_normal(y.shape).astype(x.dtype)
    dx, dw, db = F.conv2d_backward(x, w, dy, s, p, d, groups)
    rdx, rdw, rdb = conv2d_grouped_backward_ref(x, w, dy, s, p, d, groups)
    for got, want in ((dx, rdx), (dw, rdw), (db, rdb)):
        np.testing.assert_allclose(got, want, rtol=5 * tol, atol=5 * tol * max(1, x.shape[0]))


# (N, C, H, W, OC, (KH, KW), stride, padding, dilation, groups)
CASES = [
    (2, 4, 7, 9, 6, (3, 3), (1, 1), (1, 1), (1, 1), 2),    # grouped
    (3, 6, 8, 5, 6, (3, 3), (2, 2), (1, 1), (1, 1), 6),    # depthwise, stride 2
    (1, 3, 6, 6, 9, (2, 3), (1, 2), (0, 2), (2, 1), 3),    # mixed stride, dilation, padding > k/2
    (2, 4, 9, 8, 8, (3, 3), (2, 1), (1, 1), (1, 1), 4),    # row stride 2, column stride 1
    (1, 2, 5, 7, 34, (1, 1), (1, 1), (0, 0), (1, 1), 1),   # 1x1, 34 channels: 2 + 1 vectors
    (2, 3, 11, 10, 5, (3, 3), (3, 3), (2, 2), (1, 1), 1),  # stride 3: reference path
    (1, 2, 4, 4, 3, (5, 5), (1, 1), (3, 3), (1, 1), 1),    # padding > dilation*(k-1): cropped dy
    (5, 1, 28, 28, 8, (3, 3), (1, 1), (1, 1), (1, 1), 1),  # one input channel
    (9, 5, 6, 6, 20, (3, 3), (1, 1), (1, 1), (1, 1), 1),   # several dW chunks, 20 channels
]
IDS = [f"N{c[0]}C{c[1]}H{c[2]}W{c[3]}O{c[4]}k{c[5]}s{c[6]}p{c[7]}d{c[8]}g{c[9]}" for c in CASES]


@pytest.mark.parametrize("isa", ISAS)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv2d_every_path_matches_numpy(case, isa, rng, isa_path):
    use_isa(isa)
    N, C, H, W, OC, k, s, p, d, groups = case
    for dtype in (np.float32, np.float64):
        x = rng.standard_normal((N, C, H, W)).astype(dtype)
        w = rng.standard_normal((OC, C // groups) + k).astype(dtype)
        b = rng.standard_normal(OC).astype(dtype)
        check(x, w, b, s, p, d, groups, rng, 2e-4 if dtype == np.float32 else 1e-10)


@pytest.mark.parametrize("isa", ISAS)
def test_direct_tile_tails(isa, rng, isa_path):
    """Every row-tile width (OW 1..30), channel-block tail (OC 1..35) and tap-tile tail (K 1..20)."""
    use_isa(isa)
    for ow in range(1, 31):
        x = rng.standard_normal((1, 2, 3, ow)).astype(np.float32)
        w = rng.standard_normal((3, 2, 3, 3)).astype(np.float32)
        check(x, w, None, (1, 1), (1, 1), (1, 1), 1, rng)
        if ow % 3 == 0:
            check(x, w, None, (1, 2), (1, 1), (1, 1), 1, rng)
    for oc in range(1, 36):
        x = rng.standard_normal((1, 2, 4, 5)).astype(np.float32)
        w = rng.standard_normal((oc, 2, 2, 2)).astype(np.float32)
        check(x, w, rng.standard_normal(oc).astype(np.float32), (1, 1), (0, 1), (1, 1), 1, rng)
    for c, kh, kw in [(1, 1, 1), (1, 1, 2), (1, 1, 3), (1, 2, 2), (1, 1, 5), (2, 1, 3), (1, 1, 7),
                      (2, 2, 2), (1, 3, 3), (5, 1, 2), (1, 1, 11), (2, 2, 3), (1, 13, 1),
                      (7, 1, 2), (1, 3, 5), (2, 2, 4), (17, 1, 1), (2, 3, 3), (19, 1, 1), (4, 5, 1)]:
        x = rng.standard_normal((2, c, 6, 6)).astype(np.float32)
        w = rng.standard_normal((5, c, kh, kw)).astype(np.float32)
        check(x, w, None, (1, 1), (kh // 2, kw // 2), (1, 1), 1, rng)


@pytest.mark.parametrize("isa", ISAS)
def test_conv_one_and_two_threads_bitwise(isa, rng, threads, isa_path):
    use_isa(isa)
    x = rng.standard_normal((11, 6, 12, 10)).astype(np.float32)
    cases = [(rng.standard_normal((16, 6, 3, 3)).astype(np.float32), 1, (1, 1)),
             (rng.standard_normal((12, 3, 3, 3)).astype(np.float32), 2, (2, 2)),
             (rng.standard_normal((6, 1, 3, 3)).astype(np.float32), 6, (1, 1))]
    wt = rng.standard_normal((6, 4, 3, 3)).astype(np.float32)
    results = []
    for t in (1, 2):
        neuropil.set_num_threads(t)
        r = []
        for w, groups, s in cases:
            b = np.linspace(-1, 1, w.shape[0]).astype(np.float32)
            y = F.conv2d(x, w, b, s, 1, 1, groups)
            r += [y, *F.conv2d_backward(x, w, np.cos(y), s, 1, 1, groups)]
            yt = F.conv_transpose2d(x, wt, None, 2, 1, 1, 2)
            r += [yt, *F.conv_transpose2d_backward(x, wt, np.sin(yt), 2, 1, 1, 2)]
        results.append(r)
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)


@pytest.mark.parametrize("groups", [1, 2, 4])
def test_grouped_conv2d_layer_gradcheck(groups, rng):
    layer = nn.Conv2d(4, 4, (3, 2), stride=(2, 1), padding=1, groups=groups, rng=1).double()
    assert layer.weight.shape == (4, 4 // groups, 3, 2)
    gradcheck_module(layer, rng.standard_normal((2, 4, 6, 5)), rng)


def test_conv2d_groups_init_and_repr():
    layer = nn.Conv2d(8, 16, 3, groups=4, rng=0)
    bound = 1 / np.sqrt(2 * 9)  # fan_in = in_channels / groups * kH * kW
    assert np.abs(layer.weight.data).max() <= bound and np.abs(layer.weight.data).max() > 0.8 * bound
    assert "groups=4" in repr(layer)
    assert list(nn.Sequential(layer).state_dict()) == ["0.weight", "0.bias"]


def test_conv2d_layer_requires_grad_and_backward_params(rng):
    x = rng.standard_normal((2, 2, 5, 5))
    dy = rng.standard_normal((2, 3, 3, 3))
    layer = nn.Conv2d(2, 3, 3, rng=0).double()
    layer(x)
    full = layer.backward(dy)
    gw, gb = layer.weight.grad.copy(), layer.bias.grad.copy()
    # a zeroed gradient is overwritten (NaN in the array must not leak), others accumulate
    layer.zero_grad()
    layer.weight._grad[...] = np.nan
    layer(x)
    assert layer.backward_params(dy) is None
    np.testing.assert_allclose(layer.weight.grad, gw, rtol=1e-12)
    layer(x)
    layer.backward(dy)
    np.testing.assert_allclose(layer.bias.grad, 2 * gb, rtol=1e-12)
    # frozen weight: untouched; the input gradient is still right
    layer.zero_grad()
    layer.weight.requires_grad = False
    layer.weight.grad[...] = 7.0
    layer(x)
    np.testing.assert_allclose(layer.backward(dy), full, rtol=1e-12)
    assert (layer.weight.grad == 7.0).all()
    np.testing.assert_allclose(layer.bias.grad, gb, rtol=1e-12)
    # input_grad = False still skips the input gradient
    layer.input_grad = False
    assert layer.backward(dy) is None


def test_grouped_conv_bad_arguments(rng):
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="in_channels \\(6\\) must be divisible by groups \\(4\\)"):
        nn.Conv2d(6, 8, 3, groups=4)
    with pytest.raises(ValueError, match="out_channels \\(6\\) must be divisible by groups"):
        nn.Conv2d(4, 6, 3, groups=4)
    with pytest.raises(ValueError, match="groups must be a positive int"):
        nn.Conv2d(4, 4, 3, groups=0)
    with pytest.raises(ValueError, match="expects 8 input channels \\(4 per group x groups=2\\) "
                                         "but x \\(2, 4, 5, 5\\) has 4"):
        F.conv2d(x, np.zeros((4, 4, 3, 3), np.float32), groups=2)
    with pytest.raises(ValueError, match="groups=3 must divide out_channels"):
        F.conv2d(np.zeros((2, 3, 5, 5), np.float32), np.zeros((4, 1, 3, 3), np.float32), groups=3)
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 4, H, W\), got \(2, 3, 5, 5\) "
                                         r"\(3 channels, expected 4\)"):
        nn.Conv2d(4, 4, 3, groups=2)(np.zeros((2, 3, 5, 5), np.float32))


def test_grouped_conv_matches_torch(rng):
    torch = pytest.importorskip("torch")
    x = rng.standard_normal((3, 6, 9, 8)).astype(np.float32)
    for groups, s in ((3, 1), (6, 2), (2, (2, 1))):
        w = rng.standard_normal((12, 6 // groups, 3, 3)).astype(np.float32)
        b = rng.standard_normal(12).astype(np.float32)
        y = F.conv2d(x, w, b, s, 1, 1, groups)
        ty = torch.nn.functional.conv2d(torch.from_numpy(x), torch.from_numpy(w),
                                        torch.from_numpy(b), s, 1, 1, groups)
        np.testing.assert_allclose(y, ty.numpy(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("isa", ISAS)
def test_direct_input_channel_blocks_and_two_row_tiles(isa, rng, isa_path):
    """Enough input channels that the forward tiles run in input-channel blocks (starting
    from the row buffer after the first), forward and input gradient, with two-row tiles
    (rows narrower than the register tile, odd row counts) and stride-2 columns."""
    use_isa(isa)
    for n, c, h, w, oc, k, s, p in [(2, 37, 5, 6, 20, (3, 3), (1, 1), (1, 1)),
                                    (1, 64, 7, 7, 40, (3, 3), (1, 1), (1, 1)),
                                    (2, 33, 9, 11, 17, (3, 2), (2, 2), (1, 0)),
                                    (1, 50, 3, 4, 33, (1, 1), (1, 1), (0, 0))]:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = (rng.standard_normal((oc, c) + k) / np.sqrt(c)).astype(np.float32)
        check(x, wt, rng.standard_normal(oc).astype(np.float32), s, p, (1, 1), 1, rng)


@pytest.mark.parametrize("isa", ISAS)
def test_weight_gradient_fold_bitwise_across_threads(isa, rng, threads, isa_path):
    """17 images: 5 chunks of dW partials. On 1 thread every chunk is folded into chunk 0's
    partial as it finishes (in the tile's final store); on 2 threads the first thread folds
    chunk 1 that way and the rest go through the separate fold. Same bits either way."""
    use_isa(isa)
    x = rng.standard_normal((17, 8, 6, 7)).astype(np.float32)
    w = rng.standard_normal((16, 8, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((17, 16, 6, 7)).astype(np.float32)
    got = []
    for t in (1, 2):
        neuropil.set_num_threads(t)
        got.append(F.conv2d_backward(x, w, dy, 1, 1, need_input=False))
    for a, b_ in zip(got[0][1:], got[1][1:]):
        np.testing.assert_array_equal(a, b_)
    rdx, rdw, rdb = conv2d_grouped_backward_ref(x, w, dy, (1, 1), (1, 1), (1, 1), 1)
    np.testing.assert_allclose(got[0][1], rdw, rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(got[0][2], rdb, rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize("isa", ISAS)
def test_stride2_input_gradient_by_phase(isa, rng, isa_path):
    """dX at stride 2 (dilation 1) as four stride-1 phase convolutions (AVX-512, kernels of
    at least 2x2; the others run im2col + GEMM): every kernel parity, padding that crops a
    phase's gradient, sizes 1 and 2, odd and even, groups."""
    use_isa(isa)
    for (h, w), (kh, kw), (ph, pw), groups in [
            ((7, 8), (3, 3), (1, 1), 1), ((8, 7), (2, 2), (0, 0), 1), ((5, 5), (1, 1), (0, 0), 1),
            ((9, 6), (4, 4), (1, 2), 1), ((6, 9), (5, 5), (2, 2), 2), ((1, 2), (1, 3), (0, 1), 1),
            ((2, 1), (3, 1), (1, 0), 2), ((6, 6), (3, 3), (3, 3), 1), ((11, 13), (3, 2), (1, 1), 1),
            ((4, 4), (2, 3), (1, 0), 4)]:
        c, oc = 4, 8
        x = rng.standard_normal((2, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((oc, c // groups, kh, kw)).astype(np.float32)
        if (h + 2 * ph - kh) < 0 or (w + 2 * pw - kw) < 0:
            continue
        check(x, wt, None, (2, 2), (ph, pw), (1, 1), groups, rng)


@pytest.mark.parametrize("isa", ISAS)
def test_stride2_input_gradient_bitwise_across_threads(isa, rng, threads, isa_path):
    use_isa(isa)
    x = rng.standard_normal((9, 8, 15, 14)).astype(np.float32)
    w = rng.standard_normal((24, 8, 3, 3)).astype(np.float32)
    dy = rng.standard_normal((9, 24, 8, 7)).astype(np.float32)
    got = []
    for t in (1, 2):
        neuropil.set_num_threads(t)
        got.append(F.conv2d_backward(x, w, dy, 2, 1, need_weight=False, need_bias=False)[0])
    np.testing.assert_array_equal(got[0], got[1])
