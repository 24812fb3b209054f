"""Dense layers and losses: gradient checks (float64 central differences), PyTorch-shaped
state_dict, initialisation, buffer reuse and errors that name the layer."""
import numpy as np
import pytest

import neuropil
from neuropil import nn
from neuropil.testing import GradcheckError, gradcheck, gradcheck_loss


def away_from_zero(a, margin=1e-2):
    """Move values off ReLU's kink so central differences are valid."""
    return np.where(np.abs(a) < margin, a + 3 * margin * np.sign(a + 1e-300), a)


@pytest.mark.parametrize("n,i,o", [(1, 1, 1), (1, 7, 3), (5, 17, 4), (3, 129, 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_linear_gradcheck(rng, n, i, o, bias):
    layer = nn.Linear(i, o, bias=bias, rng=0).double()
    gradcheck(layer, rng.standard_normal((n, i)))


def test_linear_leading_dims_gradcheck(rng):
    layer = nn.Linear(4, 3, rng=1).double()
    x = rng.standard_normal((2, 5, 4))
    assert layer(x).shape == (2, 5, 3)
    gradcheck(layer, x)


@pytest.mark.parametrize("layer", [nn.ReLU, nn.Sigmoid, nn.Tanh, nn.Identity,
                                   lambda: nn.Softmax(), lambda: nn.Softmax(dim=0),
                                   lambda: nn.Flatten(), lambda: nn.Flatten(0, 1)])
@pytest.mark.parametrize("shape", [(1, 1), (4, 7), (3, 2, 5)])
def test_activation_gradcheck(rng, layer, shape):
    x = away_from_zero(rng.standard_normal(shape) * 2)
    gradcheck(layer(), x)


def test_dropout_gradcheck_with_fixed_seed(rng):
    layer = nn.Dropout(0.3)
    layer._draw_seed = lambda: 1234  # deterministic forward for finite differences
    x = rng.standard_normal((6, 9))
    gradcheck(layer, x)
    y = layer(x)
    assert np.any(y == 0) and np.any(y != 0)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_loss_gradchecks(rng, reduction):
    x = rng.standard_normal((7, 5)) * 2
    gradcheck_loss(nn.CrossEntropyLoss(reduction=reduction), x, rng.integers(0, 5, 7))
    t = rng.random((7, 5))
    gradcheck_loss(nn.CrossEntropyLoss(reduction=reduction), x, t / t.sum(1, keepdims=True))
    gradcheck_loss(nn.CrossEntropyLoss(reduction=reduction), x, t)  # rows not summing to 1
    gradcheck_loss(nn.MSELoss(reduction), x, rng.standard_normal((7, 5)))
    gradcheck_loss(nn.BCEWithLogitsLoss(reduction), x, rng.random((7, 5)))


def test_whole_sequential_gradcheck(rng):
    neuropil.manual_seed(3)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 7), nn.Tanh(),
                          nn.Linear(7, 5), nn.Sigmoid(), nn.Linear(5, 4)).double()
    x = rng.standard_normal((5, 6))
    gradcheck(model, x, max_checks=None)
    gradcheck(model, x, loss=nn.CrossEntropyLoss(), target=rng.integers(0, 4, 5))
    model2 = nn.Sequential(nn.Flatten(), nn.Linear(12, 6), nn.Softmax(), nn.Linear(6, 3)).double()
    gradcheck(model2, rng.standard_normal((4, 3, 4)), loss=nn.MSELoss(),
              target=rng.standard_normal((4, 3)))


def test_gradcheck_catches_a_wrong_gradient(rng):
    class Broken(nn.Linear):
        def backward(self, grad_out):
            dx = super().backward(grad_out)
            self.weight.grad[1, 2] += 0.5
            return dx

    with pytest.raises(GradcheckError, match=r"parameter '?weight'? wrong at index \(1, 2\)"):
        gradcheck(Broken(3, 2, rng=0).double(), rng.standard_normal((4, 3)))

    class BadInput(nn.Tanh):
        def backward(self, grad_out):
            return super().backward(grad_out) * 1.01

    with pytest.raises(GradcheckError, match="gradient of input wrong"):
        gradcheck(BadInput(), rng.standard_normal((2, 3)))
    with pytest.raises(TypeError, match=r"call module.double\(\) first"):
        gradcheck(nn.Linear(3, 2), rng.standard_normal((4, 3)))


def test_backward_params_skips_input_gradient_but_matches(rng):
    neuropil.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(12, 8), nn.ReLU(), nn.Linear(8, 3))
    x = rng.standard_normal((5, 3, 4)).astype(np.float32)
    t = rng.integers(0, 3, 5)
    loss = nn.CrossEntropyLoss()
    loss(model(x), t)
    assert model.backward(loss.backward(), input_grad=True).shape == x.shape
    full = [p.grad.copy() for p in model.parameters()]
    dx_buffer = model[1]._scratch_arrays["grad_in"]
    for step in (lambda g: model.backward_params(g), lambda g: model.backward(g)):
        # backward_params, and backward on a batch of data (nobody can use its gradient)
        model.zero_grad()
        dx_buffer.fill(np.nan)
        loss(model(x), t)
        assert step(loss.backward()) is None
        for a, p in zip(full, model.parameters()):
            np.testing.assert_array_equal(a, p.grad)
        assert np.all(np.isnan(dx_buffer))  # the first Linear never computed dX


