"""bench/compare.py unet: a U-Net training step against the same PyTorch model.

The network of examples/unet_segmentation.py (two levels of conv-BatchNorm-ReLU blocks,
max pooling, transposed convolutions, concatenated skips; channels 16-32-64), batch 16
of 1x64x64 images, binary cross-entropy on the logits, Adam. PyTorch gets the same
weights (the two state_dicts share their keys) and is checked to give the same loss
before anything is timed. Samples/s at each thread count, the ratio, and the step's
GFLOP/s (convolutions only, from the traced shapes) as a share of the FMA-loop peak.
There is no NumPy twin of this network: NumPy has no convolution of its own.
"""
from __future__ import annotations

import pathlib
import sys

import numpy as np

import neuropil
from _harness import table

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "examples"))

BATCH, SIZE, CHANNELS = 16, 64, (16, 32, 64)


def step_flops(model, x) -> float:
    """Multiply-adds x 2 of every convolution in one training step: forward, input and
    weight gradients (3x the forward), less the first layer's unneeded input gradient."""
    from neuropil import nn
    from neuropil.nn.graph import trace
    t = trace(model, x)
    fwd, first = 0.0, None
    for call in t.calls:
        m = call.module
        if isinstance(m, nn.Conv2d):
            kh, kw = m.kernel_size
            f = 2.0 * np.prod(call.shapes[0]) * (m.in_channels // m.groups) * kh * kw
        elif isinstance(m, nn.ConvTranspose2d):
            kh, kw = m.kernel_size
            f = 2.0 * np.prod(t.shapes[call.inputs[0]]) * (m.out_channels // m.groups) * kh * kw
        else:
            continue
        fwd += f
        first = f if first is None else first
    return 3 * fwd - first


def run(ctx):
    import unet_segmentation as U
    from neuropil import nn, optim
    torch = ctx.torch
    rng = np.random.default_rng(0)
    x = rng.standard_normal((BATCH, 1, SIZE, SIZE)).astype(np.float32)
    y = (rng.random((BATCH, 1, SIZE, SIZE)) > 0.5).astype(np.float32)
    neuropil.manual_seed(0)
    model = U.UNet(CHANNELS)
    loss = nn.BCEWithLogitsLoss()
    opt = optim.Adam(model.parameters(), lr=1e-3)
    flops = step_flops(model, x)

    def np_step():
        opt.zero_grad()
        loss(model(x), y)
        model.backward(loss.backward())
        opt.step()

    fns = {"neuropil": np_step}
    if torch is not None:
        twin = U.torch_unet(CHANNELS)
        twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
        topt = torch.optim.Adam(twin.parameters(), lr=1e-3)
        tloss = torch.nn.BCEWithLogitsLoss()
        tx, ty = torch.from_numpy(x), torch.from_numpy(y)
        ours = loss(model(x), y)
        with torch.no_grad():
            theirs = float(tloss(twin(tx), ty))
        assert abs(ours - theirs) < 1e-4, (ours, theirs)
        print(f"\nchecked: PyTorch's U-Net gives the same loss ({theirs:.6f} vs {ours:.6f})")

        def t_step():
            topt.zero_grad()
            tloss(twin(tx), ty).backward()
            topt.step()

        fns["torch"] = t_step
    rows = []
    for t in ctx.threads:
        with ctx.threads_set(t):
            s = ctx.time_interleaved(fns)
            faults = dict(ctx.last_faults)
        gf = flops / s["neuropil"] / 1e9
        peak = max(ctx.peak.get(t, 0.0), ctx.fma_probe(t, 0.5)) or None
        row = [t, BATCH / s["neuropil"]]
        if torch is not None:
            row += [BATCH / s["torch"], s["torch"] / s["neuropil"]]
        row += [gf, f"{100 * gf / peak:.0f}%" if peak else "n/a", faults["neuropil"]]
        rows.append(row)
    headers = ["threads", "neuropil img/s"]
    if torch is not None:
        headers += ["torch img/s", "× torch"]
    headers += ["GFLOP/s", "of peak", "faults/step"]
    print(table(f"U-Net training step, batch {BATCH}, 1x{SIZE}x{SIZE}, channels "
                f"{'-'.join(map(str, CHANNELS))}, BatchNorm, Adam ({flops / 1e9:.2f} GFLOP "
                f"per step)", headers, rows))
