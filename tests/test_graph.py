"""Models beyond a stack: the derived backward (neuropil.nn.graph).

Gradients of models with skips, fan-out, merges, several inputs and outputs, nesting
and shared layers are checked by float64 central differences; every kind of data flow
the engine cannot differentiate must raise a clear error on backward.
"""
import numpy as np
import pytest

import neuropil
from neuropil import nn
from neuropil.testing import gradcheck


def numeric_grads(fn, arrays, eps=1e-6):
    """Central differences of the scalar ``fn()`` w.r.t. every element of ``arrays``."""
    out = []
    for a in arrays:
        g = np.zeros_like(a, dtype=np.float64)
        flat, gflat = a.reshape(-1), g.reshape(-1)
        for i in range(flat.size):
            old = flat[i]
            flat[i] = old + eps
            plus = fn()
            flat[i] = old - eps
            minus = fn()
            flat[i] = old
            gflat[i] = (plus - minus) / (2 * eps)
        out.append(g)
    return out


def close(a, b, tol=1e-6):
    np.testing.assert_allclose(a, b, rtol=tol, atol=tol)


# -- models used below -------------------------------------------------------------------

class Residual(nn.Module):
    """y = relu(x + W2 tanh(W1 x)): a skip connection and an Add."""

    def __init__(self, n):
        super().__init__()
        self.fc1 = nn.Linear(n, n)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(n, n)
        self.add = nn.Add()
        self.out = nn.ReLU()

    def forward(self, x):
        return self.out(self.add(x, self.fc2(self.act(self.fc1(x)))))


class FanOut(nn.Module):
    """One hidden layer feeds two branches whose results are concatenated."""

    def __init__(self):
        super().__init__()
        self.stem = nn.Linear(4, 5)
        self.a = nn.Linear(5, 3)
        self.b = nn.Sequential(nn.Sigmoid(), nn.Linear(5, 2))
        self.cat = nn.Concat(dim=1)

    def forward(self, x):
        h = self.stem(x)
        return self.cat(self.a(h), self.b(h), h)


class TwoInTwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.fa = nn.Linear(3, 4)
        self.fb = nn.Linear(2, 4)
        self.add = nn.Add()
        self.head1 = nn.Linear(4, 2)
        self.head2 = nn.Tanh()

    def forward(self, a, b):
        h = self.add(self.fa(a), self.fb(b))
        return self.head1(h), self.head2(h)


class Shared(nn.Module):
    """The same Linear applied twice (shared weights, summed gradients)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.act = nn.Tanh()

    def forward(self, x):
        return self.fc(self.act(self.fc(x)))


def _params64(model):
    model.double()
    return model


# -- gradients --------------------------------------------------------------------------

@pytest.mark.parametrize("make,shape", [(lambda: Residual(5), (3, 5)), (FanOut, (2, 4)),
                                        (Shared, (4, 3))])
def test_gradcheck_of_graph_models(make, shape, rng):
    neuropil.manual_seed(1)
    model = _params64(make())
    gradcheck(model, rng.standard_normal(shape))


def test_nested_models_as_one_model(rng):
    """A GAN's D(G(z)) as one model: composites inside composites."""
    neuropil.manual_seed(2)
    G = nn.Sequential(nn.Linear(3, 6), nn.Tanh(), nn.Linear(6, 4))
    D = Residual(4)

    class GAN(nn.Module):
        def __init__(self):
            super().__init__()
            self.G, self.D = G, D

        def forward(self, z):
            return self.D(self.G(z))

    gan = _params64(GAN())
    gradcheck(gan, rng.standard_normal((3, 3)))
    assert [n for n, _ in gan.named_parameters()][:2] == ["G.0.weight", "G.0.bias"]


