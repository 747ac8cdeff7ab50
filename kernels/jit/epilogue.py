"""Fused epilogues of the convolution kernels: activation and residual, and the activation's backward.

A convolution kernel ends with ``pre = acc + bias`` in its accumulation dtype. With an epilogue it stores
``out = act(pre) + residual`` (or ``act(pre + residual)`` when ``RESIDUAL_BEFORE_ACT``) in one pass, and, when
the backward needs it, the pre-activation itself. ``ACTIVATION`` is one of ``"none"``, ``"relu"``,
``"leaky_relu"`` (slope ``NEGATIVE_SLOPE``, a constexpr so that it is exact in float64), ``"gelu"`` (erf
form, torch's default), ``"silu"``.

The residual and the pre-activation are addressed with the output's offsets: launchers give them the output's
strides, so one offset tile serves all three tensors (separate offset tiles cost registers in the large
tensor-core tiles).
"""

import triton
import triton.language as tl

_SQRT1_2 = tl.constexpr(0.7071067811865476)  # 1 / sqrt(2)
_INV_SQRT_2PI = tl.constexpr(0.3989422804014327)  # 1 / sqrt(2 * pi)


@triton.jit
def activate(z, ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr):
    """``act(z)`` elementwise, in z's dtype."""
    if ACTIVATION == "relu":  # comparisons written so that NaN passes through, as in torch
        z = tl.where(z < 0, 0.0, z)
    elif ACTIVATION == "leaky_relu":
        z = tl.where(z < 0, z * tl.full(z.shape, NEGATIVE_SLOPE, z.dtype), z)
    elif ACTIVATION == "gelu":
        z = 0.5 * z * (1.0 + tl.math.erf(z * _SQRT1_2))
    elif ACTIVATION == "silu":
        z = z / (1.0 + tl.exp(-z))
    return z


@triton.jit
def activation_slope(z, ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr):
    """``act'(z)`` elementwise, with torch's conventions at 0 and NaN. For relu and leaky_relu (slope > 0),
    ``z`` may also be ``act(z)``: the sign is the same."""
    if ACTIVATION == "relu":
        d = tl.where(z <= 0, 0.0, 1.0).to(z.dtype)
    elif ACTIVATION == "leaky_relu":
        d = tl.where(z > 0, tl.full(z.shape, 1.0, z.dtype), tl.full(z.shape, NEGATIVE_SLOPE, z.dtype))
    elif ACTIVATION == "gelu":
        d = 0.5 * (1.0 + tl.math.erf(z * _SQRT1_2)) + z * _INV_SQRT_2PI * tl.exp(-0.5 * z * z)
    elif ACTIVATION == "silu":
        sig = 1.0 / (1.0 + tl.exp(-z))
        d = sig * (1.0 + z * (1.0 - sig))
    else:
        d = tl.full(z.shape, 1.0, z.dtype)
    return d


@triton.jit
def store_epilogue(
    pre, out_ptr, res_ptr, preact_ptr, offsets, mask,
    ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr, HAS_RESIDUAL: tl.constexpr,
    RESIDUAL_BEFORE_ACT: tl.constexpr, STORE_PREACT: tl.constexpr,
):
    """Store ``act(pre) + residual`` (or ``act(pre + residual)``) at ``out_ptr + offsets``; with
    ``STORE_PREACT`` also the activation's input at ``preact_ptr + offsets``. ``res_ptr`` and ``preact_ptr``
    share the output's offsets; either may be any pointer when its flag is off."""
    if HAS_RESIDUAL:
        residual = tl.load(res_ptr + offsets, mask=mask, other=0.0).to(pre.dtype)
        if RESIDUAL_BEFORE_ACT:
            pre += residual
    if STORE_PREACT:
        tl.store(preact_ptr + offsets, pre.to(preact_ptr.dtype.element_ty), mask=mask)
    out = activate(pre, ACTIVATION, NEGATIVE_SLOPE)
    if HAS_RESIDUAL:
        if not RESIDUAL_BEFORE_ACT:
            out += residual
    tl.store(out_ptr + offsets, out.to(out_ptr.dtype.element_ty), mask=mask)


@triton.jit
def activation_backward_kernel(
    grad_ptr, saved_ptr, grad_pre_ptr,
    numel, C, H, W,
    sgn, sgc, sgh, sgw,
    ACTIVATION: tl.constexpr, NEGATIVE_SLOPE: tl.constexpr,
    CHANNELS_LAST: tl.constexpr, SAME_LAYOUT: tl.constexpr, BLOCK: tl.constexpr,
):
    """``grad_pre = grad * act'(saved)`` over ``(N, C, H, W)`` tensors.

    ``saved`` (the pre-activation, or for relu / leaky_relu the output) and ``grad_pre`` are dense, in NCHW
    order or, with ``CHANNELS_LAST``, NHWC order; elements are numbered in that memory order. ``grad`` has
    any strides (``sg*``); ``SAME_LAYOUT`` says they are saved's, so no index is decoded. Offsets are 64-bit.
    Grid: ``(cdiv(numel, BLOCK),)``.
    """
    offs = tl.program_id(0).to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    if SAME_LAYOUT:
        grad_offs = offs
    else:
        if CHANNELS_LAST:
            c = offs % C
            w = (offs // C) % W
            h = (offs // (C * W)) % H
            n = offs // (C * W * H)
        else:
            w = offs % W
            h = (offs // W) % H
            c = (offs // (W * H)) % C
            n = offs // (W * H * C)
        grad_offs = n * sgn + c * sgc + h * sgh + w * sgw
    ACC = tl.float64 if grad_pre_ptr.dtype.element_ty == tl.float64 else tl.float32
    grad = tl.load(grad_ptr + grad_offs, mask=mask, other=0.0).to(ACC)
    saved = tl.load(saved_ptr + offs, mask=mask, other=0.0).to(ACC)
    slope = activation_slope(saved, ACTIVATION, NEGATIVE_SLOPE)
    tl.store(grad_pre_ptr + offs, (grad * slope).to(grad_pre_ptr.dtype.element_ty), mask=mask)
