"""3-D pooling kernels: max and average pooling (strided or adaptive windows), forward and backward, the gather
at the saved maxima (max pooling's double backward), and a global-average reduction.

Notation: input ``x (N, C, D, H, W)``, output ``y (N, C, T, P, Q)``. Tiles are ``[BLOCK_PIX, BLOCK_C]``
(voxels x channels); the voxels of a tile are consecutive in the flattened ``(n, t, p, q)`` order
(``(n, d, h, w)`` for the backward kernels), so NCDHW tensors get voxel-wide tiles (``BLOCK_C == 1``) and
channels_last_3d tensors channel-wide ones (contiguous channels: vector loads along C). Every tensor is
addressed through its five strides; offsets into memory are 64-bit, flattened voxel indices 32-bit (the
launchers split the batch when a flattened index would pass 2**31), and so is adaptive window arithmetic (the
geometry checks that ``(D + 1) * (T + 1)`` and the others fit).

Windows, per axis (depth shown; rows and columns alike):

* strided (``ADAPTIVE`` false): output ``t`` reads ``d = t*stride_d - pad_d + r*dil_d``, ``r < KD``, those
  with ``0 <= d < D``.
* adaptive (``ADAPTIVE`` true): output ``t`` reads ``[floor(t*D/T), ceil((t+1)*D/T))``; ``KD`` bounds that
  length, stride/padding are unused and dilation is 1.

Saved maxima, for max pooling's backward, are torch's flat ``(d*H + h)*W + w`` (int64). Backward kernels
gather: each program owns input voxels and loops over the (at most ``COVER_D x COVER_H x COVER_W``) windows
that can contain them, so every gradient element is written once, without atomics, and the result is
deterministic. Reductions accumulate in float32 (float64 for float64 tensors); max pooling compares in that
type too (exact for every input dtype).
"""

from __future__ import annotations

import triton
import triton.language as tl

from .pool2d import _avg_window, _covering_windows, _window_rows


@triton.jit
def _voxel_channel_tile(N, C, DEPTH, ROWS, COLS, BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr):
    """This program's tile of an ``(N, C, DEPTH, ROWS, COLS)`` tensor on a 1-D grid, voxel blocks fastest:
    ``(n, depth, row, col, pix_ok)`` over ``BLOCK_PIX`` consecutive flattened voxels and ``(c, c_ok)`` over
    ``BLOCK_C`` channels."""
    volume = DEPTH * ROWS * COLS
    pix_blocks = tl.cdiv(N * volume, BLOCK_PIX)
    pid = tl.program_id(0)
    pid_c = pid // pix_blocks
    offs = (pid - pid_c * pix_blocks) * BLOCK_PIX + tl.arange(0, BLOCK_PIX)
    pix_ok = offs < N * volume
    n = offs // volume
    vox = offs % volume
    plane = vox % (ROWS * COLS)
    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)
    return n, vox // (ROWS * COLS), plane // COLS, plane % COLS, pix_ok, c, c < C


@triton.jit
def _offsets(n, a, b, e, c, sn, sc, sa, sb, se):
    """64-bit ``[BLOCK_PIX, BLOCK_C]`` offsets of ``(n, c, a, b, e)`` through the five strides."""
    return (n.to(tl.int64) * sn + a.to(tl.int64) * sa + b.to(tl.int64) * sb + e.to(tl.int64) * se)[:, None] \
        + (c.to(tl.int64) * sc)[None, :]


