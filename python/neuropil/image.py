"""Linear image filtering on top of neuropil's convolution kernels.

``convolve2d`` is true 2-D convolution (the kernel is flipped),
``(I ⋆ K)(m, n) = Σᵢ Σⱼ I(m − i, n − j) K(i, j)``, and ``correlate2d`` is
cross-correlation (what ``nn.Conv2d`` computes), both with SciPy's
``scipy.signal.convolve2d`` / ``correlate2d`` conventions for ``mode``
("full", "same", "valid") and ``boundary`` ("fill", "symm", "wrap").
Images are grayscale (H, W) or channels-last (H, W, C) (e.g. RGB), filtered
per channel. The boundary is materialised with ``numpy.pad``; the arithmetic
runs in the C++ im2col + GEMM convolution (float64 unless the image is
float32).
"""
from __future__ import annotations

import numpy as np

from . import functional as F

__all__ = ["convolve2d", "correlate2d", "kernels", "KERNELS", "threshold_otsu"]

_BOUNDARY = {"fill": "constant", "symm": "symmetric", "wrap": "wrap"}


def _filter(image, kernel, mode, boundary, fillvalue, flip, fn):
    image = np.asarray(image)
    kernel = np.asarray(kernel)
    if image.ndim not in (2, 3) or image.size == 0:
        raise ValueError(f"{fn}: image must be (H, W) or (H, W, C) and non-empty, got shape "
                         f"{image.shape}")
    if kernel.ndim != 2 or kernel.size == 0:
        raise ValueError(f"{fn}: kernel must be a non-empty 2-D array (kH, kW), got shape "
                         f"{kernel.shape}")
    if not (np.issubdtype(image.dtype, np.number) and np.issubdtype(kernel.dtype, np.number)) \
            or np.iscomplexobj(image) or np.iscomplexobj(kernel):
        raise TypeError(f"{fn}: image and kernel must be real numeric arrays, got "
                        f"{image.dtype} and {kernel.dtype}")
    if mode not in ("full", "same", "valid"):
        raise ValueError(f"{fn}: mode must be 'full', 'same' or 'valid', got {mode!r}")
    if boundary not in _BOUNDARY:
        raise ValueError(f"{fn}: boundary must be 'fill', 'symm' or 'wrap', got {boundary!r}")
    dtype = np.float32 if (image.dtype == np.float32 and kernel.dtype == np.float32) else np.float64
    kh, kw = kernel.shape
    h, w = image.shape[:2]
    planes = image.astype(dtype)[..., None] if image.ndim == 2 else image.astype(dtype)
    planes = np.ascontiguousarray(np.moveaxis(planes, -1, 0))[:, None]  # (C, 1, H, W)
    k = kernel.astype(dtype)
    if flip:
        k = k[::-1, ::-1]
    k = np.ascontiguousarray(k)[None, None]
    if mode == "valid":
        if (kh > h or kw > w) and (h > kh or w > kw):
            raise ValueError(f"{fn}: in 'valid' mode one array must be at least as large as "
                             f"the other in every dimension: image {image.shape[:2]}, kernel "
                             f"{kernel.shape}")
        if kh > h or kw > w:  # SciPy swaps the operands
            raise ValueError(f"{fn}: 'valid' mode with a kernel larger than the image is not "
                             f"supported: image {image.shape[:2]}, kernel {kernel.shape}")
        padded = planes
    else:
        # 'full' pads kh-1 / kw-1 on each side; 'same' keeps the centred H x W part of it.
        if mode == "full":
            top, left = kh - 1, kw - 1
            bottom, right = kh - 1, kw - 1
        else:
            # SciPy centres 'same' on the full output; the flip moves the offset for correlation.
            top = kh // 2 if flip else (kh - 1) // 2
            left = kw // 2 if flip else (kw - 1) // 2
            bottom, right = kh - 1 - top, kw - 1 - left
        pad = ((0, 0), (0, 0), (top, bottom), (left, right))
        if boundary == "fill":
            padded = np.pad(planes, pad, mode="constant", constant_values=fillvalue)
        else:
            padded = np.pad(planes, pad, mode=_BOUNDARY[boundary])
    out = F.conv2d(np.ascontiguousarray(padded), k)[:, 0]  # (C, OH, OW)
    return out[0] if image.ndim == 2 else np.moveaxis(out, 0, -1)


