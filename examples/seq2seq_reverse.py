"""Encoder-decoder (many-to-many of different lengths): reverse digit sequences.

Sequences of 5 to 10 digits, padded to 10 and passed with `lengths=`, are read by an
LSTM encoder; its final state (h, c) -- the state at each sequence's last valid step --
seeds an LSTM decoder that emits the digits in reverse order. Training uses teacher
forcing (the decoder reads the previous target digit) and a loss over valid positions
only; gradients reach the encoder through the state (enc.backward(None,
grad_state=dec.grad_state)). Evaluation decodes greedily, feeding each prediction back
as the next input, and reports whole-sequence accuracy on held-out sequences.

    python examples/seq2seq_reverse.py [--epochs N] [--hidden H] [--smoke]
"""
import argparse
import sys
import time

import numpy as np

import neuropil
from neuropil import nn, optim
from neuropil.nn.utils import clip_grad_norm_

DIGITS, GO, MIN_LEN, MAX_LEN = 10, 10, 5, 10


def make_data(n, rng):
    lengths = rng.integers(MIN_LEN, MAX_LEN + 1, n)
    src = rng.integers(0, DIGITS, (n, MAX_LEN))
    tgt = np.zeros_like(src)
    for L in range(MIN_LEN, MAX_LEN + 1):  # a few vectorised groups, not a per-sample loop
        rows = lengths == L
        src[rows, L:] = 0
        tgt[rows, :L] = src[rows, :L][:, ::-1]
    return src, tgt, lengths


class Seq2Seq(nn.Module):
    def __init__(self, hidden, embed=32):
        super().__init__()
        self.src_embed = nn.Embedding(DIGITS, embed, rng=0)
        self.encoder = nn.LSTM(embed, hidden, rng=1)
        self.tgt_embed = nn.Embedding(DIGITS + 1, embed, rng=2)  # digits and GO
        self.decoder = nn.LSTM(embed, hidden, rng=3)
        self.head = nn.TimeDistributed(nn.Linear(hidden, DIGITS, rng=4))

    def encode(self, src, lengths):
        self.encoder(self.src_embed(src), lengths=lengths)
        return self.encoder.state

    def forward(self, src, dec_in, lengths):
        state = self.encode(src, lengths)
        return self.head(self.decoder(self.tgt_embed(dec_in), state=state, lengths=lengths))

    def backward(self, grad_logits):
        g = self.decoder.backward(self.head.backward(grad_logits))
        self.tgt_embed.backward(g)
        self.src_embed.backward(self.encoder.backward(None, grad_state=self.decoder.grad_state))

    def greedy(self, src, lengths):
        """Decode max(lengths) steps, each prediction fed back as the next input."""
        state = self.encode(src, lengths)
        state = tuple(s.copy() for s in state)
        sym = np.full((len(src), 1), GO)
        out = []
        for _ in range(int(lengths.max())):
            h = self.decoder(self.tgt_embed(sym), state=state)
            state = tuple(s.copy() for s in self.decoder.state)
            sym = self.head(h)[:, 0].argmax(1)[:, None]
            out.append(sym[:, 0])
        return np.stack(out, axis=1)


def sequence_accuracy(model, src, tgt, lengths, batch=500):
    model.eval()
    correct = 0
    for i in range(0, len(src), batch):
        pred = model.greedy(src[i:i + batch], lengths[i:i + batch])
        valid = np.arange(pred.shape[1])[None, :] < lengths[i:i + batch, None]
        correct += int(((pred == tgt[i:i + batch, :pred.shape[1]]) | ~valid).all(axis=1).sum())
    model.train()
    return correct / len(src)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=12)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--train", type=int, default=40000, help="training sequences")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--smoke", action="store_true", help="tiny run (used by the tests)")
    parser.add_argument("--threads", type=int, default=0,
                        help="neuropil threads (0: the default; --smoke uses 1)")
    args = parser.parse_args(argv)
    if args.threads or args.smoke:  # smoke runs are tiny: one thread avoids pool wake-ups
        neuropil.set_num_threads(args.threads or 1)
    if args.smoke:
        args.epochs, args.hidden, args.train = 2, 32, 2000
    neuropil.manual_seed(0)
    rng = np.random.default_rng(0)
    src, tgt, lengths = make_data(args.train, rng)
    src_te, tgt_te, len_te = make_data(500 if args.smoke else 5000, np.random.default_rng(1))
    dec_in = np.concatenate([np.full((len(tgt), 1), GO), tgt[:, :-1]], axis=1)
    valid = np.arange(MAX_LEN)[None, :] < lengths[:, None]
    model = Seq2Seq(args.hidden)
    print(model)
    opt = optim.Adam(model.parameters(), lr=3e-3)
    sched = optim.StepLR(opt, step_size=4, gamma=0.5)  # settles the last epochs
    ce = nn.CrossEntropyLoss()
    t_start = time.perf_counter()
    acc = 0.0
    for epoch in range(1, args.epochs + 1):
        t0 = time.perf_counter()
        order = rng.permutation(len(src))
        losses = []
        for i in range(0, len(order), args.batch):
            b = order[i:i + args.batch]
            opt.zero_grad()
            logits = model(src[b], dec_in[b], lengths[b])
            mask = valid[b]
            loss = ce(logits[mask], tgt[b][mask])  # valid positions only
            grad = np.zeros_like(logits)
            grad[mask] = ce.backward()
            model.backward(grad)
            clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            losses.append(loss)
        sched.step()
        acc = sequence_accuracy(model, src_te, tgt_te, len_te)
        print(f"epoch {epoch}: loss {np.mean(losses):.4f}, held-out whole-sequence accuracy "
              f"{acc:.4f} ({time.perf_counter() - t0:.1f} s)", flush=True)
    print(f"\nfinal whole-sequence accuracy {acc:.4f} on {len(src_te)} held-out sequences of "
          f"length {MIN_LEN}-{MAX_LEN} (hidden={args.hidden}, "
          f"{time.perf_counter() - t_start:.0f} s, {neuropil.get_num_threads()} thread(s))")
    model.eval()
    for n in range(3):
        L = len_te[n]
        print(f"  {src_te[n, :L].tolist()} -> "
              f"{model.greedy(src_te[n:n + 1], len_te[n:n + 1])[0, :L].tolist()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
