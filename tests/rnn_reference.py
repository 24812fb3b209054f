"""Plain NumPy reference of PyTorch's recurrent equations: an explicit loop over time,
forward and backward, weight gradients accumulated step by step (deliberately unlike the
C++ path, which forms them with one GEMM over all steps). float64 throughout."""
import numpy as np

GATES = {"rnn_tanh": 1, "rnn_relu": 1, "lstm": 4, "gru": 3}


def sigmoid(v):
    return np.exp(-np.logaddexp(0.0, -v))


def cell_forward(mode, xt, h, c, w_ih, w_hh, b_ih, b_hh):
    """One step for a batch: returns (h_new, c_new, saved-for-backward)."""
    H = w_hh.shape[1]
    gi = xt @ w_ih.T + b_ih
    gh = h @ w_hh.T + b_hh
    if mode in ("rnn_tanh", "rnn_relu"):
        pre = gi + gh
        hn = np.tanh(pre) if mode == "rnn_tanh" else np.maximum(pre, 0)
        return hn, None, (pre, hn)
    if mode == "lstm":
        a = gi + gh
        i, f, g, o = (sigmoid(a[:, :H]), sigmoid(a[:, H:2 * H]), np.tanh(a[:, 2 * H:3 * H]),
                      sigmoid(a[:, 3 * H:]))
        cn = f * c + i * g
        hn = o * np.tanh(cn)
        return hn, cn, (i, f, g, o, cn)
    r = sigmoid(gi[:, :H] + gh[:, :H])
    z = sigmoid(gi[:, H:2 * H] + gh[:, H:2 * H])
    hn_lin = gh[:, 2 * H:]
    n = np.tanh(gi[:, 2 * H:] + r * hn_lin)
    hn = (1 - z) * n + z * h
    return hn, None, (r, z, n, hn_lin)


def cell_backward(mode, dh, dc, h, c, saved, H):
    """Gradients of one step: (d_pre_x (N,G*H), d_pre_h (N,G*H), dh_prev_direct, dc_prev)."""
    if mode in ("rnn_tanh", "rnn_relu"):
        _, hn = saved
        if mode == "rnn_tanh":
            d = dh * (1 - hn ** 2)
        else:  # a select, as relu_backward and PyTorch: no gradient (not NaN) where off
            d = np.where(hn > 0, dh, 0.0)
        return d, d, np.zeros_like(dh), None
    if mode == "lstm":
        i, f, g, o, cn = saved
        tc = np.tanh(cn)
        dct = dc + dh * o * (1 - tc ** 2)
        d = np.concatenate([dct * g * i * (1 - i), dct * c * f * (1 - f), dct * i * (1 - g ** 2),
                            dh * tc * o * (1 - o)], axis=1)
        return d, d, np.zeros_like(dh), dct * f
    r, z, n, hn_lin = saved
    dn = dh * (1 - z) * (1 - n ** 2)
    dr = dn * hn_lin * r * (1 - r)
    dz = dh * (h - n) * z * (1 - z)
    dx_ = np.concatenate([dr, dz, dn], axis=1)
    dh_ = np.concatenate([dr, dz, dn * r], axis=1)
    return dx_, dh_, dh * z, None