def test_linear_init_state_dict_and_repr():
    neuropil.manual_seed(0)
    model = nn.Sequential(nn.Linear(784, 512), nn.ReLU(), nn.Linear(512, 10))
    sd = model.state_dict()
    assert list(sd) == ["0.weight", "0.bias", "2.weight", "2.bias"]
    assert [v.shape for v in sd.values()] == [(512, 784), (512,), (10, 512), (10,)]
    assert all(v.dtype == np.float32 for v in sd.values())
    bound = 1 / np.sqrt(784)
    w = model[0].weight.data
    assert np.abs(w).max() <= bound and np.abs(w).max() > 0.99 * bound
    assert abs(w.std() - bound / np.sqrt(3)) < 1e-3          # U(-b, b) has std b/sqrt(3)
    assert abs(model[0].bias.data.std() - bound / np.sqrt(3)) < 3e-3
    assert repr(model[0]) == "Linear(in_features=784, out_features=512, bias=True)"
    assert repr(nn.Linear(3, 2, bias=False)) == "Linear(in_features=3, out_features=2, bias=False)"
    assert "weight" in dict(nn.Linear(3, 2, bias=False).state_dict())
    assert list(nn.Linear(3, 2, bias=False).state_dict()) == ["weight"]
    # same seed -> same weights; float64 model from the same seed agrees to rounding
    a = nn.Linear(5, 4, rng=7)
    b = nn.Linear(5, 4, rng=7, dtype=np.float64)
    np.testing.assert_allclose(a.weight.data, b.weight.data, rtol=1e-7)
    before = a.weight.data.copy()
    a.reset_parameters(rng=8)
    assert not np.array_equal(before, a.weight.data)


def test_training_mode_reuses_buffers_eval_returns_fresh(rng):
    model = nn.Sequential(nn.Linear(4, 3, rng=0), nn.ReLU())
    x = rng.standard_normal((2, 4)).astype(np.float32)
    y1 = model(x)
    y2 = model(x)
    assert y1 is y2
    model.eval()
    e1 = model(x)
    e2 = model(x)
    assert e1 is not e2 and e1 is not y1
    np.testing.assert_array_equal(e1, y1)


def test_dropout_train_and_eval(rng):
    x = rng.standard_normal((50, 40)).astype(np.float32) + 5
    layer = nn.Dropout(0.5, rng=0)
    y = layer(x)
    assert 0.4 < np.mean(y == 0) < 0.6
    g = layer.backward(np.ones_like(x))
    np.testing.assert_array_equal(g == 0, y == 0)
    layer.eval()
    assert layer(x) is x and layer.backward(x) is x
    assert repr(layer) == "Dropout(p=0.5)"
    with pytest.raises(ValueError, match=r"Dropout: p must be a probability in \[0, 1\)"):
        nn.Dropout(1.5)


def test_dropout_same_seed_same_masks_any_thread_count(threads):
    x = np.ones((300, 300), np.float32)
    masks = []
    for nt in (1, 2):
        neuropil.set_num_threads(nt)
        neuropil.manual_seed(11)
        layer = nn.Dropout(0.25)
        masks.append((layer(x).copy(), layer(x).copy()))
    np.testing.assert_array_equal(masks[0][0], masks[1][0])
    np.testing.assert_array_equal(masks[0][1], masks[1][1])
    assert not np.array_equal(masks[0][0], masks[0][1])  # a new mask each forward


def test_training_step_bitwise_identical_across_threads(rng, threads):
    x = rng.standard_normal((64, 20)).astype(np.float32)
    t = rng.integers(0, 5, 64)
    out = []
    for nt in (1, 2):
        neuropil.set_num_threads(nt)
        neuropil.manual_seed(0)
        model = nn.Sequential(nn.Linear(20, 32), nn.ReLU(), nn.Dropout(0.2), nn.Linear(32, 5))
        loss = nn.CrossEntropyLoss()
        value = loss(model(x), t)
        model.backward(loss.backward())
        out.append((value, [p.grad.copy() for p in model.parameters()]))
    assert out[0][0] == out[1][0]
    for a, b in zip(out[0][1], out[1][1]):
        np.testing.assert_array_equal(a, b)


