"""conv_transpose2d and nn.ConvTranspose2d against a NumPy scatter reference, gradchecks,
PyTorch's output-size rules and errors (and torch itself when installed)."""
import numpy as np
import pytest

import neuropil
import neuropil.functional as F
from neuropil import nn

from _conv_reference import conv_transpose2d_ref, gradcheck_module

# (N, Cin, H, W, Cout, (KH, KW), stride, padding, output_padding, groups, dilation)
CASES = [
    (1, 1, 1, 1, 1, (1, 1), (1, 1), (0, 0), (0, 0), 1, (1, 1)),
    (2, 3, 4, 5, 2, (3, 3), (1, 1), (1, 1), (0, 0), 1, (1, 1)),
    (2, 4, 3, 4, 6, (3, 2), (2, 3), (1, 0), (1, 2), 2, (1, 1)),
    (1, 2, 5, 3, 3, (2, 2), (2, 2), (0, 0), (0, 1), 1, (2, 1)),
    (3, 6, 4, 4, 6, (3, 3), (2, 2), (1, 1), (1, 1), 6, (1, 1)),   # depthwise
    (1, 2, 3, 3, 2, (3, 3), (1, 1), (0, 0), (1, 1), 1, (2, 2)),   # output_padding < dilation only
    (2, 3, 6, 5, 17, (4, 4), (3, 3), (2, 1), (2, 0), 1, (1, 1)),  # 17 output channels, stride 3
]
IDS = [f"N{c[0]}Ci{c[1]}H{c[2]}W{c[3]}Co{c[4]}k{c[5]}s{c[6]}p{c[7]}op{c[8]}g{c[9]}d{c[10]}"
       for c in CASES]


