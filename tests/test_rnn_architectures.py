"""Every recurrent architecture of the course, each trained or checked on a small task:
one-to-one, many-to-many (equal lengths), many-to-one (fixed and variable lengths),
one-to-many (generation with temperature sampling), encoder-decoder (different lengths),
stacked; plus the textbook RNN with its output layer."""
import numpy as np
import pytest

import neuropil
from neuropil import nn, optim
from neuropil.nn.utils import clip_grad_norm_, sample_logits
from neuropil.testing import gradcheck


@pytest.fixture(autouse=True)
def _one_thread(threads):
    """Small training loops: one thread keeps them fast on shared, oversubscribed CPUs
    (thread-count independence is tested in test_rnn.py)."""
    neuropil.set_num_threads(1)


def _train(params, step, iters, lr=0.01):
    opt = optim.Adam(params, lr=lr)
    for _ in range(iters):
        opt.zero_grad()
        loss = step()
        opt.step()
    return loss


@pytest.mark.parametrize("cls", [nn.RNN, nn.LSTM, nn.GRU])
def test_neuropil_testing_gradcheck_on_each_layer(cls, rng):
    layer = cls(3, 4, num_layers=2, bidirectional=True, rng=0).double()
    gradcheck(layer, rng.standard_normal((2, 4, 3)))


def test_textbook_rnn_with_output_layer(rng):
    """h_t = tanh(W [h_{t-1}; x_t] + b), y_t = sigmoid(W~ h_t + b~): PyTorch's split weights
    are W = [W_hh | W_ih] and b = b_ih + b_hh."""
    N, T, I, H, O = 3, 5, 4, 6, 2
    rnn = nn.RNN(I, H, rng=0).double()
    model = nn.Sequential(rnn, nn.TimeDistributed(nn.Linear(H, O, rng=1)), nn.Sigmoid()).double()
    x = rng.standard_normal((N, T, I))
    y = model(x)
    W = np.concatenate([rnn.weight_hh_l0.data, rnn.weight_ih_l0.data], axis=1)  # [H, H+I]
    b = rnn.bias_ih_l0.data + rnn.bias_hh_l0.data
    lin = model[1].module
    h = np.zeros((N, H))
    for t in range(T):
        h = np.tanh(np.concatenate([h, x[:, t]], axis=1) @ W.T + b)
        yt = 1 / (1 + np.exp(-(h @ lin.weight.data.T + lin.bias.data)))
        np.testing.assert_allclose(y[:, t], yt, rtol=1e-12)
    gradcheck(model, x)


def test_one_to_one_is_a_dense_layer(rng):
    """T = 1 with no initial state: h = tanh(W_ih x + b_ih + b_hh)."""
    rnn = nn.RNN(5, 3, rng=0).double()
    x = rng.standard_normal((4, 1, 5))
    y = rnn(x)
    np.testing.assert_allclose(
        y[:, 0], np.tanh(x[:, 0] @ rnn.weight_ih_l0.data.T + rnn.bias_ih_l0.data
                         + rnn.bias_hh_l0.data), rtol=1e-12)
    gradcheck(nn.Sequential(rnn, nn.LastStep(), nn.Linear(3, 2, rng=1).double()), x)


def test_many_to_many_equal_length_tagging(rng):
    """Tag each step with whether x_t > x_{t-1} (needs one step of memory)."""
    neuropil.manual_seed(0)
    N, T = 64, 8
    x = rng.standard_normal((N, T, 1)).astype(np.float32)
    prev = np.concatenate([np.zeros((N, 1, 1), np.float32), x[:, :-1]], axis=1)
    tags = (x > prev)[..., 0].astype(np.int64)
    model = nn.Sequential(nn.GRU(1, 16, rng=0), nn.TimeDistributed(nn.Linear(16, 2, rng=1)))
    ce = nn.CrossEntropyLoss()

    def step():
        logits = model(x)
        loss = ce(logits.reshape(-1, 2), tags.reshape(-1))
        model.backward(ce.backward().reshape(logits.shape))
        return loss
    _train(model.parameters(), step, 150, lr=0.03)
    model.eval()
    acc = (model(x).argmax(-1) == tags).mean()
    assert acc > 0.95, acc


