"""Receptive field of a CNN, measured (NaN propagation) and computed (layer arithmetic).

Empirical: run the model on ``H*W`` all-zero images, image ``a*W + b`` holding NaN at input pixel
``(a, b)`` in every channel. NaN survives every multiply-add (``NaN * 0 = NaN``), ReLU and max pooling, so an
output pixel is NaN exactly when the pixel lies in its receptive field: row ``(i, j)`` of that reach table
gives the receptive field of output ``(i, j)``, column ``(a, b)`` the influence region of input ``(a, b)``.
The model runs in eval mode (batch statistics would spread NaN over the batch) and under ``no_grad``.

Arithmetic: walk the layers in execution order (a chain), starting from ``r = 1, j = 1, start = 0``::

    r_out = r_in + (k - 1) * d * j_in,   j_out = j_in * s,   start_out = start_in + ((k - 1) * d / 2 - p) * j_in

with ``start`` the centre, in input pixels, of the field of output pixel 0. Output ``i`` is then centred
at ``start + i * j`` and spans ``r`` pixels. Edge effects: padding truncates the empirical field at the
borders (``box`` is the arithmetic box clipped to the input), so the default output element is the central
one. Dilation leaves holes inside the box: compare extents (``box``), not the mask's pixel count.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = ["ReceptiveField", "receptive_field"]

_POINTWISE = (
    torch.nn.ReLU, torch.nn.ReLU6, torch.nn.LeakyReLU, torch.nn.PReLU, torch.nn.ELU, torch.nn.SELU,
    torch.nn.GELU, torch.nn.SiLU, torch.nn.Mish, torch.nn.Sigmoid, torch.nn.Tanh, torch.nn.Hardswish,
    torch.nn.Hardsigmoid, torch.nn.Hardtanh, torch.nn.Softplus, torch.nn.Identity, torch.nn.Dropout,
    torch.nn.Dropout2d, torch.nn.BatchNorm2d, torch.nn.GroupNorm, torch.nn.InstanceNorm2d,
)

Box = tuple[int, int, int, int]  # (h_start, h_stop, w_start, w_stop), stops exclusive


@dataclass
class ReceptiveField:
    """Receptive field of output pixel ``output_index`` of a model.

    ``size``, ``jump``, ``start``: arithmetic field size, jump (product of strides) and centre of output
    pixel 0's field, each ``(h, w)`` in input pixels; None when the walk met a layer it can't model (see
    ``reason``). ``mask (H, W)`` bool: input pixels reaching ``output_index`` (measured). ``influence
    (P, Q)`` bool: output pixels reached by the central input pixel (measured).
    """

    output_index: tuple[int, int]
    input_size: tuple[int, int]
    mask: torch.Tensor
    influence: torch.Tensor
    size: tuple[int, int] | None
    jump: tuple[float, float] | None
    start: tuple[float, float] | None
    reason: str | None = None

    @property
    def box(self) -> Box | None:
        """Bounding box of ``mask``, or None when no input reaches the output."""
        rows = self.mask.any(1).nonzero().flatten()
        cols = self.mask.any(0).nonzero().flatten()
        if rows.numel() == 0:
            return None
        return int(rows[0]), int(rows[-1]) + 1, int(cols[0]), int(cols[-1]) + 1

    @property
    def empirical_size(self) -> tuple[int, int]:
        """Extent ``(h, w)`` of the measured field (truncated by the borders)."""
        box = self.box
        return (0, 0) if box is None else (box[1] - box[0], box[3] - box[2])

    def arithmetic_box(self) -> Box | None:
        """The arithmetic field of ``output_index`` clipped to the input, as ``(h0, h1, w0, w1)``."""
        if self.size is None or self.jump is None or self.start is None:
            return None
        spans = []
        for axis in (0, 1):
            centre = self.start[axis] + self.output_index[axis] * self.jump[axis]
            half = (self.size[axis] - 1) / 2
            lo, hi = round(centre - half), round(centre + half) + 1
            spans += [max(lo, 0), min(hi, self.input_size[axis])]
        return spans[0], spans[1], spans[2], spans[3]

    def compare(self) -> bool:
        """Whether the measured bounding box equals the arithmetic one (clipped to the input)."""
        return self.arithmetic_box() is not None and self.box == self.arithmetic_box()

    def __str__(self) -> str:
        return (f"ReceptiveField(output {self.output_index}: arithmetic size={self.size} jump={self.jump} "
                f"start={self.start}; measured box={self.box} size={self.empirical_size}"
                + (f"; {self.reason}" if self.reason else "") + ")")


def _pair(v) -> tuple[int, int]:
    return (int(v), int(v)) if isinstance(v, int) else (int(v[0]), int(v[1]))


def _layer_params(module: torch.nn.Module, in_hw: tuple[int, int], out_hw: tuple[int, int]):
    """``(k, s, p, d, transposed)`` per axis for one leaf layer, or a string saying why it can't be."""
    if isinstance(module, torch.nn.ConvTranspose2d):
        if _pair(module.stride) != (1, 1):
            return "strided ConvTranspose2d (its field depends on the output pixel's phase)"
        return (_pair(module.kernel_size), (1, 1), _pair(module.padding), _pair(module.dilation), True)
    if isinstance(module, torch.nn.Conv2d):
        if isinstance(module.padding, str):  # 'valid' or 'same' (stride 1): torch pads total d*(k-1), left half
            k, d = _pair(module.kernel_size), _pair(module.dilation)
            pad = tuple(d[a] * (k[a] - 1) // 2 if module.padding == "same" else 0 for a in (0, 1))
        else:
            pad = _pair(module.padding)
        return (_pair(module.kernel_size), _pair(module.stride), pad, _pair(module.dilation), False)
    if isinstance(module, (torch.nn.MaxPool2d, torch.nn.AvgPool2d)):
        dilation = _pair(module.dilation) if isinstance(module, torch.nn.MaxPool2d) else (1, 1)
        stride = module.stride if module.stride is not None else module.kernel_size
        return (_pair(module.kernel_size), _pair(stride), _pair(module.padding), dilation, False)
    if isinstance(module, (torch.nn.AdaptiveAvgPool2d, torch.nn.AdaptiveMaxPool2d)):
        if any(i % o for i, o in zip(in_hw, out_hw, strict=True)):
            return f"adaptive pool {in_hw} -> {out_hw} with uneven windows"
        k = (in_hw[0] // out_hw[0], in_hw[1] // out_hw[1])
        return (k, k, (0, 0), (1, 1), False)
    if isinstance(module, _POINTWISE):
        return ((1, 1), (1, 1), (0, 0), (1, 1), False)
    return f"layer {type(module).__name__} not modelled"


def _arithmetic(model: torch.nn.Module, x: torch.Tensor, out_hw: tuple[int, int]):
    """Walk the leaf modules in execution order; returns ``(size, jump, start, reason)``."""
    calls: list[tuple[torch.nn.Module, tuple[int, ...], tuple[int, ...]]] = []

    def hook(module, args, output):
        if args and isinstance(args[0], torch.Tensor) and isinstance(output, torch.Tensor):
            calls.append((module, tuple(args[0].shape), tuple(output.shape)))

    handles = [m.register_forward_hook(hook) for m in model.modules() if not any(True for _ in m.children())]
    try:
        model(x)
    finally:
        for h in handles:
            h.remove()
    r, j, start = [1.0, 1.0], [1.0, 1.0], [0.0, 0.0]
    hw = tuple(x.shape[-2:])
    for module, in_shape, out_shape in calls:
        if len(in_shape) != 4 or len(out_shape) != 4 or in_shape[-2:] != hw:
            return None, None, None, f"{type(module).__name__}: input shape {in_shape} breaks the chain of layers"
        params = _layer_params(module, in_shape[-2:], out_shape[-2:])
        if isinstance(params, str):
            return None, None, None, params
        k, s, p, d, transposed = params
        for a in (0, 1):
            offset = p[a] - (k[a] - 1) * d[a] / 2 if transposed else (k[a] - 1) * d[a] / 2 - p[a]
            start[a] += offset * j[a]
            r[a] += (k[a] - 1) * d[a] * j[a]
            j[a] *= s[a]
        hw = out_shape[-2:]
    if tuple(hw) != tuple(out_hw):
        return None, None, None, "spatial operations outside modules (functional calls in forward)"
    return (int(r[0]), int(r[1])), (j[0], j[1]), (start[0], start[1]), None


def receptive_field(model: torch.nn.Module, input_shape: tuple[int, ...],
                    output_index: tuple[int, int] | None = None, chunk: int = 64) -> ReceptiveField:
    """Receptive field of output pixel ``output_index`` (default: the central one) of ``model``.

    ``input_shape`` ``(C, H, W)`` or ``(1, C, H, W)``; the model must map ``(N, C, H, W)`` to
    ``(N, K, P, Q)``. Runs ``H*W`` images, ``chunk`` at a time: keep the input small.
    """
    C, H, W = input_shape[-3:]
    param = next(iter(model.parameters()), None)
    dtype = param.dtype if param is not None else torch.float32
    device = param.device if param is not None else torch.device("cpu")
    modes = [(m, m.training) for m in model.modules()]
    model.eval()
    try:
        with torch.no_grad():
            zeros = torch.zeros(1, C, H, W, dtype=dtype, device=device)
            out = model(zeros)
            if out.dim() != 4:
                raise ValueError(f"model output must be (N, K, P, Q), got shape {tuple(out.shape)}")
            P, Q = out.shape[-2:]
            size, jump, start, reason = _arithmetic(model, zeros, (P, Q))
            reach = torch.empty(H * W, P, Q, dtype=torch.bool, device=device)
            for first in range(0, H * W, chunk):
                n = min(chunk, H * W - first)
                x = torch.zeros(n, C, H * W, dtype=dtype, device=device)
                x[torch.arange(n), :, torch.arange(first, first + n)] = float("nan")
                reach[first:first + n] = model(x.view(n, C, H, W)).isnan().any(1)
    finally:
        for m, training in modes:
            m.training = training
    i, j = output_index if output_index is not None else (P // 2, Q // 2)
    if not (0 <= i < P and 0 <= j < Q):
        raise IndexError(f"output_index {(i, j)} outside the output ({P}, {Q})")
    return ReceptiveField(
        output_index=(i, j), input_size=(H, W), mask=reach[:, i, j].view(H, W).cpu(),
        influence=reach[(H // 2) * W + W // 2].cpu(), size=size, jump=jump, start=start, reason=reason,
    )
