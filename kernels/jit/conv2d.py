"""Dense and grouped 2-D convolution as implicit GEMMs: forward, grad-input and grad-weight.

Notation (shared by every kernel of the family): input ``x (N, C, H, W)``, weight ``w (K, CG, R, S)``,
output ``y (N, K, P, Q)``, ``CG = C / groups`` channels and ``KG = K / groups`` filters per group. Every
tensor is addressed through its four strides, so NCHW, channels_last and strided views all work. Offsets
into memory are computed in 64-bit; flattened pixel indices are 32-bit (launchers split the batch when a
flattened index would pass 2**31).

Aligned variant (``VEC == 16``): when every channel axis the kernel reads or writes is contiguous (stride 1)
and every other stride, and CG and KG, are multiples of 16 (channels_last tensors with channel counts that are
multiples of 16: most real layers), the launcher passes those strides and counts divided by 16 and the kernel
multiplies them back by the constexpr ``VEC``. The compiler then knows the divisibility and the unit channel
stride whatever the shape, so it vectorises the loads and stores and needs far fewer registers: the large
tiles of the space are launched only in this variant (they spill in the general one). ``VEC == 1`` is the
general kernel: every argument as it is.

Flat variant (``FLAT``, forward and weight gradient): with fewer channels per group than a channel block (an
RGB stem's 3, a grouped convolution's 4), a reduction step per tap would fill a few of the BLOCK_K lanes of
each matrix product (3 of 32: the 7x7 stem's forward made 49 such steps). The flat variant runs the
reduction over the flattened ``(c, r, s)`` instead, ``c`` slowest as in the weight's ``(K, CG, R, S)``: the
forward takes BLOCK_K of them per step (147 for the stem: 5 steps), each element of the input tile gathered
at its own tap; the weight gradient makes them its GEMM's columns (one launch axis instead of one program per
tap, so each program reads a grad_out tile once for every tap). Divisions are by ``R * S`` and ``S``:
constants.

The transposed convolution reuses these kernels: its forward is ``conv2d_dgrad_kernel``, its grad-input is
``conv2d_fwd_kernel`` and its grad-weight is ``conv2d_wgrad_kernel`` with the operands swapped.
"""

import triton
import triton.language as tl

from .epilogue import store_epilogue


