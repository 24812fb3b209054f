"""A U-Net segments noisy, blurred, overlapping shapes under uneven lighting.

    python examples/unet_segmentation.py [--smoke] [--epochs 10] [--size 48] [--train 1200]

The data are generated: each image holds 2-5 ellipses, rectangles and triangles, each a
little brighter than the background under it (by 0.2-0.5), on a background lit
unevenly (a random gradient and a soft spot), blurred by a Gaussian and covered in
noise. The task is to mark every pixel as shape or background.

The classical baseline blurs each image with a Gaussian (``neuropil.image``) and keeps
the pixels above its Otsu threshold; it fails where the lighting changes more across
the image than a shape's contrast. The U-Net (two levels of conv-BatchNorm-ReLU blocks
with max pooling, transposed-convolution upsampling and concatenated skips, 16-32-64
channels) is trained with ``fit``, binary cross-entropy on the logits and Adam. The
script prints the intersection-over-union of both on held-out images, saves
``unet_segmentation.png`` (input, truth, baseline, U-Net for four test images) and, in
full mode, fails unless the U-Net reaches IoU 0.90 and beats the baseline clearly.
"""
import argparse
import pathlib
import sys
import time

import numpy as np

import neuropil
from neuropil import callbacks, image, nn, optim
from neuropil import functional as F


# -- data -----------------------------------------------------------------------------

def make_shapes(n: int, size: int, seed: int):
    """``n`` images ``(n, 1, size, size)`` float32 and their masks (1 = shape)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / size
    images = np.empty((n, 1, size, size), np.float32)
    masks = np.zeros((n, 1, size, size), np.float32)
    for i in range(n):
        cy, cx = rng.uniform(0, 1, 2)
        light = (rng.uniform(0.05, 0.35) + rng.uniform(-0.35, 0.35) * xx
                 + rng.uniform(-0.35, 0.35) * yy
                 + rng.uniform(0, 0.3) * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / 0.08))
        img, mask = light.copy(), np.zeros((size, size), bool)
        for _ in range(rng.integers(2, 6)):
            cy, cx = rng.uniform(0.15, 0.85, 2)
            r = rng.uniform(0.07, 0.18)
            kind = rng.integers(0, 3)
            if kind == 0:  # ellipse
                inside = ((yy - cy) / r) ** 2 + ((xx - cx) / (r * rng.uniform(0.5, 1.5))) ** 2 <= 1
            elif kind == 1:  # rectangle
                h, w = r * rng.uniform(0.6, 1.4, 2)
                inside = (np.abs(yy - cy) <= h) & (np.abs(xx - cx) <= w)
            else:  # triangle, apex up
                inside = (np.abs(xx - cx) <= (yy - cy + r) * 0.8) & (np.abs(yy - cy) <= r)
            img = np.where(inside, light + rng.uniform(0.2, 0.5), img)
            mask |= inside
        images[i, 0], masks[i, 0] = img, mask
    blur = image.kernels("gaussian_blur", size=5, sigma=1.0).astype(np.float32)[None, None]
    images = F.conv2d(images, blur, padding=2)  # the optics: every image blurred at once
    images += rng.normal(0.0, 0.08, images.shape).astype(np.float32)
    return images, masks


def iou(pred, truth) -> float:
    """Intersection over union of the foreground, over all pixels of all images."""
    pred, truth = pred.astype(bool), truth.astype(bool)
    return float((pred & truth).sum() / max((pred | truth).sum(), 1))


def otsu_baseline(images):
    """Gaussian blur, then each image's Otsu threshold (neuropil.image)."""
    kernel = image.kernels("gaussian_blur", size=5, sigma=1.0)
    out = np.zeros(images.shape, bool)
    for i, img in enumerate(images[:, 0]):
        smooth = image.correlate2d(img, kernel, mode="same", boundary="symm")
        out[i, 0] = smooth > image.threshold_otsu(smooth)
    return out


# -- the model ------------------------------------------------------------------------

class ConvBlock(nn.Module):
    """(conv 3x3 -> BatchNorm -> ReLU) twice; the convolutions need no bias."""

    def __init__(self, cin: int, cout: int):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.act = nn.ReLU()

    def forward(self, x):
        x = self.act(self.bn1(self.conv1(x)))
        return self.act(self.bn2(self.conv2(x)))


class UNet(nn.Module):
    """Encoder (blocks and max pooling), bottleneck, decoder (transposed convolutions,
    concatenated skips, blocks), 1x1 head giving one logit per pixel."""

    def __init__(self, channels=(16, 32, 64)):
        super().__init__()
        c1, c2, c3 = channels
        self.enc1, self.enc2 = ConvBlock(1, c1), ConvBlock(c1, c2)
        self.bottleneck = ConvBlock(c2, c3)
        self.pool = nn.MaxPool2d(2)
        self.up2, self.dec2 = nn.ConvTranspose2d(c3, c2, 2, stride=2), ConvBlock(2 * c2, c2)
        self.up1, self.dec1 = nn.ConvTranspose2d(c2, c1, 2, stride=2), ConvBlock(2 * c1, c1)
        self.cat = nn.Concat(dim=1)
        self.head = nn.Conv2d(c1, 1, 1)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        b = self.bottleneck(self.pool(e2))
        d2 = self.dec2(self.cat(self.up2(b), e2))
        d1 = self.dec1(self.cat(self.up1(d2), e1))
        return self.head(d1)


