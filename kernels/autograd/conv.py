"""The convolutions' autograd, defined once for every rank and for the transposed convolution: what a forward
saves, the backward formulas, the passes those formulas are made of (launchers, recorded Functions, registered
ops: see ``kernels.autograd``), the eager Functions and the registered ops ``kernels::conv{2,3}d``,
``kernels::conv{2,3}d_input_grad``, ``kernels::conv{2,3}d_weight_grad`` and ``kernels::conv_transpose{2,3}d``.
(1-D runs as 2-D views.)

Inputs are batched ``(N, C, *spatial)``; the geometry (``kernels.shapes.ConvGeometry`` or
``kernels.shapes3d.ConvGeometry3d``) says the rank, and :data:`RANKS` holds each rank's plan builders. The three
convolution passes (forward, input gradient, weight gradient) are bilinear, and each one's gradients are the
other two: so the recorded passes close under differentiation, and gradients of gradients work in eager mode.
The transposed convolution is the same three passes with roles exchanged (``g`` is the geometry of the
convolution it transposes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch

from ..ops import conv3d as ops3d
from ..ops.conv2d import conv2d_output, conv2d_weight_grad
from ..ops.conv2d import input_grad as conv2d_input_grad
from ..ops.conv_transpose2d import conv_transpose2d_output
from ..ops.epilogue import PLAIN, Epilogue, activation_backward
from ..ops.reduce import channel_sum
from ..shapes import ConvGeometry, conv_output_channels_last, empty_nd, prefers_channels_last
from ..shapes3d import ConvGeometry3d, conv3d_output_channels_last, prefers_channels_last_3d
from . import eager_passes
from .epilogue import ActivationBackward, saved_for_backward
from .reduce import ChannelSumFunction

Tensor = torch.Tensor
Geometry = ConvGeometry | ConvGeometry3d


@dataclass(frozen=True)
class ConvRank:
    """One rank's plan builders (``kernels.ops.conv2d``/``conv_transpose2d`` or ``conv3d``) and layout rules.

    * ``output(x, weight, bias, residual, g, epilogue, channels_last, store_preact) -> (out, preact)``, and
      ``transposed_output`` alike;
    * ``input_grad(grad_out, weight, g, channels_last)``, ``weight_grad(grad_out, x, g)``;
    * ``output_channels_last(x, weight)``: the layout of an output, ``grad_channels_last(x, weight)`` that of
      an input gradient (torch's rules for the rank).
    """

    output: Callable[..., tuple[Tensor, Tensor | None]]
    transposed_output: Callable[..., tuple[Tensor, Tensor | None]]
    input_grad: Callable[[Tensor, Tensor, Geometry, bool], Tensor]
    weight_grad: Callable[[Tensor, Tensor, Geometry], Tensor]
    output_channels_last: Callable[[Tensor, Tensor], bool]
    grad_channels_last: Callable[[Tensor, Tensor], bool]
    prefers_channels_last: Callable[..., bool]
    geometry: type


RANKS: dict[int, ConvRank] = {
    2: ConvRank(conv2d_output, conv_transpose2d_output, conv2d_input_grad, conv2d_weight_grad,
                conv_output_channels_last, lambda x, weight: prefers_channels_last(x), prefers_channels_last,
                ConvGeometry),
    3: ConvRank(ops3d.conv3d_output, ops3d.conv_transpose3d_output, ops3d.input_grad, ops3d.conv3d_weight_grad,
                conv3d_output_channels_last, conv3d_output_channels_last, prefers_channels_last_3d,
                ConvGeometry3d),
}


@dataclass(frozen=True)
class ConvPasses:
    """The passes the backward of a convolution (direct or transposed, any rank) is made of:

    * ``conv(x (N, C, *in), weight, g, channels_last) -> (N, K, *out)``, a plain convolution;
    * ``input_grad(grad_out (N, K, *out), weight, g, channels_last) -> (N, C, *in)``;
    * ``weight_grad(grad_out (N, K, *out), x (N, C, *in), g) -> (K, C/groups, *kernel)``;
    * ``channel_sum((N, C, *spatial)) -> (C,)``, a bias gradient;
    * ``activation_backward(grad_out, saved, epilogue, inputs) -> grad_pre``: ``grad_out * act'(saved)``
      (``inputs``: the convolution's, see :class:`ActivationBackward`).
    """

    conv: Callable[[Tensor, Tensor, Geometry, bool], Tensor]
    input_grad: Callable[[Tensor, Tensor, Geometry, bool], Tensor]
    weight_grad: Callable[[Tensor, Tensor, Geometry], Tensor]
    channel_sum: Callable[[Tensor], Tensor]
    activation_backward: Callable[[Tensor, Tensor, Epilogue, tuple[Tensor | None, ...]], Tensor]


def _planes(t: Tensor) -> Tensor:
    """The 4-D tensor the channel sum and the activation's backward take: ``(N, C, D, H, W)`` as its ``(N, C,
    D*H, W)`` view (NCDHW and channels_last_3d alike); a 4-D tensor as it is."""
    return t if t.dim() == 4 else t.flatten(2, 3)


def _planar(activation_backward: Callable[[Tensor, Tensor, Epilogue, tuple[Tensor | None, ...]], Tensor]
            ) -> Callable[[Tensor, Tensor, Epilogue, tuple[Tensor | None, ...]], Tensor]:
    """A 4-D activation backward applied to tensors of any rank: a 5-D one on its ``(N, C, D*H, W)`` views, the
    result viewed back (``saved``'s layout)."""
    def planar(grad_out: Tensor, saved: Tensor, epilogue: Epilogue, inputs: tuple[Tensor | None, ...]) -> Tensor:
        if saved.dim() == 4:
            return activation_backward(grad_out, saved, epilogue, inputs)
        grad_pre = activation_backward(_planes(grad_out), _planes(saved), epilogue, inputs)
        return grad_pre.unflatten(2, saved.shape[2:4])
    return planar


# --------------------------------------------------------------------------------------------------------
# The one definition: setup and backward formulas


def save_conv(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, out: Tensor,
              preact: Tensor | None, g: Geometry, epilogue: Epilogue, transposed: bool) -> None:
    """What a convolution's forward (direct or transposed) saves: ``x``, ``weight``, the tensor ``act'`` is read
    from (or None), and, for a curved activation, ``bias`` and ``residual`` (its pre-activation depends on them
    too: see :class:`ActivationBackward`); the geometry, the epilogue and whether it is transposed."""
    anchors = (bias, residual) if epilogue.curved else ()
    ctx.save_for_backward(x, weight, saved_for_backward(epilogue, out, preact), *anchors)
    ctx.geometry = g
    ctx.epilogue = epilogue
    ctx.transposed = transposed


def epilogue_grads(passes: ConvPasses, grad_out: Tensor, saved: Tensor | None, epilogue: Epilogue,
                   inputs: tuple[Tensor | None, ...], need_residual: bool) -> tuple[Tensor, Tensor | None]:
    """``(grad_pre, grad_residual)`` from a convolution's output gradient: the gradient at the activation's
    input (what the convolution's own gradients consume) and the residual's (None when not wanted)."""
    grad_pre = grad_out if saved is None else passes.activation_backward(grad_out, saved, epilogue, inputs)
    grad_res = None
    if epilogue.has_residual and need_residual:
        grad_res = grad_pre if epilogue.residual_before_activation else grad_out
    return grad_pre, grad_res


def conv_grads(passes: ConvPasses, saved: Sequence[Tensor | None], needs_input_grad: Sequence[bool], g: Geometry,
               epilogue: Epilogue, transposed: bool, grad_out: Tensor) -> tuple[Tensor | None, ...]:
    """The gradients of a convolution's ``x``, ``weight``, ``bias`` and ``residual`` (None where not needed)
    from ``grad_out (N, K, *out)``; ``saved`` is what :func:`save_conv` saved. A transposed convolution
    (``transposed``; ``g`` the geometry of the convolution it transposes) exchanges the roles: its input
    gradient is a convolution, and its weight gradient takes ``x`` as the output gradient."""
    x, weight, activation_saved, *anchors = saved
    need_x, need_w, need_b, need_res = needs_input_grad[:4]
    grad_pre, grad_res = epilogue_grads(passes, grad_out, activation_saved, epilogue, (x, weight, *anchors),
                                        need_res)
    grad_x = grad_w = grad_b = None
    if need_x:
        layout = RANKS[g.rank].grad_channels_last(x, weight)
        grad_x = (passes.conv if transposed else passes.input_grad)(grad_pre, weight, g, layout)
    if need_w:
        grad_w = passes.weight_grad(x, grad_pre, g) if transposed else passes.weight_grad(grad_pre, x, g)
    if need_b:
        grad_b = passes.channel_sum(grad_pre)
    return grad_x, grad_w, grad_b, grad_res


# --------------------------------------------------------------------------------------------------------
# Eager: the Functions, and the launchers as passes


class ConvFunction(torch.autograd.Function):
    """A convolution, or with ``transposed`` a transposed convolution, with every pass in Triton and an
    optional fused epilogue. Inputs are batched ``(N, C, *in)``; ``g`` is their geometry (transposed: that of
    the convolution it transposes); ``residual`` (or None) has the output's shape; ``channels_last`` (None:
    torch's rule) fixes the output's layout. The recorded backward is made of the convolution's differentiable
    Functions, so gradients of gradients work for both."""

    @staticmethod
    def forward(ctx, x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, g: Geometry,
                epilogue: Epilogue = PLAIN, channels_last: bool | None = None, transposed: bool = False) -> Tensor:
        rank = RANKS[g.rank]
        build = rank.transposed_output if transposed else rank.output
        out, preact = build(x, weight, bias, residual, g, epilogue, channels_last,
                            epilogue.needs_preact(any(ctx.needs_input_grad[:4])))
        save_conv(ctx, x, weight, bias, residual, out, preact, g, epilogue, transposed)
        return out

    @staticmethod
    def backward(ctx, grad_out: Tensor):
        grads = conv_grads(eager_passes(LAUNCHERS, RECORDED), ctx.saved_tensors, ctx.needs_input_grad,
                           ctx.geometry, ctx.epilogue, ctx.transposed, grad_out)
        return *grads, None, None, None, None


class ConvInputGrad(torch.autograd.Function):
    """``grad_in (N, C, *in)`` of a convolution from ``grad_out (N, K, *out)`` and ``weight`` as a
    differentiable op: its gradients are a convolution of the incoming gradient (for grad_out) and a weight
    gradient (for weight)."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, weight: Tensor, g: Geometry, channels_last: bool) -> Tensor:
        ctx.save_for_backward(grad_out, weight)
        ctx.geometry = g
        return RANKS[g.rank].input_grad(grad_out, weight, g, channels_last)

    @staticmethod
    def backward(ctx, grad_grad_in: Tensor):
        grad_out, weight = ctx.saved_tensors
        g: Geometry = ctx.geometry
        need_grad_out, need_w = ctx.needs_input_grad[:2]
        d_grad_out = None
        if need_grad_out:
            d_grad_out = RECORDED.conv(grad_grad_in, weight, g, RANKS[g.rank].prefers_channels_last(grad_out))
        d_w = RECORDED.weight_grad(grad_out, grad_grad_in, g) if need_w else None
        return d_grad_out, d_w, None, None


class ConvWeightGrad(torch.autograd.Function):
    """``grad_weight (K, C/groups, *kernel)`` of a convolution from ``grad_out (N, K, *out)`` and ``x (N, C,
    *in)`` as a differentiable op: its gradients are a convolution (for grad_out) and an input gradient (for
    x)."""

    @staticmethod
    def forward(ctx, grad_out: Tensor, x: Tensor, g: Geometry) -> Tensor:
        ctx.save_for_backward(grad_out, x)
        ctx.geometry = g
        return RANKS[g.rank].weight_grad(grad_out, x, g)

    @staticmethod
    def backward(ctx, grad_grad_w: Tensor):
        grad_out, x = ctx.saved_tensors
        g: Geometry = ctx.geometry
        prefers = RANKS[g.rank].prefers_channels_last
        need_grad_out, need_x = ctx.needs_input_grad[:2]
        d_grad_out = RECORDED.conv(x, grad_grad_w, g, prefers(grad_out)) if need_grad_out else None
        d_x = RECORDED.input_grad(grad_out, grad_grad_w, g, prefers(x)) if need_x else None
        return d_grad_out, d_x, None


def _plain_conv(x: Tensor, weight: Tensor, g: Geometry, channels_last: bool) -> Tensor:
    return RANKS[g.rank].output(x, weight, None, None, g, PLAIN, channels_last)[0]


def _input_grad(grad_out: Tensor, weight: Tensor, g: Geometry, channels_last: bool) -> Tensor:
    return RANKS[g.rank].input_grad(grad_out, weight, g, channels_last)


def _weight_grad(grad_out: Tensor, x: Tensor, g: Geometry) -> Tensor:
    return RANKS[g.rank].weight_grad(grad_out, x, g)


LAUNCHERS = ConvPasses(
    conv=_plain_conv,
    input_grad=_input_grad,
    weight_grad=_weight_grad,
    channel_sum=lambda t: channel_sum(_planes(t)),
    activation_backward=_planar(lambda grad_out, saved, epilogue, inputs: activation_backward(grad_out, saved,
                                                                                              epilogue)),
)
RECORDED = ConvPasses(
    conv=lambda x, weight, g, channels_last: ConvFunction.apply(x, weight, None, None, g, PLAIN, channels_last),
    input_grad=ConvInputGrad.apply,
    weight_grad=ConvWeightGrad.apply,
    channel_sum=lambda t: ChannelSumFunction.apply(_planes(t)),
    activation_backward=_planar(lambda grad_out, saved, epilogue, inputs: ActivationBackward.apply(
        grad_out, saved, epilogue, *inputs)),
)


# --------------------------------------------------------------------------------------------------------
# Registered: the ops torch.compile traces, one set per rank. They take tensors and plain ints only: a geometry
# travels as its stride, padding (front/top/left), dilation and groups beside the tensors' shapes.


def conv_arguments(g: Geometry) -> tuple[list[int], list[int], list[int], int]:
    """``(stride, padding, dilation, groups)`` of a geometry, as the registered ops take them."""
    return list(g.stride), list(g.padding), list(g.dilation), g.groups


def geometry_of(input_size: Sequence[int], weight_size: Sequence[int], stride: Sequence[int],
                padding: Sequence[int], dilation: Sequence[int], groups: int, output_size: Sequence[int]) -> Geometry:
    """The geometry of a convolution of an ``input_size (N, C, *in)`` input by a ``weight_size (K, C/groups,
    *kernel)`` weight with output ``output_size`` (spatial); ``padding`` is front/top/left."""
    N, C, *spatial = input_size
    K, _, *kernel = weight_size
    return RANKS[len(spatial)].geometry(N, C, *spatial, K, *kernel, *output_size, *stride, *padding, *dilation,
                                        groups)


def transposed_geometry_of(x: Tensor, weight: Tensor, stride: Sequence[int], padding: Sequence[int],
                           dilation: Sequence[int], groups: int, output_size: Sequence[int]) -> Geometry:
    """The geometry of the convolution that a transposed convolution of ``x`` to ``output_size`` transposes."""
    shape = (x.shape[0], weight.shape[1] * groups, *output_size)
    return geometry_of(shape, weight.shape, stride, padding, dilation, groups, x.shape[2:])


def epilogue_of(activation: str, negative_slope: float, residual: Tensor | None,
                residual_before_activation: bool) -> Epilogue:
    """The epilogue a registered convolution's arguments describe."""
    return Epilogue(activation, negative_slope, residual is not None, residual_before_activation)


def preact_like(out: Tensor, stored: bool) -> Tensor:
    """A registered convolution's second output: a pre-activation like ``out`` when ``stored``, else empty."""
    return torch.empty_like(out) if stored else out.new_empty((0,))


def save_registered_conv(ctx, inputs: tuple, output: tuple[Tensor, Tensor], g: Geometry, transposed: bool) -> None:
    """:func:`save_conv` from a registered convolution's arguments (``inputs``, as ``kernels::conv2d`` and
    ``kernels::conv_transpose2d`` take them), its outputs and its geometry."""
    x, weight, bias, residual, *_, activation, negative_slope, residual_before_activation, store_preact = inputs
    epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
    out, preact = output
    save_conv(ctx, x, weight, bias, residual, out, preact if epilogue.needs_preact(store_preact) else None, g,
              epilogue, transposed)


@dataclass(frozen=True)
class RegisteredConvOps:
    """One rank's registered convolution ops."""

    conv: Callable
    input_grad: Callable
    weight_grad: Callable
    conv_transpose: Callable

    def all(self) -> tuple[Callable, ...]:
        return self.conv, self.input_grad, self.weight_grad, self.conv_transpose


def _register(rank: int) -> RegisteredConvOps:
    """Register rank ``rank``'s convolution ops, their fake implementations and their autograd."""
    r = RANKS[rank]
    name = f"conv{rank}d"

    @torch.library.custom_op(f"kernels::{name}", mutates_args=())
    def conv_op(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, stride: Sequence[int],
                padding: Sequence[int], dilation: Sequence[int], groups: int, output_size: Sequence[int],
                channels_last: bool, activation: str, negative_slope: float, residual_before_activation: bool,
                store_preact: bool) -> tuple[Tensor, Tensor]:
        """``(out (N, K, *out), preact)``: the convolution of batched ``x`` with its fused epilogue
        (``kernels.ops.epilogue``; ``activation="none"`` and no residual: a plain convolution); ``padding`` is
        front/top/left, ``output_size`` the output's spatial size. ``preact`` has 0 elements unless the
        backward reads ``act'`` from it (and ``store_preact``: gradients are wanted)."""
        g = geometry_of(x.shape, weight.shape, stride, padding, dilation, groups, output_size)
        epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
        out, preact = r.output(x, weight, bias, residual, g, epilogue, channels_last,
                               epilogue.needs_preact(store_preact))
        return out, out.new_empty((0,)) if preact is None else preact

    @conv_op.register_fake
    def _(x, weight, bias, residual, stride, padding, dilation, groups, output_size, channels_last, activation,
          negative_slope, residual_before_activation, store_preact):
        out = empty_nd((x.shape[0], weight.shape[0], *output_size), x, channels_last)
        epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
        return out, preact_like(out, epilogue.needs_preact(store_preact))

    @torch.library.custom_op(f"kernels::{name}_input_grad", mutates_args=())
    def input_grad_op(grad_out: Tensor, weight: Tensor, input_size: Sequence[int], stride: Sequence[int],
                      padding: Sequence[int], dilation: Sequence[int], groups: int, channels_last: bool) -> Tensor:
        """Gradient (``input_size``) of a convolution's input from ``grad_out (N, K, *out)``."""
        g = geometry_of(input_size, weight.shape, stride, padding, dilation, groups, grad_out.shape[2:])
        return r.input_grad(grad_out, weight, g, channels_last)

    @input_grad_op.register_fake
    def _(grad_out, weight, input_size, stride, padding, dilation, groups, channels_last):
        return empty_nd(tuple(input_size), grad_out, channels_last)

    @torch.library.custom_op(f"kernels::{name}_weight_grad", mutates_args=())
    def weight_grad_op(grad_out: Tensor, x: Tensor, weight_size: Sequence[int], stride: Sequence[int],
                       padding: Sequence[int], dilation: Sequence[int], groups: int) -> Tensor:
        """Gradient ``(K, C/groups, *kernel)`` (``weight_size``) of a convolution's weight, contiguous."""
        g = geometry_of(x.shape, weight_size, stride, padding, dilation, groups, grad_out.shape[2:])
        return r.weight_grad(grad_out, x, g).contiguous()

    @weight_grad_op.register_fake
    def _(grad_out, x, weight_size, stride, padding, dilation, groups):
        return x.new_empty(tuple(weight_size))

    @torch.library.custom_op(f"kernels::conv_transpose{rank}d", mutates_args=())
    def conv_transpose_op(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None,
                          stride: Sequence[int], padding: Sequence[int], dilation: Sequence[int], groups: int,
                          output_size: Sequence[int], channels_last: bool, activation: str, negative_slope: float,
                          residual_before_activation: bool, store_preact: bool) -> tuple[Tensor, Tensor]:
        """``(out (N, Cout, *out), preact)``: the transposed convolution of batched ``x (N, Cin, *in)`` with
        ``weight (Cin, Cout/groups, *kernel)`` and its fused epilogue; ``output_size`` is the output's spatial
        size with output_padding already resolved; ``preact`` as in the direct convolution's op."""
        g = transposed_geometry_of(x, weight, stride, padding, dilation, groups, output_size)
        epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
        out, preact = r.transposed_output(x, weight, bias, residual, g, epilogue, channels_last,
                                          epilogue.needs_preact(store_preact))
        return out, out.new_empty((0,)) if preact is None else preact

    @conv_transpose_op.register_fake
    def _(x, weight, bias, residual, stride, padding, dilation, groups, output_size, channels_last, activation,
          negative_slope, residual_before_activation, store_preact):
        out = empty_nd((x.shape[0], weight.shape[1] * groups, *output_size), x, channels_last)
        epilogue = epilogue_of(activation, negative_slope, residual, residual_before_activation)
        return out, preact_like(out, epilogue.needs_preact(store_preact))

    def setup_conv(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
        x, weight, _, _, stride, padding, dilation, groups, output_size = inputs[:9]
        save_registered_conv(ctx, inputs, output,
                             geometry_of(x.shape, weight.shape, stride, padding, dilation, groups, output_size),
                             False)

    def setup_conv_transpose(ctx, inputs: tuple, output: tuple[Tensor, Tensor]) -> None:
        x, weight, _, _, stride, padding, dilation, groups, output_size = inputs[:9]
        save_registered_conv(ctx, inputs, output,
                             transposed_geometry_of(x, weight, stride, padding, dilation, groups, output_size),
                             True)

    conv_op.register_autograd(_backward_conv, setup_context=setup_conv)
    conv_transpose_op.register_autograd(_backward_conv, setup_context=setup_conv_transpose)
    return RegisteredConvOps(conv_op, input_grad_op, weight_grad_op, conv_transpose_op)


def registered_conv(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None, g: Geometry,
                    epilogue: Epilogue, channels_last: bool, store_preact: bool) -> Tensor:
    """The ``(N, K, *out)`` output of the registered convolution (what the functional API calls while
    compiling)."""
    return CONV_OPS[g.rank].conv(x, weight, bias, residual, *conv_arguments(g), list(g.output_size), channels_last,
                                 epilogue.activation, epilogue.negative_slope, epilogue.residual_before_activation,
                                 store_preact)[0]


def registered_conv_transpose(x: Tensor, weight: Tensor, bias: Tensor | None, residual: Tensor | None,
                              g: Geometry, epilogue: Epilogue, channels_last: bool, store_preact: bool) -> Tensor:
    """The ``(N, Cout, *out)`` output of the registered transposed convolution (what the functional API calls
    while compiling); ``g`` is the geometry of the convolution it transposes."""
    return CONV_OPS[g.rank].conv_transpose(x, weight, bias, residual, *conv_arguments(g), list(g.input_shape[2:]),
                                           channels_last, epilogue.activation, epilogue.negative_slope,
                                           epilogue.residual_before_activation, store_preact)[0]


def _registered_input_grad(grad_out: Tensor, weight: Tensor, g: Geometry, channels_last: bool) -> Tensor:
    return CONV_OPS[g.rank].input_grad(grad_out, weight, list(g.input_shape), *conv_arguments(g), channels_last)


def _registered_weight_grad(grad_out: Tensor, x: Tensor, g: Geometry) -> Tensor:
    return CONV_OPS[g.rank].weight_grad(grad_out, x, list(g.weight_shape), *conv_arguments(g))


REGISTERED = ConvPasses(
    conv=lambda x, weight, g, channels_last: registered_conv(x, weight, None, None, g, PLAIN, channels_last, False),
    input_grad=_registered_input_grad,
    weight_grad=_registered_weight_grad,
    channel_sum=lambda t: torch.ops.kernels.channel_sum(_planes(t)),
    activation_backward=_planar(lambda grad_out, saved, epilogue, inputs: torch.ops.kernels.activation_backward(
        grad_out, saved, epilogue.activation, epilogue.negative_slope)),
)


def _backward_conv(ctx, grad_out: Tensor, _grad_preact: Tensor | None) -> tuple:
    grads = conv_grads(REGISTERED, ctx.saved_tensors, ctx.needs_input_grad, ctx.geometry, ctx.epilogue,
                       ctx.transposed, grad_out)
    return *grads, *(None,) * (len(ctx.needs_input_grad) - len(grads))


CONV_OPS: dict[int, RegisteredConvOps] = {rank: _register(rank) for rank in RANKS}
