"""Linear image filtering: each named kernel applied to a real photo, saved as a grid PNG.

    python examples/filters.py [--smoke] [--out filters.png]

The photo is scikit-learn's bundled sample image "china.jpg" (needs Pillow to
decode); nothing is downloaded. Filtering is ``neuropil.image.convolve2d``
(true convolution, per RGB channel, symmetric boundary), which runs on
neuropil's C++ im2col + GEMM convolution. Each result is checked against
``scipy.signal.convolve2d`` when SciPy is installed.
"""
import argparse
import sys
import time

import numpy as np

from neuropil import image

NAMES = ["identity", "box_blur", "gaussian_blur", "sharpen", "sobel_x", "sobel_y", "laplacian"]


def load_photo():
    try:
        from sklearn.datasets import load_sample_image
        return load_sample_image("china.jpg")
    except ImportError as err:
        print(f"filters.py: needs scikit-learn and Pillow for the sample photo ({err}); "
              f"pip install scikit-learn pillow", file=sys.stderr)
        sys.exit(77)


def to_display(name, out):
    if name in ("sobel_x", "sobel_y", "laplacian"):  # signed edges: show magnitude
        mag = np.abs(out).mean(axis=-1)
        mag = mag / max(np.percentile(mag, 99.5), 1e-9)
        return np.repeat(np.clip(mag, 0, 1)[..., None], 3, axis=-1)
    return np.clip(out / 255.0, 0, 1)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--smoke", action="store_true", help="a small crop (used by the tests)")
    parser.add_argument("--out", default="filters.png")
    args = parser.parse_args(argv)
    photo = load_photo().astype(np.float64)  # (427, 640, 3)
    if args.smoke:
        photo = photo[150:214, 250:346]
    try:
        from scipy.signal import convolve2d as scipy_convolve2d
    except ImportError:
        scipy_convolve2d = None
    panels = []
    for name in NAMES:
        k = image.kernels(name)
        t0 = time.perf_counter()
        out = image.convolve2d(photo, k, mode="same", boundary="symm")
        dt = time.perf_counter() - t0
        msg = f"{name:14s} kernel {k.shape}: {dt * 1e3:7.1f} ms for {photo.shape}"
        if scipy_convolve2d is not None:
            ref = np.stack([scipy_convolve2d(photo[..., c], k, mode="same", boundary="symm")
                            for c in range(3)], axis=-1)
            err = float(np.abs(out - ref).max())
            msg += f", max |neuropil - scipy| = {err:.1e}"
            assert err < 1e-8, f"{name}: differs from scipy by {err}"
        print(msg)
        panels.append((name, to_display(name, out)))
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        from PIL import Image  # Pillow is there (the photo needed it): a plain grid
        tiles = [np.pad((p * 255).astype(np.uint8), ((4, 4), (4, 4), (0, 0)), constant_values=255)
                 for _, p in panels] + [np.full_like(panels[0][1], 255, dtype=np.uint8)]
        tiles[-1] = np.pad(tiles[-1], ((4, 4), (4, 4), (0, 0)), constant_values=255)
        rows = [np.concatenate(tiles[i:i + 4], axis=1) for i in (0, 4)]
        Image.fromarray(np.concatenate(rows, axis=0)).save(args.out)
    else:
        fig, axes = plt.subplots(2, 4, figsize=(16, 6.5))
        for ax in axes.ravel():
            ax.axis("off")
        for ax, (name, p) in zip(axes.ravel(), panels):
            ax.imshow(p)
            ax.set_title(name)
        fig.tight_layout()
        fig.savefig(args.out, dpi=80)
    print(f"saved {args.out}")


if __name__ == "__main__":
    main()