def torch_unet(channels=(16, 32, 64)):
    """The same network in PyTorch, with the same ``state_dict`` keys (so weights copy
    over unchanged): the twin that ``bench/compare.py unet`` and the tests compare with.
    Needs torch."""
    import torch
    tnn = torch.nn

    class TorchBlock(tnn.Module):
        def __init__(self, cin, cout):
            super().__init__()
            self.conv1 = tnn.Conv2d(cin, cout, 3, padding=1, bias=False)
            self.bn1 = tnn.BatchNorm2d(cout)
            self.conv2 = tnn.Conv2d(cout, cout, 3, padding=1, bias=False)
            self.bn2 = tnn.BatchNorm2d(cout)
            self.act = tnn.ReLU()

        def forward(self, x):
            return self.act(self.bn2(self.conv2(self.act(self.bn1(self.conv1(x))))))

    class TorchUNet(tnn.Module):
        def __init__(self):
            super().__init__()
            c1, c2, c3 = channels
            self.enc1, self.enc2 = TorchBlock(1, c1), TorchBlock(c1, c2)
            self.bottleneck = TorchBlock(c2, c3)
            self.pool = tnn.MaxPool2d(2)
            self.up2, self.dec2 = tnn.ConvTranspose2d(c3, c2, 2, stride=2), TorchBlock(2 * c2, c2)
            self.up1, self.dec1 = tnn.ConvTranspose2d(c2, c1, 2, stride=2), TorchBlock(2 * c1, c1)
            self.head = tnn.Conv2d(c1, 1, 1)

        def forward(self, x):
            e1 = self.enc1(x)
            e2 = self.enc2(self.pool(e1))
            b = self.bottleneck(self.pool(e2))
            d2 = self.dec2(torch.cat([self.up2(b), e2], 1))
            d1 = self.dec1(torch.cat([self.up1(d2), e1], 1))
            return self.head(d1)

    return TorchUNet()


# -- the run ----------------------------------------------------------------------------

def save_png(path, rows):
    """Rows of [input, truth, baseline, prediction] images, as one grayscale PNG."""
    try:
        from PIL import Image
    except ImportError:
        print("(Pillow is not installed: no PNG written)")
        return
    def tile(t):  # each image stretched to [0, 1] (masks are 0/1 already), white border
        t = t.astype(np.float32)
        lo, hi = float(t.min()), float(t.max())
        return np.pad((t - lo) / max(hi - lo, 1e-6), 2, constant_values=1.0)

    grid = np.concatenate([np.concatenate([tile(t) for t in row], axis=1) for row in rows])
    pixels = (grid * 255).astype(np.uint8)
    Image.fromarray(pixels).resize((pixels.shape[1] * 3, pixels.shape[0] * 3),
                                   Image.NEAREST).save(path)
    print(f"saved {path} (columns: input, truth, Otsu baseline, U-Net)")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true",
                        help="a few small images, 1 epoch (used by the tests)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--size", type=int, default=48, help="image side (divisible by 4)")
    parser.add_argument("--train", type=int, default=1200, help="training images")
    args = parser.parse_args(argv)
    if args.size % 4:
        parser.error("--size must be divisible by 4 (two 2x2 poolings)")
    n_train, n_test, epochs, size = args.train, 400, args.epochs, args.size
    if args.smoke:
        n_train, n_test, epochs, size = 32, 16, 1, 32
    print(f"unet_segmentation: neuropil {neuropil.__version__}, ISA {neuropil.get_isa()}, "
          f"{neuropil.get_num_threads()} thread(s)")
    x_train, y_train = make_shapes(n_train, size, seed=1)
    x_test, y_test = make_shapes(n_test, size, seed=2)

    baseline = otsu_baseline(x_test)
    print(f"baseline (Gaussian blur + Otsu threshold): IoU {iou(baseline, y_test):.3f}")

    neuropil.manual_seed(0)
    model = UNet()
    opt = optim.Adam(model.parameters(), lr=2e-3)
    schedule = callbacks.LRScheduler(optim.StepLR(opt, step_size=max(1, epochs // 3), gamma=0.4))
    t0 = time.perf_counter()
    model.fit(x_train, y_train, loss=nn.BCEWithLogitsLoss(), optimizer=opt, epochs=epochs,
              batch_size=16, metrics=(), callbacks=[schedule], verbose=2)
    seconds = time.perf_counter() - t0
    pred = model.predict(x_test, batch_size=50) > 0  # logits: > 0 means p > 0.5
    score, base = iou(pred, y_test), iou(baseline, y_test)
    print(f"U-Net: IoU {score:.3f} on {n_test} held-out images (baseline {base:.3f}); "
          f"training {seconds:.1f} s, {epochs * n_train / seconds:.1f} images/s")
    save_png(pathlib.Path("unet_segmentation.png"),
             [[x_test[i, 0], y_test[i, 0], baseline[i, 0], pred[i, 0]] for i in range(4)])
    if not args.smoke and (score < 0.90 or score < base + 0.1):
        print("FAILED: expected IoU >= 0.90 and at least 0.1 above the baseline",
              file=sys.stderr)
        sys.exit(1)
    return score, base


if __name__ == "__main__":
    main()
