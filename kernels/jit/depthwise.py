"""Direct depthwise convolution kernels: forward, input gradient and weight gradient.

Depthwise means ``groups == C``: one input channel per group and a channel multiplier ``mult = K // C``,
so output channel ``k`` reads input channel ``k // mult`` only. Each output element is a short FMA chain
over the ``R x S`` window; there is no ``tl.dot``.

Tiles are ``[BLOCK_PIX, BLOCK_C]`` (pixels x channels). The pixels of a tile form a ``BLOCK_PIX // BLOCK_W``
by ``BLOCK_W`` rectangle of one image, so along the pixel axis the addresses run with the width stride:
with NCHW tensors the pixel axis is the contiguous one, with channels_last the channel axis is. Every
tensor comes with its own strides (any layout works); offsets are computed in 64-bit. Accumulation is in
float32, or float64 for float64 tensors, and the result is cast at the store.
"""

from __future__ import annotations

import triton
import triton.language as tl

from .epilogue import store_epilogue


@triton.jit
def _widen(v, ACC: tl.constexpr):
    """``v`` converted to the accumulation dtype ``ACC``. bfloat16 is widened by moving its 16 bits to the top
    of a 32-bit word (exact): one integer instruction per element, where the plain conversion of a packed
    pair compiles to three for the two."""
    if v.dtype == tl.bfloat16:
        return (v.to(tl.uint16, bitcast=True).to(tl.uint32) << 16).to(tl.float32, bitcast=True).to(ACC)
    else:
        return v.to(ACC)


