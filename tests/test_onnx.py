"""ONNX export: every layer and the examples' models, checked by onnx.checker and run in
ONNX Runtime against neuropil's own outputs (float32, 1e-4), at a batch size other than
the example's (the batch axis must stay dynamic); load_weights reads the files back."""
import subprocess
import sys

import numpy as np
import pytest

import neuropil
from neuropil import nn

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
npx = pytest.importorskip("neuropil.onnx")

TOL = 1e-4


def _session(proto):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.log_severity_level = 3
    return ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def _neuropil_eval(model, x):
    was = model.training
    model.eval()
    try:
        return np.array(model(x), copy=True)
    finally:
        model.train(was)


def _check(model, example, run_input, **kw):
    """Export, check, run in ORT on ``run_input``; return (proto, max |ort - neuropil|)."""
    proto = npx.export(model, example, **kw)
    onnx.checker.check_model(proto, full_check=True)
    got = _session(proto).run(None, {"input": run_input})[0]
    want = _neuropil_eval(model, run_input)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=TOL, atol=TOL)
    return proto, float(np.max(np.abs(got - want))) if got.size else 0.0


def _floats(rng, shape):
    return rng.standard_normal(shape).astype(np.float32)


# (id, model factory, input shape without batch, input kind); every layer of neuropil.nn
# appears at least once, the recurrent layers with each option
LAYER_CASES = [
    ("Linear", lambda: nn.Linear(7, 5), (7,), "f"),
    ("Linear-nobias", lambda: nn.Linear(7, 5, bias=False), (7,), "f"),
    ("Linear-3d", lambda: nn.Linear(7, 5), (4, 7), "f"),
    ("Linear-3d-nobias", lambda: nn.Linear(7, 5, bias=False), (4, 7), "f"),
    ("ReLU", nn.ReLU, (3, 5), "f"),
    ("Sigmoid", nn.Sigmoid, (6,), "f"),
    ("Tanh", nn.Tanh, (2, 3, 4), "f"),
    ("Softmax", nn.Softmax, (9,), "f"),
    ("Softmax-dim1", lambda: nn.Softmax(dim=1), (4, 3), "f"),
    ("Identity", nn.Identity, (5,), "f"),
    ("Dropout", lambda: nn.Dropout(0.5), (5,), "f"),
    ("Flatten", nn.Flatten, (2, 3, 4), "f"),
    ("Flatten-2-3", lambda: nn.Flatten(2, 3), (2, 3, 4, 5), "f"),
    ("Flatten-0", lambda: nn.Flatten(0), (3, 2), "f"),
    ("Conv2d", lambda: nn.Conv2d(3, 4, 3), (3, 9, 8), "f"),
    ("Conv2d-stride-pad-dil", lambda: nn.Conv2d(2, 3, (3, 2), stride=(2, 1), padding=(1, 2),
                                                dilation=(2, 1)), (2, 11, 7), "f"),
    ("Conv2d-same-nobias", lambda: nn.Conv2d(1, 2, 5, padding="same", bias=False),
     (1, 7, 7), "f"),
    ("MaxPool2d", lambda: nn.MaxPool2d(2), (3, 8, 7), "f"),
    ("MaxPool2d-stride-pad", lambda: nn.MaxPool2d(3, stride=2, padding=1), (2, 9, 10), "f"),
    ("AvgPool2d", lambda: nn.AvgPool2d(2), (3, 8, 7), "f"),
    ("AvgPool2d-pad-include", lambda: nn.AvgPool2d(3, stride=2, padding=1), (2, 9, 10), "f"),
    ("AvgPool2d-pad-exclude", lambda: nn.AvgPool2d(3, stride=2, padding=1,
                                                   count_include_pad=False), (2, 9, 10), "f"),
    ("Conv2d-groups", lambda: nn.Conv2d(4, 6, 3, padding=1, groups=2), (4, 6, 5), "f"),
    ("Conv2d-depthwise", lambda: nn.Conv2d(3, 3, (3, 1), stride=2, groups=3), (3, 9, 4), "f"),
    ("MaxPool2d-ceil", lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True), (2, 8, 9), "f"),
    ("MaxPool2d-ceil-pad", lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
     (2, 6, 7), "f"),
    ("AvgPool2d-ceil", lambda: nn.AvgPool2d(3, stride=2, ceil_mode=True), (2, 8, 9), "f"),
    ("AvgPool2d-ceil-pad", lambda: nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True),
     (2, 6, 7), "f"),
    ("AvgPool2d-ceil-pad-exclude", lambda: nn.AvgPool2d(3, stride=2, padding=1, ceil_mode=True,
                                                        count_include_pad=False), (2, 6, 7), "f"),
    ("MaxPool2d-ceil-last-window-dropped", lambda: nn.MaxPool2d(2, padding=1, ceil_mode=True),
     (2, 5, 5), "f"),
    ("MaxPool2d-ceil-one-axis-dropped", lambda: nn.MaxPool2d(2, stride=(3, 2), ceil_mode=True),
     (2, 3, 7), "f"),
    ("AvgPool2d-ceil-last-window-dropped", lambda: nn.AvgPool2d(
        2, padding=1, ceil_mode=True), (2, 5, 5), "f"),
    ("Embedding", lambda: nn.Embedding(11, 4), (6,), "i"),
    ("LastStep", nn.LastStep, (5, 3), "f"),
    ("LastStep-time-major", lambda: nn.LastStep(batch_first=False), None, "f"),
    ("TimeDistributed", lambda: nn.TimeDistributed(nn.Linear(3, 2)), (5, 3), "f"),
]
for _cls in (nn.RNN, nn.LSTM, nn.GRU):
    _n = _cls.__name__
    LAYER_CASES += [
        (f"{_n}", lambda c=_cls: c(3, 4), (5, 3), "f"),
        (f"{_n}-bidirectional", lambda c=_cls: c(3, 4, bidirectional=True), (5, 3), "f"),
        (f"{_n}-3layers", lambda c=_cls: c(3, 4, num_layers=3, dropout=0.3), (5, 3), "f"),
        (f"{_n}-2layers-bidir-nobias", lambda c=_cls: c(3, 4, num_layers=2, bias=False,
                                                        bidirectional=True), (5, 3), "f"),
        (f"{_n}-time-major", lambda c=_cls: c(3, 4, batch_first=False, num_layers=2,
                                             bidirectional=True), None, "f"),
        (f"{_n}-T1", lambda c=_cls: c(3, 4, bidirectional=True), (1, 3), "f"),
    ]


