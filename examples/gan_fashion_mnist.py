"""A DCGAN draws Fashion-MNIST clothes (or scikit-learn's digits where Fashion-MNIST is
not installed), trained by a hand-written loop.

    python examples/gan_fashion_mnist.py [--smoke] [--epochs 10] [--digits]
    python examples/gan_fashion_mnist.py --generate      # sample and judge saved weights

The generator maps noise ``z (N, 64, 1, 1)`` through transposed convolutions with
BatchNorm and ReLU to a ``tanh`` image; the discriminator is strided convolutions with
LeakyReLU(0.2) ending in one logit. Both train with binary cross-entropy on logits and
Adam (lr 2e-4, beta1 0.5), alternating a discriminator step on real and generated images
with a generator step through the frozen discriminator (its input gradient flows back
into the generator): the whole GAN in ``train_step`` below.

The samples are judged by a classifier trained on the real images (the CNN of
``fashion_mnist_cnn.py`` / ``digits_cnn.py``): over 1,000 generated images its mean
top-class confidence must reach 0.80 and every class must get at least 3% of the
samples (no mode collapse); the same figures for real test images are printed next to
them. Writes ``gan_samples.png`` (a grid of samples) and ``gan_generator.safetensors``
(the generator's weights, so ``--generate`` can sample without training).
"""
import argparse
import pathlib
import sys
import time

import numpy as np

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))

import neuropil  # noqa: E402
from neuropil import nn, optim  # noqa: E402

NZ = 64  # noise dimensions


# -- data: images scaled to [-1, 1] (the generator's tanh range) -----------------------

def load(digits: bool, smoke: bool):
    if not digits:
        from neuropil.datasets import DatasetNotFoundError, load_fashion_mnist
        try:
            (x, y), (xt, yt) = load_fashion_mnist()
            scale = lambda a: (a.astype(np.float32) / 127.5 - 1.0)[:, None]  # noqa: E731
            return "fashion", scale(x), y, scale(xt), yt
        except DatasetNotFoundError as err:
            print(f"Fashion-MNIST is not installed ({err}); using scikit-learn's digits")
    from sklearn.datasets import load_digits
    d = load_digits()
    x = (d.images / 8.0 - 1.0).astype(np.float32)[:, None]  # 0..16 -> -1..1
    return "digits", x[:1500], d.target[:1500], x[1500:], d.target[1500:]


# -- the two networks -------------------------------------------------------------------

def generator(kind: str) -> nn.Module:
    if kind == "fashion":  # 1x1 -> 7x7 -> 14x14 -> 28x28
        return nn.Sequential(
            nn.ConvTranspose2d(NZ, 128, 7, bias=False), nn.BatchNorm2d(128), nn.ReLU(),
            nn.ConvTranspose2d(128, 64, 4, stride=2, padding=1, bias=False),
            nn.BatchNorm2d(64), nn.ReLU(),
            nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1), nn.Tanh())
    return nn.Sequential(  # 1x1 -> 4x4 -> 8x8
        nn.ConvTranspose2d(NZ, 64, 4, bias=False), nn.BatchNorm2d(64), nn.ReLU(),
        nn.ConvTranspose2d(64, 1, 4, stride=2, padding=1), nn.Tanh())


def discriminator(kind: str) -> nn.Module:
    if kind == "fashion":  # 28x28 -> 14x14 -> 7x7 -> one logit
        return nn.Sequential(
            nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(32, 64, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 1))
    return nn.Sequential(  # 8x8 -> 4x4 -> one logit
        nn.Conv2d(1, 32, 4, stride=2, padding=1), nn.LeakyReLU(0.2),
        nn.Flatten(), nn.Linear(32 * 4 * 4, 1))


def init_weights(model: nn.Module, rng) -> None:
    """DCGAN's initialisation: conv weights N(0, 0.02), BatchNorm scales N(1, 0.02)."""
    for m in model.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            m.weight.data[...] = rng.normal(0.0, 0.02, m.weight.shape)
            if m.bias is not None:
                m.bias.data[...] = 0.0
        elif isinstance(m, nn.BatchNorm2d):
            m.weight.data[...] = rng.normal(1.0, 0.02, m.weight.shape)
            m.bias.data[...] = 0.0


# -- training -----------------------------------------------------------------------------