@triton.jit
def depthwise_fwd_kernel(
    x_ptr, w_ptr, b_ptr, out_ptr, res_ptr, preact_ptr,
    H, W, K, P, Q, R, S,
    stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, mult,
    sxn, sxc, sxh, sxw,
    swk, swr, sws,
    son, sok, sop, soq,
    sb,
    HAS_BIAS: tl.constexpr,
    ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    RESIDUAL_BEFORE_ACT: tl.constexpr, STORE_PREACT: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Forward: ``out[n, k, p, q] = bias[k] + sum_{r,s} x[n, k // mult, p*sh - pad_h + r*dh,
    q*sw - pad_w + s*dw] * w[k, 0, r, s]``.

    x ``(N, C, H, W)``, w ``(K, 1, R, S)``, bias ``(K,)`` (any pointer when ``HAS_BIAS`` is false),
    out ``(N, K, P, Q)``; ``s*`` are the element strides of x, w (dims 0, 2, 3), out and bias.
    Grid: ``(N * cdiv(P, BLOCK_PIX // BLOCK_W) * cdiv(Q, BLOCK_W), cdiv(K, BLOCK_C))``.

    The ``[BLOCK_PIX, BLOCK_C]`` pointers to each window's first tap are computed once (64-bit); a tap
    advances them by a scalar. A tile whose windows all lie inside the input, with every pixel and channel
    in range (the interior tiles, a program-uniform test), runs the taps without masks; the others (edge
    tiles) mask each tap's rows and columns.
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
    n = (rest // tiles_p).to(tl.int64)

    offs = tl.arange(0, BLOCK_PIX)
    p = pb * BLOCK_H + offs // BLOCK_W          # coordinates in int32, offsets in int64
    q = qb * BLOCK_W + offs % BLOCK_W
    pix_ok = (p < P) & (q < Q)
    k0 = pid_c * BLOCK_C
    k = k0 + tl.arange(0, BLOCK_C)
    k_ok = k < K
    k64 = k.to(tl.int64)

    h0 = p * stride_h - pad_h                   # each window's first row and column
    w0 = q * stride_w - pad_w
    x_win = (x_ptr + n * sxn + (k // mult).to(tl.int64)[None, :] * sxc
             + (h0.to(tl.int64) * sxh + w0.to(tl.int64) * sxw)[:, None])    # [BLOCK_PIX, BLOCK_C] pointers
    x_step_w = tl.cast(dil_w, tl.int64) * sxw     # the next tap of a row
    x_step_h = tl.cast(dil_h, tl.int64) * sxh     # the next row of taps
    # The weights of the block's first channel, and the others' offsets from it: 32-bit (the launcher keeps
    # a block's span below 2**31), so each address is one multiply-add per tap.
    w_blk = w_ptr + tl.cast(k0, tl.int64) * swk
    w_ch = tl.arange(0, BLOCK_C) * swk

    h_first = pb * BLOCK_H * stride_h - pad_h     # the tile's windows span rows h_first .. h_last
    w_first = qb * BLOCK_W * stride_w - pad_w
    h_last = h_first + (BLOCK_H - 1) * stride_h + (R - 1) * dil_h
    w_last = w_first + (BLOCK_W - 1) * stride_w + (S - 1) * dil_w
    interior = ((h_first >= 0) & (h_last < H) & (w_first >= 0) & (w_last < W)
                & ((pb + 1) * BLOCK_H <= P) & ((qb + 1) * BLOCK_W <= Q) & (k0 + BLOCK_C <= K))

    acc = tl.zeros([BLOCK_PIX, BLOCK_C], dtype=ACC)
    if interior:                                  # no masks: every load is in bounds
        x_row = x_win
        w_row = w_blk
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
    else:                                         # masked: rows and columns outside the input read 0
        # A coordinate c is inside [0, L) when c, read as unsigned, is below L (one compare).
        h_lim = tl.cast(H, tl.uint32)
        w_lim = tl.cast(W, tl.uint32)
        x_row = x_win
        w_row = w_blk
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
    if HAS_BIAS:
        bv = tl.load(b_ptr + k64 * sb, mask=k_ok, other=0.0)
        acc += bv.to(ACC)[None, :]
    out_offs = n * son + k64[None, :] * sok + (p.to(tl.int64) * sop + q.to(tl.int64) * soq)[:, None]
    store_epilogue(acc, out_ptr, res_ptr, preact_ptr, out_offs, pix_ok[:, None] & k_ok[None, :],
                   ACTIVATION, NEGATIVE_SLOPE, HAS_RESIDUAL, RESIDUAL_BEFORE_ACT, STORE_PREACT)


@triton.jit
def depthwise_dgrad_kernel(
    go_ptr, w_ptr, b_ptr, gi_ptr, res_ptr, preact_ptr,
    C, H, W, P, Q, R, S,
    stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, mult,
    sgn, sgk, sgp, sgq,
    swk, swr, sws,
    sin, sic, sih, siw,
    sb,
    HAS_BIAS: tl.constexpr,
    ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    RESIDUAL_BEFORE_ACT: tl.constexpr, STORE_PREACT: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Input gradient: ``grad_in[n, c, h, w] = sum_{m < mult} sum_{r,s} grad_out[n, c*mult + m, p, q] *
    w[c*mult + m, 0, r, s]`` over the taps with ``p*sh - pad_h + r*dh == h`` and ``q*sw - pad_w + s*dw == w``.

    grad_out ``(N, K, P, Q)``, w ``(K, 1, R, S)``, grad_in ``(N, C, H, W)`` (every element written);
    ``s*`` are their element strides (w: dims 0, 2, 3). With ``HAS_BIAS``, ``b[c]`` (stride ``sb``) is
    added: the forward of a depthwise transposed convolution; else ``b_ptr`` is any pointer.

    Stride-phase decomposition: program axis 2 is the phase ``(ph, pw)`` in ``[0, sh) x [0, sw)``; the
    tile's pixels are ``h = ph + sh*i``, ``w = pw + sw*j``. A tap ``(r, s)`` reaches this phase only when
    ``(ph + pad_h - r*dh) % sh == 0`` and ``(pw + pad_w - s*dw) % sw == 0`` (a scalar test; the other taps
    are skipped), and then ``p = i + (ph + pad_h - r*dh) // sh`` and ``q = j + (pw + pad_w - s*dw) // sw``
    exactly, masked to ``0 <= p < P``, ``0 <= q < Q``. Grid:
    ``(N * cdiv(cdiv(H, sh), BLOCK_PIX // BLOCK_W) * cdiv(cdiv(W, sw), BLOCK_W), cdiv(C, BLOCK_C), sh * sw)``.
    """
    BLOCK_H: tl.constexpr = BLOCK_PIX // BLOCK_W
    ACC = tl.float64 if gi_ptr.dtype.element_ty == tl.float64 else tl.float32
    pid_pix = tl.program_id(0)
    pid_c = tl.program_id(1)
    phase = tl.program_id(2)
    ph = phase // stride_w
    pw = phase % stride_w
    rows = tl.cdiv(H, stride_h)          # phase rows, for the largest phase
    cols = tl.cdiv(W, stride_w)
    tiles_j = tl.cdiv(cols, BLOCK_W)
    tiles_i = tl.cdiv(rows, BLOCK_H)
    jb = pid_pix % tiles_j
    rest = pid_pix // tiles_j
    ib = rest % tiles_i
    n = (rest // tiles_i).to(tl.int64)

    offs = tl.arange(0, BLOCK_PIX)
    i = ib * BLOCK_H + offs // BLOCK_W          # coordinates in int32, offsets in int64
    j = jb * BLOCK_W + offs % BLOCK_W
    h = ph + i * stride_h
    w = pw + j * stride_w
    pix_ok = (h < H) & (w < W)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C

    go_k = go_ptr + n * sgn + (c * mult).to(tl.int64) * sgk     # [BLOCK_C] pointers, each channel's first k
    # 32-bit offsets from the block's first weight (the launcher keeps a block's span below 2**31)
    w_blk = w_ptr + tl.cast(pid_c * BLOCK_C, tl.int64) * mult * swk
    w_ch = tl.arange(0, BLOCK_C) * mult * swk
    # A coordinate x is inside [0, L) when x, read as unsigned, is below L (one compare).
    p_lim = tl.cast(P, tl.uint32)
    q_lim = tl.cast(Q, tl.uint32)
    acc = tl.zeros([BLOCK_PIX, BLOCK_C], dtype=ACC)
    for tap in range(R * S):            # one flat loop over the taps: nested r, s loops spilled
        r = tap // S
        s = tap % S
        th = ph + pad_h - r * dil_h
        tw = pw + pad_w - s * dil_w
        if (th % stride_h == 0) & (tw % stride_w == 0):     # else the tap reaches no pixel of this phase
            p = i + th // stride_h
            q = j + tw // stride_w
            ok = pix_ok & (p.to(tl.uint32, bitcast=True) < p_lim) & (q.to(tl.uint32, bitcast=True) < q_lim)
            mask = ok[:, None] & c_ok[None, :]
            go_tap = go_k[None, :] + (p.to(tl.int64) * sgp + q.to(tl.int64) * sgq)[:, None]
            w_tap = w_blk + (tl.cast(r, tl.int64) * swr + tl.cast(s, tl.int64) * sws)
            for m in range(mult):
                gv = tl.load(go_tap + tl.cast(m, tl.int64) * sgk, mask=mask, other=0.0)
                wv = tl.load(w_tap + m * swk + w_ch, mask=c_ok, other=0.0)
                acc += _widen(gv, ACC) * _widen(wv, ACC)[None, :]
    if HAS_BIAS:
        bv = tl.load(b_ptr + c.to(tl.int64) * sb, mask=c_ok, other=0.0)
        acc += bv.to(ACC)[None, :]
    gi_offs = n * sin + c.to(tl.int64)[None, :] * sic + (h.to(tl.int64) * sih + w.to(tl.int64) * siw)[:, None]
    store_epilogue(acc, gi_ptr, res_ptr, preact_ptr, gi_offs, pix_ok[:, None] & c_ok[None, :],
                   ACTIVATION, NEGATIVE_SLOPE, HAS_RESIDUAL, RESIDUAL_BEFORE_ACT, STORE_PREACT)


@triton.jit
def depthwise_wgrad_kernel(
    go_ptr, x_ptr, ws_ptr,
    N, H, W, K, P, Q, R, S,
    stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, mult,
    tiles_per_split,
    sgn, sgk, sgp, sgq,
    sxn, sxc, sxh, sxw,
    BLOCK_PIX: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """Weight-gradient partial sums: ``ws[split, k, r*S + s] = sum grad_out[n, k, p, q] *
    x[n, k // mult, p*sh - pad_h + r*dh, q*sw - pad_w + s*dw]`` over the pixel tiles of one split.

    grad_out ``(N, K, P, Q)``, x ``(N, C, H, W)`` with their element strides; ws a contiguous
    ``(SPLIT, K, R*S)`` workspace of the accumulation dtype (float32, float64 for float64 inputs). The
    ``N * cdiv(P, BLOCK_PIX // BLOCK_W) * cdiv(Q, BLOCK_W)`` pixel tiles, numbered with the tile column
    fastest, then the tile row, then the image, are cut into SPLIT runs of ``tiles_per_split``.
    Grid: ``(cdiv(K, BLOCK_C) * R * S, SPLIT)``, program 0 being ``channel_block * R * S + tap``.

    The ``[BLOCK_PIX, BLOCK_C]`` 64-bit offsets into grad_out and x of the first tile of image 0 (tile row
    and column 0) are computed once; a tile's pointers are its scalar base (``n``, its first row and column
    times the strides: program-uniform arithmetic) plus those offsets. The tile's coordinates ``(n, tile row,
    tile column)`` are decomposed once from the run's first tile and advanced by one tile per trip with
    scalar carries, so the loop divides nothing. Its mask (pixels inside ``P x Q``, taps inside ``H x W``,
    channels below K) compares the ``[BLOCK_PIX]`` rows and columns within the tile with scalar bounds.
    bfloat16 values are widened by ``_widen``.
    """
    BLOCK_H: tl.constexpr = BLOCK_PIX // BLOCK_W
    RS = R * S
    pid = tl.program_id(0)
    tap = pid % RS
    pid_c = pid // RS
    split = tl.program_id(1)
    r = tap // S
    s = tap % S
    tiles_q = tl.cdiv(Q, BLOCK_W)
    tiles_p = tl.cdiv(P, BLOCK_H)
    tiles = N * tiles_p * tiles_q
    t_start = split * tiles_per_split
    t_end = tl.minimum(t_start + tiles_per_split, tiles)
    qb = t_start % tiles_q                      # the run's first tile: column, row, image
    pb = t_start // tiles_q % tiles_p
    n = t_start // tiles_q // tiles_p

    offs = tl.arange(0, BLOCK_PIX)
    dp = offs // BLOCK_W                        # each pixel's row and column within its tile
    dq = offs % BLOCK_W
    k = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    k_ok = k < K
    off_h = r * dil_h - pad_h
    off_w = s * dil_w - pad_w
    ih0 = dp * stride_h + off_h                 # the input rows and columns the first tile reads
    iw0 = dq * stride_w + off_w
    go_rel = k.to(tl.int64)[None, :] * sgk + (dp.to(tl.int64) * sgp + dq.to(tl.int64) * sgq)[:, None]
    x_rel = (k // mult).to(tl.int64)[None, :] * sxc + (ih0.to(tl.int64) * sxh + iw0.to(tl.int64) * sxw)[:, None]
    # A coordinate c is inside [0, L) when c, read as unsigned, is below L (one compare).
    h_lim = tl.cast(H, tl.uint32)
    w_lim = tl.cast(W, tl.uint32)

    ACC = ws_ptr.dtype.element_ty
    acc = tl.zeros([BLOCK_PIX, BLOCK_C], dtype=ACC)
    for _ in range(t_start, t_end):
        p0 = pb * BLOCK_H                       # the tile's first output row and column
        q0 = qb * BLOCK_W
        ih = ih0 + p0 * stride_h
        iw = iw0 + q0 * stride_w
        ok = ((dp < P - p0) & (dq < Q - q0) & (ih.to(tl.uint32, bitcast=True) < h_lim)
              & (iw.to(tl.uint32, bitcast=True) < w_lim))
        ok2 = ok[:, None] & k_ok[None, :]
        n64 = n.to(tl.int64)
        go_off = n64 * sgn + tl.cast(p0, tl.int64) * sgp + tl.cast(q0, tl.int64) * sgq
        x_off = n64 * sxn + tl.cast(p0 * stride_h, tl.int64) * sxh + tl.cast(q0 * stride_w, tl.int64) * sxw
        gv = tl.load((go_ptr + go_off) + go_rel, mask=ok2, other=0.0)
        xv = tl.load((x_ptr + x_off) + x_rel, mask=ok2, other=0.0)
        acc += _widen(gv, ACC) * _widen(xv, ACC)
        qb += 1                                 # the next tile: column, then row, then image
        carry_q = qb == tiles_q
        qb = tl.where(carry_q, 0, qb)
        pb += carry_q.to(tl.int32)
        carry_p = pb == tiles_p
        pb = tl.where(carry_p, 0, pb)
        n += carry_p.to(tl.int32)
    total = tl.sum(acc, axis=0)
    ws_ptrs = ws_ptr + (split.to(tl.int64) * K + k) * RS + tap
    tl.store(ws_ptrs, total, mask=k_ok)