def test_several_inputs_and_outputs(rng):
    neuropil.manual_seed(3)
    model = _params64(TwoInTwoOut())
    a, b = rng.standard_normal((2, 3)), rng.standard_normal((2, 2))
    r1, r2 = rng.standard_normal((2, 2)), rng.standard_normal((2, 4))

    def objective():
        y1, y2 = model(a, b)
        return float(np.sum(y1 * r1) + np.sum(y2 * r2))

    objective()
    model.zero_grad()
    ga, gb = model.backward((r1, r2), input_grad=True)
    analytic = [ga, gb] + [p.grad.copy() for p in model.parameters()]
    numeric = numeric_grads(objective, [a, b] + [p.data for p in model.parameters()])
    for x, y in zip(analytic, numeric):
        close(x, y)
    # an output without a gradient: None in its place
    objective()
    model.zero_grad()
    ga, gb = model.backward((r1, None), input_grad=(True, False))
    assert gb is None

    def only_first():
        return float(np.sum(model(a, b)[0] * r1))
    close(ga, numeric_grads(only_first, [a])[0])


def test_reshape_of_an_output_is_differentiable(rng):
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.conv = nn.Conv2d(2, 3, 3, padding=1)
            self.fc = nn.Linear(3 * 4 * 4, 2)

        def forward(self, x):
            h = self.conv(x)
            return self.fc(h.reshape(len(h), -1))  # PyTorch's x.view(N, -1)

    neuropil.manual_seed(4)
    gradcheck(_params64(Net()), rng.standard_normal((2, 2, 4, 4)))


def test_detached_constants_get_no_gradient(rng):
    class Masked(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(3, 3)
            self.add = nn.Add()

        def forward(self, x):
            h = self.fc(x)
            offset = nn.detach((h > 0).astype(h.dtype))  # NumPy, declared constant
            return self.add(h, offset)

    neuropil.manual_seed(5)
    model = _params64(Masked())
    x = rng.standard_normal((4, 3))
    model(x)
    model.zero_grad()
    g = rng.standard_normal((4, 3))
    gx = model.backward(g, input_grad=True)
    close(gx, g @ model.fc.weight.data)  # the offset contributes nothing


def test_buffers_are_constants(rng):
    class WithBuffer(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.add = nn.Add()
            self.register_buffer("shift", np.ones((1, 2)))

        def forward(self, x):
            return self.add(self.fc(x), np.broadcast_to(self.shift, (len(x), 2)).copy()
                            if len(x) != 1 else self.shift)

    model = _params64(WithBuffer())
    model(rng.standard_normal((1, 2)))
    model.backward(np.ones((1, 2)))  # the registered buffer is a constant: fine


# -- what is computed and what is not -----------------------------------------------

def test_input_gradient_only_when_someone_can_use_it(rng):
    """A batch of data gets none; the output of a trainable module gets one (GAN G step)."""
    neuropil.manual_seed(6)
    G = nn.Sequential(nn.Linear(2, 4), nn.Tanh())
    D = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    x_real = rng.standard_normal((5, 4)).astype(np.float32)
    D(x_real)
    assert D.backward(np.ones((5, 1), np.float32)) is None
    assert D.backward(np.ones((5, 1), np.float32), input_grad=True).shape == (5, 4)
    fake = G(rng.standard_normal((5, 2)).astype(np.float32))
    D(fake)
    g = D.backward(np.ones((5, 1), np.float32))
    assert g is not None and g.shape == (5, 4)
    G.zero_grad()
    assert G.backward(g) is None  # z is data
    assert np.any(G[0].weight.grad != 0)
    # a frozen generator needs no gradient from D
    G.requires_grad_(False)
    fake = G(rng.standard_normal((5, 2)).astype(np.float32))
    D(fake)
    assert D.backward(np.ones((5, 1), np.float32)) is None


def test_frozen_parameters_get_no_gradient(rng):
    """requires_grad_(False): D's weights untouched while G trains through D."""
    neuropil.manual_seed(7)
    G = nn.Sequential(nn.Linear(2, 4), nn.Tanh())
    D = nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 1))
    D.requires_grad_(False)
    for p in D.parameters():
        p.grad[...] = 7.0
    z = rng.standard_normal((5, 2)).astype(np.float32)
    D(G(z))
    g = D.backward(np.ones((5, 1), np.float32))
    G.backward(g)
    for p in D.parameters():
        assert np.all(p.grad == 7.0)
    assert all(np.any(p.grad != 0) for p in G.parameters())
    assert not any(p.requires_grad for p in D.parameters())
    D.requires_grad_()
    assert all(p.requires_grad for p in D.parameters())