def convolve2d(image, kernel, mode="same", boundary="fill", fillvalue=0.0) -> np.ndarray:
    """True 2-D convolution of a grayscale (H, W) or per-channel (H, W, C) image.

    ``out(m, n) = Σᵢ Σⱼ image(m − i, n − j) · kernel(i, j)``, SciPy's
    ``convolve2d`` semantics: ``mode`` "same" (H, W), "valid" (H − kH + 1,
    W − kW + 1) or "full" (H + kH − 1, W + kW − 1); ``boundary`` "fill"
    (``fillvalue``), "symm" (mirror, edge repeated) or "wrap" (periodic).
    Returns float64 (float32 when image and kernel are float32).
    """
    return _filter(image, kernel, mode, boundary, fillvalue, True, "convolve2d")


def correlate2d(image, kernel, mode="same", boundary="fill", fillvalue=0.0) -> np.ndarray:
    """2-D cross-correlation (the kernel is not flipped), SciPy's ``correlate2d`` semantics.

    ``out(m, n) = Σᵢ Σⱼ image(m + i, n + j) · kernel(i, j)`` (offset by the
    mode); otherwise as ``convolve2d``.
    """
    return _filter(image, kernel, mode, boundary, fillvalue, False, "correlate2d")


def _gaussian(size: int = 5, sigma: float = 1.0) -> np.ndarray:
    r = np.arange(size) - (size - 1) / 2
    g = np.exp(-(r ** 2) / (2 * sigma ** 2))
    k = np.outer(g, g)
    return k / k.sum()


KERNELS = {
    "identity": np.array([[0, 0, 0], [0, 1, 0], [0, 0, 0]], np.float64),
    "box_blur": np.full((3, 3), 1 / 9),
    "gaussian_blur": _gaussian(5, 1.0),
    "sharpen": np.array([[0, -1, 0], [-1, 5, -1], [0, -1, 0]], np.float64),
    "sobel_x": np.array([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]], np.float64),
    "sobel_y": np.array([[-1, -2, -1], [0, 0, 0], [1, 2, 1]], np.float64),
    "laplacian": np.array([[0, 1, 0], [1, -4, 1], [0, 1, 0]], np.float64),
}


def kernels(name: str, size: int | None = None, sigma: float | None = None) -> np.ndarray:
    """A named filter kernel (a copy): ``identity``, ``box_blur`` (``size``),
    ``gaussian_blur`` (``size``, ``sigma``), ``sharpen``, ``sobel_x``, ``sobel_y``,
    ``laplacian``."""
    if name == "box_blur" and size is not None:
        if int(size) < 1:
            raise ValueError(f"kernels: size must be positive, got {size!r}")
        return np.full((int(size), int(size)), 1.0 / int(size) ** 2)
    if name == "gaussian_blur" and (size is not None or sigma is not None):
        size = 5 if size is None else int(size)
        sigma = 1.0 if sigma is None else float(sigma)
        if size < 1 or sigma <= 0:
            raise ValueError(f"kernels: need size >= 1 and sigma > 0, got {size}, {sigma}")
        return _gaussian(size, sigma)
    if name not in KERNELS:
        raise ValueError(f"kernels: unknown kernel {name!r}; expected one of {sorted(KERNELS)}")
    return KERNELS[name].copy()


def threshold_otsu(image, bins: int = 256) -> float:
    """Otsu's threshold of a grayscale image: the level that maximises the between-class
    variance ``w0 w1 (mu0 - mu1)^2`` of the pixels below and above it, searched over
    ``bins`` histogram bins between the image's minimum and maximum. Pixels ``> t`` are
    the foreground. A constant image returns its value."""
    im = np.asarray(image, dtype=np.float64)
    if im.ndim != 2:
        raise ValueError(f"threshold_otsu: image must be 2-D (H, W), got shape {im.shape}")
    if im.size == 0:
        raise ValueError("threshold_otsu: image is empty")
    if not np.isfinite(im).all():
        raise ValueError("threshold_otsu: image contains NaN or infinity")
    if isinstance(bins, bool) or not isinstance(bins, (int, np.integer)) or bins < 2:
        raise ValueError(f"threshold_otsu: bins must be an int >= 2, got {bins!r}")
    lo, hi = float(im.min()), float(im.max())
    if lo == hi:
        return lo
    counts, edges = np.histogram(im, bins=int(bins), range=(lo, hi))
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(counts)[:-1].astype(np.float64)          # pixels in bins 0..k
    w1 = im.size - w0
    s0 = np.cumsum(counts * centres)[:-1]
    mu0 = s0 / np.maximum(w0, 1)
    mu1 = (np.dot(counts, centres) - s0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(edges[1:-1][int(np.argmax(between))])