@triton.jit
def conv2d_fwd_kernel(
    x_ptr, w_ptr, bias_ptr, y_ptr, res_ptr, preact_ptr,
    N, H, W, P, Q, CG, KG,
    sxn, sxc, sxh, sxw,
    swk, swc, swr, sws,
    syn, syk, syp, syq, sb,
    stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
    R: tl.constexpr, S: tl.constexpr,
    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    RESIDUAL_BEFORE_ACT: tl.constexpr, STORE_PREACT: tl.constexpr, VEC: tl.constexpr, FLAT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """``y[n, k, p, q] = bias[k] + sum_{c, r, s} x[n, g*CG + c, p*sh - ph + r*dh, q*sw - pw + s*dw] * w[k, c, r, s]``,
    then the fused epilogue (``kernels.jit.epilogue.store_epilogue``: activation, residual and the
    pre-activation, which share y's strides).

    GEMM view per group g: rows are output pixels (N*P*Q), columns are the group's KG filters, the
    reduction runs over (r, s, c) in one loop so that Triton can pipeline it: a trip per tap and channel
    block, or with ``FLAT`` a trip per BLOCK_K of the flattened (c, r, s) (module docstring).
    Grid: ``(cdiv(N*P*Q, BLOCK_M), cdiv(KG, BLOCK_N), groups)``.
    """
    if VEC > 1:  # the aligned variant (module docstring)
        sxc, swc, syk = 1, 1, 1
    CG, KG = CG * VEC, KG * VEC
    sxn, sxh, sxw = sxn * VEC, sxh * VEC, sxw * VEC
    swk, swr, sws = swk * VEC, swr * VEC, sws * VEC
    syn, syp, syq = syn * VEC, syp * VEC, syq * VEC
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    group = tl.program_id(2)

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    m_mask = offs_m < N * P * Q
    n_idx = offs_m // (P * Q)
    pq = offs_m % (P * Q)
    h_base = (pq // Q) * stride_h - pad_h
    w_base = (pq % Q) * stride_w - pad_w
    x_rows = x_ptr + n_idx.to(tl.int64) * sxn + (group * CG).to(tl.int64) * sxc

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < KG
    k_idx = group * KG + offs_n
    w_cols = w_ptr + k_idx.to(tl.int64) * swk

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    if FLAT:  # the reduction flattened over (c, r, s): a few channels per group (module docstring)
        depth = CG * (R * S)
        x_pix = x_rows + h_base.to(tl.int64) * sxh + w_base.to(tl.int64) * sxw
        h_lim = tl.cast(H, tl.uint32)
        w_lim = tl.cast(W, tl.uint32)
        for t in range(0, tl.cdiv(depth, BLOCK_K)):
            kk = t * BLOCK_K + tl.arange(0, BLOCK_K)
            kk_ok = kk < depth
            c = kk // (R * S)
            r = kk % (R * S) // S
            s = kk % S
            h = h_base[:, None] + (r * dil_h)[None, :]
            w = w_base[:, None] + (s * dil_w)[None, :]
            x_ok = (m_mask[:, None] & kk_ok[None, :] & (h.to(tl.uint32, bitcast=True) < h_lim)
                    & (w.to(tl.uint32, bitcast=True) < w_lim))
            w_tap = c.to(tl.int64) * swc + r * swr + s * sws
            w_tile = tl.load(w_cols[None, :] + w_tap[:, None], mask=kk_ok[:, None] & n_mask[None, :], other=0.0)
            x_tap = c.to(tl.int64) * sxc + (r * dil_h).to(tl.int64) * sxh + (s * dil_w).to(tl.int64) * sxw
            x_tile = tl.load(x_pix[:, None] + x_tap[None, :], mask=x_ok, other=0.0)
            acc = tl.dot(x_tile, w_tile, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)
    else:
        c_blocks = tl.cdiv(CG, BLOCK_K)
        for t in range(0, R * S * c_blocks):
            rs = t // c_blocks
            r = rs // S
            s = rs % S
            offs_c = (t % c_blocks) * BLOCK_K + tl.arange(0, BLOCK_K)
            c_mask = offs_c < CG
            h = h_base + r * dil_h
            w = w_base + s * dil_w
            pix_ok = m_mask & (h >= 0) & (h < H) & (w >= 0) & (w < W)
            x_tile = tl.load(
                x_rows[:, None] + h.to(tl.int64)[:, None] * sxh + w.to(tl.int64)[:, None] * sxw
                + offs_c.to(tl.int64)[None, :] * sxc,
                mask=pix_ok[:, None] & c_mask[None, :], other=0.0,
            )
            w_tile = tl.load(
                w_cols[None, :] + offs_c.to(tl.int64)[:, None] * swc + r * swr + s * sws,
                mask=c_mask[:, None] & n_mask[None, :], other=0.0,
            )
            acc = tl.dot(x_tile, w_tile, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)

    if HAS_BIAS:
        acc += tl.load(bias_ptr + k_idx * sb, mask=n_mask, other=0.0).to(ACC_DTYPE)[None, :]
    y_offs = (n_idx.to(tl.int64) * syn + (pq // Q).to(tl.int64) * syp + (pq % Q).to(tl.int64) * syq)[:, None] \
        + k_idx.to(tl.int64)[None, :] * syk
    store_epilogue(acc, y_ptr, res_ptr, preact_ptr, y_offs, m_mask[:, None] & n_mask[None, :],
                   ACTIVATION, NEGATIVE_SLOPE, HAS_RESIDUAL, RESIDUAL_BEFORE_ACT, STORE_PREACT)


@triton.jit
def conv2d_dgrad_kernel(
    dy_ptr, w_ptr, bias_ptr, dx_ptr, res_ptr, preact_ptr,
    N, H, W, P, Q, CG, KG, HP, WP,
    sdyn, sdyk, sdyp, sdyq,
    swk, swc, swr, sws,
    sdxn, sdxc, sdxh, sdxw, sb,
    stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
    R: tl.constexpr, S: tl.constexpr,
    HAS_BIAS: tl.constexpr, PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr,
    ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    RESIDUAL_BEFORE_ACT: tl.constexpr, STORE_PREACT: tl.constexpr, VEC: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """``dx[n, c, h, w] = bias[c] + sum_{k, r, s} dy[n, k, (h + ph - r*dh)/sh, (w + pw - s*dw)/sw] * w[k, c, r, s]``,
    summed over the taps where both divisions are exact and land inside ``P x Q``. ``bias`` (per input
    channel) and the fused epilogue (as in ``conv2d_fwd_kernel``) serve the transposed convolution, whose
    forward this is; a gradient has neither.

    Stride-phase decomposition: program axis 2 enumerates (group, phase_h, phase_w); a program covers the
    input pixels ``h = phase_h + i*sh, w = phase_w + j*sw`` (``i < HP = cdiv(H, sh)``, ``j < WP``), for which
    the same taps are valid everywhere. Taps that never contribute to the phase are skipped whole, so no
    work is spent on the zeros a dilated-gradient formulation would insert.
    Grid: ``(cdiv(N*HP*WP, BLOCK_M), cdiv(CG, BLOCK_N), groups*sh*sw)``.
    """
    if VEC > 1:  # the aligned variant (module docstring)
        sdyk, swc, sdxc = 1, 1, 1
    CG, KG = CG * VEC, KG * VEC
    sdyn, sdyp, sdyq = sdyn * VEC, sdyp * VEC, sdyq * VEC
    swk, swr, sws = swk * VEC, swr * VEC, sws * VEC
    sdxn, sdxh, sdxw = sdxn * VEC, sdxh * VEC, sdxw * VEC
    pid_m = tl.program_id(0)
    pid_n = tl.program_id(1)
    pid_gp = tl.program_id(2)
    phases = stride_h * stride_w
    group = pid_gp // phases
    phase_h = (pid_gp % phases) // stride_w
    phase_w = pid_gp % stride_w

    offs_m = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    n_idx = offs_m // (HP * WP)
    ij = offs_m % (HP * WP)
    i = ij // WP
    j = ij % WP
    h = phase_h + i * stride_h
    w = phase_w + j * stride_w
    m_mask = (offs_m < N * HP * WP) & (h < H) & (w < W)
    dy_rows = dy_ptr + n_idx.to(tl.int64) * sdyn + (group * KG).to(tl.int64) * sdyk

    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    n_mask = offs_n < CG
    w_cols = w_ptr + offs_n.to(tl.int64) * swc + (group * KG).to(tl.int64) * swk

    k_blocks = tl.cdiv(KG, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    # One flat loop over (tap, filter block); taps that miss this phase are skipped by a scalar test.
    for t in range(0, R * S * k_blocks):
        tap = t // k_blocks
        r = tap // S
        s = tap % S
        num_h = phase_h + pad_h - r * dil_h
        num_w = phase_w + pad_w - s * dil_w
        if (num_h % stride_h == 0) & (num_w % stride_w == 0):
            p = i + num_h // stride_h
            q = j + num_w // stride_w
            pix_ok = m_mask & (p >= 0) & (p < P) & (q >= 0) & (q < Q)
            offs_k = (t % k_blocks) * BLOCK_K + tl.arange(0, BLOCK_K)
            k_mask = offs_k < KG
            dy_tile = tl.load(
                (dy_rows + p.to(tl.int64) * sdyp + q.to(tl.int64) * sdyq)[:, None]
                + offs_k.to(tl.int64)[None, :] * sdyk,
                mask=pix_ok[:, None] & k_mask[None, :], other=0.0,
            )
            w_tile = tl.load(
                w_cols[None, :] + offs_k.to(tl.int64)[:, None] * swk + r * swr + s * sws,
                mask=k_mask[:, None] & n_mask[None, :], other=0.0,
            )
            acc = tl.dot(dy_tile, w_tile, acc, input_precision=PRECISION, out_dtype=ACC_DTYPE)

    c_idx = group * CG + offs_n
    if HAS_BIAS:
        acc += tl.load(bias_ptr + c_idx * sb, mask=n_mask, other=0.0).to(ACC_DTYPE)[None, :]
    dx_offs = (n_idx.to(tl.int64) * sdxn + h.to(tl.int64) * sdxh + w.to(tl.int64) * sdxw)[:, None] \
        + c_idx.to(tl.int64)[None, :] * sdxc
    store_epilogue(acc, dx_ptr, res_ptr, preact_ptr, dx_offs, m_mask[:, None] & n_mask[None, :],
                   ACTIVATION, NEGATIVE_SLOPE, HAS_RESIDUAL, RESIDUAL_BEFORE_ACT, STORE_PREACT)


@triton.jit
def conv2d_wgrad_kernel(
    dy_ptr, x_ptr, partial_ptr,
    N, H, W, P, Q, CG, KG, K, PIX_PER_SPLIT, SPLIT,
    sdyn, sdyk, sdyp, sdyq,
    sxn, sxc, sxh, sxw,
    stride_h, stride_w, pad_h, pad_w, dil_h, dil_w,
    R: tl.constexpr, S: tl.constexpr,
    PRECISION: tl.constexpr, ACC_DTYPE: tl.constexpr, VEC: tl.constexpr, FLAT: tl.constexpr,
    BLOCK_M: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """Partial weight gradient over one split of the N*P*Q output pixels:
    ``partial[split, k, c, r, s] = sum_{pixels of split} dy[n, k, p, q] * x[n, g*CG + c, h, w]``.

    GEMM view per (group, tap): rows are the group's KG filters, columns its CG channels, the reduction
    runs over output pixels. ``partial`` is a contiguous float32/float64 buffer ``(SPLIT, K, CG, R, S)``
    that the launcher sums over splits; a split is ``PIX_PER_SPLIT`` consecutive flattened pixels (any count:
    the launcher's are whole blocks; the last split's run is cut at N*P*Q, and a split past it stores zeros).
    Grid: ``(cdiv(KG, BLOCK_M) * cdiv(CG, BLOCK_N), R*S, groups*SPLIT)``. With ``FLAT`` (module docstring) the
    GEMM is per group, its columns the CG*R*S flattened (c, r, s), each read from x at its own tap offset:
    grid ``(cdiv(KG, BLOCK_M) * cdiv(CG*R*S, BLOCK_N), SPLIT, groups)``.

    Main loop, one trip per block of BLOCK_K pixels, with no division: the block's pixels are kept as
    ``[BLOCK_K]`` coordinate vectors ``(p, q)`` (and ``n`` in the general variant), decomposed once from the
    split's first pixel. A trip advances them by BLOCK_K pixels, written once in the radix (P, Q) as scalars
    ``(dn, dp, dq)`` with ``dq < Q`` and ``dp < P``: ``q += dq``, a carry when ``q >= Q`` takes Q off q and
    adds 1 to p, then ``p += dp``, a carry when ``p >= P`` takes P off p and moves to the next image. The
    ``[BLOCK_K]`` 64-bit offsets of the pixels into dy and x are
    - in the aligned variant, carried too: a trip adds ``step`` (BLOCK_K pixels without a carry), plus
      ``wrap_q`` (next row, Q columns back) for the pixels whose q carried and ``wrap_p`` (next image, P rows
      back) for those whose p carried. They are kept in units of VEC elements (the strides as passed), so
      the compiler still knows that each pixel's channels start 16-element aligned;
    - in the general variant, recomputed from ``(n, p, q)`` and the strides: products keep the divisibility
      the runtime's specialisation gives a stride, so aligned channels_last tensors keep their vector loads.
    Pixels past the split's end are masked by a count of the pixels left, not by their coordinates.
    """
    if VEC > 1:  # the aligned variant (module docstring)
        sdyk, sxc = 1, 1
    CG, KG = CG * VEC, KG * VEC
    pid_tile = tl.program_id(0)
    if FLAT:  # columns are the flattened (c, r, s); grid axis 1 the splits
        split = tl.program_id(1)
        group = tl.program_id(2)
        n_tiles = tl.cdiv(CG * (R * S), BLOCK_N)
    else:
        tap = tl.program_id(1)
        pid_gs = tl.program_id(2)
        group = pid_gs // SPLIT
        split = pid_gs % SPLIT
        n_tiles = tl.cdiv(CG, BLOCK_N)
    pid_m = pid_tile // n_tiles
    pid_n = pid_tile % n_tiles
    if not FLAT:
        r = tap // S
        s = tap % S

    offs_k = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    k_mask = offs_k < KG
    offs_c = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    if FLAT:
        # column (c, r, s) reads x at channel c, (h, w) = (p*sh + col_h, q*sw + col_w)
        c_mask = offs_c < CG * (R * S)
        col_h = offs_c % (R * S) // S * dil_h - pad_h
        col_w = offs_c % S * dil_w - pad_w
        dy_cols = dy_ptr + (group * KG + offs_k).to(tl.int64) * sdyk
        x_cols = x_ptr + ((group * CG + offs_c // (R * S)).to(tl.int64) * sxc + col_h.to(tl.int64) * sxh
                          + col_w.to(tl.int64) * sxw)
    else:
        c_mask = offs_c < CG
        dy_cols = dy_ptr + (group * KG + offs_k).to(tl.int64) * sdyk
        x_cols = x_ptr + (group * CG + offs_c).to(tl.int64) * sxc

    # The split's pixels: [pix_start, pix_start + count), in 64-bit until count is known (count 0: no trip).
    pix_start = split.to(tl.int64) * PIX_PER_SPLIT
    count = tl.minimum(tl.maximum(N * P * Q - pix_start, 0), PIX_PER_SPLIT).to(tl.int32)
    offs = tl.arange(0, BLOCK_K)
    pix = pix_start.to(tl.int32) + offs                     # [BLOCK_K] flattened pixels of the first block
    n = pix // (P * Q)
    p = pix // Q % P
    q = pix % Q
    dq = BLOCK_K % Q                                        # BLOCK_K pixels in the radix (P, Q)
    dp = BLOCK_K // Q % P
    dn = BLOCK_K // (P * Q)
    if FLAT:
        off_h = 0                                           # h = p * stride_h + off_h, w likewise
        off_w = 0
    else:
        off_h = r * dil_h - pad_h
        off_w = s * dil_w - pad_w
    if VEC > 1:
        n64 = n.to(tl.int64)
        dy_off = n64 * sdyn + p.to(tl.int64) * sdyp + q.to(tl.int64) * sdyq
        x_off = n64 * sxn + (p * stride_h + off_h).to(tl.int64) * sxh + (q * stride_w + off_w).to(tl.int64) * sxw
        dy_step = tl.cast(dn, tl.int64) * sdyn + tl.cast(dp, tl.int64) * sdyp + tl.cast(dq, tl.int64) * sdyq
        dy_step_q = dy_step + sdyp - tl.cast(Q, tl.int64) * sdyq
        dy_wrap_p = tl.cast(sdyn, tl.int64) - tl.cast(P, tl.int64) * sdyp
        x_step = (tl.cast(dn, tl.int64) * sxn + tl.cast(dp * stride_h, tl.int64) * sxh
                  + tl.cast(dq * stride_w, tl.int64) * sxw)
        x_step_q = x_step + tl.cast(stride_h, tl.int64) * sxh - tl.cast(Q * stride_w, tl.int64) * sxw
        x_wrap_p = tl.cast(sxn, tl.int64) - tl.cast(P * stride_h, tl.int64) * sxh
    # A coordinate c is inside [0, L) when c, read as unsigned, is below L (one compare).
    h_lim = tl.cast(H, tl.uint32)
    w_lim = tl.cast(W, tl.uint32)
    left = count
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC_DTYPE)
    for _ in range(0, count, BLOCK_K):
        pix_ok = offs < left
        h = p * stride_h + off_h
        w = q * stride_w + off_w
        if FLAT:
            hh = h[:, None] + col_h[None, :]
            ww = w[:, None] + col_w[None, :]
            x_mask = (pix_ok[:, None] & c_mask[None, :] & (hh.to(tl.uint32, bitcast=True) < h_lim)
                      & (ww.to(tl.uint32, bitcast=True) < w_lim))
        else:
            x_ok = pix_ok & (h.to(tl.uint32, bitcast=True) < h_lim) & (w.to(tl.uint32, bitcast=True) < w_lim)
        if VEC > 1:
            dy_pix = dy_off * VEC
            x_pix = x_off * VEC
        else:
            n64 = n.to(tl.int64)
            dy_pix = n64 * sdyn + p.to(tl.int64) * sdyp + q.to(tl.int64) * sdyq
            x_pix = n64 * sxn + h.to(tl.int64) * sxh + w.to(tl.int64) * sxw
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
        if VEC > 1:
            dy_off += tl.where(carry_q, dy_step_q, dy_step) + tl.where(carry_p, dy_wrap_p, 0)
            x_off += tl.where(carry_q, x_step_q, x_step) + tl.where(carry_p, x_wrap_p, 0)
        else:
            n += dn + carry_p.to(tl.int32)

    # partial[split, k, c, tap] of the tile's first filter and channel; the others at small offsets from it
    # (their rows 64-bit, their columns a constant multiple of the position within the tile).
    first_k = split.to(tl.int64) * K + group * KG + pid_m * BLOCK_M
    if FLAT:  # the tile's columns are consecutive (c, r, s)
        out_tile = partial_ptr + (first_k * CG * (R * S) + pid_n * BLOCK_N)
        out_rel = (tl.arange(0, BLOCK_M).to(tl.int64) * CG * (R * S))[:, None] + tl.arange(0, BLOCK_N)[None, :]
    else:
        out_tile = partial_ptr + ((first_k * CG + pid_n * BLOCK_N) * (R * S) + tap)
        out_rel = ((tl.arange(0, BLOCK_M).to(tl.int64) * CG * (R * S))[:, None]
                   + (tl.arange(0, BLOCK_N) * (R * S))[None, :])
    tl.store(out_tile + out_rel, acc.to(partial_ptr.dtype.element_ty), mask=k_mask[:, None] & c_mask[None, :])


@triton.jit
def conv2d_fwd_tma_kernel(
    x_ptr, w_ptr, bias_ptr, y_ptr, res_ptr, preact_ptr,
    N, H, W, C, P, Q, K,
    syn8, syp8, syq8, sb,
    pad_h, pad_w, dil_h, dil_w,
    R: tl.constexpr, S: tl.constexpr,
    HAS_BIAS: tl.constexpr,
    ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    RESIDUAL_BEFORE_ACT: tl.constexpr, STORE_PREACT: tl.constexpr,
    BLOCK_H: tl.constexpr, BLOCK_W: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr,
):
    """The stride-1 forward of ``conv2d_fwd_kernel`` for Hopper: both operands loaded by the tensor memory
    accelerator (TMA) from descriptors made on the device, multiplied by warpgroup MMA.

    x is NHWC (``(N, H, W, C)`` contiguous: a channels_last tensor), w is KRSC (``(K, R, S, C)`` contiguous:
    a channels_last weight), 16-bit, ``groups == 1``, stride 1, any padding and dilation, ``C`` a multiple of
    8 (TMA's 16-byte strides). A program computes a ``BLOCK_H x BLOCK_W`` rectangle of output pixels of one
    image for ``BLOCK_N`` filters: for each tap (r, s) and channel block it loads the
    ``[1, BLOCK_H, BLOCK_W, BLOCK_K]`` box of x at ``(n, p0 - pad_h + r*dil_h, q0 - pad_w + s*dil_w, c0)``
    and the ``[BLOCK_N, 1, 1, BLOCK_K]`` box of w at ``(k0, r, s, c0)``. TMA fills what lies outside a
    tensor with zeros: the padding halo (negative coordinates included), the channels past ``C`` of the last
    block, the filters past ``K``. So the loop has no address arithmetic per element and no masks. y (any strides
    ``8 * sy*8``: multiples of 8, so the compiler knows the stores' alignment whatever the shape; its channel
    stride 1), bias and the fused epilogue as in ``conv2d_fwd_kernel``.
    Grid: ``(N * cdiv(P, BLOCK_H) * cdiv(Q, BLOCK_W), cdiv(K, BLOCK_N))``.
    """
    BLOCK_M: tl.constexpr = BLOCK_H * BLOCK_W
    pid_pix = tl.program_id(0)
    pid_n = tl.program_id(1)
    tiles_q = tl.cdiv(Q, BLOCK_W)
    tiles_p = tl.cdiv(P, BLOCK_H)
    q0 = (pid_pix % tiles_q) * BLOCK_W
    p0 = ((pid_pix // tiles_q) % tiles_p) * BLOCK_H
    n = pid_pix // (tiles_q * tiles_p)
    k0 = pid_n * BLOCK_N

    x_desc = tl.make_tensor_descriptor(x_ptr, shape=[N, H, W, C], strides=[H * W * C, W * C, C, 1],
                                       block_shape=[1, BLOCK_H, BLOCK_W, BLOCK_K])
    w_desc = tl.make_tensor_descriptor(w_ptr, shape=[K, R, S, C], strides=[R * S * C, S * C, C, 1],
                                       block_shape=[BLOCK_N, 1, 1, BLOCK_K])
    c_blocks = tl.cdiv(C, BLOCK_K)
    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)
    for t in range(0, R * S * c_blocks):
        rs = t // c_blocks
        c0 = (t - rs * c_blocks) * BLOCK_K
        r = rs // S
        s = rs - r * S
        x_tile = x_desc.load([n, p0 - pad_h + r * dil_h, q0 - pad_w + s * dil_w, c0])
        w_tile = tl.reshape(w_desc.load([k0, r, s, c0]), (BLOCK_N, BLOCK_K))
        acc = tl.dot(tl.reshape(x_tile, (BLOCK_M, BLOCK_K)), w_tile.T, acc)

    offs_m = tl.arange(0, BLOCK_M)
    p = p0 + offs_m // BLOCK_W
    q = q0 + offs_m % BLOCK_W
    k = k0 + tl.arange(0, BLOCK_N)
    k_mask = k < K
    if HAS_BIAS:
        acc += tl.load(bias_ptr + k * sb, mask=k_mask, other=0.0).to(tl.float32)[None, :]
    row = n.to(tl.int64) * syn8 + p.to(tl.int64) * syp8 + q.to(tl.int64) * syq8
    y_offs = (row * 8)[:, None] + k.to(tl.int64)[None, :]
    store_epilogue(acc, y_ptr, res_ptr, preact_ptr, y_offs, ((p < P) & (q < Q))[:, None] & k_mask[None, :],
                   ACTIVATION, NEGATIVE_SLOPE, HAS_RESIDUAL, RESIDUAL_BEFORE_ACT, STORE_PREACT)