class _Merge(nn.Module):
    """A merge layer applied to x and two functions of it (the merges take several inputs)."""

    def __init__(self, merge, three=False):
        super().__init__()
        self.merge, self.three = merge, three
        self.a, self.b = nn.Tanh(), nn.Sigmoid()

    def forward(self, x):
        return self.merge(x, self.a(x), self.b(x)) if self.three else self.merge(x, self.a(x))


def _if_layer(name, *cases):
    """Cases of a layer that may not be in this build of neuropil.nn yet."""
    return list(cases) if hasattr(nn, name) else []


def _batch_norm(cls, c, **kw):
    def make():
        layer = getattr(nn, cls)(c, **kw)
        g = np.random.default_rng(11)
        for p in layer.parameters():
            p.data[...] = g.uniform(0.5, 1.5, p.shape) * g.choice([-1, 1], p.shape)
        if layer.track_running_stats:
            layer.running_mean[...] = g.standard_normal(c)
            layer.running_var[...] = g.uniform(0.2, 3.0, c)
        return layer
    return make


LAYER_CASES += (
    _if_layer("ConvTranspose2d",
              ("ConvTranspose2d", lambda: nn.ConvTranspose2d(3, 4, 3), (3, 5, 4), "f"),
              ("ConvTranspose2d-stride-pad-outpad", lambda: nn.ConvTranspose2d(
                  2, 3, (3, 4), stride=2, padding=1, output_padding=1), (2, 4, 5), "f"),
              ("ConvTranspose2d-groups-dilation-nobias", lambda: nn.ConvTranspose2d(
                  4, 6, 3, stride=(1, 2), padding=(2, 1), groups=2, dilation=2, bias=False),
               (4, 6, 5), "f"))
    + _if_layer("LeakyReLU", ("LeakyReLU", lambda: nn.LeakyReLU(), (3, 4), "f"),
              ("LeakyReLU-negative-slope", lambda: nn.LeakyReLU(-0.5), (7,), "f"))
    + _if_layer("ELU", ("ELU", lambda: nn.ELU(), (3, 4), "f"),
                ("ELU-alpha", lambda: nn.ELU(0.3), (7,), "f"))
    + _if_layer("GELU", ("GELU", lambda: nn.GELU(), (3, 4), "f"),
                ("GELU-tanh", lambda: nn.GELU(approximate="tanh"), (7,), "f"))
    + _if_layer("Softplus", ("Softplus", lambda: nn.Softplus(), (3, 4), "f"),
                ("Softplus-beta-threshold", lambda: nn.Softplus(beta=2.0, threshold=0.5), (9,),
                 "f"),
                ("Softplus-negative-beta", lambda: nn.Softplus(beta=-0.7, threshold=1.0), (9,),
                 "f"))
    + _if_layer("BatchNorm1d", ("BatchNorm1d", _batch_norm("BatchNorm1d", 5), (5,), "f"),
                ("BatchNorm1d-NCL", _batch_norm("BatchNorm1d", 3, eps=1e-3), (3, 7), "f"),
                ("BatchNorm1d-no-affine", _batch_norm("BatchNorm1d", 4, affine=False), (4, 2),
                 "f"))
    + _if_layer("BatchNorm2d", ("BatchNorm2d", _batch_norm("BatchNorm2d", 3), (3, 5, 4), "f"),
                ("BatchNorm2d-batch-stats", _batch_norm("BatchNorm2d", 3,
                                                        track_running_stats=False),
                 (3, 5, 4), "f"),
                ("BatchNorm2d-batch-stats-no-affine", _batch_norm(
                    "BatchNorm2d", 2, affine=False, track_running_stats=False), (2, 3, 3), "f"))
    + _if_layer("Upsample",
                ("Upsample", lambda: nn.Upsample(scale_factor=2), (3, 4, 5), "f"),
                ("Upsample-nearest-1.5", lambda: nn.Upsample(scale_factor=1.5), (2, 5, 7), "f"),
                ("Upsample-nearest-size", lambda: nn.Upsample(size=(7, 3)), (2, 5, 4), "f"),
                ("Upsample-nearest-1d", lambda: nn.Upsample(scale_factor=3), (2, 5), "f"),
                ("Upsample-bilinear", lambda: nn.Upsample(scale_factor=2, mode="bilinear"),
                 (2, 4, 5), "f"),
                ("Upsample-bilinear-aligned", lambda: nn.Upsample(
                    scale_factor=(2, 3), mode="bilinear", align_corners=True), (2, 4, 5), "f"),
                ("Upsample-bilinear-size", lambda: nn.Upsample(size=(9, 4), mode="bilinear"),
                 (2, 4, 5), "f"),
                ("Upsample-bilinear-recompute", lambda: nn.Upsample(
                    scale_factor=1.7, mode="bilinear", recompute_scale_factor=True), (1, 5, 6),
                 "f"),
                ("Upsample-linear-1d", lambda: nn.Upsample(scale_factor=2.5, mode="linear"),
                 (3, 6), "f"),
                ("Upsample-linear-1d-aligned", lambda: nn.Upsample(
                    size=11, mode="linear", align_corners=True), (3, 6), "f"))
    + _if_layer("UpsamplingNearest2d", ("UpsamplingNearest2d",
                                        lambda: nn.UpsamplingNearest2d(scale_factor=2),
                                        (2, 3, 3), "f"))
    + _if_layer("UpsamplingBilinear2d", ("UpsamplingBilinear2d",
                                         lambda: nn.UpsamplingBilinear2d(size=(5, 8)),
                                         (2, 3, 3), "f"))
    + _if_layer("Dropout2d", ("Dropout2d", lambda: nn.Dropout2d(0.4), (3, 4, 4), "f"))
)
LAYER_CASES += [
    ("Concat", lambda: _Merge(nn.Concat(dim=1)), (3, 4), "f"),
    ("Concat-last", lambda: _Merge(nn.Concat(dim=-1)), (3, 4), "f"),
    ("Add", lambda: _Merge(nn.Add()), (3, 4), "f"),
    ("Add-three", lambda: _Merge(nn.Add(), three=True), (5,), "f"),
]
LAYER_CASES.append(("RNN-relu-bidir", lambda: nn.RNN(3, 4, nonlinearity="relu",
                                                    bidirectional=True, num_layers=2),
                    (5, 3), "f"))