def direction(mode, x, w_ih, w_hh, b_ih=None, b_hh=None, h0=None, c0=None, lengths=None,
              reverse=False, dy=None, dh_n=None, dc_n=None):
    """One layer-direction, x (N, T, I) batch-first. Returns dict with y, h_n, c_n and,
    when any of dy/dh_n/dc_n is given, dx, dh0, dc0, dw_ih, dw_hh, db_ih, db_hh."""
    N, T, _ = x.shape
    G = GATES[mode]
    H = w_hh.shape[1]
    b_ih = np.zeros(G * H) if b_ih is None else b_ih
    b_hh = np.zeros(G * H) if b_hh is None else b_hh
    h = np.zeros((N, H)) if h0 is None else h0.astype(np.float64)
    c = np.zeros((N, H)) if c0 is None else c0.astype(np.float64)
    L = np.full(N, T) if lengths is None else np.asarray(lengths)
    order = list(range(T))[::-1] if reverse else list(range(T))
    y = np.zeros((N, T, H))
    tape = []
    for t in order:
        valid = (t < L)[:, None]
        hn, cn, saved = cell_forward(mode, x[:, t], h, c, w_ih, w_hh, b_ih, b_hh)
        tape.append((t, h, c, saved, valid))
        y[:, t] = np.where(valid, hn, 0.0)
        h = np.where(valid, hn, h)
        if mode == "lstm":
            c = np.where(valid, cn, c)
    out = {"y": y, "h_n": h, "c_n": c if mode == "lstm" else None}
    if dy is None and dh_n is None and dc_n is None:
        return out
    dy = np.zeros((N, T, H)) if dy is None else dy
    dh = np.zeros((N, H)) if dh_n is None else dh_n.copy()
    dc = np.zeros((N, H)) if dc_n is None else dc_n.copy()
    g = {k: np.zeros_like(v) for k, v in
         (("dw_ih", w_ih), ("dw_hh", w_hh), ("db_ih", b_ih), ("db_hh", b_hh))}
    dx = np.zeros_like(x, dtype=np.float64)
    for t, hp, cp, saved, valid in reversed(tape):
        dht = dh + np.where(valid, dy[:, t], 0.0)
        dpx, dph, direct, dcp = cell_backward(mode, dht, dc, hp, cp, saved, H)
        # padding steps contribute nothing (a select: NaN * 0 would still be NaN)
        dpx = np.where(valid, dpx, 0.0)
        dph = np.where(valid, dph, 0.0)
        g["dw_ih"] += dpx.T @ np.where(valid, x[:, t], 0.0)  # padding never reaches dW
        g["dw_hh"] += dph.T @ hp
        g["db_ih"] += dpx.sum(0)
        g["db_hh"] += dph.sum(0)
        dx[:, t] = dpx @ w_ih
        dh = np.where(valid, dph @ w_hh + direct, dh)
        if mode == "lstm":
            dc = np.where(valid, dcp, dc)
    out.update(dx=dx, dh0=dh, dc0=dc if mode == "lstm" else None, **g)
    return out


def layer(mode, x, params, num_layers, bidirectional, h0=None, c0=None, lengths=None,
          bias=True, dy=None, dh_n=None, dc_n=None):
    """A stacked (bidirectional) layer from a PyTorch-named state dict, batch-first.
    Returns (y, h_n, c_n, grads) with grads keyed like the state dict plus "x", "h0", "c0"
    (empty when no output gradient is given)."""
    D = 2 if bidirectional else 1
    N, T, _ = x.shape
    H = params["weight_hh_l0"].shape[1]
    inp = x
    ins, outs = [], []
    h_n = np.zeros((num_layers * D, N, H))
    c_n = np.zeros((num_layers * D, N, H))
    for l in range(num_layers):
        ys = []
        for d in range(D):
            s = f"_l{l}" + ("_reverse" if d else "")
            k = l * D + d
            r = direction(mode, inp, params["weight_ih" + s], params["weight_hh" + s],
                          params.get("bias_ih" + s) if bias else None,
                          params.get("bias_hh" + s) if bias else None,
                          None if h0 is None else h0[k], None if c0 is None else c0[k],
                          lengths, reverse=bool(d))
            ys.append(r["y"])
            h_n[k] = r["h_n"]
            if mode == "lstm":
                c_n[k] = r["c_n"]
        ins.append(inp)
        inp = np.concatenate(ys, axis=2)
    y = inp
    grads = {}
    if dy is None and dh_n is None and dc_n is None:
        return y, h_n, c_n if mode == "lstm" else None, grads
    g_y = np.zeros_like(y) if dy is None else dy
    dh0 = np.zeros_like(h_n)
    dc0 = np.zeros_like(c_n)
    for l in reversed(range(num_layers)):
        dx = np.zeros_like(ins[l])
        for d in range(D):
            s = f"_l{l}" + ("_reverse" if d else "")
            k = l * D + d
            r = direction(mode, ins[l], params["weight_ih" + s], params["weight_hh" + s],
                          params.get("bias_ih" + s) if bias else None,
                          params.get("bias_hh" + s) if bias else None,
                          None if h0 is None else h0[k], None if c0 is None else c0[k],
                          lengths, reverse=bool(d), dy=g_y[:, :, d * H:(d + 1) * H],
                          dh_n=None if dh_n is None else dh_n[k],
                          dc_n=None if dc_n is None else dc_n[k])
            dx += r["dx"]
            dh0[k] = r["dh0"]
            if mode == "lstm":
                dc0[k] = r["dc0"]
            grads["weight_ih" + s] = r["dw_ih"]
            grads["weight_hh" + s] = r["dw_hh"]
            if bias:
                grads["bias_ih" + s] = r["db_ih"]
                grads["bias_hh" + s] = r["db_hh"]
        g_y = dx
    grads["x"] = g_y
    grads["h0"] = dh0
    grads["c0"] = dc0 if mode == "lstm" else None
    return y, h_n, c_n if mode == "lstm" else None, grads