def test_leading_layers_without_parameters_are_skipped(rng):
    model = nn.Sequential(nn.Flatten(), nn.Dropout(0.5), nn.Linear(6, 2))
    x = rng.standard_normal((3, 2, 3)).astype(np.float32)
    model(x)
    seen = []
    for layer in model:
        orig = layer.backward
        layer.backward = (lambda orig, layer: lambda g: (seen.append(type(layer).__name__),
                                                          orig(g))[1])(orig, layer)
    model.backward(np.ones((3, 2), np.float32))
    assert seen == []  # Linear got backward_params; Dropout and Flatten were not visited
    model.backward(np.ones((3, 2), np.float32), input_grad=True)
    assert seen == ["Linear", "Dropout", "Flatten"]


# -- shared layers ------------------------------------------------------------------

def test_shared_layer_sums_gradients_and_keeps_buffers_between_steps(rng):
    neuropil.manual_seed(8)
    model = Shared()
    x = rng.standard_normal((4, 3)).astype(np.float32)
    model(x)
    model.zero_grad()
    model.backward(np.ones((4, 3), np.float32))
    first = model.fc.weight.grad.copy()
    pool = model.fc._call_scratch
    for _ in range(3):  # steady state: the second call's buffers are reused, not reallocated
        model(x)
        model.zero_grad()
        model.backward(np.ones((4, 3), np.float32))
        assert model.fc._call_scratch is pool and len(pool) == 1
    np.testing.assert_array_equal(model.fc.weight.grad, first)


def test_a_layer_that_keeps_one_calls_state_cannot_be_shared(rng):
    class Scale(nn.Module):  # a layer that does not declare _reentrant
        def forward(self, x):
            self._x = x
            return x * 2.0

        def backward(self, grad_out):
            return grad_out * 2.0

    class Twice(nn.Module):
        def __init__(self):
            super().__init__()
            self.scale = Scale()

        def forward(self, x):
            return self.scale(self.scale(x))

    model = Twice()
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    y = model(x)  # the forward still works
    np.testing.assert_array_equal(y, x * 4)
    with pytest.raises(ValueError, match=r"layer 'scale' \(Scale\) is called a second time.*"
                                         r"separate layer"):
        model.backward(np.ones_like(y))


# -- data flow that cannot be differentiated ------------------------------------------