def test_many_to_one_with_fit():
    """Sequence classification in a Sequential with model.fit: is the sum positive?"""
    rng = np.random.default_rng(1)
    x = rng.choice([-1.0, 1.0], size=(256, 7, 1)).astype(np.float32)
    y = (x.sum(axis=(1, 2)) > 0).astype(np.int64)
    model = nn.Sequential(nn.LSTM(1, 12, rng=0), nn.LastStep(), nn.Linear(12, 2, rng=1))
    model.fit(x, y, loss=nn.CrossEntropyLoss(), optimizer=optim.Adam(model.parameters(), lr=0.03),
              epochs=15, batch_size=32, verbose=0, rng=0)
    acc = (model.predict(x).argmax(1) == y).mean()
    assert acc > 0.95, acc


def test_many_to_one_variable_lengths_last_valid_step(rng):
    N, T, I, H = 4, 6, 3, 5
    rnn = nn.GRU(I, H, rng=0).double()
    last = nn.LastStep()
    x = rng.standard_normal((N, T, I))
    L = np.array([6, 2, 4, 1])
    y = rnn(x, lengths=L)
    z = last(y, lengths=L)
    np.testing.assert_array_equal(z, rnn.state[0])  # the last valid output is the final state
    g = rng.standard_normal(z.shape)
    dy = last.backward(g)
    assert dy.shape == y.shape
    for n, l in enumerate(L):
        np.testing.assert_array_equal(dy[n, l - 1], g[n])
        assert not np.delete(dy[n], l - 1, axis=0).any()
    with pytest.raises(ValueError, match="at least 1"):
        last(y, lengths=[0, 1, 1, 1])


def test_stacked_layers_in_sequential_train(rng):
    """Two different recurrent layers stacked (LSTM -> GRU) learn a delayed copy."""
    neuropil.manual_seed(0)
    N, T = 64, 6
    x = rng.integers(0, 2, (N, T, 1)).astype(np.float32)
    target = np.concatenate([np.zeros((N, 2), np.int64), x[:, :-2, 0].astype(np.int64)], axis=1)
    model = nn.Sequential(nn.LSTM(1, 12, rng=0), nn.GRU(12, 12, rng=1),
                          nn.TimeDistributed(nn.Linear(12, 2, rng=2)))
    ce = nn.CrossEntropyLoss()

    def step():
        logits = model(x)
        loss = ce(logits.reshape(-1, 2), target.reshape(-1))
        model.backward(ce.backward().reshape(logits.shape))
        clip_grad_norm_(model.parameters(), 5.0)
        return loss
    _train(model.parameters(), step, 200, lr=0.03)
    model.eval()
    assert (model(x).argmax(-1) == target).mean() > 0.95


def test_one_to_many_generation_feeds_its_own_output_back(rng):
    """Learn the cycle a->b->c->d->a; generate from one seed symbol by feeding each sampled
    symbol back as the next input, one step at a time with the carried state."""
    neuropil.manual_seed(0)
    V, T, N = 4, 12, 16
    starts = rng.integers(0, V, N)
    seq = (starts[:, None] + np.arange(T + 1)[None, :]) % V
    emb = nn.Embedding(V, 8, rng=0)
    lstm = nn.LSTM(8, 16, rng=1)
    head = nn.TimeDistributed(nn.Linear(16, V, rng=2))
    params = emb.parameters() + lstm.parameters() + head.parameters()
    ce = nn.CrossEntropyLoss()

    def step():
        logits = head(lstm(emb(seq[:, :-1])))
        loss = ce(logits.reshape(-1, V), seq[:, 1:].reshape(-1))
        g = head.backward(ce.backward().reshape(logits.shape))
        emb.backward(lstm.backward(g))
        return loss
    _train(params, step, 200, lr=0.03)

    def generate(first, steps, temperature, seed):
        for m in (emb, lstm, head):
            m.eval()
        out, state, sym = [first], None, np.array([first])
        gen = np.random.default_rng(seed)
        for _ in range(steps):
            h = lstm(emb(sym[:, None]), state=state)
            state = lstm.state
            sym = np.atleast_1d(sample_logits(head(h)[:, 0], temperature, gen))
            out.append(int(sym[0]))
        return out

    cold = generate(2, 20, 0.2, 0)
    assert cold == [(2 + i) % V for i in range(21)]
    assert generate(2, 20, 0.0, 1) == cold  # temperature 0 is the argmax
    hot = generate(2, 200, 50.0, 2)  # a flat distribution: all symbols, many breaks
    assert set(hot) == set(range(V))
    assert sum((b - a) % V != 1 for a, b in zip(hot, hot[1:])) > 100


