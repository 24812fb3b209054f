"""The new layers inside graph models: a small U-Net-like block (skip, concat,
upsampling, batch norm, channel dropout) and layers shared between two calls, checked
by float64 central differences through the derived backward."""
import numpy as np

import neuropil
from neuropil import nn
from neuropil.testing import gradcheck


class TinyUNet(nn.Module):
    """conv-BN-ReLU, pool, conv-BN-ReLU, upsample, concat with the skip, Dropout2d, conv."""

    def __init__(self, mode="bilinear"):
        super().__init__()
        self.enc = nn.Sequential(nn.Conv2d(2, 3, 3, padding=1), nn.BatchNorm2d(3), nn.ReLU())
        self.pool = nn.MaxPool2d(2)
        self.mid = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4), nn.Tanh())
        self.up = nn.Upsample(scale_factor=2, mode=mode,
                              align_corners=False if mode == "bilinear" else None)
        self.cat = nn.Concat(1)
        self.drop = nn.Dropout2d(0.3)
        self.drop._draw_seed = lambda: 77  # the same mask for every forward of the check
        self.head = nn.Conv2d(7, 1, 1)

    def forward(self, x):
        skip = self.enc(x)
        y = self.up(self.mid(self.pool(skip)))
        return self.head(self.drop(self.cat(skip, y)))


class SharedNormUp(nn.Module):
    """One BatchNorm2d and one Upsample, each called twice in the same forward."""

    def __init__(self):
        super().__init__()
        self.bn = nn.BatchNorm2d(2)
        self.up = nn.Upsample(scale_factor=1.5, mode="bilinear")
        self.act = nn.Tanh()

    def forward(self, x):
        return self.up(self.bn(self.act(self.up(self.bn(x)))))


def test_unet_block_gradcheck(rng):
    neuropil.manual_seed(3)
    for mode in ("bilinear", "nearest"):
        model = TinyUNet(mode).double()
        x = rng.standard_normal((2, 2, 6, 6))
        gradcheck(model, x, max_checks=30)


def test_shared_batchnorm_and_upsample_gradcheck(rng):
    neuropil.manual_seed(4)
    model = SharedNormUp().double()
    model.bn.weight.data[:] = [0.7, 1.8]
    model.bn.bias.data[:] = [0.1, -0.4]
    x = rng.standard_normal((3, 2, 4, 4)) * 2 + 1
    gradcheck(model, x)
    # each call updates the running statistics, as PyTorch does
    before = int(model.bn.num_batches_tracked)
    model(x)
    assert int(model.bn.num_batches_tracked) == before + 2
    model.eval()
    gradcheck(model, x)