@pytest.mark.parametrize("case", LAYER_CASES, ids=[c[0] for c in LAYER_CASES])
def test_layer_matches_onnxruntime(case, rng):
    name, factory, shape, kind = case
    neuropil.manual_seed(1)
    model = factory()
    if shape is None:  # time-major recurrent input (T, N, F): the batch is axis 1
        example, run = _floats(rng, (5, 2, 3)), _floats(rng, (5, 4, 3))
        _check(model, example, run, dynamic_axes={1: "batch"})
        return
    if kind == "i":
        example = rng.integers(0, 11, (2,) + shape)
        run = rng.integers(0, 11, (5,) + shape)
    else:
        example, run = _floats(rng, (2,) + shape), _floats(rng, (5,) + shape)
    _check(model, example, run)


def test_every_layer_class_has_a_converter():
    """A layer added to neuropil.nn without an ONNX converter fails here, by name."""
    layers = [getattr(nn, n) for n in nn.__all__]
    layers = [c for c in layers if isinstance(c, type) and issubclass(c, nn.Module)
              and c is not nn.Module and not c.__name__.endswith("Loss")  # losses train only
              and c.forward is not nn.Module.forward]  # ModuleList/ModuleDict: never called
    missing = [c.__name__ for c in layers if npx._registry.converter_for(c) is None]
    assert not missing, f"no ONNX converter for {missing}: add one in neuropil/onnx"
    exercised = {c[0].split("-")[0] for c in LAYER_CASES} | {"Sequential"}
    untested = [c.__name__ for c in layers if c.__name__ not in exercised]
    assert not untested, f"add {untested} to LAYER_CASES"


