"""Fused epilogues on the host side: what to fuse, argument checks, launch arguments, the activation's backward.

A convolution with an epilogue computes ``out = act(conv(x) + bias) + residual`` in one kernel (or
``act(conv(x) + bias + residual)`` with ``residual_before_activation``, cuDNN's fused form and the
ResNet block's). The backward needs ``act'`` at the activation's input: for relu and leaky_relu (positive
slope) without a residual after the activation, the output's sign gives it and nothing extra is stored;
otherwise the kernel also stores the pre-activation. One elementwise kernel turns the output gradient into
the pre-activation gradient, from which the usual convolution gradients follow
(``kernels.autograd.epilogue``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch

from ..jit.epilogue import activation_backward_kernel
from ..launch import KernelConfig, KernelSpace, VariantAxis, cdiv, kernel_strides, launch, register_space

ACTIVATIONS = ("none", "relu", "leaky_relu", "gelu", "silu")
# Activations whose derivative is piecewise constant: a second backward through them needs no new kernel.
PIECEWISE_LINEAR = ("relu", "leaky_relu")

# The epilogue's variant axes, shared by every convolution kernel that stores through ``store_epilogue``; the
# activation is elementwise code at the very end, so it is varied alone rather than crossed with the flags.
EPILOGUE_AXES = (
    VariantAxis("ACTIVATION", ACTIVATIONS, crossed=False),
    VariantAxis("HAS_RESIDUAL", (False, True)),
    VariantAxis("RESIDUAL_BEFORE_ACT", (False, True)),
    VariantAxis("STORE_PREACT", (False, True)),
)
EPILOGUE_VALUES = ("NEGATIVE_SLOPE",)


def epilogue_variant_valid(variant: Mapping[str, Any]) -> bool:
    """Whether :func:`epilogue_arguments` can produce these epilogue constexprs: a residual placement needs
    a residual, a stored pre-activation an activation, and relu stores it only when a residual follows the
    activation (else ``act'`` is read off the output). leaky_relu may store it without one (a slope <= 0
    loses the sign)."""
    if variant["RESIDUAL_BEFORE_ACT"] and not variant["HAS_RESIDUAL"]:
        return False
    if not variant["STORE_PREACT"]:
        return True
    if variant["ACTIVATION"] == "none":
        return False
    return variant["ACTIVATION"] != "relu" or (variant["HAS_RESIDUAL"] and not variant["RESIDUAL_BEFORE_ACT"])


ACTIVATION_BACKWARD = register_space(KernelSpace(
    name="activation_backward_kernel",
    kernel=activation_backward_kernel,
    configs=[KernelConfig.of(BLOCK=1024, num_warps=4)],
    wide_configs=[KernelConfig.of(BLOCK=512, num_warps=4)],
    axes=(VariantAxis("ACTIVATION", tuple(a for a in ACTIVATIONS if a != "none")),
          VariantAxis("CHANNELS_LAST", (False, True)), VariantAxis("SAME_LAYOUT", (False, True))),
    values=EPILOGUE_VALUES,
    counts=lambda a, grid: {},  # no loop: one block of elements per program
))


@dataclass(frozen=True)
class Epilogue:
    """What a convolution kernel fuses after ``conv + bias``: ``activation`` (one of :data:`ACTIVATIONS`;
    ``negative_slope`` is leaky_relu's), and whether a residual is added, after the activation or before it."""

    activation: str = "none"
    negative_slope: float = 0.01
    has_residual: bool = False
    residual_before_activation: bool = False

    @property
    def is_plain(self) -> bool:
        return self.activation == "none" and not self.has_residual

    @property
    def slope_constexpr(self) -> float:
        """leaky_relu's slope as the kernels' constexpr; 0.0 for the other activations (no recompiles)."""
        return self.negative_slope if self.activation == "leaky_relu" else 0.0

    @property
    def grad_from_output(self) -> bool:
        """``act'`` can be read off the output (no pre-activation needs storing)."""
        sign_kept = self.activation == "relu" or (self.activation == "leaky_relu" and self.negative_slope > 0)
        return sign_kept and not (self.has_residual and not self.residual_before_activation)

    @property
    def curved(self) -> bool:
        """The activation has a second derivative that is not zero (gelu, silu): double backward raises."""
        return self.activation not in ("none", *PIECEWISE_LINEAR)

    def needs_preact(self, needs_grad: bool) -> bool:
        """Whether the forward must store the pre-activation for a backward."""
        return needs_grad and self.activation != "none" and not self.grad_from_output


PLAIN = Epilogue()


def make_epilogue(activation: str | None, negative_slope: float, residual: torch.Tensor | None,
                  residual_before_activation: bool) -> Epilogue:
    """Validate the epilogue keywords of a functional op."""
    name = "none" if activation is None else activation
    if name not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS} or None, got {activation!r}")
    if isinstance(negative_slope, bool) or not isinstance(negative_slope, int | float):
        raise TypeError(f"negative_slope must be a number, got {type(negative_slope).__name__}")
    if residual is not None and not isinstance(residual, torch.Tensor):
        raise TypeError(f"residual must be a Tensor or None, got {type(residual).__name__}")
    # (where the residual goes means nothing without one: the flag alone must not select a kernel variant)
    return Epilogue(name, float(negative_slope), residual is not None,
                    residual is not None and bool(residual_before_activation))