class GAN:
    def __init__(self, kind: str, seed: int = 0):
        neuropil.manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.G, self.D = generator(kind), discriminator(kind)
        init_weights(self.G, self.rng)
        init_weights(self.D, self.rng)
        self.g_opt = optim.Adam(self.G.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.d_opt = optim.Adam(self.D.parameters(), lr=2e-4, betas=(0.5, 0.999))
        self.bce = nn.BCEWithLogitsLoss()

    def noise(self, n: int) -> np.ndarray:
        return self.rng.standard_normal((n, NZ, 1, 1)).astype(np.float32)

    def train_step(self, real: np.ndarray):
        n = len(real)
        # one-sided label smoothing (real = 0.9) keeps D from growing overconfident
        real_label = np.full((n, 1), 0.9, np.float32)
        ones, zeros = np.ones((n, 1), np.float32), np.zeros((n, 1), np.float32)
        G, D, bce = self.G, self.D, self.bce
        # Discriminator: real images are 1, generated ones 0. The generated batch is an
        # output of G, so D would compute its input gradient by default: not needed here.
        self.d_opt.zero_grad()
        d_real = bce(D(real), real_label)
        D.backward(bce.backward())
        fake = G(self.noise(n))
        d_fake = bce(D(fake), zeros)
        D.backward(bce.backward(), input_grad=False)
        self.d_opt.step()
        # Generator: make D call its images real. D is frozen (no weight gradients); its
        # input gradient is what G trains on.
        D.requires_grad_(False)
        self.g_opt.zero_grad()
        g_loss = bce(D(G(self.noise(n))), ones)
        G.backward(D.backward(bce.backward()))
        self.g_opt.step()
        D.requires_grad_(True)
        return d_real + d_fake, g_loss

    def sample(self, n: int) -> np.ndarray:
        self.G.eval()
        with nn.no_grad():
            out = self.G.predict(self.noise(n), batch_size=250)
        self.G.train()
        return out


# -- judging the samples ------------------------------------------------------------------

def train_judge(kind, x, y, epochs):
    """The CNN example's classifier and recipe (``fashion_mnist_cnn.py``: SGD with
    momentum 0.9, lr 0.05 decaying by 0.8 per epoch, 12 epochs; ``digits_cnn.py``'s
    network on digits), trained on the real images (inputs in [-1, 1])."""
    from _cnn_common import train
    neuropil.manual_seed(1)
    if kind == "fashion":
        judge = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Linear(64 * 7 * 7, 128), nn.ReLU(), nn.Linear(128, 10))
        lr_decay = 0.8
    else:
        judge = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.ReLU(),
            nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
            nn.Flatten(), nn.Dropout(0.3), nn.Linear(64 * 4 * 4, 128), nn.ReLU(),
            nn.Linear(128, 10))
        lr_decay = 1.0
    train(judge, x, y, epochs=epochs, batch_size=64, lr=0.05, momentum=0.9,
          weight_decay=5e-4, lr_decay=lr_decay, log=lambda msg: None)
    judge.eval()
    return judge


def judge_report(judge, images):
    """Mean top-class confidence and each class's share of the images."""
    probs = neuropil.functional.softmax(judge.predict(images, batch_size=250))
    shares = np.bincount(probs.argmax(axis=1), minlength=10) / len(images)
    return float(probs.max(axis=1).mean()), shares


def save_grid(path, images, rows=8):
    try:
        from PIL import Image
    except ImportError:
        print("(Pillow is not installed: no PNG written)")
        return
    imgs = images[: rows * rows, 0]
    h, w = imgs.shape[1:]
    grid = np.ones((rows * (h + 2), rows * (w + 2)), np.float32)
    for k, im in enumerate(imgs):
        r, c = divmod(k, rows)
        grid[r * (h + 2) + 1: r * (h + 2) + 1 + h, c * (w + 2) + 1: c * (w + 2) + 1 + w] = im
    pixels = np.clip((grid + 1) * 127.5, 0, 255).astype(np.uint8)
    Image.fromarray(pixels).resize((pixels.shape[1] * 3, pixels.shape[0] * 3),
                                   Image.NEAREST).save(path)
    print(f"saved {path}")


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few steps (used by the tests)")
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--digits", action="store_true", help="use scikit-learn's digits")
    parser.add_argument("--generate", action="store_true",
                        help="load gan_generator.safetensors and only sample")
    parser.add_argument("--weights", default="gan_generator.safetensors")
    parser.add_argument("--judge-epochs", type=int, default=None,
                        help="epochs of the judging classifier (default: the CNN example's 12;"
                             " 20 on digits)")
    args = parser.parse_args(argv)
    print(f"gan_fashion_mnist: neuropil {neuropil.__version__}, ISA {neuropil.get_isa()}, "
          f"{neuropil.get_num_threads()} thread(s)")
    kind, x, y, x_test, y_test = load(args.digits, args.smoke)
    gan = GAN(kind)
    if args.smoke:
        x, y = x[:256], y[:256]
    judge_epochs = args.judge_epochs or (1 if args.smoke else 12 if kind == "fashion" else 20)
    if args.generate:
        gan.G.load(args.weights)
        return report(gan.sample(1000), train_judge(kind, x, y, judge_epochs), x_test, args.smoke)
    epochs = 1 if args.smoke else args.epochs
    if kind == "digits" and not args.smoke:
        epochs = max(epochs, 150)  # 1,500 images: many more, much shorter epochs
    bs = args.batch_size
    t0 = time.perf_counter()
    for epoch in range(1, epochs + 1):
        order = gan.rng.permutation(len(x))
        d_sum = g_sum = 0.0
        steps = len(x) // bs
        for b in range(steps):
            d, g = gan.train_step(x[order[b * bs:(b + 1) * bs]])
            d_sum, g_sum = d_sum + d, g_sum + g
        if epoch == epochs or kind == "fashion" or epoch % 25 == 0:
            print(f"epoch {epoch}/{epochs}: D loss {d_sum / steps:.3f}, G loss "
                  f"{g_sum / steps:.3f}, {time.perf_counter() - t0:.0f} s")
    gan.G.save(args.weights)
    print(f"saved the generator's weights to {args.weights}")
    return report(gan.sample(1000), train_judge(kind, x, y, judge_epochs), x_test, args.smoke)


def report(samples, judge, x_test, smoke):
    save_grid("gan_samples.png", samples)
    conf_fake, shares = judge_report(judge, samples)
    conf_real, real_shares = judge_report(judge, x_test[:1000])
    print(f"classifier on 1,000 generated images: mean confidence {conf_fake:.3f}, smallest "
          f"class share {shares.min():.1%} (real test images: {conf_real:.3f}, "
          f"{real_shares.min():.1%})")
    print("class shares of the samples: " + " ".join(f"{s:.0%}" for s in shares))
    if not smoke and (conf_fake < 0.80 or shares.min() < 0.03):
        print("FAILED: expected mean confidence >= 0.80 and every class >= 3% of the samples",
              file=sys.stderr)
        sys.exit(1)
    return conf_fake, shares


if __name__ == "__main__":
    main()