@triton.jit
def max_pool3d_fwd_kernel(
    x_ptr, y_ptr, idx_ptr,
    N, C, D, H, W, T, P, Q,
    sxn, sxc, sxd, sxh, sxw,
    syn, syc, syt, syp, syq,
    sin, sic, sit, sip, siq,
    KD, KH, KW, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w,
    ADAPTIVE: tl.constexpr, INDEX: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``y[n, c, t, p, q] = max`` over window ``(t, p, q)`` of ``x[n, c]``, and where it was,
    ``idx[n, c, t, p, q] = (d*H + h)*W + w`` (int64) when ``INDEX`` is ``"flat"`` (``"none"``: not written).

    Torch's rules: windows are scanned depth, row, column; a value replaces the running maximum when it is
    greater or NaN (ties keep the first maximum, a NaN wins, the last NaN's index), and the running maximum
    starts at -inf with the index of the window's first in-bounds voxel.
    Grid: ``(cdiv(N*T*P*Q, BLOCK_PIX) * cdiv(C, BLOCK_C),)``, voxel blocks fastest.
    """
    CMP = tl.float64 if x_ptr.dtype.element_ty == tl.float64 else tl.float32
    n, t, p, q, pix_ok, c, c_ok = _voxel_channel_tile(N, C, T, P, Q, BLOCK_PIX, BLOCK_C)

    d0, d_first, d_lo, d_hi = _window_rows(t, D, T, stride_d, pad_d, dil_d, ADAPTIVE)
    h0, h_first, h_lo, h_hi = _window_rows(p, H, P, stride_h, pad_h, dil_h, ADAPTIVE)
    w0, w_first, w_lo, w_hi = _window_rows(q, W, Q, stride_w, pad_w, dil_w, ADAPTIVE)
    c_mask = c_ok[None, :]
    # the window's first tap, once; each tap then adds one scalar offset
    x_win = x_ptr + _offsets(n, d0, h0, w0, c, sxn, sxc, sxd, sxh, sxw)

    best = tl.full([BLOCK_PIX, BLOCK_C], float("-inf"), CMP)
    best_idx = tl.zeros([BLOCK_PIX, BLOCK_C], tl.int64) \
        + ((d_first.to(tl.int64) * H + h_first) * W + w_first)[:, None]
    a = 0
    r = 0
    for _ in range(KD * KH):   # window row (a, r) in scan order, counted without a division
        d = d0 + a * dil_d
        h = h0 + r * dil_h
        h_ok = pix_ok & (d >= d_lo) & (d < d_hi) & (h >= h_lo) & (h < h_hi)
        row = tl.cast(a * dil_d, tl.int64) * sxd + tl.cast(r * dil_h, tl.int64) * sxh
        if INDEX == "flat":
            row_index = (d.to(tl.int64) * H + h) * W
        for s in range(KW):
            w = w0 + s * dil_w
            ok = h_ok & (w >= w_lo) & (w < w_hi)
            v = tl.load(x_win + (row + tl.cast(s * dil_w, tl.int64) * sxw), mask=ok[:, None] & c_mask,
                        other=float("-inf")).to(CMP)
            take = (v > best) | (v != v)
            best = tl.where(take, v, best)
            if INDEX == "flat":
                best_idx = tl.where(take, (row_index + w)[:, None], best_idx)
        r += 1
        plane_done = r == KH
        a += plane_done.to(tl.int32)
        r = tl.where(plane_done, 0, r)

    mask = pix_ok[:, None] & c_mask
    tl.store(y_ptr + _offsets(n, t, p, q, c, syn, syc, syt, syp, syq), best.to(y_ptr.dtype.element_ty), mask=mask)
    if INDEX == "flat":
        tl.store(idx_ptr + _offsets(n, t, p, q, c, sin, sic, sit, sip, siq), best_idx, mask=mask)


@triton.jit
def max_pool3d_bwd_kernel(
    gy_ptr, idx_ptr, gx_ptr,
    N, C, D, H, W, T, P, Q,
    sgyn, sgyc, sgyt, sgyp, sgyq,
    sin, sic, sit, sip, siq,
    sgxn, sgxc, sgxd, sgxh, sgxw,
    COVER_D, COVER_H, COVER_W, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, extent_d, extent_h, extent_w,
    ADAPTIVE: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``gx[n, c, d, h, w] = sum of gy[n, c, t, p, q]`` over the windows ``(t, p, q)`` whose saved flat index
    ``idx[n, c, t, p, q]`` is ``(d*H + h)*W + w``.

    gy and idx ``(N, C, T, P, Q)``, gx ``(N, C, D, H, W)`` (every element written). ``extent_*`` are the
    window's extents (strided: ``dil*(K-1) + 1``; adaptive: the length bounds): the candidate windows of an
    input voxel are those whose extent covers it (the index test takes care of dilation gaps), at most
    ``COVER_*`` per axis.
    Grid: ``(cdiv(N*D*H*W, BLOCK_PIX) * cdiv(C, BLOCK_C),)``, voxel blocks fastest.
    """
    ACC = tl.float64 if gx_ptr.dtype.element_ty == tl.float64 else tl.float32
    n, d, h, w, pix_ok, c, c_ok = _voxel_channel_tile(N, C, D, H, W, BLOCK_PIX, BLOCK_C)
    c_mask = c_ok[None, :]

    t_lo, t_hi = _covering_windows(d, D, T, stride_d, pad_d, extent_d, ADAPTIVE)
    p_lo, p_hi = _covering_windows(h, H, P, stride_h, pad_h, extent_h, ADAPTIVE)
    q_lo, q_hi = _covering_windows(w, W, Q, stride_w, pad_w, extent_w, ADAPTIVE)
    target = ((d.to(tl.int64) * H + h) * W + w)[:, None]

    acc = tl.zeros([BLOCK_PIX, BLOCK_C], ACC)
    i = 0
    j = 0
    k = 0
    for _ in range(COVER_D * COVER_H * COVER_W):   # candidate (i, j, k), counted without a division
        t = t_lo + i
        p = p_lo + j
        q = q_lo + k
        ok = (pix_ok & (t < t_hi) & (p < p_hi) & (q < q_hi))[:, None] & c_mask
        ind = tl.load(idx_ptr + _offsets(n, t, p, q, c, sin, sic, sit, sip, siq), mask=ok, other=-1)
        hit = ok & (ind == target)
        # (masked by window, not by hit, so that the load stays one vector along the channels)
        g = tl.load(gy_ptr + _offsets(n, t, p, q, c, sgyn, sgyc, sgyt, sgyp, sgyq), mask=ok, other=0.0)
        acc += tl.where(hit, g.to(ACC), 0.0)
        k += 1
        col_done = k == COVER_W
        j += col_done.to(tl.int32)
        k = tl.where(col_done, 0, k)
        row_done = j == COVER_H
        i += row_done.to(tl.int32)
        j = tl.where(row_done, 0, j)

    tl.store(gx_ptr + _offsets(n, d, h, w, c, sgxn, sgxc, sgxd, sgxh, sgxw), acc.to(gx_ptr.dtype.element_ty),
             mask=pix_ok[:, None] & c_mask)


@triton.jit
def max_pool3d_gather_kernel(
    src_ptr, idx_ptr, out_ptr,
    N, C, D, H, W, T, P, Q,
    ssn, ssc, ssd, ssh, ssw,
    sin, sic, sit, sip, siq,
    son, soc, sot, sop, soq,
    BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``out[n, c, t, p, q] = src[n, c, d, h, w]`` at the saved maximum ``(d*H + h)*W + w`` of window
    ``(t, p, q)``: the gradient of the max-pooling backward with respect to its output gradient (double
    backward).

    src ``(N, C, D, H, W)``, idx and out ``(N, C, T, P, Q)``, any strides.
    Grid: ``(cdiv(N*T*P*Q, BLOCK_PIX) * cdiv(C, BLOCK_C),)``, voxel blocks fastest.
    """
    n, t, p, q, pix_ok, c, c_ok = _voxel_channel_tile(N, C, T, P, Q, BLOCK_PIX, BLOCK_C)
    mask = pix_ok[:, None] & c_ok[None, :]
    flat = tl.load(idx_ptr + _offsets(n, t, p, q, c, sin, sic, sit, sip, siq), mask=mask, other=0)
    dh = flat // W
    w = flat - dh * W
    d = dh // H
    h = dh - d * H
    v = tl.load(src_ptr + (n.to(tl.int64) * ssn)[:, None] + (c.to(tl.int64) * ssc)[None, :] + d * ssd + h * ssh
                + w * ssw, mask=mask, other=0.0)
    tl.store(out_ptr + _offsets(n, t, p, q, c, son, soc, sot, sop, soq), v, mask=mask)


@triton.jit
def _avg_divisor(t, p, q, D, H, W, T, P, Q, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, KD, KH, KW,
                 divisor, ADAPTIVE: tl.constexpr, COUNT_INCLUDE_PAD: tl.constexpr):
    """The divisor of window ``(t, p, q)`` (1 for a window with nothing inside the input) and whether the window
    is empty, as torch: ``divisor`` when non-zero, else the window clipped to the padded input with
    ``COUNT_INCLUDE_PAD``, or its part inside the input without; adaptive windows: their size."""
    depth_pad, depth_in = _avg_window(t, D, T, stride_d, pad_d, KD, ADAPTIVE)
    rows_pad, rows_in = _avg_window(p, H, P, stride_h, pad_h, KH, ADAPTIVE)
    cols_pad, cols_in = _avg_window(q, W, Q, stride_w, pad_w, KW, ADAPTIVE)
    if divisor != 0:
        div = tl.zeros_like(rows_pad) + divisor
    elif COUNT_INCLUDE_PAD:
        div = depth_pad * rows_pad * cols_pad
    else:
        div = depth_in * rows_in * cols_in
    empty = (depth_in <= 0) | (rows_in <= 0) | (cols_in <= 0)
    return tl.where(empty, 1, div), empty


@triton.jit
def avg_pool3d_fwd_kernel(
    x_ptr, y_ptr,
    N, C, D, H, W, T, P, Q,
    sxn, sxc, sxd, sxh, sxw,
    syn, syc, syt, syp, syq,
    KD, KH, KW, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, divisor,
    ADAPTIVE: tl.constexpr, COUNT_INCLUDE_PAD: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``y[n, c, t, p, q] = sum over window (t, p, q) of x[n, c] / divisor`` (:func:`_avg_divisor`); a window
    with no voxel inside the input gives 0, as in torch.
    Grid: ``(cdiv(N*T*P*Q, BLOCK_PIX) * cdiv(C, BLOCK_C),)``, voxel blocks fastest.
    """
    ACC = tl.float64 if y_ptr.dtype.element_ty == tl.float64 else tl.float32
    n, t, p, q, pix_ok, c, c_ok = _voxel_channel_tile(N, C, T, P, Q, BLOCK_PIX, BLOCK_C)
    c_mask = c_ok[None, :]

    d0, _, d_lo, d_hi = _window_rows(t, D, T, stride_d, pad_d, 1, ADAPTIVE)
    h0, _, h_lo, h_hi = _window_rows(p, H, P, stride_h, pad_h, 1, ADAPTIVE)
    w0, _, w_lo, w_hi = _window_rows(q, W, Q, stride_w, pad_w, 1, ADAPTIVE)
    x_win = x_ptr + _offsets(n, d0, h0, w0, c, sxn, sxc, sxd, sxh, sxw)

    acc = tl.zeros([BLOCK_PIX, BLOCK_C], ACC)
    a = 0
    r = 0
    for _ in range(KD * KH):   # window row (a, r), counted without a division
        d = d0 + a
        h = h0 + r
        h_ok = pix_ok & (d >= d_lo) & (d < d_hi) & (h >= h_lo) & (h < h_hi)
        row = tl.cast(a, tl.int64) * sxd + tl.cast(r, tl.int64) * sxh
        for s in range(KW):
            w = w0 + s
            ok = h_ok & (w >= w_lo) & (w < w_hi)
            v = tl.load(x_win + (row + tl.cast(s, tl.int64) * sxw), mask=ok[:, None] & c_mask, other=0.0)
            acc += v.to(ACC)
        r += 1
        plane_done = r == KH
        a += plane_done.to(tl.int32)
        r = tl.where(plane_done, 0, r)

    div, empty = _avg_divisor(t, p, q, D, H, W, T, P, Q, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                              KD, KH, KW, divisor, ADAPTIVE, COUNT_INCLUDE_PAD)
    out = tl.where(empty[:, None], 0.0, acc / div.to(ACC)[:, None])
    tl.store(y_ptr + _offsets(n, t, p, q, c, syn, syc, syt, syp, syq), out.to(y_ptr.dtype.element_ty),
             mask=pix_ok[:, None] & c_mask)


@triton.jit
def avg_pool3d_bwd_kernel(
    gy_ptr, gx_ptr,
    N, C, D, H, W, T, P, Q,
    sgyn, sgyc, sgyt, sgyp, sgyq,
    sgxn, sgxc, sgxd, sgxh, sgxw,
    COVER_D, COVER_H, COVER_W, KD, KH, KW, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, divisor,
    ADAPTIVE: tl.constexpr, COUNT_INCLUDE_PAD: tl.constexpr,
    BLOCK_PIX: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``gx[n, c, d, h, w] = sum of gy[n, c, t, p, q] / divisor(t, p, q)`` over the windows containing
    ``(d, h, w)``, with the divisor of :func:`avg_pool3d_fwd_kernel` (same arguments).

    gy ``(N, C, T, P, Q)``, gx ``(N, C, D, H, W)`` (every element written); ``COVER_*`` bound the windows
    that contain one voxel per axis.
    Grid: ``(cdiv(N*D*H*W, BLOCK_PIX) * cdiv(C, BLOCK_C),)``, voxel blocks fastest.
    """
    ACC = tl.float64 if gx_ptr.dtype.element_ty == tl.float64 else tl.float32
    n, d, h, w, pix_ok, c, c_ok = _voxel_channel_tile(N, C, D, H, W, BLOCK_PIX, BLOCK_C)
    c_mask = c_ok[None, :]

    t_lo, t_hi = _covering_windows(d, D, T, stride_d, pad_d, KD, ADAPTIVE)
    p_lo, p_hi = _covering_windows(h, H, P, stride_h, pad_h, KH, ADAPTIVE)
    q_lo, q_hi = _covering_windows(w, W, Q, stride_w, pad_w, KW, ADAPTIVE)

    acc = tl.zeros([BLOCK_PIX, BLOCK_C], ACC)
    i = 0
    j = 0
    k = 0
    for _ in range(COVER_D * COVER_H * COVER_W):   # candidate (i, j, k), counted without a division
        t = t_lo + i
        p = p_lo + j
        q = q_lo + k
        ok = pix_ok & (t < t_hi) & (p < p_hi) & (q < q_hi)
        div, _ = _avg_divisor(t, p, q, D, H, W, T, P, Q, stride_d, stride_h, stride_w, pad_d, pad_h, pad_w,
                              KD, KH, KW, divisor, ADAPTIVE, COUNT_INCLUDE_PAD)
        div = tl.where(ok, div, 1)
        g = tl.load(gy_ptr + _offsets(n, t, p, q, c, sgyn, sgyc, sgyt, sgyp, sgyq), mask=ok[:, None] & c_mask,
                    other=0.0)
        acc += g.to(ACC) / div.to(ACC)[:, None]
        k += 1
        col_done = k == COVER_W
        j += col_done.to(tl.int32)
        k = tl.where(col_done, 0, k)
        row_done = j == COVER_H
        i += row_done.to(tl.int32)
        j = tl.where(row_done, 0, j)

    tl.store(gx_ptr + _offsets(n, d, h, w, c, sgxn, sgxc, sgxd, sgxh, sgxw), acc.to(gx_ptr.dtype.element_ty),
             mask=pix_ok[:, None] & c_mask)


@triton.jit
def global_avg_pool3d_kernel(
    x_ptr, y_ptr,
    C, D, H, W,
    sxn, sxc, sxd, sxh, sxw,
    syn, syc,
    BLOCK_DHW: tl.constexpr, BLOCK_C: tl.constexpr,
):
    """``y[n, c, 0, 0, 0] = mean over (d, h, w) of x[n, c, d, h, w]``: one reduction over the volume per
    (n, c).

    x ``(N, C, D, H, W)``, y ``(N, C, 1, 1, 1)`` (``syn``, ``syc`` its strides). A program reduces ``BLOCK_C``
    channels of one sample, ``BLOCK_DHW`` voxels at a time.
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
    DHW = D * HW
    acc = tl.zeros([BLOCK_DHW, BLOCK_C], ACC)
    if (sxh == W * sxw) & (sxd == H * sxh):
        # the voxels follow each other in memory at one stride (NCDHW and channels_last_3d volumes): the
        # block's pointers advance by one scalar step
        dhw = tl.arange(0, BLOCK_DHW)
        ptrs = x_chan[None, :] + (dhw.to(tl.int64) * sxw)[:, None]
        step = tl.cast(BLOCK_DHW, tl.int64) * sxw
        for start in range(0, DHW, BLOCK_DHW):
            ok = (start + dhw) < DHW
            v = tl.load(ptrs, mask=ok[:, None] & c_ok[None, :], other=0.0)
            acc += v.to(ACC)
            ptrs += step
    else:
        for start in range(0, DHW, BLOCK_DHW):
            dhw = start + tl.arange(0, BLOCK_DHW)
            ok = dhw < DHW
            hw = dhw % HW
            vox = (dhw // HW).to(tl.int64) * sxd + (hw // W).to(tl.int64) * sxh + (hw % W).to(tl.int64) * sxw
            v = tl.load(x_chan[None, :] + vox[:, None], mask=ok[:, None] & c_ok[None, :], other=0.0)
            acc += v.to(ACC)
    total = tl.sum(acc, axis=0) / tl.cast(DHW, ACC)
    tl.store(y_ptr + n * syn + c.to(tl.int64) * syc, total.to(y_ptr.dtype.element_ty), mask=c_ok)
