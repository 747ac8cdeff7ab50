"""Dense and grouped 3-D convolution as implicit GEMMs: forward, grad-input and grad-weight.

Notation (``kernels.shapes3d``): input ``x (N, C, D, H, W)``, weight ``w (K, CG, T, R, S)``, output
``y (N, K, Z, P, Q)``, ``CG = C / groups`` channels and ``KG = K / groups`` filters per group. Every tensor
is addressed through its five strides, so NCDHW, channels_last_3d and strided views all work. Offsets into
memory are computed in 64-bit; flattened pixel indices are 32-bit (launchers split the batch when a
flattened index would pass 2**31).

The transposed convolution reuses these kernels: its forward is ``conv3d_dgrad_kernel`` (with a bias per
input channel), its grad-input is ``conv3d_fwd_kernel`` and its grad-weight is ``conv3d_wgrad_kernel`` with
the operands swapped.

Flat variant (``FLAT``, forward and weight gradient), as conv2d's (``kernels.jit.conv2d``): with fewer channels
per group than a channel block (an RGB stem), the reduction runs over the flattened ``(c, t, r, s)``, ``c``
slowest as in the weight's ``(K, CG, T, R, S)``; R3D's 3x7x7 stem takes 14 steps of 32 instead of 147.
"""

import triton
import triton.language as tl

from .epilogue import store_epilogue


