"""2-D pooling kernels: max and average pooling (strided or adaptive windows), forward and backward, and a
global-average reduction.

Notation: input ``x (N, C, H, W)``, output ``y (N, C, P, Q)``. Tiles are ``[BLOCK_PIX, BLOCK_C]`` (pixels x
channels); the pixels of a tile are consecutive in the flattened ``(n, p, q)`` order (``(n, h, w)`` for
the backward kernels), so NCHW tensors get pixel-wide tiles (``BLOCK_C == 1``) and channels_last tensors
channel-wide ones. Every tensor is addressed through its four strides; offsets into memory are 64-bit,
flattened pixel indices 32-bit (launchers split the batch when a flattened index would pass 2**31), and
so is adaptive window arithmetic (launchers check that ``(H + 1) * (P + 1)`` fits).

Windows, per axis (rows shown; columns alike):

* strided (``ADAPTIVE`` false): output row ``p`` reads ``h = p*stride_h - pad_h + r*dil_h``, ``r < KH``,
  those with ``0 <= h < H``.
* adaptive (``ADAPTIVE`` true): output row ``p`` reads ``[floor(p*H/P), ceil((p+1)*H/P))``; ``KH`` is an
  upper bound of that length, stride/padding are unused and dilation is 1.

Saved maxima, for max pooling's backward, are of two kinds (``INDEX``): torch's flat ``h*W + w`` (int64), or,
when the caller did not ask for indices and the window spans at most 256 positions, the position inside the
window, ``(h - h0)*EW + (w - w0)`` with ``(h0, w0)`` the window's start and ``EW`` its column extent
(dilation gaps included): one byte per output instead of eight, and a per-tap constant in the forward.

Backward kernels gather: each program owns input pixels and loops over the (at most ``COVER_H x COVER_W``)
windows that can contain them, so every gradient element is written once, without atomics, and the result
is deterministic. Reductions accumulate in float32 (float64 for float64 tensors); max pooling compares in
that type too (exact for every input dtype).
"""

from __future__ import annotations

import triton
import triton.language as tl