def test_errors_name_the_layer():
    layer = nn.Linear(784, 512)
    with pytest.raises(ValueError, match=r"Linear\(784, 512\): expected input \(N, 784\), got \(32, 700\)"):
        layer(np.zeros((32, 700), np.float32))
    with pytest.raises(ValueError, match=r"Linear\(784, 512\): expected input \(N, 784\), got \(784,\)"):
        layer(np.zeros(784, np.float32))
    with pytest.raises(TypeError, match=r"Linear\(784, 512\): input is float64 but the layer's "
                                        r"parameters are float32"):
        layer(np.zeros((2, 784)))
    layer(np.zeros((2, 784), np.float32))
    with pytest.raises(ValueError, match=r"Linear\(784, 512\): expected grad_out \(2, 512\), got \(2, 10\)"):
        layer.backward(np.zeros((2, 10), np.float32))
    with pytest.raises(RuntimeError, match="backward called before forward"):
        nn.Linear(2, 2).backward(np.zeros((1, 2), np.float32))
    with pytest.raises(ValueError, match="Linear: in_features must be a positive integer, got 0"):
        nn.Linear(0, 3)
    with pytest.raises(TypeError, match="Linear: dtype must be float32 or float64"):
        nn.Linear(2, 3, dtype=np.int32)
    with pytest.raises(ValueError, match=r"ReLU: expected grad_out \(2, 3\)"):
        r = nn.ReLU()
        r(np.ones((2, 3), np.float32))
        r.backward(np.ones((3, 2), np.float32))


def test_loss_errors_name_the_loss():
    loss = nn.CrossEntropyLoss()
    x = np.zeros((3, 10), np.float32)
    with pytest.raises(ValueError, match=r"CrossEntropyLoss: cross_entropy: target label 10 at "
                                         r"index 2 is out of range for 10 classes"):
        loss(x, [1, 2, 10])
    with pytest.raises(ValueError, match="MSELoss: mse_loss: target must have the input's shape"):
        nn.MSELoss()(np.zeros(3), np.zeros((3, 1)))
    with pytest.raises(ValueError, match="reduction must be 'mean', 'sum' or 'none', got 'avg'"):
        nn.MSELoss("avg")
    with pytest.raises(RuntimeError, match="BCEWithLogitsLoss: backward called before forward"):
        nn.BCEWithLogitsLoss().backward()


def test_losses_match_numpy(rng):
    x = rng.standard_normal((6, 4))
    t = rng.integers(0, 4, 6)
    ls = x - np.log(np.exp(x).sum(1, keepdims=True))
    loss = nn.CrossEntropyLoss()
    np.testing.assert_allclose(loss(x, t), -ls[np.arange(6), t].mean(), rtol=1e-12)
    g = np.exp(ls)
    g[np.arange(6), t] -= 1
    np.testing.assert_allclose(loss.backward(), g / 6, rtol=1e-12)
    np.testing.assert_allclose(nn.CrossEntropyLoss(reduction="sum")(x, t), -ls[np.arange(6), t].sum(), rtol=1e-12)
    y = rng.standard_normal((6, 4))
    np.testing.assert_allclose(nn.MSELoss()(x, y), ((x - y) ** 2).mean(), rtol=1e-12)
    p = rng.random((6, 4))
    s = 1 / (1 + np.exp(-x))
    np.testing.assert_allclose(nn.BCEWithLogitsLoss()(x, p),
                               -(p * np.log(s) + (1 - p) * np.log(1 - s)).mean(), rtol=1e-10)
    # float32 predictions with float64 targets (the NumPy default) are accepted
    assert np.isfinite(nn.MSELoss()(x.astype(np.float32), y))


def test_softmax_and_flatten_layers():
    sm = nn.Softmax()
    np.testing.assert_array_equal(sm(np.array([[0.5, 1.8, -2.3, 0.9, 0.3]])).round(2),
                                  [[0.14, 0.52, 0.01, 0.21, 0.12]])
    assert repr(sm) == "Softmax(dim=-1)"
    f = nn.Flatten()
    x = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    y = f(x)
    assert y.shape == (2, 12) and np.shares_memory(x, y)  # a view
    assert f.backward(y).shape == (2, 3, 4)
    with pytest.raises(ValueError, match=r"Flatten\(start_dim=3, end_dim=-1\): invalid"):
        nn.Flatten(3)(x)


def test_zero_grad_is_lazy_but_exact(rng):
    lin = nn.Linear(5, 4, rng=0)
    x = rng.standard_normal((3, 5)).astype(np.float32)
    g = rng.standard_normal((3, 4)).astype(np.float32)
    lin(x)
    lin.backward(g)
    once_w, once_b = lin.weight.grad.copy(), lin.bias.grad.copy()
    lin.backward(g)  # accumulates
    np.testing.assert_allclose(lin.weight.grad, 2 * once_w, rtol=1e-6)
    lin.zero_grad()
    np.testing.assert_array_equal(lin.weight.grad, 0)  # reading materialises the zeros
    lin.weight.grad[...] = np.nan
    lin.bias.grad[...] = np.nan
    lin.zero_grad()
    lin.backward(g)  # overwrites (beta 0): the NaN left behind never leaks
    np.testing.assert_array_equal(lin.weight.grad, once_w)
    np.testing.assert_array_equal(lin.bias.grad, once_b)
    p = nn.Parameter(np.ones(3))
    p.grad += 1
    p.zero_grad()
    p.grad += 2
    np.testing.assert_array_equal(p.grad, [2, 2, 2])


def test_readme_example_runs():
    import pathlib
    readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
    block = readme.read_text().split("## Layers, losses and functional ops")[1]
    code = block.split("```python")[1].split("```")[0]
    env = {}
    exec(compile(code, "README.md", "exec"), env)
    assert np.isfinite(env["value"])