def test_recurrent_sequence_length_may_be_dynamic(rng):
    neuropil.manual_seed(2)
    model = nn.Sequential(nn.GRU(3, 6, bidirectional=True), nn.TimeDistributed(nn.Linear(12, 2)))
    _check(model, _floats(rng, (2, 5, 3)), _floats(rng, (3, 9, 3)),
           dynamic_axes={0: "batch", 1: "time"})
    proto = npx.export(model, _floats(rng, (2, 5, 3)), dynamic_axes={0: "batch", 1: "time"})
    dims = proto.graph.output[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", "time", 2]


def test_gate_orders_follow_onnx(rng):
    """Export a one-step LSTM/GRU whose gates are told apart by their biases alone and read
    the gate rows ONNX Runtime sees: i,o,f,c for the LSTM and z,r,h for the GRU."""
    for cls, order in ((nn.LSTM, [0, 3, 1, 2]), (nn.GRU, [1, 0, 2])):
        layer = cls(1, 1)
        for p in layer.parameters():
            p.data[...] = 0
        gates = len(order)
        layer.bias_ih_l0.data[:] = np.arange(1, gates + 1)
        proto = npx.export(nn.Sequential(layer), np.zeros((1, 1, 1), np.float32))
        # evaluate the graph's B input with ONNX Runtime by exposing it as an output
        b_name = next(n for n in proto.graph.node if n.op_type in ("LSTM", "GRU")).input[3]
        proto.graph.output.append(onnx.helper.make_tensor_value_info(b_name, 1, None))
        b = _session(proto).run([b_name], {"input": np.zeros((1, 1, 1), np.float32)})[0]
        assert b.shape == (1, 2 * gates)
        np.testing.assert_array_equal(b[0, :gates], np.array(order) + 1)


def _digits_mlp():
    return nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(128, 64), nn.ReLU(), nn.Dropout(0.2), nn.Linear(64, 10))


def _digits_cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
                         nn.Linear(128, 10))


def _fashion_cnn():
    return nn.Sequential(nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                         nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))


def _fashion_mlp():
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 512), nn.ReLU(), nn.Dropout(0.2),
                         nn.Linear(512, 256), nn.ReLU(), nn.Dropout(0.2), nn.Linear(256, 10))


def _char_lm():  # examples/char_lm.py's layers, as a Sequential (its own class takes state=)
    return nn.Sequential(nn.Embedding(60, 32), nn.LSTM(32, 64, num_layers=2),
                         nn.TimeDistributed(nn.Linear(64, 60)))


def _sklearn_mlp():  # examples/sklearn_digits.py: the estimators' default module
    from neuropil.sklearn import mlp
    return mlp(64, 10, hidden=(64,))