def wants_grad(*tensors: torch.Tensor | None) -> bool:
    """Whether autograd will want gradients of an op on these inputs."""
    return torch.is_grad_enabled() and any(t is not None and t.requires_grad for t in tensors)


def check_residual(op: str, residual: torch.Tensor, out_shape: tuple[int, ...], like: torch.Tensor) -> None:
    """A residual must have the output's exact shape, dtype and device (no broadcasting, no promotion)."""
    if tuple(residual.shape) != tuple(out_shape):
        raise RuntimeError(f"{op}: residual of shape {tuple(residual.shape)} does not match the output shape "
                           f"{tuple(out_shape)}")
    if residual.dtype != like.dtype:
        raise RuntimeError(f"{op}: expected residual of dtype {like.dtype} (the output's), got {residual.dtype}")
    if residual.device != like.device:
        raise RuntimeError(f"{op}: expected residual on {like.device}, got {residual.device}")


def with_strides_of(t: torch.Tensor, out: torch.Tensor) -> torch.Tensor:
    """``t`` with ``out``'s strides (a copy only when they differ): the epilogue addresses the residual with
    the output's offsets."""
    if t.stride() == out.stride():
        return t
    return torch.empty_like(out).copy_(t)


def epilogue_arguments(epilogue: Epilogue, out: torch.Tensor, residual: torch.Tensor | None,
                       preact: torch.Tensor | None) -> tuple[tuple[torch.Tensor, torch.Tensor], dict[str, Any]]:
    """The kernels' ``(res_ptr, preact_ptr)`` arguments and epilogue constexprs. ``residual`` and ``preact``
    must already have ``out``'s strides."""
    pointers = (out if residual is None else residual, out if preact is None else preact)
    constexprs = {
        "ACTIVATION": epilogue.activation,
        "NEGATIVE_SLOPE": epilogue.slope_constexpr,
        "HAS_RESIDUAL": residual is not None,
        "RESIDUAL_BEFORE_ACT": epilogue.residual_before_activation,
        "STORE_PREACT": preact is not None,
    }
    return pointers, constexprs


def activation_backward(grad_out: torch.Tensor, saved: torch.Tensor, epilogue: Epilogue) -> torch.Tensor:
    """``grad_pre = grad_out * act'(saved)``, ``(N, C, H, W)``; ``saved`` is the dense pre-activation (or the
    output, when :attr:`Epilogue.grad_from_output`). ``grad_pre`` has ``saved``'s layout."""
    grad_pre = torch.empty_like(saved)
    numel = saved.numel()
    if numel == 0:
        return grad_pre
    channels_last = not saved.is_contiguous()
    if channels_last and not saved.is_contiguous(memory_format=torch.channels_last):
        raise ValueError("activation_backward: the saved tensor must be dense (NCHW or channels_last)")
    config = ACTIVATION_BACKWARD.for_dtype(saved.dtype, False)[0]
    _, C, H, W = saved.shape
    grid = (cdiv(numel, config["BLOCK"]),)
    args = (grad_out, saved, grad_pre, numel, C, H, W, *kernel_strides(grad_out))
    launch(ACTIVATION_BACKWARD, grid, args, config, saved.dtype, ACTIVATION=epilogue.activation,
           NEGATIVE_SLOPE=epilogue.slope_constexpr,
           CHANNELS_LAST=channels_last, SAME_LAYOUT=grad_out.stride() == saved.stride())
    return grad_pre
