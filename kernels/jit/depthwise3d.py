"""Direct depthwise 3-D convolution kernels: forward, input gradient and weight gradient.

Depthwise means ``groups == C``: one input channel per group and a channel multiplier ``mult = K // C``,
so output channel ``k`` reads input channel ``k // mult`` only. Each output element is a short FMA chain
over the ``T x R x S`` window; there is no ``tl.dot``.

Tiles are ``[BLOCK_PIX, BLOCK_C]`` (pixels x channels). The pixels of a tile form a ``BLOCK_PIX // BLOCK_W``
by ``BLOCK_W`` rectangle of one depth slice of one volume, so the slice (and every depth test) is a scalar of
the program, and along the pixel axis the addresses run with the width stride: with NCDHW tensors the pixel
axis is the contiguous one, with channels_last_3d the channel axis is (16-byte vectors along the channels).
Every tensor comes with its own strides (any layout works); offsets are computed in 64-bit. Accumulation is
in float32, or float64 for float64 tensors, and the result is cast at the store.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .depthwise import _widen
from .epilogue import store_epilogue


@triton.jit
def depthwise3d_fwd_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr, res_ptr, preact_ptr,
    D, H, W, K, Z, P, Q, T, R, S,
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w, mult,
    sxn, sxc, sxd, sxh, sxw,
    swk, swt, swr, sws,
    son, sok, soz, sop, soq,
    sb,
    HAS_BIAS: tl.constexpr,
    ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    RESIDUAL_BEFORE_ACT: tl.constexpr, STORE_PREACT: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Forward: ``out[n, k, z, p, q] = bias[k] + sum_{t,r,s} x[n, k // mult, z*sd - pad_d + t*dd,
    p*sh - pad_h + r*dh, q*sw - pad_w + s*dw] * w[k, 0, t, r, s]``.

    x ``(N, C, D, H, W)``, w ``(K, 1, T, R, S)``, bias ``(K,)`` (any pointer when ``HAS_BIAS`` is false),
    out ``(N, K, Z, P, Q)``; ``s*`` are the element strides of x, w (dims 0, 2, 3, 4), out and bias. The store is
    the fused epilogue (``kernels.jit.epilogue.store_epilogue``; the residual and pre-activation share out's
    strides).
    Grid: ``(N * Z * cdiv(P, BLOCK_PIX // BLOCK_W) * cdiv(Q, BLOCK_W), cdiv(K, BLOCK_C))``.

    The ``[BLOCK_PIX, BLOCK_C]`` pointers to each window's first tap are computed once (64-bit); a tap
    advances them by a scalar. A tile whose windows all lie inside the input, with every pixel and channel
    in range (the interior tiles, a program-uniform test), runs the taps without masks; the others (edge
    tiles) skip the tap planes outside the input's depth (a scalar test) and mask each tap's rows and columns.
    """
    BLOCK_H: tl.constexpr = BLOCK_PIX // BLOCK_W
    ACC = tl.float64 if out_ptr.dtype.element_ty == tl.float64 else tl.float32
    pid_pix = tl.program_id(0)
    pid_c = tl.program_id(1)
    tiles_q = tl.cdiv(Q, BLOCK_W)
    tiles_p = tl.cdiv(P, BLOCK_H)
    qb = pid_pix % tiles_q
    rest = pid_pix // tiles_q
    pb = rest % tiles_p
    rest = rest // tiles_p
    z = rest % Z
    n = (rest // Z).to(tl.int64)

    offs = tl.arange(0, BLOCK_PIX)
    p = pb * BLOCK_H + offs // BLOCK_W          # coordinates in int32, offsets in int64
    q = qb * BLOCK_W + offs % BLOCK_W
    pix_ok = (p < P) & (q < Q)
    k0 = pid_c * BLOCK_C
    k = k0 + tl.arange(0, BLOCK_C)
    k_ok = k < K
    k64 = k.to(tl.int64)

    d0 = z * stride_d - pad_d                   # the tile's first input plane (a scalar)
    h0 = p * stride_h - pad_h                   # each window's first row and column
    w0 = q * stride_w - pad_w
    x_win = (x_ptr + n * sxn + tl.cast(d0, tl.int64) * sxd + (k // mult).to(tl.int64)[None, :] * sxc
             + (h0.to(tl.int64) * sxh + w0.to(tl.int64) * sxw)[:, None])    # [BLOCK_PIX, BLOCK_C] pointers
    x_step_w = tl.cast(dil_w, tl.int64) * sxw     # the next tap of a row
    x_step_h = tl.cast(dil_h, tl.int64) * sxh     # the next row of taps
    x_step_d = tl.cast(dil_d, tl.int64) * sxd     # the next plane of taps
    # The weights of the block's first channel, and the others' offsets from it: 32-bit (the launcher keeps
    # a block's span below 2**31), so each address is one multiply-add per tap.
    w_blk = w_ptr + tl.cast(k0, tl.int64) * swk
    w_ch = tl.arange(0, BLOCK_C) * swk

    h_first = pb * BLOCK_H * stride_h - pad_h     # the tile's windows span rows h_first .. h_last
    w_first = qb * BLOCK_W * stride_w - pad_w
    h_last = h_first + (BLOCK_H - 1) * stride_h + (R - 1) * dil_h
    w_last = w_first + (BLOCK_W - 1) * stride_w + (S - 1) * dil_w
    d_last = d0 + (T - 1) * dil_d
    interior = ((d0 >= 0) & (d_last < D) & (h_first >= 0) & (h_last < H) & (w_first >= 0) & (w_last < W)
                & ((pb + 1) * BLOCK_H <= P) & ((qb + 1) * BLOCK_W <= Q) & (k0 + BLOCK_C <= K))

    acc = tl.zeros([BLOCK_PIX, BLOCK_C], dtype=ACC)
    if interior:                                  # no masks: every load is in bounds
        x_plane = x_win
        w_plane = w_blk
        for _t in range(T):
            x_row = x_plane
            w_row = w_plane
            for _r in range(R):
                x_tap = x_row
                w_tap = w_row
                for _s in range(S):
                    xv = tl.load(x_tap)
                    wv = tl.load(w_tap + w_ch)
                    acc += _widen(xv, ACC) * _widen(wv, ACC)[None, :]
                    x_tap += x_step_w
                    w_tap += sws
                x_row += x_step_h
                w_row += swr
            x_plane += x_step_d
            w_plane += swt
    else:                                         # masked: planes, rows and columns outside the input read 0
        # A coordinate c is inside [0, L) when c, read as unsigned, is below L (one compare).
        h_lim = tl.cast(H, tl.uint32)
        w_lim = tl.cast(W, tl.uint32)
        x_plane = x_win
        w_plane = w_blk
        in_d = d0
        for _t in range(T):
            if (in_d >= 0) & (in_d < D):          # a plane of taps outside the input adds nothing
                x_row = x_plane
                w_row = w_plane
                ih = h0
                for _r in range(R):
                    row_ok = ih.to(tl.uint32, bitcast=True) < h_lim
                    x_tap = x_row
                    w_tap = w_row
                    iw = w0
                    for _s in range(S):
                        ok = row_ok & (iw.to(tl.uint32, bitcast=True) < w_lim)
                        xv = tl.load(x_tap, mask=ok[:, None] & k_ok[None, :], other=0.0)
                        wv = tl.load(w_tap + w_ch, mask=k_ok, other=0.0)
                        acc += _widen(xv, ACC) * _widen(wv, ACC)[None, :]
                        x_tap += x_step_w
                        w_tap += sws
                        iw += dil_w
                    x_row += x_step_h
                    w_row += swr
                    ih += dil_h
            x_plane += x_step_d
            w_plane += swt
            in_d += dil_d
    if HAS_BIAS:
        bv = tl.load(b_ptr + k64 * sb, mask=k_ok, other=0.0)
        acc += bv.to(ACC)[None, :]
    out_offs = (n * son + tl.cast(z, tl.int64) * soz + k64[None, :] * sok
                + (p.to(tl.int64) * sop + q.to(tl.int64) * soq)[:, None])
    store_epilogue(acc, out_ptr, res_ptr, preact_ptr, out_offs, pix_ok[:, None] & k_ok[None, :],
                   ACTIVATION, NEGATIVE_SLOPE, HAS_RESIDUAL, RESIDUAL_BEFORE_ACT, STORE_PREACT)


@triton.jit
def depthwise3d_dgrad_kernel(
    go_ptr, w_ptr, b_ptr, gi_ptr, res_ptr, preact_ptr,
    C, D, H, W, Z, P, Q, T, R, S,
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w, mult,
    sgn, sgk, sgz, sgp, sgq,
    swk, swt, swr, sws,
    sin, sic, sid, sih, siw,
    sb,
    HAS_BIAS: tl.constexpr,
    ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    RESIDUAL_BEFORE_ACT: tl.constexpr, STORE_PREACT: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Input gradient: ``grad_in[n, c, d, h, w] = sum_{m < mult} sum_{t,r,s} grad_out[n, c*mult + m, z, p, q] *
    w[c*mult + m, 0, t, r, s]`` over the taps with ``z*sd - pad_d + t*dd == d``, ``p*sh - pad_h + r*dh == h``
    and ``q*sw - pad_w + s*dw == w``.

    grad_out ``(N, K, Z, P, Q)``, w ``(K, 1, T, R, S)``, grad_in ``(N, C, D, H, W)`` (every element written);
    ``s*`` are their element strides (w: dims 0, 2, 3, 4). With ``HAS_BIAS``, ``b[c]`` (stride ``sb``) is
    added and the fused epilogue applied (as in the forward): the forward of a depthwise transposed
    convolution; else ``b_ptr`` is any pointer.

    Stride-phase decomposition: program axis 2 is the phase ``(pd, ph, pw)`` in ``[0, sd) x [0, sh) x [0, sw)``;
    the tile's pixels are ``d = pd + sd*e`` (one slice ``e`` per program), ``h = ph + sh*i``, ``w = pw + sw*j``.
    A tap ``(t, r, s)`` reaches this phase only when ``(pd + pad_d - t*dd) % sd == 0``,
    ``(ph + pad_h - r*dh) % sh == 0`` and ``(pw + pad_w - s*dw) % sw == 0`` (a scalar test; the other taps are
    skipped, and so is a tap whose output plane ``z = e + (pd + pad_d - t*dd) // sd`` lies outside ``[0, Z)``),
    and then ``p = i + (ph + pad_h - r*dh) // sh`` and ``q = j + (pw + pad_w - s*dw) // sw`` exactly, masked to
    ``0 <= p < P``, ``0 <= q < Q``. Grid: ``(N * cdiv(D, sd) * cdiv(cdiv(H, sh), BLOCK_PIX // BLOCK_W) *
    cdiv(cdiv(W, sw), BLOCK_W), cdiv(C, BLOCK_C), sd * sh * sw)``.
    """
    BLOCK_H: tl.constexpr = BLOCK_PIX // BLOCK_W
    ACC = tl.float64 if gi_ptr.dtype.element_ty == tl.float64 else tl.float32
    pid_pix = tl.program_id(0)
    pid_c = tl.program_id(1)
    phase = tl.program_id(2)
    pw = phase % stride_w
    ph = (phase // stride_w) % stride_h
    pd = phase // (stride_w * stride_h)
    slices = tl.cdiv(D, stride_d)        # phase slices, rows and columns, for the largest phase
    rows = tl.cdiv(H, stride_h)
    cols = tl.cdiv(W, stride_w)
    tiles_j = tl.cdiv(cols, BLOCK_W)
    tiles_i = tl.cdiv(rows, BLOCK_H)
    jb = pid_pix % tiles_j
    rest = pid_pix // tiles_j
    ib = rest % tiles_i
    rest = rest // tiles_i
    e = rest % slices
    n = (rest // slices).to(tl.int64)
    d = pd + e * stride_d                # the tile's input plane (a scalar)

    offs = tl.arange(0, BLOCK_PIX)
    i = ib * BLOCK_H + offs // BLOCK_W          # coordinates in int32, offsets in int64
    j = jb * BLOCK_W + offs % BLOCK_W
    h = ph + i * stride_h
    w = pw + j * stride_w
    rows_in = tl.where(d < D, H, 0)      # the last slice of a later phase may lie past the input: no rows
    pix_ok = (h < rows_in) & (w < W)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C

    go_k = go_ptr + n * sgn + (c * mult).to(tl.int64) * sgk     # [BLOCK_C] pointers, each channel's first k
    # 32-bit offsets from the block's first weight (the launcher keeps a block's span below 2**31)
    w_blk = w_ptr + tl.cast(pid_c * BLOCK_C, tl.int64) * mult * swk
    w_ch = tl.arange(0, BLOCK_C) * mult * swk
    # A coordinate x is inside [0, L) when x, read as unsigned, is below L (one compare).
    p_lim = tl.cast(P, tl.uint32)
    q_lim = tl.cast(Q, tl.uint32)
    RS = R * S
    acc = tl.zeros([BLOCK_PIX, BLOCK_C], dtype=ACC)
    for tap in range(T * RS):           # one flat loop over the taps
        t = tap // RS
        r = (tap // S) % R
        s = tap % S
        td = pd + pad_d - t * dil_d
        th = ph + pad_h - r * dil_h
        tw = pw + pad_w - s * dil_w
        zz = e + td // stride_d         # (exact when the tap reaches the phase)
        if ((td % stride_d == 0) & (th % stride_h == 0) & (tw % stride_w == 0)
                & (zz >= 0) & (zz < Z) & (d < D)):     # else the tap reaches no pixel of this tile
            p = i + th // stride_h
            q = j + tw // stride_w
            ok = pix_ok & (p.to(tl.uint32, bitcast=True) < p_lim) & (q.to(tl.uint32, bitcast=True) < q_lim)
            mask = ok[:, None] & c_ok[None, :]
            go_tap = (go_k[None, :] + tl.cast(zz, tl.int64) * sgz
                      + (p.to(tl.int64) * sgp + q.to(tl.int64) * sgq)[:, None])
            w_tap = w_blk + (tl.cast(t, tl.int64) * swt + tl.cast(r, tl.int64) * swr + tl.cast(s, tl.int64) * sws)
            for m in range(mult):
                gv = tl.load(go_tap + tl.cast(m, tl.int64) * sgk, mask=mask, other=0.0)
                wv = tl.load(w_tap + m * swk + w_ch, mask=c_ok, other=0.0)
                acc += _widen(gv, ACC) * _widen(wv, ACC)[None, :]
    if HAS_BIAS:
        bv = tl.load(b_ptr + c.to(tl.int64) * sb, mask=c_ok, other=0.0)
        acc += bv.to(ACC)[None, :]
    gi_offs = (n * sin + tl.cast(d, tl.int64) * sid + c.to(tl.int64)[None, :] * sic
               + (h.to(tl.int64) * sih + w.to(tl.int64) * siw)[:, None])
    store_epilogue(acc, gi_ptr, res_ptr, preact_ptr, gi_offs, pix_ok[:, None] & c_ok[None, :],
                   ACTIVATION, NEGATIVE_SLOPE, HAS_RESIDUAL, RESIDUAL_BEFORE_ACT, STORE_PREACT)


@triton.jit
def depthwise3d_wgrad_kernel(
    go_ptr, x_ptr, ws_ptr,
    N, D, H, W, K, Z, P, Q, T, R, S,
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w, mult,
    tiles_per_split,
    sgn, sgk, sgz, sgp, sgq,
    sxn, sxc, sxd, sxh, sxw,
    BLOCK_PIX: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Weight-gradient partial sums: ``ws[split, k, (t*R + r)*S + s] = sum grad_out[n, k, z, p, q] *
    x[n, k // mult, z*sd - pad_d + t*dd, p*sh - pad_h + r*dh, q*sw - pad_w + s*dw]`` over the pixel tiles of
    one split.

    grad_out ``(N, K, Z, P, Q)``, x ``(N, C, D, H, W)`` with their element strides; ws a contiguous
    ``(SPLIT, K, T*R*S)`` workspace of the accumulation dtype (float32, float64 for float64 inputs). The
    ``N * Z * cdiv(P, BLOCK_PIX // BLOCK_W) * cdiv(Q, BLOCK_W)`` pixel tiles (each in one output plane) are
    cut into SPLIT runs of ``tiles_per_split``; a tile whose tap plane lies outside the input's depth is
    skipped (a scalar test). Grid: ``(cdiv(K, BLOCK_C) * T * R * S, SPLIT)``, program 0 being
    ``channel_block * T * R * S + tap``.
    """
    BLOCK_H: tl.constexpr = BLOCK_PIX // BLOCK_W
    TRS = T * R * S
    pid = tl.program_id(0)
    tap = pid % TRS
    pid_c = pid // TRS
    split = tl.program_id(1)
    t = tap // (R * S)
    r = (tap // S) % R
    s = tap % S
    tiles_q = tl.cdiv(Q, BLOCK_W)
    tiles_p = tl.cdiv(P, BLOCK_H)
    tiles = N * Z * tiles_p * tiles_q
    t_start = split * tiles_per_split
    t_end = tl.minimum(t_start + tiles_per_split, tiles)

    offs = tl.arange(0, BLOCK_PIX)
    dp = offs // BLOCK_W
    dq = offs % BLOCK_W
    k = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    k_ok = k < K
    go_chan = go_ptr + k.to(tl.int64) * sgk                 # [BLOCK_C] pointers
    x_chan = x_ptr + (k // mult).to(tl.int64) * sxc
    off_d = t * dil_d - pad_d
    off_h = r * dil_h - pad_h
    off_w = s * dil_w - pad_w

    acc = tl.zeros([BLOCK_PIX, BLOCK_C], dtype=ws_ptr.dtype.element_ty)
    for tile in range(t_start, t_end):
        qb = tile % tiles_q
        rest = tile // tiles_q
        pb = rest % tiles_p
        rest = rest // tiles_p
        z = rest % Z
        n = (rest // Z).to(tl.int64)
        in_d = z * stride_d + off_d
        if (in_d >= 0) & (in_d < D):            # else the tap's plane is padding for the whole tile
            p = pb * BLOCK_H + dp               # coordinates in int32, offsets in int64
            q = qb * BLOCK_W + dq
            ih = p * stride_h + off_h
            iw = q * stride_w + off_w
            ok = (p < P) & (q < Q) & (ih >= 0) & (ih < H) & (iw >= 0) & (iw < W)
            ok2 = ok[:, None] & k_ok[None, :]
            go_off = n * sgn + tl.cast(z, tl.int64) * sgz + p.to(tl.int64) * sgp + q.to(tl.int64) * sgq
            x_off = n * sxn + tl.cast(in_d, tl.int64) * sxd + ih.to(tl.int64) * sxh + iw.to(tl.int64) * sxw
            gv = tl.load(go_chan[None, :] + go_off[:, None], mask=ok2, other=0.0)
            xv = tl.load(x_chan[None, :] + x_off[:, None], mask=ok2, other=0.0)
            acc += gv.to(acc.dtype) * xv.to(acc.dtype)
    total = tl.sum(acc, axis=0)
    ws_ptrs = ws_ptr + (split.to(tl.int64) * K + k) * TRS + tap
    tl.store(ws_ptrs, total, mask=k_ok)