# the examples' architectures (examples/*.py build theirs inline; keep these in step)
EXAMPLE_MODELS = [
    ("digits_mlp", _digits_mlp, (64,), "f"),
    ("digits_cnn", _digits_cnn, (1, 8, 8), "f"),
    ("digits_rnn-lstm", lambda: nn.Sequential(nn.LSTM(8, 64), nn.LastStep(),
                                              nn.Linear(64, 10)), (8, 8), "f"),
    ("digits_rnn-gru", lambda: nn.Sequential(nn.GRU(8, 64), nn.LastStep(),
                                             nn.Linear(64, 10)), (8, 8), "f"),
    ("fashion_mnist_cnn", _fashion_cnn, (1, 28, 28), "f"),
    ("fashion_mnist_mlp", _fashion_mlp, (28, 28), "f"),
    ("linear_regression", lambda: nn.Linear(3, 3), (3,), "f"),
    ("char_lm", _char_lm, (16,), "i"),
    ("sklearn_digits-mlp", lambda: _sklearn_mlp(), (64,), "f"),
]


@pytest.mark.parametrize("case", EXAMPLE_MODELS, ids=[c[0] for c in EXAMPLE_MODELS])
def test_example_models_match_onnxruntime(case, rng):
    name, factory, shape, kind = case
    if name.startswith("sklearn"):
        pytest.importorskip("sklearn")
    neuropil.manual_seed(3)
    model = factory()
    if kind == "i":
        example, run = rng.integers(0, 60, (2,) + shape), rng.integers(0, 60, (7,) + shape)
    else:
        example, run = _floats(rng, (2,) + shape), _floats(rng, (7,) + shape)
    _check(model, example, run)


def test_trained_model_round_trip(tmp_path, rng):
    """A trained model: the file matches it, and load_weights into a fresh model of the
    same architecture gives the same outputs (and can be trained further)."""
    neuropil.manual_seed(4)
    x = _floats(rng, (64, 1, 8, 8))
    y = rng.integers(0, 10, 64)
    model = _digits_cnn()
    model.fit(x, y, loss=nn.CrossEntropyLoss(), optimizer="adam", epochs=1, verbose=0)
    path = tmp_path / "cnn.onnx"
    npx.export(model, x[:4], path)
    assert path.stat().st_size > 0
    neuropil.manual_seed(99)
    fresh = _digits_cnn()
    assert not np.allclose(_neuropil_eval(fresh, x), _neuropil_eval(model, x))
    assert npx.load_weights(fresh, path) is fresh
    np.testing.assert_array_equal(_neuropil_eval(fresh, x), _neuropil_eval(model, x))
    fresh.fit(x, y, loss=nn.CrossEntropyLoss(), optimizer="sgd", epochs=1, verbose=0)


def test_initializers_are_the_state_dict(rng):
    neuropil.manual_seed(5)
    model = nn.Sequential(nn.Embedding(9, 4), nn.LSTM(4, 5, num_layers=2, bidirectional=True),
                          nn.LastStep(), nn.Linear(10, 3))
    proto = npx.export(model, rng.integers(0, 9, (2, 6)))
    inits = {i.name: onnx.numpy_helper.to_array(i) for i in proto.graph.initializer}
    state = model.state_dict()
    assert list(inits) == list(state)
    for k in state:
        np.testing.assert_array_equal(inits[k], state[k])


def test_shared_layer_is_written_once(rng):
    neuropil.manual_seed(6)
    shared = nn.Linear(4, 4)
    model = nn.Sequential(shared, nn.Tanh(), shared)
    proto, _ = _check(model, _floats(rng, (2, 4)), _floats(rng, (3, 4)))
    assert [i.name for i in proto.graph.initializer] == ["0.weight", "0.bias"]


def test_load_weights_names_every_mismatch(tmp_path, rng):
    neuropil.manual_seed(7)
    path = tmp_path / "m.onnx"
    npx.export(nn.Sequential(nn.Linear(4, 3), nn.ReLU(), nn.Linear(3, 2)), _floats(rng, (1, 4)),
               path)
    wrong = nn.Sequential(nn.Linear(4, 5), nn.ReLU(), nn.Linear(5, 2), nn.Linear(2, 2))
    before = wrong.state_dict()
    with pytest.raises(ValueError) as err:
        npx.load_weights(wrong, path)
    msg = str(err.value)
    for needle in ("0.weight: the model has shape (5, 4), the file (3, 4)", "2.weight",
                   "missing initializers: 3.weight (2, 2), 3.bias (2,)"):
        assert needle in msg
    for k, v in wrong.state_dict().items():  # nothing changed
        np.testing.assert_array_equal(v, before[k])
    # unexpected initializers: strict refuses, strict=False loads what matches
    small = nn.Sequential(nn.Linear(4, 3))
    with pytest.raises(ValueError, match="no place for: 2.weight, 2.bias"):
        npx.load_weights(small, path)
    npx.load_weights(small, path, strict=False)


