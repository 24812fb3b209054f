"""Recurrent training throughput: neuropil vs a NumPy BPTT step vs PyTorch, same run.

Workload (the issue's): T=32 steps, batch 32, input 64, hidden 128, many-to-one
(last step) -> Linear(128, 10) -> softmax cross-entropy -> plain SGD (lr 0.01), for
RNN (tanh), LSTM and GRU, float32. Sequences per second of one full training step
(forward, backward, update); the NumPy step (bench/numpy_rnn.py) is checked against
neuropil's loss and gradients before anything is timed.
"""
from __future__ import annotations

import numpy as np

import neuropil
from neuropil import nn, optim
from _harness import table
from numpy_rnn import NumpyRecurrentClassifier

T, N, I, H, K = 32, 32, 64, 128, 10
LR = 0.01
CELLS = [("RNN", "rnn_tanh", nn.RNN), ("LSTM", "lstm", nn.LSTM), ("GRU", "gru", nn.GRU)]


def neuropil_model(cls, seed=0):
    rnn = cls(I, H, rng=seed)
    model = nn.Sequential(rnn, nn.LastStep(), nn.Linear(H, K, rng=seed + 1))
    return model, rnn


def numpy_params(model):
    sd = model.state_dict()
    return {"weight_ih": sd["0.weight_ih_l0"], "weight_hh": sd["0.weight_hh_l0"],
            "bias_ih": sd["0.bias_ih_l0"], "bias_hh": sd["0.bias_hh_l0"],
            "head_w": sd["2.weight"], "head_b": sd["2.bias"]}


def neuropil_step_fn(model, x, y):
    loss = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=LR)

    def step():
        opt.zero_grad()
        loss.forward(model(x), y)
        model.backward_params(loss.backward())
        opt.step()
    return step


def check_against_numpy(mode, cls, x, y):
    """Same weights: neuropil's loss and every gradient equal the NumPy step's."""
    model, _ = neuropil_model(cls)
    ref = NumpyRecurrentClassifier(mode, numpy_params(model), LR)
    ref_loss, ref_grads = ref.loss_and_grads(x, y)
    loss = nn.CrossEntropyLoss()
    model.zero_grad()
    got = loss.forward(model(x), y)
    model.backward_params(loss.backward())
    if not np.isclose(got, ref_loss, rtol=1e-4):
        raise AssertionError(f"{mode}: neuropil loss {got} != NumPy {ref_loss}")
    names = {"0.weight_ih_l0": "weight_ih", "0.weight_hh_l0": "weight_hh",
             "0.bias_ih_l0": "bias_ih", "0.bias_hh_l0": "bias_hh", "2.weight": "head_w",
             "2.bias": "head_b"}
    for name, p in model.named_parameters():
        g = ref_grads[names[name]]
        scale = max(np.abs(g).max(), 1e-12)
        err = np.abs(p.grad - g).max() / scale
        if err > 1e-3:
            raise AssertionError(f"{mode}: gradient {name} differs from NumPy's by {err:.2e} "
                                 f"(relative to its max)")
    return got


def torch_step_fn(torch, mode, model, x, y):
    cls = {"rnn_tanh": torch.nn.RNN, "lstm": torch.nn.LSTM, "gru": torch.nn.GRU}[mode]
    rnn = cls(I, H, batch_first=True)
    fc = torch.nn.Linear(H, K)
    sd = model.state_dict()
    rnn.load_state_dict({k[2:]: torch.from_numpy(v) for k, v in sd.items() if k.startswith("0.")})
    fc.load_state_dict({"weight": torch.from_numpy(sd["2.weight"]),
                        "bias": torch.from_numpy(sd["2.bias"])})
    params = list(rnn.parameters()) + list(fc.parameters())
    opt = torch.optim.SGD(params, lr=LR)
    xt = torch.from_numpy(x)
    yt = torch.from_numpy(y)
    ce = torch.nn.functional.cross_entropy

    def step():
        opt.zero_grad(set_to_none=False)
        out, _ = rnn(xt)
        loss = ce(fc(out[:, -1]), yt)
        loss.backward()
        opt.step()

    with torch.no_grad():  # same numbers before timing
        out, _ = rnn(xt)
        tl = float(ce(fc(out[:, -1]), yt))
    return step, tl


def run(ctx) -> None:
    rng = np.random.default_rng(0)
    x = rng.standard_normal((N, T, I)).astype(np.float32)
    y = rng.integers(0, K, N).astype(np.int64)
    rows = []
    notes = []
    for label, mode, cls in CELLS:
        ref_loss = check_against_numpy(mode, cls, x, y)
        notes.append(f"{label}: loss {ref_loss:.5f} and all gradients match the NumPy step")
        for n in ctx.threads:
            with ctx.threads_set(n):
                model, _ = neuropil_model(cls)
                ref = NumpyRecurrentClassifier(mode, numpy_params(model), LR)
                fns = {"neuropil": neuropil_step_fn(model, x, y),
                       "numpy": lambda: ref.step(x, y)}
                if ctx.torch is not None:
                    fn, tl = torch_step_fn(ctx.torch, mode, neuropil_model(cls)[0], x, y)
                    if not np.isclose(tl, ref_loss, rtol=1e-4):
                        raise AssertionError(f"{label}: PyTorch loss {tl} != {ref_loss}")
                    fns["torch"] = fn
                sec = ctx.time_interleaved(fns)
                faults = ctx.last_faults
                sps = {k: N / v for k, v in sec.items()}
                row = [label, n, sps["neuropil"], sps["numpy"],
                       sps.get("torch", "-"), sps["neuropil"] / sps["numpy"],
                       (sps["neuropil"] / sps["torch"]) if "torch" in sps else "-",
                       f"{faults['neuropil']:.0f}/{faults['numpy']:.0f}"
                       + (f"/{faults['torch']:.0f}" if "torch" in faults else "")]
                rows.append(row)
    title = (f"rnn training step, T={T} N={N} in={I} hidden={H} -> Linear({H},{K}), "
             f"softmax-CE, SGD; sequences/s (ISA {neuropil.get_isa()})")
    out = table(title, ["cell", "threads", "neuropil", "numpy", "torch", "x numpy", "x torch",
                        "faults/step np/numpy/torch"], rows)
    out += "\n" + "\n".join(notes)
    print(out)
    return out