def make(case, dtype, rng):
    N, Cin, H, W, Cout, k, s, p, op, g, d = case
    x = rng.standard_normal((N, Cin, H, W)).astype(dtype)
    w = rng.standard_normal((Cin, Cout // g) + k).astype(dtype)
    b = rng.standard_normal(Cout).astype(dtype)
    return x, w, b, s, p, op, g, d


@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv_transpose2d_matches_numpy(case, isa, rng, isa_path):
    if isa not in neuropil.functional._k.available_isas():
        pytest.skip(f"{isa} kernels not available on this CPU")
    neuropil.set_isa(isa)
    for dtype, tol in ((np.float32, 2e-4), (np.float64, 1e-10)):
        x, w, b, s, p, op, g, d = make(case, dtype, rng)
        y = F.conv_transpose2d(x, w, b, s, p, op, g, d)
        ref = conv_transpose2d_ref(x, w, b, s, p, op, g, d)
        assert y.shape == ref.shape == F.conv_transpose2d_output_shape(x.shape, w.shape, s, p, op, g, d)
        np.testing.assert_allclose(y, ref, rtol=tol, atol=tol)
        # backward by linearity: <y(x), dy> for x and w (the reference is exact in float64)
        dy = rng.standard_normal(y.shape).astype(dtype)
        dx, dw, db = F.conv_transpose2d_backward(x, w, dy, s, p, op, g, d)
        x64, w64 = x.astype(np.float64), w.astype(np.float64)
        e = 1e-3 if dtype == np.float32 else 1e-9
        for i in rng.choice(x.size, min(6, x.size), replace=False):
            t = np.zeros(x.size)
            t[i] = 1
            want = np.vdot(conv_transpose2d_ref(t.reshape(x.shape), w64, None, s, p, op, g, d), dy)
            assert abs(dx.ravel()[i] - want) <= e * max(1, abs(want))
        for i in rng.choice(w.size, min(6, w.size), replace=False):
            t = np.zeros(w.size)
            t[i] = 1
            want = np.vdot(conv_transpose2d_ref(x64, t.reshape(w.shape), None, s, p, op, g, d), dy)
            assert abs(dw.ravel()[i] - want) <= e * max(1, abs(want)) * x.shape[0]
        np.testing.assert_allclose(db, dy.astype(np.float64).sum(axis=(0, 2, 3)), rtol=e, atol=e)


@pytest.mark.parametrize("kwargs", [
    dict(kernel_size=3, stride=2, padding=1, output_padding=1),
    dict(kernel_size=(2, 3), stride=(1, 2), dilation=(2, 1), groups=2, bias=False),
    dict(kernel_size=1, stride=3, output_padding=2),
])
def test_conv_transpose2d_layer_gradcheck(kwargs, rng):
    layer = nn.ConvTranspose2d(2, 4, rng=0, **kwargs).double()
    gradcheck_module(layer, rng.standard_normal((2, 2, 3, 4)), rng)


def test_conv_transpose2d_layer_init_state_dict_and_repr():
    layer = nn.ConvTranspose2d(6, 8, (3, 2), stride=2, groups=2, rng=0)
    assert layer.weight.shape == (6, 4, 3, 2) and layer.bias.shape == (8,)
    bound = 1 / np.sqrt(4 * 6)  # fan_in from weight.size(1) * kH * kW
    for p in (layer.weight.data, layer.bias.data):
        assert np.abs(p).max() <= bound
    assert np.abs(layer.weight.data).max() > 0.8 * bound
    assert list(nn.Sequential(layer).state_dict()) == ["0.weight", "0.bias"]
    assert "ConvTranspose2d(6, 8, kernel_size=(3, 2), stride=(2, 2), groups=2)" == repr(layer)
    y = layer(np.zeros((1, 6, 5, 4), np.float32))
    assert y.shape == (1, 8, 11, 8) and y.dtype == np.float32
    assert nn.ConvTranspose2d(2, 2, 3, dtype=np.float64).weight.dtype == np.float64


def test_conv_transpose2d_output_size_and_protocol(rng):
    layer = nn.ConvTranspose2d(2, 3, 3, stride=2, padding=1, rng=0).double()
    x = rng.standard_normal((2, 2, 4, 4))
    assert layer(x).shape == (2, 3, 7, 7)
    y = layer(x, output_size=(8, 7))
    assert y.shape == (2, 3, 8, 7)
    np.testing.assert_allclose(y, F.conv_transpose2d(x, layer.weight.data, layer.bias.data, 2, 1,
                                                     (1, 0)), rtol=1e-12)
    dy = rng.standard_normal(y.shape)
    dx = layer.backward(dy)
    assert dx.shape == x.shape
    with pytest.raises(ValueError, match="valid sizes .* range from 7 to 8"):
        layer(x, output_size=(9, 7))
    # requires_grad False: no gradient; backward_params: none of the input
    layer.zero_grad()
    layer.bias.requires_grad = False
    layer(x, output_size=(2, 3, 8, 7))
    assert layer.backward_params(dy) is None
    assert (layer.bias.grad == 0).all() and np.abs(layer.weight.grad).sum() > 0


def test_conv_transpose2d_bad_arguments(rng):
    x = rng.standard_normal((2, 4, 5, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="output_padding .* must be smaller than either stride"):
        nn.ConvTranspose2d(4, 4, 3, stride=2, output_padding=2)
    with pytest.raises(ValueError, match="output_padding .* must be smaller than either stride"):
        F.conv_transpose2d(x, np.zeros((4, 2, 3, 3), np.float32), stride=1, output_padding=1)
    with pytest.raises(ValueError, match="in_channels \\(4\\) must be divisible by groups \\(3\\)"):
        nn.ConvTranspose2d(4, 6, 3, groups=3)
    with pytest.raises(ValueError, match="expects 3 input channels but x \\(2, 4, 5, 5\\) has 4"):
        F.conv_transpose2d(x, np.zeros((3, 2, 3, 3), np.float32))
    with pytest.raises(ValueError, match=r"expected input of shape \(N, 3, H, W\)"):
        nn.ConvTranspose2d(3, 2, 3)(x)
    with pytest.raises(TypeError, match="share one dtype"):
        F.conv_transpose2d(x, np.zeros((4, 2, 3, 3)))
    with pytest.raises(ValueError, match="output would be empty"):
        F.conv_transpose2d(x[:, :, :1, :1], np.zeros((4, 2, 1, 1), np.float32), padding=1)
    with pytest.raises(RuntimeError, match="before forward"):
        nn.ConvTranspose2d(1, 1, 1).backward(np.zeros((1, 1, 1, 1), np.float32))


def test_conv_transpose2d_matches_torch(rng):
    torch = pytest.importorskip("torch")
    for case in CASES:
        x, w, b, s, p, op, g, d = make(case, np.float32, rng)
        y = F.conv_transpose2d(x, w, b, s, p, op, g, d)
        tx = torch.from_numpy(x).requires_grad_(True)
        tw = torch.from_numpy(w).requires_grad_(True)
        tb = torch.from_numpy(b).requires_grad_(True)
        ty = torch.nn.functional.conv_transpose2d(tx, tw, tb, s, p, op, g, d)
        np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-4, atol=1e-4)
        dy = rng.standard_normal(y.shape).astype(np.float32)
        ty.backward(torch.from_numpy(dy))
        dx, dw, db = F.conv_transpose2d_backward(x, w, dy, s, p, op, g, d)
        for ours, theirs in ((dx, tx.grad), (dw, tw.grad), (db, tb.grad)):
            np.testing.assert_allclose(ours, theirs.numpy(), rtol=1e-3, atol=1e-3)
    layer = nn.ConvTranspose2d(3, 4, 3, stride=2, rng=0)
    tl = torch.nn.ConvTranspose2d(3, 4, 3, stride=2)
    tl.load_state_dict({k: torch.from_numpy(v) for k, v in layer.state_dict().items()})
    x = rng.standard_normal((2, 3, 5, 5)).astype(np.float32)
    np.testing.assert_allclose(layer(x), tl(torch.from_numpy(x)).detach().numpy(), rtol=1e-4,
                               atol=1e-4)
