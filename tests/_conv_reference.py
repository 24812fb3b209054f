"""Plain NumPy references for convolution and pooling (loops over taps/windows)."""
import numpy as np


def out_size(h, k, s, p, d=1):
    return (h + 2 * p - d * (k - 1) - 1) // s + 1


def pool_out(h, k, s, p, ceil_mode):
    """PyTorch's pooling output size (ceil_mode: round up, the last window starts inside)."""
    if not ceil_mode:
        return (h + 2 * p - k) // s + 1
    o = -(-(h + 2 * p - k) // s) + 1
    return o - 1 if (o - 1) * s >= h + p else o


def conv2d_grouped_ref(x, w, b, s, p, d, groups):
    """conv2d_ref applied group by group (weight (OC, C/groups, kH, kW))."""
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    ys = [conv2d_ref(x[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og],
                     None if b is None else b[g * og:(g + 1) * og], s, p, d) for g in range(groups)]
    return np.concatenate(ys, axis=1)


def conv2d_grouped_backward_ref(x, w, dy, s, p, d, groups):
    cg, og = x.shape[1] // groups, w.shape[0] // groups
    parts = [conv2d_backward_ref(x[:, g * cg:(g + 1) * cg], w[g * og:(g + 1) * og],
                                 dy[:, g * og:(g + 1) * og], s, p, d) for g in range(groups)]
    return tuple(np.concatenate([q[i] for q in parts], axis=1 if i == 0 else 0) for i in range(3))


def conv_transpose2d_ref(x, w, b, s, p, op, groups, d):
    """Scatter form: y[n, g*og + o, i*s - p + kh*d, j*s - p + kw*d] += x[n, g*cg + c, i, j] w[g*cg + c, o, kh, kw]."""
    N, Cin, H, W = x.shape
    _, og, KH, KW = w.shape
    cg = Cin // groups
    Ho = (H - 1) * s[0] - 2 * p[0] + d[0] * (KH - 1) + op[0] + 1
    Wo = (W - 1) * s[1] - 2 * p[1] + d[1] * (KW - 1) + op[1] + 1
    big = np.zeros((N, og * groups, Ho + 2 * p[0] + s[0] * H + d[0] * KH,
                    Wo + 2 * p[1] + s[1] * W + d[1] * KW))
    for g in range(groups):
        xg = x[:, g * cg:(g + 1) * cg].astype(np.float64)
        wg = w[g * cg:(g + 1) * cg].astype(np.float64)
        for kh in range(KH):
            for kw in range(KW):
                contrib = np.einsum("nchw,co->nohw", xg, wg[:, :, kh, kw])
                r0, c0 = kh * d[0], kw * d[1]
                big[:, g * og:(g + 1) * og, r0:r0 + s[0] * (H - 1) + 1:s[0],
                    c0:c0 + s[1] * (W - 1) + 1:s[1]] += contrib
    y = big[:, :, p[0]:p[0] + Ho, p[1]:p[1] + Wo]
    if b is not None:
        y = y + b[None, :, None, None]
    return y


def conv2d_ref(x, w, b, s, p, d):
    """y[n,o,i,j] = b[o] + sum w[o,c,kh,kw] x[n,c,i*s-p+kh*d, j*s-p+kw*d] (zero padded)."""
    N, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    OH, OW = out_size(H, KH, s[0], p[0], d[0]), out_size(W, KW, s[1], p[1], d[1])
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    y = np.zeros((N, OC, OH, OW))
    for kh in range(KH):
        for kw in range(KW):
            r0, c0 = kh * d[0], kw * d[1]
            patch = xp[:, :, r0:r0 + s[0] * (OH - 1) + 1:s[0], c0:c0 + s[1] * (OW - 1) + 1:s[1]]
            y += np.einsum("nchw,oc->nohw", patch, w[:, :, kh, kw].astype(np.float64))
    if b is not None:
        y += b[None, :, None, None]
    return y


def conv2d_backward_ref(x, w, dy, s, p, d):
    """(dx, dw, db) of conv2d_ref for upstream gradient dy, by the same tap loops."""
    N, C, H, W = x.shape
    OC, _, KH, KW = w.shape
    OH, OW = dy.shape[2:]
    xp = np.pad(x.astype(np.float64), ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    dxp = np.zeros_like(xp)
    dw = np.zeros(w.shape)
    dy = dy.astype(np.float64)
    for kh in range(KH):
        for kw in range(KW):
            r0, c0 = kh * d[0], kw * d[1]
            sl = (slice(None), slice(None), slice(r0, r0 + s[0] * (OH - 1) + 1, s[0]),
                  slice(c0, c0 + s[1] * (OW - 1) + 1, s[1]))
            dw[:, :, kh, kw] = np.einsum("nohw,nchw->oc", dy, xp[sl])
            dxp[sl] += np.einsum("nohw,oc->nchw", dy, w[:, :, kh, kw].astype(np.float64))
    dx = dxp[:, :, p[0]:p[0] + H, p[1]:p[1] + W]
    return dx, dw, dy.sum(axis=(0, 2, 3))


def im2col_ref(x, k, s, p, d):
    N, C, H, W = x.shape
    OH, OW = out_size(H, k[0], s[0], p[0], d[0]), out_size(W, k[1], s[1], p[1], d[1])
    xp = np.pad(x, ((0, 0), (0, 0), (p[0], p[0]), (p[1], p[1])))
    cols = np.zeros((N, C, k[0], k[1], OH, OW), x.dtype)
    for kh in range(k[0]):
        for kw in range(k[1]):
            r0, c0 = kh * d[0], kw * d[1]
            cols[:, :, kh, kw] = xp[:, :, r0:r0 + s[0] * (OH - 1) + 1:s[0],
                                    c0:c0 + s[1] * (OW - 1) + 1:s[1]]
    return cols.reshape(N, C * k[0] * k[1], OH * OW)


def max_pool_ref(x, k, s, p, ceil_mode=False):
    """Loops over windows; padding never wins; first max in row-major order; NaN wins."""
    N, C, H, W = x.shape
    OH, OW = pool_out(H, k[0], s[0], p[0], ceil_mode), pool_out(W, k[1], s[1], p[1], ceil_mode)
    y = np.zeros((N, C, OH, OW), x.dtype)
    idx = np.zeros((N, C, OH, OW), np.int64)
    for n in range(N):
        for c in range(C):
            for i in range(OH):
                for j in range(OW):
                    best, bi = None, -1
                    for h in range(max(i * s[0] - p[0], 0), min(i * s[0] - p[0] + k[0], H)):
                        for w_ in range(max(j * s[1] - p[1], 0), min(j * s[1] - p[1] + k[1], W)):
                            v = x[n, c, h, w_]
                            if best is None or v > best or (np.isnan(v) and not np.isnan(best)):
                                best, bi = v, h * W + w_
                    y[n, c, i, j], idx[n, c, i, j] = best, bi
    return y, idx


def avg_pool_ref(x, k, s, p, count_include_pad, ceil_mode=False):
    N, C, H, W = x.shape
    OH, OW = pool_out(H, k[0], s[0], p[0], ceil_mode), pool_out(W, k[1], s[1], p[1], ceil_mode)
    y = np.zeros((N, C, OH, OW))
    for i in range(OH):
        for j in range(OW):
            hs, ws = i * s[0] - p[0], j * s[1] - p[1]
            he, we = min(hs + k[0], H + p[0]), min(ws + k[1], W + p[1])
            h0, w0, h1, w1 = max(hs, 0), max(ws, 0), min(he, H), min(we, W)
            div = (he - hs) * (we - ws) if count_include_pad else (h1 - h0) * (w1 - w0)
            y[:, :, i, j] = x[:, :, h0:h1, w0:w1].astype(np.float64).sum(axis=(2, 3)) / div
    return y


def gradcheck_module(module, x, rng, eps=1e-6, rtol=1e-5, atol=1e-7, max_checks=None):
    """Central differences of L = sum(module(x) * R) w.r.t. x and every parameter (float64)."""
    y = np.array(module(x), copy=True)
    R = rng.standard_normal(y.shape)
    module.zero_grad()
    module(x)
    dx = module.backward(R)
    dx = None if dx is None else np.array(dx, copy=True)

    def loss():
        return float(np.sum(np.asarray(module(x)) * R))

    targets = [("input", x, dx)] + [(n, p.data, p.grad.copy()) for n, p in module.named_parameters()]
    for name, arr, analytic in targets:
        if analytic is None:
            continue
        flat = arr.reshape(-1)
        idxs = range(flat.size)
        if max_checks is not None and flat.size > max_checks:
            idxs = rng.choice(flat.size, max_checks, replace=False)
        num = np.zeros(flat.size)
        for i in idxs:
            old = flat[i]
            flat[i] = old + eps
            lp = loss()
            flat[i] = old - eps
            lm = loss()
            flat[i] = old
            num[i] = (lp - lm) / (2 * eps)
        idxs = np.asarray(list(idxs))
        np.testing.assert_allclose(analytic.reshape(-1)[idxs], num[idxs], rtol=rtol, atol=atol,
                                   err_msg=f"gradient of {name}")