def test_sample_logits_temperature(rng):
    logits = np.log(np.array([[0.7, 0.2, 0.1]]))
    draws = np.array([sample_logits(logits, 1.0, rng)[0] for _ in range(4000)])
    np.testing.assert_allclose(np.bincount(draws, minlength=3) / 4000, [0.7, 0.2, 0.1], atol=0.03)
    sharp = np.array([sample_logits(logits, 0.25, rng)[0] for _ in range(2000)])
    assert (sharp == 0).mean() > 0.95
    assert sample_logits(logits[0], 0).shape == ()
    with pytest.raises(ValueError, match="temperature"):
        sample_logits(logits, -1.0)


def test_encoder_decoder_gradients_flow_through_the_state(rng):
    """Encoder final state -> decoder initial state; finite differences on the encoder's
    input and weights through the decoder's loss (different input/output lengths)."""
    enc = nn.LSTM(3, 4, num_layers=2, rng=0).double()
    dec = nn.LSTM(2, 4, num_layers=2, rng=1).double()
    xe = rng.standard_normal((2, 5, 3))
    xd = rng.standard_normal((2, 3, 2))
    L = np.array([5, 3])
    w = rng.standard_normal((2, 3, 4))

    def loss():
        enc(xe, lengths=L)
        return float((dec(xd, state=enc.state) * w).sum())

    loss()
    enc.zero_grad()
    dec.zero_grad()
    dec.backward(w)
    dxe = enc.backward(None, grad_state=dec.grad_state).copy()
    from test_rnn import numeric_grad
    np.testing.assert_allclose(dxe, numeric_grad(loss, xe), rtol=1e-6, atol=1e-9)
    for name, p in enc.named_parameters():
        np.testing.assert_allclose(p.grad.copy(), numeric_grad(loss, p.data), rtol=1e-6,
                                   atol=1e-9, err_msg=name)
    assert not dxe[1, 3:].any()  # padding of the short sequence gets no gradient


def test_encoder_decoder_learns_to_reverse(rng):
    """Tiny seq2seq (teacher forcing): reverse 3 symbols out of 4."""
    neuropil.manual_seed(0)
    V, S, N, H = 4, 3, 64, 24
    src = rng.integers(0, V, (N, S))
    tgt = src[:, ::-1]
    go = V  # start symbol
    dec_in = np.concatenate([np.full((N, 1), go), tgt[:, :-1]], axis=1)
    emb_e, emb_d = nn.Embedding(V, 8, rng=0), nn.Embedding(V + 1, 8, rng=1)
    enc, dec = nn.GRU(8, H, rng=2), nn.GRU(8, H, rng=3)
    head = nn.TimeDistributed(nn.Linear(H, V, rng=4))
    mods = [emb_e, emb_d, enc, dec, head]
    params = [p for m in mods for p in m.parameters()]
    ce = nn.CrossEntropyLoss()

    def step():
        enc(emb_e(src))
        logits = head(dec(emb_d(dec_in), state=enc.state))
        loss = ce(logits.reshape(-1, V), tgt.reshape(-1))
        emb_d.backward(dec.backward(head.backward(ce.backward().reshape(logits.shape))))
        emb_e.backward(enc.backward(None, grad_state=dec.grad_state))
        return loss
    _train(params, step, 300, lr=0.02)
    for m in mods:
        m.eval()
    enc(emb_e(src))
    state, sym, out = enc.state, np.full((N, 1), go), []
    for _ in range(S):  # greedy decoding, feeding predictions back
        h = dec(emb_d(sym), state=state)
        state = dec.state
        sym = head(h)[:, 0].argmax(1)[:, None]
        out.append(sym[:, 0])
    assert (np.stack(out, 1) == tgt).all(axis=1).mean() > 0.95


def test_embedding_model_trains_with_fit():
    """fit() casts inputs to the model's float dtype: Embedding takes whole-number floats."""
    rng = np.random.default_rng(0)
    x = rng.integers(0, 5, (128, 6))
    y = (x[:, 0] == x[:, -1]).astype(np.int64)  # first and last token equal?
    model = nn.Sequential(nn.Embedding(5, 8, rng=0), nn.GRU(8, 16, rng=1), nn.LastStep(),
                          nn.Linear(16, 2, rng=2))
    model.fit(x, y, loss=nn.CrossEntropyLoss(), optimizer=optim.Adam(model.parameters(), lr=0.03),
              epochs=30, batch_size=32, verbose=0, rng=0)
    assert (model.predict(x).argmax(1) == y).mean() > 0.95
    with pytest.raises(TypeError, match="whole numbers"):
        nn.Embedding(5, 2)(np.array([0.5, 1.0]))