@triton.jit
def conv3d_fwd_kernel(
    x_ptr, w_ptr, bias_ptr, y_ptr, res_ptr, preact_ptr,
    N, D, H, W, Z, P, Q, CG, KG,
    sxn, sxc, sxd, sxh, sxw,
    swk, swc, swt, swr, sws,
    syn, syk, syz, syp, syq, sb,
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w,
    T: tl.constexpr, R: tl.constexpr, S: tl.constexpr,
    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    RESIDUAL_BEFORE_ACT: tl.constexpr, STORE_PREACT: tl.constexpr, FLAT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """``y[n, k, z, p, q] = bias[k] + sum_{c, t, r, s} x[n, g*CG + c, z*sd - pd + t*dd, p*sh - ph + r*dh,
    q*sw - pw + s*dw] * w[k, c, t, r, s]``, then the fused epilogue (``kernels.jit.epilogue.store_epilogue``:
    activation, residual and the pre-activation, which share y's strides).

    GEMM view per group g: rows are output pixels (N*Z*P*Q), columns are the group's KG filters, the
    reduction runs over (t, r, s, c) in one loop so that Triton can pipeline it: a trip per tap and channel
    block, or with ``FLAT`` a trip per BLOCK_K of the flattened (c, t, r, s) (module docstring).
    Grid: ``(cdiv(N*Z*P*Q, BLOCK_M), cdiv(KG, BLOCK_N), groups)``.
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    group = tl.program_id(2)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = offs_m < N * Z * P * Q
    n_idx = offs_m // (Z * P * Q)
    zpq = offs_m % (Z * P * Q)
    z = zpq // (P * Q)
    p = (zpq // Q) % P
    q = zpq % Q
    d_base = z * stride_d - pad_d
    h_base = p * stride_h - pad_h
    w_base = q * stride_w - pad_w
    x_rows = x_ptr + n_idx.to(tl.int64) * sxn + (group * CG).to(tl.int64) * sxc

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < KG
    k_idx = group * KG + offs_n
    w_cols = w_ptr + k_idx.to(tl.int64) * swk

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    if FLAT:  # the reduction flattened over (c, t, r, s): a few channels per group (module docstring)
        depth = CG * (T * R * S)
        x_pix = x_rows + d_base.to(tl.int64) * sxd + h_base.to(tl.int64) * sxh + w_base.to(tl.int64) * sxw
        d_lim = tl.cast(D, tl.uint32)
        h_lim = tl.cast(H, tl.uint32)
        w_lim = tl.cast(W, tl.uint32)
        # rows past the pixels and lanes past the depth get a depth far below 0: the depth test masks them too
        d_rows = tl.where(m_mask, d_base, -(1 << 30))
        for it in range(0, tl.cdiv(depth, BLOCK_K)):
            kk = it * BLOCK_K + tl.arange(0, BLOCK_K)
            kk_ok = kk < depth
            c = kk // (T * R * S)
            t = kk % (T * R * S) // (R * S)
            r = kk % (R * S) // S
            s = kk % S
            w_tap = c.to(tl.int64) * swc + t * swt + r * swr + s * sws
            w_tile = tl.load(w_cols[None, :] + w_tap[:, None], mask=kk_ok[:, None] & n_mask[None, :], other=0.0)
            d = d_rows[:, None] + tl.where(kk_ok, t * dil_d, -(1 << 30))[None, :]
            h = h_base[:, None] + (r * dil_h)[None, :]
            w = w_base[:, None] + (s * dil_w)[None, :]
            x_ok = ((d.to(tl.uint32, bitcast=True) < d_lim) & (h.to(tl.uint32, bitcast=True) < h_lim)
                    & (w.to(tl.uint32, bitcast=True) < w_lim))
            x_tap = (c.to(tl.int64) * sxc + (t * dil_d).to(tl.int64) * sxd + (r * dil_h).to(tl.int64) * sxh
                     + (s * dil_w).to(tl.int64) * sxw)
            x_tile = tl.load(x_pix[:, None] + x_tap[None, :], mask=x_ok, other=0.0)
            acc = tl.dot(x_tile, w_tile, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)
    else:
        c_blocks = tl.cdiv(CG, BLOCK_K)
        for it in range(0, T * R * S * c_blocks):
            trs = it // c_blocks
            t = trs // (R * S)
            r = (trs // S) % R
            s = trs % S
            offs_c = (it % c_blocks) * BLOCK_K + tl.arange(0, BLOCK_K)
            c_mask = offs_c < CG
            d = d_base + t * dil_d
            h = h_base + r * dil_h
            w = w_base + s * dil_w
            pix_ok = m_mask & (d >= 0) & (d < D) & (h >= 0) & (h < H) & (w >= 0) & (w < W)
            x_tile = tl.load(
                (x_rows + d.to(tl.int64) * sxd + h.to(tl.int64) * sxh + w.to(tl.int64) * sxw)[:, None]
                + offs_c.to(tl.int64)[None, :] * sxc,
                mask=pix_ok[:, None] & c_mask[None, :], other=0.0,
            )
            w_tile = tl.load(
                w_cols[None, :] + offs_c.to(tl.int64)[:, None] * swc + (t * swt + r * swr + s * sws),
                mask=c_mask[:, None] & n_mask[None, :], other=0.0,
            )
            acc = tl.dot(x_tile, w_tile, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)

    if HAS_BIAS:
        acc += tl.load(bias_ptr + k_idx * sb, mask=n_mask, other=0.0).to(ACC_DTYPE)[None, :]
    y_offs = (n_idx.to(tl.int64) * syn + z.to(tl.int64) * syz + p.to(tl.int64) * syp + q.to(tl.int64) * syq)[:, None] \
        + k_idx.to(tl.int64)[None, :] * syk
    store_epilogue(acc, y_ptr, res_ptr, preact_ptr, y_offs, m_mask[:, None] & n_mask[None, :],
                   ACTIVATION, NEGATIVE_SLOPE, HAS_RESIDUAL, RESIDUAL_BEFORE_ACT, STORE_PREACT)


@triton.jit
def conv3d_dgrad_kernel(
    dy_ptr, w_ptr, bias_ptr, dx_ptr, res_ptr, preact_ptr,
    N, D, H, W, Z, P, Q, CG, KG, DP, HP, WP,
    sdyn, sdyk, sdyz, sdyp, sdyq,
    swk, swc, swt, swr, sws,
    sdxn, sdxc, sdxd, sdxh, sdxw, sb,
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w,
    T: tl.constexpr, R: tl.constexpr, S: tl.constexpr,
    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    RESIDUAL_BEFORE_ACT: tl.constexpr, STORE_PREACT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """``dx[n, c, d, h, w] = bias[c] + sum_{k, t, r, s} dy[n, k, (d + pd - t*dd)/sd, (h + ph - r*dh)/sh,
    (w + pw - s*dw)/sw] * w[k, c, t, r, s]``, summed over the taps where the three divisions are exact and land
    inside ``Z x P x Q``. ``bias`` (per input channel) and the fused epilogue (as in ``conv3d_fwd_kernel``)
    serve the transposed convolution, whose forward this is; a gradient has neither.

    Stride-phase decomposition: program axis 2 enumerates (group, phase_d, phase_h, phase_w); a program
    covers the input pixels ``d = phase_d + i*sd, h = phase_h + j*sh, w = phase_w + l*sw`` (``i < DP =
    cdiv(D, sd)``, ``j < HP``, ``l < WP``), for which the same taps are valid everywhere. Taps that never
    contribute to the phase are skipped whole, so no work is spent on the zeros a dilated-gradient
    formulation would insert.
    Grid: ``(cdiv(N*DP*HP*WP, BLOCK_M), cdiv(CG, BLOCK_N), groups*sd*sh*sw)``.
    """
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_gp = tl.program_id(2)
    phases = stride_d * stride_h * stride_w
    group = pid_gp // phases
    phase = pid_gp % phases
    phase_d = phase // (stride_h * stride_w)
    phase_h = (phase // stride_w) % stride_h
    phase_w = phase % stride_w

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    n_idx = offs_m // (DP * HP * WP)
    ijl = offs_m % (DP * HP * WP)
    i = ijl // (HP * WP)
    j = (ijl // WP) % HP
    l_ = ijl % WP
    d = phase_d + i * stride_d
    h = phase_h + j * stride_h
    w = phase_w + l_ * stride_w
    m_mask = (offs_m < N * DP * HP * WP) & (d < D) & (h < H) & (w < W)
    # A tap shifts the grad_out pixel (i, j, l) by the same (dz, dp, dq) for every row of the phase: the rows'
    # addresses are computed once, and a tap adds one scalar offset.
    dy_rows = dy_ptr + (n_idx.to(tl.int64) * sdyn + i.to(tl.int64) * sdyz + j.to(tl.int64) * sdyp
                        + l_.to(tl.int64) * sdyq) + (group * KG).to(tl.int64) * sdyk

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < CG
    w_cols = w_ptr + offs_n.to(tl.int64) * swc + (group * KG).to(tl.int64) * swk

    k_blocks = tl.cdiv(KG, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    # One flat loop over (tap, filter block); taps that miss this phase are skipped by a scalar test.
    for it in range(0, T * R * S * k_blocks):
        tap = it // k_blocks
        t = tap // (R * S)
        r = (tap // S) % R
        s = tap % S
        num_d = phase_d + pad_d - t * dil_d
        num_h = phase_h + pad_h - r * dil_h
        num_w = phase_w + pad_w - s * dil_w
        if (num_d % stride_d == 0) & (num_h % stride_h == 0) & (num_w % stride_w == 0):
            dz = num_d // stride_d
            dp = num_h // stride_h
            dq = num_w // stride_w
            pix_ok = m_mask & (i >= -dz) & (i < Z - dz) & (j >= -dp) & (j < P - dp) & (l_ >= -dq) & (l_ < Q - dq)
            offs_k = (it % k_blocks) * BLOCK_K + tl.arange(0, BLOCK_K)
            k_mask = offs_k < KG
            tap_offset = dz.to(tl.int64) * sdyz + dp.to(tl.int64) * sdyp + dq.to(tl.int64) * sdyq
            dy_tile = tl.load(
                (dy_rows + tap_offset)[:, None] + offs_k.to(tl.int64)[None, :] * sdyk,
                mask=pix_ok[:, None] & k_mask[None, :], other=0.0,
            )
            w_tile = tl.load(
                w_cols[None, :] + offs_k.to(tl.int64)[:, None] * swk + (t * swt + r * swr + s * sws),
                mask=k_mask[:, None] & n_mask[None, :], other=0.0,
            )
            acc = tl.dot(dy_tile, w_tile, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)

    c_idx = group * CG + offs_n
    if HAS_BIAS:
        acc += tl.load(bias_ptr + c_idx * sb, mask=n_mask, other=0.0).to(ACC_DTYPE)[None, :]
    dx_offs = (n_idx.to(tl.int64) * sdxn + d.to(tl.int64) * sdxd + h.to(tl.int64) * sdxh
               + w.to(tl.int64) * sdxw)[:, None] + c_idx.to(tl.int64)[None, :] * sdxc
    store_epilogue(acc, dx_ptr, res_ptr, preact_ptr, dx_offs, m_mask[:, None] & n_mask[None, :],
                   ACTIVATION, NEGATIVE_SLOPE, HAS_RESIDUAL, RESIDUAL_BEFORE_ACT, STORE_PREACT)


@triton.jit
def conv3d_wgrad_kernel(
    dy_ptr, x_ptr, partial_ptr,
    N, D, H, W, Z, P, Q, CG, KG, K, PIX_PER_SPLIT, SPLIT,
    sdyn, sdyk, sdyz, sdyp, sdyq,
    sxn, sxc, sxd, sxh, sxw,
    stride_d, stride_h, stride_w, pad_d, pad_h, pad_w, dil_d, dil_h, dil_w,
    T: tl.constexpr, R: tl.constexpr, S: tl.constexpr,
    PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, FLAT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Partial weight gradient over one split of the N*Z*P*Q output pixels:
    ``partial[split, k, c, t, r, s] = sum_{pixels of split} dy[n, k, z, p, q] * x[n, g*CG + c, d, h, w]``.

    GEMM view per (group, tap): rows are the group's KG filters, columns its CG channels, the reduction
    runs over output pixels. ``partial`` is a contiguous float32/float64 buffer ``(SPLIT, K, CG, T, R, S)``
    that the launcher sums over splits; a split is ``PIX_PER_SPLIT`` consecutive flattened pixels (the last
    split's run is cut at N*Z*P*Q, and a split past it stores zeros).
    Grid: ``(cdiv(KG, BLOCK_M) * cdiv(CG, BLOCK_N), T*R*S, groups*SPLIT)``. With ``FLAT`` the GEMM is per group,
    its columns the CG*T*R*S flattened (c, t, r, s), each read from x at its own tap offset: grid
    ``(cdiv(KG, BLOCK_M) * cdiv(CG*T*R*S, BLOCK_N), SPLIT, groups)``.

    Main loop, one trip per block of BLOCK_K pixels, with no division (as conv2d's): the block's pixels are
    kept as ``[BLOCK_K]`` coordinate vectors ``(n, z, p, q)``, decomposed once from the split's first pixel,
    and a trip advances them by BLOCK_K pixels written once in the radix (Z, P, Q) as scalars
    ``(dn, dz, dp, dq)``, with a carry from q to p, from p to z and from z to n. Offsets into dy and x are
    recomputed from the coordinates (products keep the divisibility the runtime gives a stride). Pixels past
    the split's end are masked by a count of the pixels left.
    """
    pid_tile = tl.program_id(0)
    if FLAT:  # columns are the flattened (c, t, r, s); grid axis 1 the splits
        split = tl.program_id(1)
        group = tl.program_id(2)
        n_tiles = tl.cdiv(CG * (T * R * S), BLOCK_N)
    else:
        tap = tl.program_id(1)
        pid_gs = tl.program_id(2)
        group = pid_gs // SPLIT
        split = pid_gs % SPLIT
        n_tiles = tl.cdiv(CG, BLOCK_N)
    pid_m = pid_tile // n_tiles
    pid_n = pid_tile % n_tiles
    if not FLAT:
        t = tap // (R * S)
        r = (tap // S) % R
        s = tap % S

    offs_k = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    k_mask = offs_k < KG
    offs_c = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    if FLAT:
        # column (c, t, r, s) reads x at channel c, (d, h, w) = (z*sd + col_d, p*sh + col_h, q*sw + col_w)
        c_mask = offs_c < CG * (T * R * S)
        col_d = offs_c % (T * R * S) // (R * S) * dil_d - pad_d
        col_d_ok = tl.where(c_mask, col_d, -(1 << 30))      # columns past the last: a depth far below 0
        col_h = offs_c % (R * S) // S * dil_h - pad_h
        col_w = offs_c % S * dil_w - pad_w
        dy_cols = dy_ptr + (group * KG + offs_k).to(tl.int64) * sdyk
        x_cols = x_ptr + ((group * CG + offs_c // (T * R * S)).to(tl.int64) * sxc + col_d.to(tl.int64) * sxd
                          + col_h.to(tl.int64) * sxh + col_w.to(tl.int64) * sxw)
    else:
        c_mask = offs_c < CG
        dy_cols = dy_ptr + (group * KG + offs_k).to(tl.int64) * sdyk
        x_cols = x_ptr + (group * CG + offs_c).to(tl.int64) * sxc

    # The split's pixels: [pix_start, pix_start + count), in 64-bit until count is known (count 0: no trip).
    pix_start = split.to(tl.int64) * PIX_PER_SPLIT
    count = tl.minimum(tl.maximum(N * Z * P * Q - pix_start, 0), PIX_PER_SPLIT).to(tl.int32)
    offs = tl.arange(0, BLOCK_K)
    pix = pix_start.to(tl.int32) + offs                     # [BLOCK_K] flattened pixels of the first block
    n = pix // (Z * P * Q)
    z = pix // (P * Q) % Z
    p = pix // Q % P
    q = pix % Q
    dq = BLOCK_K % Q                                        # BLOCK_K pixels in the radix (Z, P, Q)
    dp = BLOCK_K // Q % P
    dz = BLOCK_K // (P * Q) % Z
    dn = BLOCK_K // (Z * P * Q)
    if FLAT:
        off_d = 0                                           # d = z * stride_d + off_d, h and w likewise
        off_h = 0
        off_w = 0
    else:
        off_d = t * dil_d - pad_d
        off_h = r * dil_h - pad_h
        off_w = s * dil_w - pad_w
    # A coordinate c is inside [0, L) when c, read as unsigned, is below L (one compare).
    d_lim = tl.cast(D, tl.uint32)
    h_lim = tl.cast(H, tl.uint32)
    w_lim = tl.cast(W, tl.uint32)
    left = count
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    for _ in range(0, count, BLOCK_K):
        pix_ok = offs < left
        d = z * stride_d + off_d
        h = p * stride_h + off_h
        w = q * stride_w + off_w
        if FLAT:  # pixels past the split's end and columns past the last get a depth far below 0
            dd = tl.where(pix_ok, d, -(1 << 30))[:, None] + col_d_ok[None, :]
            hh = h[:, None] + col_h[None, :]
            ww = w[:, None] + col_w[None, :]
            x_mask = ((dd.to(tl.uint32, bitcast=True) < d_lim) & (hh.to(tl.uint32, bitcast=True) < h_lim)
                      & (ww.to(tl.uint32, bitcast=True) < w_lim))
        else:
            x_ok = (pix_ok & (d.to(tl.uint32, bitcast=True) < d_lim) & (h.to(tl.uint32, bitcast=True) < h_lim)
                    & (w.to(tl.uint32, bitcast=True) < w_lim))
        n64 = n.to(tl.int64)
        dy_pix = n64 * sdyn + z.to(tl.int64) * sdyz + p.to(tl.int64) * sdyp + q.to(tl.int64) * sdyq
        x_pix = n64 * sxn + d.to(tl.int64) * sxd + h.to(tl.int64) * sxh + w.to(tl.int64) * sxw
        dy_tile = tl.load(dy_cols[:, None] + dy_pix[None, :], mask=k_mask[:, None] & pix_ok[None, :], other=0.0)
        if FLAT:
            x_tile = tl.load(x_cols[None, :] + x_pix[:, None], mask=x_mask, other=0.0)
        else:
            x_tile = tl.load(x_cols[None, :] + x_pix[:, None], mask=x_ok[:, None] & c_mask[None, :], other=0.0)
        acc = tl.dot(dy_tile, x_tile, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)
        left -= BLOCK_K
        q += dq
        carry_q = q >= Q
        q = tl.where(carry_q, q - Q, q)
        p += dp + carry_q.to(tl.int32)
        carry_p = p >= P
        p = tl.where(carry_p, p - P, p)
        z += dz + carry_p.to(tl.int32)
        carry_z = z >= Z
        z = tl.where(carry_z, z - Z, z)
        n += dn + carry_z.to(tl.int32)

    k_glob = (group * KG + offs_k).to(tl.int64)
    if FLAT:  # the tile's columns are consecutive (c, t, r, s)
        out_offs = (split.to(tl.int64) * K + k_glob[:, None]) * (CG * (T * R * S)) + offs_c.to(tl.int64)[None, :]
    else:
        out_offs = ((split.to(tl.int64) * K + k_glob[:, None]) * CG + offs_c.to(tl.int64)[None, :]) * (T * R * S) + tap
    tl.store(partial_ptr + out_offs, acc.to(partial_ptr.dtype.element_ty), mask=k_mask[:, None] & c_mask[None, :])