def test_load_weights_bad_files(tmp_path):
    model = nn.Sequential(nn.Linear(2, 2))
    with pytest.raises(FileNotFoundError):
        npx.load_weights(model, tmp_path / "absent.onnx")
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"\x00\xffnot a protobuf" * 10)
    with pytest.raises(ValueError, match="not a readable ONNX file"):
        npx.load_weights(model, junk)
    with pytest.raises(TypeError):
        npx.load_weights(model, 3)
    with pytest.raises(TypeError):
        npx.load_weights("model", junk)


class _Custom(nn.Module):
    def forward(self, x):
        return x * 2

    def backward(self, g):
        return g * 2


class _Composite(nn.Module):
    def __init__(self):
        super().__init__()
        self.a = nn.Linear(2, 2)

    def forward(self, x):
        return self.a(x) + x


class _MyLinear(nn.Linear):  # own forward: the Linear converter would lie
    def forward(self, x):
        return super().forward(x) * 3


def test_clear_errors_name_the_layer(rng):
    x = _floats(rng, (2, 2))
    with pytest.raises(npx.ExportError, match=r"layer '1' \(_Custom"):
        npx.export(nn.Sequential(nn.Linear(2, 2), _Custom()), x)
    with pytest.raises(npx.ExportError, match=r"layer '0' \(_Composite.*cannot be traced"):
        npx.export(nn.Sequential(_Composite()), x)  # NumPy arithmetic between layers
    with pytest.raises(npx.ExportError, match="_MyLinear"):
        npx.export(nn.Sequential(_MyLinear(2, 2)), x)
    with pytest.raises(npx.ExportError, match="model.float"):
        npx.export(nn.Sequential(nn.Linear(2, 2)).double(), x)
    with pytest.raises(ValueError, match=r"expected input \(N, 3\)"):  # neuropil's own check
        npx.export(nn.Linear(3, 2), x)
    with pytest.raises(ValueError, match="example_input"):
        npx.export(nn.Linear(2, 2), np.zeros((0, 2), np.float32))
    with pytest.raises(TypeError, match="example_input"):
        npx.export(nn.Linear(2, 2), np.array([["a", "b"]]))
    with pytest.raises(ValueError, match="NaN"):
        npx.export(nn.Linear(2, 2), np.full((1, 2), np.nan, np.float32))
    with pytest.raises(TypeError, match="neuropil.nn.Module"):
        npx.export(lambda v: v, x)
    with pytest.raises(ValueError, match="dynamic axis 5"):
        npx.export(nn.Linear(2, 2), x, dynamic_axes={5: "n"})
    with pytest.raises(npx.ExportError, match="rounds one axis up and the other down"):
        npx.export(nn.AvgPool2d(2, stride=(3, 2), ceil_mode=True),
                   _floats(np.random.default_rng(0), (1, 1, 3, 7)))
    with pytest.raises(FileNotFoundError, match="directory"):
        npx.export(nn.Linear(2, 2), x, "/nonexistent-dir-for-test/m.onnx")


def test_a_registered_converter_exports_a_custom_layer(rng):
    @npx.register(_Custom)
    def _double(ctx, layer, inputs, output):
        two = ctx.constant(np.array(2, np.float32), "two")
        return ctx.node("Mul", [inputs[0].name, two])
    try:
        model = nn.Sequential(nn.Linear(3, 3), _Custom())
        _check(model, _floats(rng, (2, 3)), _floats(rng, (4, 3)))
    finally:
        del npx._registry._CONVERTERS[_Custom]


def test_export_restores_training_modes_and_writes_atomically(tmp_path, rng):
    model = nn.Sequential(nn.Linear(2, 2), nn.Dropout(0.5))
    model[1].eval()
    path = tmp_path / "m.onnx"
    path.write_bytes(b"old")
    with pytest.raises(npx.ExportError):
        npx.export(nn.Sequential(nn.Linear(2, 2), _Custom()), _floats(rng, (1, 2)), path)
    assert path.read_bytes() == b"old"  # a failed export leaves the old file
    npx.export(model, _floats(rng, (1, 2)), path)
    assert model.training and model[0].training and not model[1].training
    assert onnx.load(str(path)).opset_import[0].version == npx.OPSET == 17
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary left


