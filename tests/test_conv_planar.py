"""The planar conv tiles (positions in vector lanes; stride 1, few channels per group):
depthwise layers, layers with few outputs (forward) or few inputs (input gradient), every
tail of the flat-position tiles and of the channel and tap blocks, on every ISA path,
against the NumPy reference; 1 vs 2 threads bitwise."""
import numpy as np
import pytest

import neuropil
import neuropil.functional as F

from test_conv_paths import ISAS, check, use_isa


@pytest.mark.parametrize("isa", ISAS)
def test_planar_depthwise_and_multiplier(isa, rng, isa_path):
    use_isa(isa)
    # (N, C, H, W, channel multiplier, (KH, KW), padding, dilation)
    for n, c, h, w, m, k, p, d in [
        (2, 3, 7, 9, 1, (3, 3), (1, 1), (1, 1)),
        (1, 1, 1, 1, 1, (1, 1), (0, 0), (1, 1)),
        (1, 2, 5, 17, 2, (3, 3), (1, 1), (1, 1)),
        (3, 4, 9, 6, 3, (5, 5), (2, 2), (1, 1)),   # 25 taps: three weight-gradient tiles
        (1, 5, 8, 8, 1, (3, 3), (2, 2), (2, 2)),   # dilation
        (2, 2, 6, 11, 1, (2, 3), (0, 2), (1, 1)),  # even kernel, uneven padding
        (1, 3, 6, 6, 2, (3, 3), (3, 0), (1, 1)),   # padding > kernel: cropped gradient
        (1, 2, 4, 33, 7, (1, 7), (0, 3), (1, 1)),  # 7 outputs per group: two blocks
        (2, 6, 12, 12, 1, (11, 11), (5, 5), (1, 1)),
    ]:
        x = rng.standard_normal((n, c, h, w)).astype(np.float32)
        wt = rng.standard_normal((c * m, 1) + k).astype(np.float32)
        b = rng.standard_normal(c * m).astype(np.float32)
        check(x, wt, b, (1, 1), p, d, c, rng)


@pytest.mark.parametrize("isa", ISAS)
def test_planar_position_tails(isa, rng, isa_path):
    """Flat positions OH*Wp from 1 to a few hundred: every vector count of a tile and its tail."""
    use_isa(isa)
    for w in range(1, 24):
        h = 1 + (w * 7) % 13
        x = rng.standard_normal((1, 2, h, w)).astype(np.float32)
        check(x, rng.standard_normal((2, 1, 3, 3)).astype(np.float32), None, (1, 1), (1, 1),
              (1, 1), 2, rng)


@pytest.mark.parametrize("isa", ISAS)
def test_planar_few_outputs_and_few_inputs(isa, rng, isa_path):
    """Few output channels (planar forward, 1-7 of them: every block split) and few input
    channels (planar input gradient), against the reference, with a bias."""
    use_isa(isa)
    for oc in range(1, 8):
        x = rng.standard_normal((2, 5, 9, 13)).astype(np.float32)
        w = rng.standard_normal((oc, 5, 3, 3)).astype(np.float32)
        check(x, w, rng.standard_normal(oc).astype(np.float32), (1, 1), (1, 1), (1, 1), 1, rng)
    for c in range(1, 8):
        x = rng.standard_normal((2, c, 10, 7)).astype(np.float32)
        w = rng.standard_normal((20, c, 3, 2)).astype(np.float32)
        check(x, w, None, (1, 1), (1, 0), (1, 1), 1, rng)
    x = rng.standard_normal((3, 6, 8, 8)).astype(np.float32)  # groups of 2 in, 3 out
    check(x, rng.standard_normal((9, 2, 3, 3)).astype(np.float32), None, (1, 1), (1, 1),
          (1, 1), 3, rng)


@pytest.mark.parametrize("isa", ISAS)
def test_planar_one_and_two_threads_bitwise(isa, rng, threads, isa_path):
    use_isa(isa)
    x = rng.standard_normal((10, 8, 20, 19)).astype(np.float32)
    cases = [(rng.standard_normal((8, 1, 3, 3)).astype(np.float32), 8),   # depthwise
             (rng.standard_normal((16, 1, 5, 5)).astype(np.float32), 8),  # multiplier 2
             (rng.standard_normal((3, 8, 3, 3)).astype(np.float32), 1)]   # few outputs
    x1 = rng.standard_normal((10, 2, 20, 19)).astype(np.float32)          # few inputs
    w1 = rng.standard_normal((24, 2, 3, 3)).astype(np.float32)
    results = []
    for t in (1, 2):
        neuropil.set_num_threads(t)
        r = []
        for w, groups in cases:
            pad = w.shape[2] // 2
            y = F.conv2d(x, w, np.ones(w.shape[0], np.float32), 1, pad, 1, groups)
            r += [y, *F.conv2d_backward(x, w, np.cos(y), 1, pad, 1, groups)]
        y = F.conv2d(x1, w1, None, 1, 1)
        r += [y, *F.conv2d_backward(x1, w1, np.cos(y), 1, 1)]
        results.append(r)
    for a, b_ in zip(*results):
        np.testing.assert_array_equal(a, b_)