class NumpyBetween(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1 = nn.Linear(3, 3)
        self.fc2 = nn.Linear(3, 2)

    def forward(self, x):
        return self.fc2(self.fc1(x) * 2.0)


class SliceBetween(NumpyBetween):
    def forward(self, x):
        return self.fc2(self.fc1(x)[:, ::-1])


class Gate(nn.Module):
    """A leaf with a float keyword input whose gradient it does not route."""
    _reentrant = True

    def forward(self, x, mask=None):
        return x * mask

    def backward(self, grad_out):
        return grad_out


class KwargFloat(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(3, 3)
        self.gate = Gate()

    def forward(self, x):
        h = self.fc(x)
        return self.gate(h, mask=self.fc(x))


class NumpyOutput(NumpyBetween):
    def forward(self, x):
        return np.tanh(self.fc2(self.fc1(x)))


@pytest.mark.parametrize("model,shape,match", [
    (NumpyBetween, (2, 3), r"layer 'fc2' \(Linear\): its input 0 \(shape \(2, 3\), float32\) "
                           r"was neither produced by a layer"),
    (SliceBetween, (2, 3), r"layer 'fc2' \(Linear\): its input 0 .* is a view .* of the output "
                           r"of layer 'fc1'"),
    (KwargFloat, (2, 3), r"layer 'gate' \(Gate\) got float array\(s\) as keyword argument "
                         r"'mask'"),
    (NumpyOutput, (2, 3), r"the output of NumpyOutput: its input 0 .* was neither produced"),
])
def test_undifferentiable_flow_is_refused_on_backward(model, shape, match, rng):
    m = model()
    y = m(rng.standard_normal(shape).astype(np.float32))  # the forward runs (inference is fine)
    with pytest.raises(ValueError, match=match):
        m.backward(np.ones_like(y))


def test_backward_without_forward_and_under_no_grad(rng):
    m = Residual(3)
    with pytest.raises(RuntimeError, match="without a recorded forward"):
        m.backward(np.ones((2, 3), np.float32))
    with nn.no_grad():
        assert not nn.is_grad_enabled()
        m(rng.standard_normal((2, 3)).astype(np.float32))
    assert nn.is_grad_enabled()
    with pytest.raises(RuntimeError, match="without a recorded forward"):
        m.backward(np.ones((2, 3), np.float32))


def test_bad_gradients_and_unused_inputs(rng):
    class Unused(nn.Module):
        def __init__(self):
            super().__init__()
            self.fc = nn.Linear(2, 2)

        def forward(self, a, b):
            return self.fc(a)

    m = Unused()
    a, b = rng.standard_normal((3, 2)).astype(np.float32), rng.standard_normal((3, 2)).astype(np.float32)
    m(a, b)
    with pytest.raises(ValueError, match=r"input 1 \(shape \(3, 2\)\) was not used by any layer"):
        m.backward(np.ones((3, 2), np.float32), input_grad=True)
    ga, gb = m.backward(np.ones((3, 2), np.float32), input_grad=(True, False))
    assert ga.shape == (3, 2) and gb is None
    with pytest.raises(ValueError, match=r"gradient of output 0 must be a float32 array of "
                                         r"shape \(3, 2\)"):
        m.backward(np.ones((3, 3), np.float32))
    with pytest.raises(ValueError, match="one gradient .* per output"):
        m.backward((np.ones((3, 2), np.float32), np.ones((3, 2), np.float32)))
    with pytest.raises(ValueError, match="input_grad must be"):
        m.backward(np.ones((3, 2), np.float32), input_grad=(True,))


def test_concat_of_mismatched_sizes_names_both_layers_and_shapes(rng):
    class Bad(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Conv2d(1, 2, 3, padding=1)
            self.down = nn.MaxPool2d(2)
            self.cat = nn.Concat(1)

        def forward(self, x):
            e = self.enc(x)
            return self.cat(e, self.down(e))

    with pytest.raises(ValueError) as info:
        Bad()(rng.standard_normal((1, 1, 8, 8)).astype(np.float32))
    msg = str(info.value)
    assert "input 1 has shape (1, 2, 4, 4) but input 0 has (1, 2, 8, 8)" in msg
    assert "layer 'cat' (Concat)" in msg
    assert "output of layer 'enc' (Conv2d) with shape (1, 2, 8, 8)" in msg
    assert "output of layer 'down' (MaxPool2d) with shape (1, 2, 4, 4)" in msg


def test_cycles_are_refused():
    a, b = nn.Sequential(nn.Linear(2, 2)), nn.Sequential()
    with pytest.raises(ValueError, match="contain itself"):
        a.add_module("me", a)
    a.add_module("b", b)
    with pytest.raises(ValueError, match="contain itself"):
        b.append(a)
    with pytest.raises(ValueError, match="contain itself"):
        b.parent = a


# -- containers, state and training ------------------------------------------------------

def test_module_list_and_dict():
    layers = nn.ModuleList([nn.Linear(2, 3), nn.ReLU()])
    layers.append(nn.Linear(3, 1))
    layers.insert(1, nn.Tanh())
    assert [type(m).__name__ for m in layers] == ["Linear", "Tanh", "ReLU", "Linear"]
    assert list(layers.state_dict()) == ["0.weight", "0.bias", "3.weight", "3.bias"]
    del layers[1]
    assert len(layers) == 3 and isinstance(layers[1:], nn.ModuleList)
    heads = nn.ModuleDict({"cls": nn.Linear(3, 4), "reg": nn.Linear(3, 1)})
    heads["aux"] = nn.Linear(3, 2)
    assert heads.keys() == ["cls", "reg", "aux"] and "reg" in heads
    assert list(heads.state_dict())[:2] == ["cls.weight", "cls.bias"]
    heads.pop("reg")
    assert len(heads) == 2
    with pytest.raises(TypeError, match="must be a Module"):
        layers.append(3)
    with pytest.raises(KeyError, match="without '.'"):
        heads["a.b"] = nn.ReLU()


class MultiHead(nn.Module):
    """A trunk with a ModuleList of blocks and a residual skip, trained by fit."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList([nn.Linear(64, 64), nn.Linear(64, 64)])
        self.act = nn.ReLU()
        self.add = nn.Add()
        self.head = nn.Linear(64, 10)

    def forward(self, x):
        h = x
        for block in self.blocks:
            h = self.act(block(h))
        return self.head(self.add(h, x))


def test_graph_model_trains_with_fit_and_saves(tmp_path):
    from sklearn.datasets import load_digits
    digits = load_digits()
    x = (digits.data / 16.0).astype(np.float32)
    y = digits.target
    neuropil.manual_seed(0)
    model = MultiHead()
    opt = neuropil.optim.Adam(model.parameters(), lr=3e-3)
    hist = model.fit(x[:1500], y[:1500], loss=nn.CrossEntropyLoss(), optimizer=opt, epochs=8,
                     batch_size=64, verbose=0)
    assert hist.history["loss"][-1] < hist.history["loss"][0]
    acc = model.evaluate(x[1500:], y[1500:], loss=nn.CrossEntropyLoss())["accuracy"]
    assert acc > 0.9
    pred = model.predict(x[1500:])
    path = tmp_path / "m.safetensors"
    model.save(path)
    other = MultiHead().load(path)
    np.testing.assert_array_equal(other.predict(x[1500:]), pred)
    assert list(model.state_dict())[:2] == ["blocks.0.weight", "blocks.0.bias"]
    rows = model.summary((64,), print_fn=None)["layers"]
    assert [r[0] for r in rows] == ["blocks.0", "act", "blocks.1", "act", "add", "head"]
    assert rows[-1][2] == ("N", 10)


def test_hand_written_loop_matches_fit(rng):
    """The README's loop (forward, loss, backward, step) and fit give the same weights."""
    x = rng.standard_normal((64, 64)).astype(np.float32)
    y = rng.integers(0, 10, 64)
    results = []
    for style in ("loop", "fit"):
        neuropil.manual_seed(1)
        model = MultiHead()
        opt = neuropil.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
        loss = nn.CrossEntropyLoss()
        if style == "loop":
            for lo in range(0, 64, 16):
                opt.zero_grad()
                loss(model(x[lo:lo + 16]), y[lo:lo + 16])
                model.backward(loss.backward())
                opt.step()
        else:
            model.fit(x, y, loss=loss, optimizer=opt, epochs=1, batch_size=16, shuffle=False,
                      verbose=0)
        results.append([p.data.copy() for p in model.parameters()])
    for a, b in zip(*results):
        np.testing.assert_array_equal(a, b)


def test_graph_step_is_bitwise_identical_for_any_thread_count(rng, threads):
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.enc = nn.Conv2d(1, 8, 3, padding=1)
            self.act = nn.ReLU()
            self.pool = nn.MaxPool2d(2)
            self.mid = nn.Conv2d(8, 8, 3, padding=1)
            self.up = nn.Linear(16, 64)
            self.cat = nn.Concat(1)
            self.out = nn.Conv2d(16, 1, 1)

        def forward(self, x):
            e = self.act(self.enc(x))
            m = self.act(self.mid(self.pool(e)))
            u = self.up(m.reshape(-1, 16)).reshape(e.shape)  # a crude upsampling
            return self.out(self.cat(u, e))

    x = rng.standard_normal((4, 1, 16, 16)).astype(np.float32)
    g = rng.standard_normal((4, 1, 16, 16)).astype(np.float32)
    out = []
    for n in (1, 2):
        neuropil.set_num_threads(n)
        neuropil.manual_seed(3)
        model = Tiny()
        model(x)
        model.zero_grad()
        gx = model.backward(g, input_grad=True)
        out.append([gx.copy()] + [p.grad.copy() for p in model.parameters()])
    for a, b in zip(*out):
        np.testing.assert_array_equal(a, b)


def test_encoder_decoder_state_is_routed(rng):
    """A seq2seq model as one graph: the encoder's final state seeds the decoder."""

    class Seq2Seq(nn.Module):
        def __init__(self, cell):
            super().__init__()
            self.enc = cell(3, 4)
            self.dec = cell(2, 4)
            self.head = nn.TimeDistributed(nn.Linear(4, 2))

        def forward(self, src, tgt):
            self.enc(src)
            return self.head(self.dec(tgt, state=self.enc.state))

    for cell in (nn.GRU, nn.LSTM):
        neuropil.manual_seed(9)
        model = _params64(Seq2Seq(cell))
        src, tgt = rng.standard_normal((2, 5, 3)), rng.standard_normal((2, 4, 2))
        r = rng.standard_normal((2, 4, 2))

        def objective():
            return float(np.sum(model(src, tgt) * r))

        objective()
        model.zero_grad()
        gs, gt = model.backward(r, input_grad=True)
        analytic = [gs, gt] + [p.grad.copy() for p in model.enc.parameters()]
        numeric = numeric_grads(objective, [src, tgt] + [p.data for p in model.enc.parameters()])
        for a, n in zip(analytic, numeric):
            close(a, n, 1e-5)


def test_frozen_recurrent_and_embedding_weights_get_no_gradient(rng):
    model = nn.Sequential(nn.Embedding(7, 3), nn.LSTM(3, 4), nn.LastStep(), nn.Linear(4, 2))
    model[0].requires_grad_(False)
    model[1].requires_grad_(False)
    for p in model.parameters():
        p.grad[...] = 5.0
    model(rng.integers(0, 7, (2, 6)))
    model.backward(np.ones((2, 2), np.float32))
    for p in list(model[0].parameters()) + list(model[1].parameters()):
        assert np.all(p.grad == 5.0)
    assert np.all(model[3].weight.grad != 5.0)


def test_readme_graph_example_runs():
    import pathlib
    readme = pathlib.Path(__file__).resolve().parent.parent / "README.md"
    block = readme.read_text().split("## Models beyond a stack")[1]
    code = block.split("```python")[1].split("```")[0]
    env = {}
    exec(compile(code, "README.md", "exec"), env)
    G = env["G"]
    assert all(np.any(p.grad != 0) for p in G.parameters())  # the G step reached G
    assert all(p.requires_grad for p in env["D"].parameters())


def test_trace_lists_calls_values_and_shapes(rng):
    from neuropil.nn.graph import trace
    model = FanOut()
    t = trace(model, rng.standard_normal((2, 4)).astype(np.float32))
    assert t.inputs == ["input0"]
    assert [c.name for c in t.calls] == ["stem", "a", "b.0", "b.1", "cat"]
    assert t.calls[0].inputs == ["input0"] and t.calls[1].inputs == t.calls[0].outputs
    assert t.calls[-1].inputs == [t.calls[1].outputs[0], t.calls[3].outputs[0],
                                  t.calls[0].outputs[0]]
    assert t.outputs == t.calls[-1].outputs and t.shapes[t.outputs[0]] == (2, 10)
    assert model.training  # restored
    single = trace(nn.Linear(4, 3), np.zeros((1, 4), np.float32))
    assert len(single.calls) == 1 and single.shapes[single.outputs[0]] == (1, 3)


def test_post_accumulate_grad_hooks_fire_once_when_final(rng):
    """Each hooked parameter fires once per backward, after its last use (tied weights:
    after the second call), and only for trainable parameters."""
    model = Shared()  # fc called twice
    order = []
    handles = [p.register_post_accumulate_grad_hook(
        lambda p, name=name: order.append((name, p.grad.copy())))
        for name, p in model.named_parameters()]
    x = rng.standard_normal((4, 3)).astype(np.float32)
    model(x)
    model.zero_grad()
    model.backward(np.ones((4, 3), np.float32))
    assert [n for n, _ in order] == ["fc.weight", "fc.bias"]
    np.testing.assert_array_equal(order[0][1], model.fc.weight.grad)  # final when fired
    order.clear()
    model.fc.bias.requires_grad_(False)
    model(x)
    model.backward(np.ones((4, 3), np.float32))
    assert [n for n, _ in order] == ["fc.weight"]
    for h in handles:
        h.remove()
    order.clear()
    model(x)
    model.backward(np.ones((4, 3), np.float32))
    assert order == []
    with pytest.raises(TypeError, match="callable"):
        model.fc.weight.register_post_accumulate_grad_hook(3)


def test_hooks_fire_layer_by_layer_during_the_backward(rng):
    model = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 2))
    seen = []
    model[0].weight.register_post_accumulate_grad_hook(lambda p: seen.append("first"))
    model[2].weight.register_post_accumulate_grad_hook(lambda p: seen.append("last"))
    original = model[0].backward_params
    model[0].backward_params = lambda g: (seen.append("first layer runs"), original(g))
    model(rng.standard_normal((2, 3)).astype(np.float32))
    model.backward(np.ones((2, 2), np.float32))
    assert seen == ["last", "first layer runs", "first"]  # the last layer's fired early


def test_a_reused_layer_keeps_its_first_output_intact(rng):
    """A layer keeping one call's state, called twice in training mode: each call writes
    its own buffers, so the forward is right (only its backward is refused)."""

    class Both(nn.Module):
        def __init__(self):
            super().__init__()
            self.rnn, self.fc, self.add = nn.GRU(3, 3), nn.Linear(3, 3), nn.Add()

        def forward(self, x):
            return self.add(self.rnn(x), self.rnn(self.fc(x)))

    model = Both()
    x = rng.standard_normal((2, 4, 3)).astype(np.float32)
    y = model(x).copy()
    model.eval()
    np.testing.assert_allclose(y, model(x), rtol=1e-6)  # eval returns fresh arrays
    model.train()
    model(x)
    with pytest.raises(ValueError, match="called a second time"):
        model.backward(np.ones_like(y))


def test_summary_of_a_model_with_several_outputs_and_under_no_grad():
    model = TwoInTwoOut()
    lines = []
    with nn.no_grad():  # summary traces the model itself
        rows = model.summary([(3,), (2,)], print_fn=lines.append)["layers"]
    assert [r[0] for r in rows] == ["fa", "fb", "add", "head1", "head2"]
    assert rows[0][2] == ("N", 4) and "Input shape: (N, 3), (N, 2)" in lines[0]
    lstm = nn.Sequential(nn.LSTM(3, 4))
    text = []
    lstm.summary((5, 3), print_fn=text.append)
    row = [line for line in text[0].splitlines() if line.startswith("0 (LSTM)")][0]
    assert "(N, 5, 4)" in row and row.count("(N") == 1  # the output, not the state
