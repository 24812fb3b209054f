"""Shared by the CNN examples: a hand-written training loop (forward, loss,
backward, step: the protocol every neuropil model follows) and batched evaluation."""
import time

import numpy as np

import neuropil
from neuropil import nn, optim


def evaluate(model, x, y, batch_size=500):
    """Accuracy of ``model`` on (x, y), batched, in eval mode."""
    model.eval()
    correct = 0
    for i in range(0, len(x), batch_size):
        logits = model(x[i:i + batch_size])
        correct += int((logits.argmax(axis=1) == y[i:i + batch_size]).sum())
    model.train()
    return correct / len(x)


def train(model, x, y, *, epochs, batch_size, lr, momentum=0.9, weight_decay=0.0, seed=0,
          x_test=None, y_test=None, lr_decay=1.0, log=print):
    """SGD with momentum over shuffled mini-batches; returns (seconds, samples seen)."""
    loss_fn = nn.CrossEntropyLoss()
    opt = optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    rng = np.random.default_rng(seed)
    model.train()
    seen, t_train = 0, 0.0
    for epoch in range(1, epochs + 1):
        order = rng.permutation(len(x))
        t0 = time.perf_counter()
        total, batches = 0.0, 0
        for i in range(0, len(x), batch_size):
            idx = order[i:i + batch_size]
            opt.zero_grad()
            out = model(x[idx])
            total += float(loss_fn.forward(out, y[idx]))
            model.backward(loss_fn.backward())
            opt.step()
            batches += 1
            seen += len(idx)
        dt = time.perf_counter() - t0
        t_train += dt
        msg = (f"epoch {epoch:2d}/{epochs}: loss {total / batches:.4f}, {dt:.1f} s "
               f"({len(x) / dt:,.0f} samples/s)")
        if x_test is not None:
            msg += f", test accuracy {evaluate(model, x_test, y_test):.4f}"
        log(msg)
        for group in opt.param_groups:
            group["lr"] *= lr_decay
    return t_train, seen


def header(name):
    print(f"{name}: neuropil {neuropil.__version__}, ISA {neuropil.get_isa()}, "
          f"{neuropil.get_num_threads()} thread(s)")