def test_import_neuropil_imports_neither_onnx_nor_sklearn():
    code = ("import sys, neuropil; bad = [m for m in ('onnx', 'onnxruntime', 'sklearn') "
            "if m in sys.modules]; print(bad); sys.exit(1 if bad else 0)")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout + proc.stderr


# -- graph models: walked along their recorded forward ------------------------------------

class _Residual(nn.Module):  # README's residual block
    def __init__(self, n):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(n, n), nn.Linear(n, n)
        self.act, self.add = nn.ReLU(), nn.Add()

    def forward(self, x):
        return self.act(self.add(x, self.fc2(self.act(self.fc1(x)))))


class _TinyUNet(nn.Module):  # skips by concatenation, a reshape, layers used twice
    def __init__(self):
        super().__init__()
        self.down = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.mid1, self.mid2 = nn.Conv2d(4, 4, 3, padding=1), nn.Conv2d(4, 4, 3, padding=1)
        self.act = nn.ReLU()
        self.cat = nn.Concat(dim=1)
        self.fc = nn.Linear(8 * 4 * 4, 8 * 4 * 4)
        self.head = nn.Linear(8 * 4 * 4, 3)

    def forward(self, x):
        d = self.down(x)                              # (N, 4, 8, 8)
        p = self.pool(d)                              # (N, 4, 4, 4)
        m = self.act(self.mid2(self.act(self.mid1(p))))
        h = self.cat(p, m)                            # (N, 8, 4, 4)
        f = h.reshape(len(h), -1)
        return self.head(self.act(self.fc(self.act(self.fc(f)))))  # fc shared


class _TwoInTwoOut(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(3, 4), nn.Linear(5, 4)
        self.add, self.cat = nn.Add(), nn.Concat(dim=1)
        self.out1, self.out2 = nn.Linear(4, 2), nn.Linear(8, 1)

    def forward(self, x, z):
        ha, hb = self.a(x), self.b(z)
        return self.out1(self.add(ha, hb)), self.out2(self.cat(ha, hb))


class _Seq2Seq(nn.Module):  # the encoder's final state seeds the decoder: state in and out
    def __init__(self, cls, **kw):
        super().__init__()
        self.enc, self.dec = cls(3, 6, **kw), cls(2, 6, **kw)
        d = 2 if kw.get("bidirectional") else 1
        self.head = nn.TimeDistributed(nn.Linear(6 * d, 4))

    def forward(self, src, tgt):
        self.enc(src)
        return self.head(self.dec(tgt, state=self.enc.state))


class _StateOut(nn.Module):  # the final state as a model output
    def __init__(self):
        super().__init__()
        self.lstm = nn.LSTM(3, 5, num_layers=2, bidirectional=True)
        self.head = nn.Linear(10, 2)

    def forward(self, x):
        y = self.lstm(x)
        h, c = self.lstm.state
        return self.head(y), h, c


def _run_all(proto, feeds):
    return _session(proto).run(None, feeds)


def _eval_outputs(model, xs):
    model.eval()
    try:
        out = model(*xs)
    finally:
        model.train()
    return [np.array(o) for o in (out if isinstance(out, tuple) else (out,))]


GRAPH_CASES = [
    ("residual-in-Sequential", lambda: nn.Sequential(nn.Linear(6, 8), _Residual(8),
                                                     _Residual(8), nn.Linear(8, 3)), [(6,)]),
    ("residual-alone", lambda: _Residual(5), [(5,)]),
    ("tiny-unet", _TinyUNet, [(1, 8, 8)]),
    ("two-inputs-two-outputs", _TwoInTwoOut, [(3,), (5,)]),
    ("seq2seq-lstm", lambda: _Seq2Seq(nn.LSTM), [(7, 3), (4, 2)]),
    ("seq2seq-gru-2layers-bidir", lambda: _Seq2Seq(nn.GRU, num_layers=2, bidirectional=True),
     [(7, 3), (4, 2)]),
    ("seq2seq-rnn-time-major", lambda: _Seq2Seq(nn.RNN, batch_first=False), None),
    ("lstm-state-outputs", _StateOut, [(6, 3)]),
]


@pytest.mark.parametrize("case", GRAPH_CASES, ids=[c[0] for c in GRAPH_CASES])
def test_graph_models_match_onnxruntime(case, rng):
    name, factory, shapes = case
    neuropil.manual_seed(8)
    model = factory()
    if shapes is None:  # time-major seq2seq: the batch is axis 1 of both inputs
        ex = [_floats(rng, (7, 2, 3)), _floats(rng, (4, 2, 2))]
        run = [_floats(rng, (7, 5, 3)), _floats(rng, (4, 5, 2))]
        dyn = [{1: "batch"}, {1: "batch"}]
    else:
        ex = [_floats(rng, (2,) + s) for s in shapes]
        run = [_floats(rng, (5,) + s) for s in shapes]
        dyn = None
    proto = npx.export(model, tuple(ex) if len(ex) > 1 else ex[0], dynamic_axes=dyn)
    onnx.checker.check_model(proto, full_check=True)
    names = [i.name for i in proto.graph.input]
    got = _run_all(proto, dict(zip(names, run)))
    want = _eval_outputs(model, run)
    assert len(got) == len(want) == len(proto.graph.output)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=TOL, atol=TOL)
    inits = [i.name for i in proto.graph.initializer]
    assert inits == list(model.state_dict())  # every weight once, by its state_dict key


