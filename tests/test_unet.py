"""The U-Net of examples/unet_segmentation.py as a graph model: finite differences,
PyTorch with copied weights, bitwise equality across thread counts."""
import pathlib
import sys

import numpy as np
import pytest

import neuropil
from neuropil.testing import gradcheck

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent.parent / "examples"))
import unet_segmentation as U  # noqa: E402


def test_unet_gradients_match_finite_differences(rng):
    neuropil.manual_seed(0)
    model = U.UNet((2, 3, 4)).double()
    x = rng.standard_normal((2, 1, 8, 8))
    gradcheck(model, x, max_checks=40, rtol=1e-4)


def test_unet_matches_pytorch_with_copied_weights(rng):
    torch = pytest.importorskip("torch")
    neuropil.manual_seed(0)
    model = U.UNet((4, 6, 8)).double()
    twin = U.torch_unet((4, 6, 8)).double()
    twin.load_state_dict({k: torch.from_numpy(v.copy()) for k, v in model.state_dict().items()})
    x = rng.standard_normal((3, 1, 16, 16))
    g = rng.standard_normal((3, 1, 16, 16))
    y = model(x)
    model.zero_grad()
    gx = model.backward(g, input_grad=True)
    tx = torch.from_numpy(x.copy()).requires_grad_(True)
    ty = twin(tx)
    ty.backward(torch.from_numpy(g))
    np.testing.assert_allclose(y, ty.detach().numpy(), rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(gx, tx.grad.numpy(), rtol=1e-10, atol=1e-10)
    grads = dict(twin.named_parameters())
    for name, p in model.named_parameters():
        np.testing.assert_allclose(p.grad, grads[name].grad.numpy(), rtol=1e-9, atol=1e-10,
                                   err_msg=name)
    theirs = twin.state_dict()
    for name, value in model.state_dict().items():  # running statistics too
        np.testing.assert_allclose(value, theirs[name].numpy(), rtol=1e-12, err_msg=name)


def test_unet_training_step_is_bitwise_identical_for_any_thread_count(rng, threads):
    x = rng.standard_normal((4, 1, 16, 16)).astype(np.float32)
    y = (rng.random((4, 1, 16, 16)) > 0.5).astype(np.float32)
    results = []
    for n in (1, 2):
        neuropil.set_num_threads(n)
        neuropil.manual_seed(0)
        model = U.UNet((4, 8, 16))
        opt = neuropil.optim.Adam(model.parameters(), lr=1e-3)
        loss = neuropil.nn.BCEWithLogitsLoss()
        for _ in range(2):
            opt.zero_grad()
            loss(model(x), y)
            model.backward(loss.backward())
            opt.step()
        results.append(model.state_dict())
    for name in results[0]:
        np.testing.assert_array_equal(results[0][name], results[1][name], err_msg=name)


def test_segmentation_data_and_baseline():
    x, m = U.make_shapes(6, 32, seed=3)
    assert x.shape == m.shape == (6, 1, 32, 32) and x.dtype == np.float32
    assert set(np.unique(m)) <= {0.0, 1.0} and 0.05 < m.mean() < 0.6
    base = U.otsu_baseline(x)
    assert base.shape == m.shape and 0.0 < U.iou(base, m) < 1.0
    assert U.iou(m, m) == 1.0 and U.iou(np.zeros_like(m), m) == 0.0
