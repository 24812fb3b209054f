"""neuropil.image filtering against scipy.signal.convolve2d / correlate2d."""
import numpy as np
import pytest

from neuropil import image

signal = pytest.importorskip("scipy.signal")

KSHAPES = [(3, 3), (2, 4), (5, 2), (1, 1), (4, 4), (1, 5)]


@pytest.mark.parametrize("boundary", ["fill", "symm", "wrap"])
@pytest.mark.parametrize("mode", ["same", "valid", "full"])
@pytest.mark.parametrize("kshape", KSHAPES)
def test_matches_scipy_grayscale(kshape, mode, boundary, rng):
    im = rng.random((9, 7))
    k = rng.standard_normal(kshape)
    for ours, theirs in ((image.convolve2d, signal.convolve2d),
                         (image.correlate2d, signal.correlate2d)):
        got = ours(im, k, mode=mode, boundary=boundary)
        want = theirs(im, k, mode=mode, boundary=boundary)
        assert got.shape == want.shape
        np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-12)


def test_fillvalue_and_rgb_per_channel(rng):
    im = rng.integers(0, 256, (6, 8, 3)).astype(np.uint8)
    k = image.kernels("sobel_x")
    got = image.convolve2d(im, k, boundary="fill", fillvalue=3.0)
    assert got.shape == (6, 8, 3) and got.dtype == np.float64
    for c in range(3):
        want = signal.convolve2d(im[..., c].astype(float), k, mode="same", fillvalue=3.0)
        np.testing.assert_allclose(got[..., c], want, rtol=1e-12, atol=1e-9)
    g32 = image.correlate2d(im.astype(np.float32), k.astype(np.float32), mode="valid")
    assert g32.dtype == np.float32 and g32.shape == (4, 6, 3)


def test_named_kernels():
    for name in ("box_blur", "gaussian_blur"):
        assert np.isclose(image.kernels(name).sum(), 1.0)
    assert np.isclose(image.kernels("sharpen").sum(), 1.0)
    for name in ("sobel_x", "sobel_y", "laplacian"):
        assert image.kernels(name).sum() == 0
    assert image.kernels("box_blur", size=5).shape == (5, 5)
    g = image.kernels("gaussian_blur", size=7, sigma=2.0)
    assert g.shape == (7, 7) and np.allclose(g, g.T) and g[3, 3] == g.max()
    # A constant image is unchanged by blurs and zeroed by edge detectors (away from borders).
    flat = np.full((9, 9), 4.0)
    assert np.allclose(image.convolve2d(flat, image.kernels("box_blur"), mode="valid"), 4.0)
    assert np.allclose(image.convolve2d(flat, image.kernels("laplacian"), mode="valid"), 0.0)
    # Sobel x responds to a vertical edge, Sobel y does not.
    edge = np.zeros((5, 6))
    edge[:, 3:] = 1
    assert np.abs(image.correlate2d(edge, image.kernels("sobel_x"), mode="valid")).max() == 4
    assert np.abs(image.correlate2d(edge, image.kernels("sobel_y"), mode="valid")).max() == 0
    image.kernels("sobel_x")[0, 0] = 99  # a copy: the table is not changed
    assert image.kernels("sobel_x")[0, 0] == -1


def test_bad_inputs():
    with pytest.raises(ValueError, match=r"image must be \(H, W\) or \(H, W, C\)"):
        image.convolve2d(np.zeros(5), np.ones((3, 3)))
    with pytest.raises(ValueError, match="kernel must be a non-empty 2-D"):
        image.convolve2d(np.zeros((5, 5)), np.ones(3))
    with pytest.raises(ValueError, match="mode must be"):
        image.convolve2d(np.zeros((5, 5)), np.ones((3, 3)), mode="middle")
    with pytest.raises(ValueError, match="boundary must be"):
        image.correlate2d(np.zeros((5, 5)), np.ones((3, 3)), boundary="reflect")
    with pytest.raises(TypeError, match="real numeric"):
        image.convolve2d(np.zeros((5, 5), complex), np.ones((3, 3)))
    with pytest.raises(ValueError, match="valid"):
        image.convolve2d(np.zeros((2, 2)), np.ones((3, 3)), mode="valid")
    with pytest.raises(ValueError, match="unknown kernel"):
        image.kernels("emboss")


def test_threshold_otsu_maximises_between_class_variance(rng):
    im = np.concatenate([rng.normal(0.2, 0.05, 600), rng.normal(0.7, 0.08, 400)]).reshape(40, 25)
    t = image.threshold_otsu(im)
    assert 0.35 < t < 0.55

    def between(th):
        lo, hi = im[im <= th], im[im > th]
        return lo.size * hi.size * (lo.mean() - hi.mean()) ** 2
    # no other candidate threshold separates the two classes better
    candidates = np.linspace(im.min(), im.max(), 257)[1:-1]
    assert between(t) >= max(between(c) for c in candidates if (im > c).any()) * (1 - 1e-3)
    assert image.threshold_otsu(np.full((3, 3), 0.5)) == 0.5
    with pytest.raises(ValueError, match="2-D"):
        image.threshold_otsu(np.zeros(5))
    with pytest.raises(ValueError, match="NaN"):
        image.threshold_otsu(np.array([[0.0, np.nan]]))