def test_graph_model_names_and_round_trip(tmp_path, rng):
    neuropil.manual_seed(9)
    model = _TwoInTwoOut()
    path = tmp_path / "two.onnx"
    proto = npx.export(model, (_floats(rng, (2, 3)), _floats(rng, (2, 5))), path,
                       input_name=["x", "z"], output_name=["logits", "score"])
    assert [i.name for i in proto.graph.input] == ["x", "z"]
    assert [o.name for o in proto.graph.output] == ["logits", "score"]
    dims = [[d.dim_param or d.dim_value for d in o.type.tensor_type.shape.dim]
            for o in proto.graph.output]
    assert dims == [["batch", 2], ["batch", 1]]
    fresh = _TwoInTwoOut()
    npx.load_weights(fresh, path)
    xs = [_floats(rng, (4, 3)), _floats(rng, (4, 5))]
    for a, b in zip(_eval_outputs(fresh, xs), _eval_outputs(model, xs)):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="input_name"):
        npx.export(model, (xs[0], xs[1]), input_name="x")


class _Lengths(nn.Module):
    def __init__(self):
        super().__init__()
        self.gru, self.last = nn.GRU(3, 4), nn.LastStep()

    def forward(self, x):
        lengths = np.full(len(x), 2)
        return self.last(self.gru(x, lengths=lengths), lengths=lengths)


class _IntInput(nn.Module):
    def __init__(self):
        super().__init__()
        self.emb, self.fc = nn.Embedding(5, 3), nn.Linear(3, 2)

    def forward(self, idx):
        return self.fc(self.emb(idx))


class _Detached(nn.Module):
    """A constant offset computed in the forward and marked with nn.detach, and a buffer."""

    def __init__(self):
        super().__init__()
        self.fc, self.add = nn.Linear(3, 3), nn.Add()
        self.register_buffer("bias2", np.full((1, 3), 0.5, np.float32))
        self.cat = nn.Concat(0)

    def forward(self, x):
        return self.cat(self.add(self.fc(x), nn.detach(np.ones((len(x), 3), np.float32))),
                        self.bias2)


class _LstmTwice(nn.Module):
    """A layer that keeps one call's state, called twice: not trainable end to end, but
    its forward exports."""

    def __init__(self):
        super().__init__()
        self.rnn, self.fc, self.add = nn.LSTM(3, 3), nn.Linear(3, 3), nn.Add()

    def forward(self, x):
        return self.add(self.rnn(x), self.rnn(self.fc(x)))


def test_graph_models_refused_clearly(rng):
    with pytest.raises(npx.ExportError, match="does not reproduce"):
        npx.export(_Lengths(), _floats(rng, (2, 4, 3)))  # lengths= is invisible to the walk


def test_graph_models_with_integer_inputs_constants_and_reused_layers(rng):
    neuropil.manual_seed(1)
    _check(_IntInput(), rng.integers(0, 5, (2, 3)), rng.integers(0, 5, (4, 3)))
    seq = nn.Sequential(nn.Embedding(5, 3), nn.Linear(3, 2))
    _check(seq, rng.integers(0, 5, (2, 3)), rng.integers(0, 5, (4, 3)))
    x = _floats(rng, (2, 3))
    _check(_Detached(), x, x)
    neuropil.manual_seed(2)
    _check(_LstmTwice(), _floats(rng, (2, 4, 3)), _floats(rng, (2, 4, 3)))