@triton.jit
def _pixel_channel_tile(N, C, ROWS, COLS, BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's tile of an ``(N, C, ROWS, COLS)`` tensor on a 1-D grid, pixel blocks fastest:
    ``(n, row, col, pix_ok)`` over ``BLOCK_PIX`` consecutive flattened pixels and ``(c, c_ok)`` over
    ``BLOCK_C`` channels."""
    pix_blocks = tl.cdiv(N * ROWS * COLS, BLOCK_PIX)
    pid = tl.program_id(0)
    pid_c = pid // pix_blocks
    offs = (pid - pid_c * pix_blocks) * BLOCK_PIX + tl.arange(0, BLOCK_PIX)
    pix_ok = offs < N * ROWS * COLS
    n = offs // (ROWS * COLS)
    plane = offs % (ROWS * COLS)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    return n, plane // COLS, plane % COLS, pix_ok, c, c < C


@triton.jit
def _window_rows(p, H, P, stride, pad, dil, ADAPTIVE: tl.constexpr):
    """Start row, first readable row, and the [lo, hi) row bounds of window row ``p`` (vectors)."""
    if ADAPTIVE:
        start = (p * H) // P
        first = start
        lo = start
        hi = ((p + 1) * H + P - 1) // P
    else:
        start = p * stride - pad
        first = tl.where(start < 0, start + ((dil - 1 - start) // dil) * dil, start)
        lo = tl.zeros_like(start)
        hi = lo + H
    return start, first, lo, hi


@triton.jit
def _window_start(p, H, P, stride, pad, ADAPTIVE: tl.constexpr):
    """First row (possibly negative: padding) of window row ``p``."""
    if ADAPTIVE:
        start = (p * H) // P
    else:
        start = p * stride - pad
    return start


@triton.jit
def _covering_windows(h, H, P, stride, pad, extent, ADAPTIVE: tl.constexpr):
    """``[lo, hi)``: the window rows that can contain input row ``h`` (window extent ``extent``)."""
    if ADAPTIVE:
        lo = (h * P) // H
        hi = ((h + 1) * P + H - 1) // H
    else:
        lo = tl.where(h + pad < extent, 0, (tl.maximum(h + pad - extent, 0)) // stride + 1)
        hi = tl.minimum((h + pad) // stride + 1, P)
    return lo, hi


@triton.jit
def _avg_window(p, H, P, stride, pad, K, ADAPTIVE: tl.constexpr):
    """Rows of window row ``p`` for average pooling: (count with padding, count inside the input)."""
    if ADAPTIVE:
        start = (p * H) // P
        end = ((p + 1) * H + P - 1) // P
        inside = end - start
    else:
        start = p * stride - pad
        end = tl.minimum(start + K, H + pad)
        inside = tl.minimum(end, H) - tl.maximum(start, 0)
    return end - start, inside


@triton.jit
def max_pool2d_fwd_kernel(
    x_ptr, y_ptr, idx_ptr,
    N, C, H, W, P, Q,
    sxn, sxc, sxh, sxw,
    syn, syc, syp, syq,
    sin, sic, sip, siq,
    KH, KW, stride_h, stride_w, pad_h, pad_w, dil_h, dil_w, extent_w,
    ADAPTIVE: tl.constexpr, INDEX: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``y[n, c, p, q] = max`` over window ``(p, q)`` of ``x[n, c]``, and where it was, ``idx[n, c, p, q]``.

    Torch's rules: windows are scanned row by row, a value replaces the running maximum when it is greater
    or NaN (so ties keep the first maximum and a NaN wins, the last NaN's index), the running maximum starts
    at -inf with the index of the window's first in-bounds pixel. ``INDEX``: ``"none"`` (idx not written),
    ``"flat"`` (``h*W + w``, int64) or ``"window"`` (``(h - h0)*extent_w + (w - w0)`` inside the window
    starting at ``(h0, w0)``, stored as idx's dtype, uint8); idx has any strides.
    Grid: ``(cdiv(N*P*Q, BLOCK_PIX) * cdiv(C, BLOCK_C),)``, pixel blocks fastest.
    """
    CMP = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
    n, p, q, pix_ok, c, c_ok = _pixel_channel_tile(N, C, P, Q, BLOCK_PIX, BLOCK_C)

    h0, h_first, h_lo, h_hi = _window_rows(p, H, P, stride_h, pad_h, dil_h, ADAPTIVE)
    w0, w_first, w_lo, w_hi = _window_rows(q, W, Q, stride_w, pad_w, dil_w, ADAPTIVE)
    c_mask = c_ok[None, :]
    # the window's first tap, once; each tap then adds one scalar offset
    x_win = (x_ptr + n.to(tl.int64) * sxn + h0.to(tl.int64) * sxh + w0.to(tl.int64) * sxw)[:, None] \
        + (c.to(tl.int64) * sxc)[None, :]

    best = tl.full([BLOCK_PIX, BLOCK_C], float("-inf"), CMP)
    if INDEX == "window":
        best_idx = tl.zeros([BLOCK_PIX, BLOCK_C], tl.int32) + ((h_first - h0) * extent_w + (w_first - w0))[:, None]
    else:
        best_idx = tl.zeros([BLOCK_PIX, BLOCK_C], tl.int64) + (h_first.to(tl.int64) * W + w_first)[:, None]
    for r in range(KH):
        h = h0 + r * dil_h
        h_ok = pix_ok & (h >= h_lo) & (h < h_hi)
        row = tl.cast(r * dil_h, tl.int64) * sxh
        for s in range(KW):
            w = w0 + s * dil_w
            ok = h_ok & (w >= w_lo) & (w < w_hi)
            v = tl.load(x_win + (row + tl.cast(s * dil_w, tl.int64) * sxw), mask=ok[:, None] & c_mask,
                        other=float("-inf")).to(CMP)
            take = (v > best) | (v != v)
            best = tl.where(take, v, best)
            if INDEX == "window":
                best_idx = tl.where(take, r * dil_h * extent_w + s * dil_w, best_idx)   # one constant per tap
            elif INDEX == "flat":
                best_idx = tl.where(take, (h.to(tl.int64) * W + w)[:, None], best_idx)

    mask = pix_ok[:, None] & c_mask
    y_offs = (n.to(tl.int64) * syn + p.to(tl.int64) * syp + q.to(tl.int64) * syq)[:, None] \
        + c.to(tl.int64)[None, :] * syc
    tl.store(y_ptr + y_offs, best.to(y_ptr.dtype.element_ty), mask=mask)
    if INDEX != "none":
        i_offs = (n.to(tl.int64) * sin + p.to(tl.int64) * sip + q.to(tl.int64) * siq)[:, None] \
            + c.to(tl.int64)[None, :] * sic
        tl.store(idx_ptr + i_offs, best_idx.to(idx_ptr.dtype.element_ty), mask=mask)


@triton.jit
def max_pool2d_bwd_kernel(
    gy_ptr, idx_ptr, gx_ptr,
    N, C, H, W, P, Q,
    sgyn, sgyc, sgyp, sgyq,
    sin, sic, sip, siq,
    sgxn, sgxc, sgxh, sgxw,
    COVER_H, COVER_W, stride_h, stride_w, pad_h, pad_w, extent_h, extent_w,
    ADAPTIVE: tl.constexpr, WINDOW_INDEX: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``gx[n, c, h, w] = sum of gy[n, c, p, q]`` over the windows ``(p, q)`` whose saved index
    ``idx[n, c, p, q]`` points at ``(h, w)``: ``h*W + w``, or with ``WINDOW_INDEX`` the position in the
    window, ``(h - h0(p))*extent_w + (w - w0(q))`` (see :func:`max_pool2d_fwd_kernel`).

    gy and idx ``(N, C, P, Q)``, gx ``(N, C, H, W)`` (every element written). ``extent_*`` are the window's
    extents (strided: ``dil*(K-1) + 1``; adaptive: the length bounds), and the candidate windows of row
    ``h`` are those whose extent covers it; the index test takes care of dilation gaps. ``COVER_*`` bound
    the candidates per axis.
    Grid: ``(cdiv(N*H*W, BLOCK_PIX) * cdiv(C, BLOCK_C),)``, pixel blocks fastest.
    """
    ACC = tl.float64 if gx_ptr.dtype.element_ty == tl.float64 else tl.float32
    n, h, w, pix_ok, c, c_ok = _pixel_channel_tile(N, C, H, W, BLOCK_PIX, BLOCK_C)
    c_mask = c_ok[None, :]

    p_lo, p_hi = _covering_windows(h, H, P, stride_h, pad_h, extent_h, ADAPTIVE)
    q_lo, q_hi = _covering_windows(w, W, Q, stride_w, pad_w, extent_w, ADAPTIVE)
    target = (h.to(tl.int64) * W + w)[:, None]   # (the flat index; window indices are tested per window)
    gy_pix = gy_ptr + n.to(tl.int64) * sgyn
    idx_pix = idx_ptr + n.to(tl.int64) * sin
    gy_chan = (c.to(tl.int64) * sgyc)[None, :]
    idx_chan = (c.to(tl.int64) * sic)[None, :]

    acc = tl.zeros([BLOCK_PIX, BLOCK_C], ACC)
    i = 0
    j = 0
    for _ in range(COVER_H * COVER_W):     # candidate (i, j), row by row, counted without a division
        p = p_lo + i
        q = q_lo + j
        ok = (pix_ok & (p < p_hi) & (q < q_hi))[:, None] & c_mask
        ind = tl.load((idx_pix + p.to(tl.int64) * sip + q.to(tl.int64) * siq)[:, None] + idx_chan,
                      mask=ok, other=0)
        if WINDOW_INDEX:
            at = (h - _window_start(p, H, P, stride_h, pad_h, ADAPTIVE)) * extent_w \
                + (w - _window_start(q, W, Q, stride_w, pad_w, ADAPTIVE))
            hit = ok & (ind.to(tl.int32) == at[:, None])
        else:
            hit = ok & (ind.to(tl.int64) == target)
        # (masked by window, not by hit, so that the load stays one vector along the channels)
        g = tl.load((gy_pix + p.to(tl.int64) * sgyp + q.to(tl.int64) * sgyq)[:, None] + gy_chan,
                    mask=ok, other=0.0)
        acc += tl.where(hit, g.to(ACC), 0.0)
        j += 1
        row_done = j == COVER_W
        i += row_done.to(tl.int32)
        j = tl.where(row_done, 0, j)

    gx_offs = (n.to(tl.int64) * sgxn + h.to(tl.int64) * sgxh + w.to(tl.int64) * sgxw)[:, None] \
        + c.to(tl.int64)[None, :] * sgxc
    tl.store(gx_ptr + gx_offs, acc.to(gx_ptr.dtype.element_ty), mask=pix_ok[:, None] & c_mask)


@triton.jit
def max_pool2d_gather_kernel(
    src_ptr, idx_ptr, out_ptr,
    N, C, H, W, P, Q,
    ssn, ssc, ssh, ssw,
    sin, sic, sip, siq,
    son, soc, sop, soq,
    stride_h, stride_w, pad_h, pad_w, extent_w,
    ADAPTIVE: tl.constexpr, WINDOW_INDEX: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``out[n, c, p, q] = src[n, c, h, w]`` at the saved maximum ``(h, w)`` of window ``(p, q)``: the
    values at the saved maxima, the gradient of the max-pooling backward with respect to its output gradient
    (double backward). ``idx`` holds ``h*W + w``, or with ``WINDOW_INDEX`` the position in the window
    (:func:`max_pool2d_fwd_kernel`; the window arguments are used only then).

    src ``(N, C, H, W)``, idx and out ``(N, C, P, Q)``, any strides.
    Grid: ``(cdiv(N*P*Q, BLOCK_PIX) * cdiv(C, BLOCK_C),)``, pixel blocks fastest.
    """
    n, p, q, pix_ok, c, c_ok = _pixel_channel_tile(N, C, P, Q, BLOCK_PIX, BLOCK_C)
    mask = pix_ok[:, None] & c_ok[None, :]
    n64 = n.to(tl.int64)
    c64 = c.to(tl.int64)[None, :]
    ind = tl.load(idx_ptr + (n64 * sin + p.to(tl.int64) * sip + q.to(tl.int64) * siq)[:, None] + c64 * sic,
                  mask=mask, other=0)
    if WINDOW_INDEX:
        at = ind.to(tl.int32)
        dh = at // extent_w
        h = (_window_start(p, H, P, stride_h, pad_h, ADAPTIVE)[:, None] + dh).to(tl.int64)
        w = (_window_start(q, W, Q, stride_w, pad_w, ADAPTIVE)[:, None] + at - dh * extent_w).to(tl.int64)
    else:
        flat = ind.to(tl.int64)
        h = flat // W
        w = flat - h * W
    v = tl.load(src_ptr + (n64 * ssn)[:, None] + c64 * ssc + h * ssh + w * ssw, mask=mask, other=0.0)
    tl.store(out_ptr + (n64 * son + p.to(tl.int64) * sop + q.to(tl.int64) * soq)[:, None] + c64 * soc, v,
             mask=mask)


@triton.jit
def avg_pool2d_fwd_kernel(
    x_ptr, y_ptr,
    N, C, H, W, P, Q,
    sxn, sxc, sxh, sxw,
    syn, syc, syp, syq,
    KH, KW, stride_h, stride_w, pad_h, pad_w, divisor,
    ADAPTIVE: tl.constexpr, COUNT_INCLUDE_PAD: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``y[n, c, p, q] = sum over window (p, q) of x[n, c] / divisor``.

    The divisor is ``divisor`` when non-zero (``divisor_override``); else, for strided windows, the window
    clipped to the padded input (``min(start + K, H + pad) - start`` rows, times the columns) with
    ``COUNT_INCLUDE_PAD``, or its part inside the input without; for adaptive windows, their size. A window
    with no pixel inside the input gives 0, as in torch.
    Grid: ``(cdiv(N*P*Q, BLOCK_PIX) * cdiv(C, BLOCK_C),)``, pixel blocks fastest.
    """
    ACC = tl.float64 if y_ptr.dtype.element_ty == tl.float64 else tl.float32
    n, p, q, pix_ok, c, c_ok = _pixel_channel_tile(N, C, P, Q, BLOCK_PIX, BLOCK_C)
    c_mask = c_ok[None, :]

    h0, _, h_lo, h_hi = _window_rows(p, H, P, stride_h, pad_h, 1, ADAPTIVE)
    w0, _, w_lo, w_hi = _window_rows(q, W, Q, stride_w, pad_w, 1, ADAPTIVE)
    # the window's first tap, once; each tap then adds one scalar offset
    x_win = (x_ptr + n.to(tl.int64) * sxn + h0.to(tl.int64) * sxh + w0.to(tl.int64) * sxw)[:, None] \
        + (c.to(tl.int64) * sxc)[None, :]

    acc = tl.zeros([BLOCK_PIX, BLOCK_C], ACC)
    for r in range(KH):
        h = h0 + r
        h_ok = pix_ok & (h >= h_lo) & (h < h_hi)
        row = tl.cast(r, tl.int64) * sxh
        for s in range(KW):
            w = w0 + s
            ok = h_ok & (w >= w_lo) & (w < w_hi)
            v = tl.load(x_win + (row + tl.cast(s, tl.int64) * sxw), mask=ok[:, None] & c_mask, other=0.0)
            acc += v.to(ACC)

    rows_pad, rows_in = _avg_window(p, H, P, stride_h, pad_h, KH, ADAPTIVE)
    cols_pad, cols_in = _avg_window(q, W, Q, stride_w, pad_w, KW, ADAPTIVE)
    if divisor != 0:
        div = tl.zeros_like(rows_pad) + divisor
    elif COUNT_INCLUDE_PAD:
        div = rows_pad * cols_pad
    else:
        div = rows_in * cols_in
    empty = (rows_in <= 0) | (cols_in <= 0)
    div = tl.where(empty, 1, div)
    out = tl.where(empty[:, None], 0.0, acc / div.to(ACC)[:, None])

    y_offs = (n.to(tl.int64) * syn + p.to(tl.int64) * syp + q.to(tl.int64) * syq)[:, None] \
        + c.to(tl.int64)[None, :] * syc
    tl.store(y_ptr + y_offs, out.to(y_ptr.dtype.element_ty), mask=pix_ok[:, None] & c_mask)


@triton.jit
def avg_pool2d_bwd_kernel(
    gy_ptr, gx_ptr,
    N, C, H, W, P, Q,
    sgyn, sgyc, sgyp, sgyq,
    sgxn, sgxc, sgxh, sgxw,
    COVER_H, COVER_W, KH, KW, stride_h, stride_w, pad_h, pad_w, divisor,
    ADAPTIVE: tl.constexpr, COUNT_INCLUDE_PAD: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``gx[n, c, h, w] = sum of gy[n, c, p, q] / divisor(p, q)`` over the windows ``(p, q)`` containing
    ``(h, w)``, with the divisor of :func:`avg_pool2d_fwd_kernel` (same arguments).

    gy ``(N, C, P, Q)``, gx ``(N, C, H, W)`` (every element written); ``COVER_*`` bound the windows that
    contain one pixel per axis.
    Grid: ``(cdiv(N*H*W, BLOCK_PIX) * cdiv(C, BLOCK_C),)``, pixel blocks fastest.
    """
    ACC = tl.float64 if gx_ptr.dtype.element_ty == tl.float64 else tl.float32
    n, h, w, pix_ok, c, c_ok = _pixel_channel_tile(N, C, H, W, BLOCK_PIX, BLOCK_C)
    c_mask = c_ok[None, :]

    p_lo, p_hi = _covering_windows(h, H, P, stride_h, pad_h, KH, ADAPTIVE)
    q_lo, q_hi = _covering_windows(w, W, Q, stride_w, pad_w, KW, ADAPTIVE)
    gy_pix = gy_ptr + n.to(tl.int64) * sgyn
    gy_chan = (c.to(tl.int64) * sgyc)[None, :]

    acc = tl.zeros([BLOCK_PIX, BLOCK_C], ACC)
    i = 0
    j = 0
    for _ in range(COVER_H * COVER_W):     # candidate (i, j), row by row, counted without a division
        p = p_lo + i
        q = q_lo + j
        ok = pix_ok & (p < p_hi) & (q < q_hi)
        rows_pad, rows_in = _avg_window(p, H, P, stride_h, pad_h, KH, ADAPTIVE)
        cols_pad, cols_in = _avg_window(q, W, Q, stride_w, pad_w, KW, ADAPTIVE)
        if divisor != 0:
            div = tl.zeros_like(rows_pad) + divisor
        elif COUNT_INCLUDE_PAD:
            div = rows_pad * cols_pad
        else:
            div = rows_in * cols_in
        div = tl.where(ok, div, 1)
        g = tl.load((gy_pix + p.to(tl.int64) * sgyp + q.to(tl.int64) * sgyq)[:, None] + gy_chan,
                    mask=ok[:, None] & c_mask, other=0.0)
        acc += g.to(ACC) / div.to(ACC)[:, None]
        j += 1
        row_done = j == COVER_W
        i += row_done.to(tl.int32)
        j = tl.where(row_done, 0, j)

    gx_offs = (n.to(tl.int64) * sgxn + h.to(tl.int64) * sgxh + w.to(tl.int64) * sgxw)[:, None] \
        + c.to(tl.int64)[None, :] * sgxc
    tl.store(gx_ptr + gx_offs, acc.to(gx_ptr.dtype.element_ty), mask=pix_ok[:, None] & c_mask)


@triton.jit
def global_avg_pool2d_kernel(
    x_ptr, y_ptr,
    C, H, W,
    sxn, sxc, sxh, sxw,
    syn, syc,
    BLOCK_HW: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``y[n, c, 0, 0] = mean over (h, w) of x[n, c, h, w]``: one reduction over the plane per (n, c).

    x ``(N, C, H, W)``, y ``(N, C, 1, 1)`` (``syn``, ``syc`` its strides). A program reduces ``BLOCK_C``
    channels of one sample, ``BLOCK_HW`` pixels at a time.
    Grid: ``(N * cdiv(C, BLOCK_C),)``, channel blocks fastest.
    """
    ACC = tl.float64 if y_ptr.dtype.element_ty == tl.float64 else tl.float32
    c_blocks = tl.cdiv(C, BLOCK_C)
    pid = tl.program_id(0)
    n = (pid // c_blocks).to(tl.int64)
    pid_c = pid % c_blocks
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    c_ok = c < C
    x_chan = x_ptr + n * sxn + c.to(tl.int64) * sxc
    HW = H * W
    acc = tl.zeros([BLOCK_HW, BLOCK_C], ACC)
    if sxh == W * sxw:
        # rows follow each other in memory (NCHW and channels_last planes): one stride for the plane, and
        # the block's pointers advance by one scalar step
        hw = tl.arange(0, BLOCK_HW)
        ptrs = x_chan[None, :] + (hw.to(tl.int64) * sxw)[:, None]
        step = tl.cast(BLOCK_HW, tl.int64) * sxw
        for start in range(0, HW, BLOCK_HW):
            ok = (start + hw) < HW
            v = tl.load(ptrs, mask=ok[:, None] & c_ok[None, :], other=0.0)
            acc += v.to(ACC)
            ptrs += step
    else:
        for start in range(0, HW, BLOCK_HW):
            hw = start + tl.arange(0, BLOCK_HW)
            ok = hw < HW
            pix = (hw // W).to(tl.int64) * sxh + (hw % W).to(tl.int64) * sxw
            v = tl.load(x_chan[None, :] + pix[:, None], mask=ok[:, None] & c_ok[None, :], other=0.0)
            acc += v.to(ACC)
    total = tl.sum(acc, axis=0) / HW.to(ACC)
    tl.store(y_ptr + n * syn + c.to(tl.int64) * syc, total.to(y_ptr.dtype.element_ty), mask=c_ok)
