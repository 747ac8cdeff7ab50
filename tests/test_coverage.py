"""Coverage by construction: every kernel, in every variant its launchers declare and with every block
configuration of its space, launched with at least two programs on every grid axis and at least two
iterations of every loop, and compared with torch.

Each case targets one (kernel, variant, configuration, dtype). The configuration is forced (the spaces are
data), the problem is sized from the block sizes so that every grid axis and every count the space declares
(``KernelSpace.counts``: loop trip counts, groups, stride phases, splits, images) reaches 2, every buffer
the op allocates starts poisoned (NaN; wild values for integer buffers), and the op's outputs and gradients
are compared with torch in float64. The launches are recorded while they run: a case fails unless its
target was launched in that variant and configuration with every count at least 2. The variants are each
space's :meth:`~kernels.launch.KernelSpace.covering_variants` (for 16-bit and for float64 problems), and
:func:`test_cases_cover_every_variant_and_configuration` checks that the cases reach all of them and every
configuration. Shapes stay small: the kernels run through Triton's interpreter without a GPU.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F
from conftest import DEVICE, _assert_close
from torch.overrides import TorchFunctionMode

import kernels
from kernels import autotune
from kernels.aot import constexpr_params
from kernels.functional import conv3d as conv3d_ops
from kernels.functional import pool3d as pool3d_functional
from kernels.launch import SPACES, KernelConfig, LaunchRecord, Variant, recording
from kernels.ops import reduce as reduce_ops
from kernels.ops.conv2d_hopper import hopper_tma
from kernels.ops.depthwise3d import depthwise3d_dgrad, depthwise3d_fwd, depthwise3d_wgrad
from kernels.ops.epilogue import Epilogue, activation_backward
from kernels.shapes import empty_nd
from kernels.shapes3d import conv3d_geometry, conv_transpose3d_geometry, prefers_channels_last_3d

pytestmark = pytest.mark.filterwarnings("ignore:overflow encountered in exp")  # silu of large negatives

CL = torch.channels_last
# Problem dtypes a space's variants and configurations are drawn for: 16-bit (tensor-core tiles, the aligned
# variant) and float64 (the wide tiles). float32 shares float64's tiles and variants, except for a tile a
# float64 limit takes away: float32 draws those (CONFIG_FAMILIES).
FAMILIES = (torch.bfloat16, torch.float64)
CONFIG_FAMILIES = (*FAMILIES, torch.float32)


@dataclass(frozen=True)
class Target:
    """One case: launch ``space``'s kernel in ``variant`` with ``config`` on a ``dtype`` problem."""

    space: str
    variant: Variant
    config: KernelConfig
    dtype: torch.dtype

    @property
    def flags(self) -> dict:
        return dict(self.variant)

    @property
    def id(self) -> str:
        flags = ",".join(f"{k}={v}" for k, v in self.variant)
        blocks = ",".join(f"{k.removeprefix('BLOCK_')}{v}" for k, v in self.config.blocks)
        return f"{self.space}[{flags}]-{blocks}-{str(self.dtype).removeprefix('torch.')}"


def _smallest(configs: tuple[KernelConfig, ...]) -> KernelConfig:
    """The configuration with the smallest product of block sizes: the smallest problem with two of
    everything, so the cheapest case in the interpreter."""
    return min(configs, key=lambda c: math.prod(v for _, v in c.blocks))


def _targets() -> list[Target]:
    """Every covering variant of every space with a dtype it is valid for (float64 when it can, so the
    comparison is exact) and its smallest allowed configuration; then each configuration no variant drew,
    with the first covering variant that may launch it."""
    out: list[Target] = []
    for name, space in SPACES.items():
        variants: dict[Variant, torch.dtype] = {}
        for dtype in reversed(FAMILIES):  # float64 first
            for variant in space.covering_variants(dtype, False):
                variants.setdefault(variant, dtype)
        used: set[tuple[KernelConfig, torch.dtype]] = set()
        for variant, dtype in variants.items():
            config = _smallest(space.for_dtype(dtype, False, dict(variant)))
            used.add((config, dtype))
            out.append(Target(name, variant, config, dtype))
        for dtype in CONFIG_FAMILIES:
            for config in space.for_dtype(dtype, False):
                # (a space without wide configurations has one list for every dtype: drawn once is enough)
                if (config, dtype) in used or any(c == config for c, _ in used if not space.wide_configs):
                    continue
                if dtype == torch.float32 and any(c == config for c, _ in used):
                    continue  # (float32 draws only what a float64 limit left undrawn)
                lightest = next((v for v in space.covering_variants(dtype, False)
                                 if config in space.for_dtype(dtype, False, dict(v))), None)
                if lightest is None:  # a limit on the whole dtype: no launch in it takes this configuration
                    continue
                used.add((config, dtype))
                out.append(Target(name, lightest, config, dtype))
    return out


TARGETS = _targets()


# --------------------------------------------------------------------------------------------------------
# Harness


class _Poison(TorchFunctionMode):
    """Every tensor allocated uninitialised inside the mode starts as NaN (integers: their most negative value,
    a wild index), so an element a kernel forgets to write shows up in the comparison."""

    FACTORIES = (torch.empty, torch.empty_like, torch.empty_strided, torch.Tensor.new_empty)

    def __torch_function__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        if func in self.FACTORIES and isinstance(out, torch.Tensor) and out.numel():
            if out.is_floating_point():
                out.fill_(float("nan"))
            else:
                out.fill_(True if out.dtype == torch.bool else torch.iinfo(out.dtype).min)
        return out


# Kernels whose launchers split a reduction by the GPU's SM count (two under the interpreter): their cases
# pretend to run on a 132-SM GPU, so that the reduction splits as it does there.
SPLIT_BY_SM_COUNT = ("conv2d_wgrad_kernel", "channel_sum_kernel", "conv3d_wgrad_kernel")


@contextlib.contextmanager
def _ours(target: Target, monkeypatch: pytest.MonkeyPatch) -> Iterator[list[LaunchRecord]]:
    """Run our op inside: the target's configuration forced, allocations poisoned, launches recorded and run,
    and a GPU-sized SM count so that split reductions split."""
    monkeypatch.setattr(autotune._state, "forced", {target.space: target.config})
    if target.space in SPLIT_BY_SM_COUNT:
        monkeypatch.setattr(reduce_ops, "multiprocessor_count", lambda device: 132)
    with recording(run=True) as launches, _Poison():
        yield launches


def _leaf(shape: tuple[int, ...], dtype: torch.dtype, channels_last: bool = False) -> torch.Tensor:
    t = torch.randn(shape, dtype=dtype, device=DEVICE)
    return t.contiguous(memory_format=CL) if channels_last and t.dim() == 4 else t


def _twin(t: torch.Tensor | None) -> torch.Tensor | None:
    return None if t is None else t.detach().double().requires_grad_(t.requires_grad)


def _compare(ours: list[torch.Tensor | None], refs: list[torch.Tensor | None], dtype: torch.dtype,
             names: list[str]) -> None:
    for got, want, name in zip(ours, refs, names, strict=True):
        if want is None:
            continue
        assert got is not None, f"no {name}"
        _assert_close(got, want, dtype, name)


def _forward_backward(op: Callable, ref_op: Callable, leaves: dict[str, torch.Tensor | None],
                      wrt: tuple[str, ...], target: Target, monkeypatch: pytest.MonkeyPatch) -> list[LaunchRecord]:
    """``op(**leaves)`` against ``ref_op`` on float64 twins: the output and the gradients of the leaves named in
    ``wrt`` (none: forward only) for one random upstream gradient."""
    for name, t in leaves.items():
        if t is not None:
            t.requires_grad_(name in wrt)
    twins = {k: _twin(t) for k, t in leaves.items()}
    with _ours(target, monkeypatch) as launches:
        out = op(**leaves)
        if out.requires_grad:
            grad_out = torch.randn_like(out)  # in the output's layout, as the next layer hands it back
            out.backward(grad_out)
    ref = ref_op(**twins)
    _compare([out], [ref], target.dtype, ["output"])
    if out.requires_grad:
        ref.backward(grad_out.double())
        names = [k for k, t in leaves.items() if t is not None and k in wrt]
        _compare([leaves[k].grad for k in names], [twins[k].grad for k in names], target.dtype,
                 [f"grad of {k}" for k in names])
    return launches


ALL = ("input", "weight", "bias", "residual")


def _act(name: str, z: torch.Tensor, slope: float) -> torch.Tensor:
    return {"none": lambda: z, "relu": lambda: F.relu(z), "leaky_relu": lambda: F.leaky_relu(z, slope),
            "gelu": lambda: F.gelu(z), "silu": lambda: F.silu(z)}[name]()


def _epilogue_call(flags: dict, wrt: tuple[str, ...] = ("input", "residual")
                   ) -> tuple[dict, tuple[str, ...], Callable]:
    """The keyword arguments that make a convolution launch the epilogue ``flags``, the leaves whose gradients
    are taken (those of ``wrt`` exactly when the pre-activation is stored: it is made only for a backward, and
    the backward reads it), and the reference epilogue ``(pre, residual) -> out``."""
    act = flags["ACTIVATION"]
    residual_after = flags["HAS_RESIDUAL"] and not flags["RESIDUAL_BEFORE_ACT"]
    # a slope <= 0 loses the sign: leaky_relu then stores the pre-activation even without a residual
    slope = -0.2 if act == "leaky_relu" and flags["STORE_PREACT"] and not residual_after else 0.1
    grads = wrt if flags["STORE_PREACT"] else ()
    kwargs = {"activation": None if act == "none" else act, "negative_slope": slope,
              "residual_before_activation": flags["RESIDUAL_BEFORE_ACT"]}

    def reference(pre: torch.Tensor, residual: torch.Tensor | None) -> torch.Tensor:
        if residual is not None and flags["RESIDUAL_BEFORE_ACT"]:
            pre = pre + residual
        out = _act(act, pre, slope)
        return out + residual if residual is not None and not flags["RESIDUAL_BEFORE_ACT"] else out

    return kwargs, grads, reference


def _epilogue_case(transposed: bool, conv: dict, input: torch.Tensor, weight: torch.Tensor,
                   out_shape: tuple[int, ...], channels_last: bool, target: Target,
                   monkeypatch: pytest.MonkeyPatch, ops: tuple[Callable, Callable] | None = None,
                   wrt: tuple[str, ...] = ("input", "residual")) -> list[LaunchRecord]:
    """``conv2d`` (or ``conv_transpose2d``; ``ops``: another ``(ours, torch's)`` pair, e.g. the 3-D ones) of
    ``input`` and ``weight`` with the ``conv`` arguments and the target's epilogue (a bias and a residual of
    ``out_shape`` as its flags say), against torch's op followed by the same epilogue; the gradients of ``wrt``
    when the pre-activation is stored."""
    flags = target.flags
    kwargs, grads, epilogue = _epilogue_call(flags, wrt)
    if ops is None:
        ops = (kernels.conv_transpose2d, F.conv_transpose2d) if transposed else (kernels.conv2d, F.conv2d)
    ours_op, ref_op = ops
    leaves = {"input": input, "weight": weight,
              "bias": _leaf((out_shape[1],), target.dtype) if flags["HAS_BIAS"] else None,
              "residual": _leaf(out_shape, target.dtype, channels_last) if flags["HAS_RESIDUAL"] else None}

    def ours(input, weight, bias, residual):
        return ours_op(input, weight, bias, **conv, residual=residual, **kwargs)

    def ref(input, weight, bias, residual):
        return epilogue(ref_op(input, weight, bias, **conv), residual)

    return _forward_backward(ours, ref, leaves, grads, target, monkeypatch)


def _unit(flags: dict) -> int:
    return flags.get("VEC", 1)


def _channels(block: int, unit: int) -> int:
    """A channel count one past ``block`` (two blocks), a multiple of the aligned unit."""
    return block + unit


def _square(pixels: int) -> int:
    """The side of a square image with at least ``pixels`` pixels."""
    return math.isqrt(pixels - 1) + 1


# --------------------------------------------------------------------------------------------------------
# Cases, one builder per kernel


def _flat_kernel(channels: int, lanes: int) -> tuple[int, int]:
    """A kernel ``(R, R + 1)`` whose flattened (c, r, s) reduction over ``channels`` spans more than ``lanes``."""
    r = 2
    while channels * r * (r + 1) <= lanes:
        r += 1
    return r, r + 1


def _case_conv2d_fwd_flat(target: Target, monkeypatch) -> list[LaunchRecord]:
    """The flat reduction: 3 channels per group (groups 2), a kernel (R, R + 1) whose 3*R*(R + 1) weights per
    filter span three reduction blocks, padding (1, 2) and dilation (1, 2); two tiles of rows and filters."""
    cfg, dtype = target.config, target.dtype
    kg, (r, s) = cfg["BLOCK_N"] + 1, _flat_kernel(3, 2 * cfg["BLOCK_K"])
    side = _square(cfg["BLOCK_M"] // 2 + 1)
    conv = dict(padding=(1, 2), dilation=(1, 2), groups=2)
    h, w = side + r - 3, side + 1 + 2 * (s - 1) - 4  # the output is (side, side + 1)
    return _epilogue_case(False, conv, _leaf((2, 6, h, w), dtype), _leaf((2 * kg, 3, r, s), dtype),
                          (2, 2 * kg, side, side + 1), False, target, monkeypatch)


def _case_conv2d_fwd(target: Target, monkeypatch) -> list[LaunchRecord]:
    """Dense grouped 3x3 conv2d with the target's epilogue: groups 2, two tiles of rows and filters, two
    channel blocks. Images are one column wider than tall in every case, so that rows and columns cannot be
    confused."""
    flags, cfg, dtype = target.flags, target.config, target.dtype
    if flags["FLAT"]:
        return _case_conv2d_fwd_flat(target, monkeypatch)
    unit = _unit(flags)
    cg, kg = _channels(cfg["BLOCK_K"], unit), _channels(cfg["BLOCK_N"], unit)
    side = _square(cfg["BLOCK_M"] // 2 + 1)
    cl = unit > 1
    return _epilogue_case(False, dict(padding=1, groups=2), _leaf((2, 2 * cg, side, side + 1), dtype, cl),
                          _leaf((2 * kg, cg, 3, 3), dtype, cl), (2, 2 * kg, side, side + 1), cl, target, monkeypatch)


def _case_conv2d_fwd_tma(target: Target, monkeypatch) -> list[LaunchRecord]:
    """conv2d's Hopper path (switched on): 16-bit NHWC, 3x3 with dilation (2, 3) and padding (2, 3), and the
    target's epilogue. Two images, two tile rows and columns of output pixels, two filter tiles and two
    channel blocks, the last of each partly past the tensor (TMA's zero fill); never a square image."""
    cfg, dtype = target.config, target.dtype
    c, k = cfg["BLOCK_K"] + 8, cfg["BLOCK_N"] + 8
    p = cfg["BLOCK_H"] + 1
    q = cfg["BLOCK_W"] + (2 if cfg["BLOCK_W"] == cfg["BLOCK_H"] else 1)
    with hopper_tma(True):  # (padding and dilation keep the image's size: H = P, W = Q)
        return _epilogue_case(False, dict(padding=(2, 3), dilation=(2, 3)), _leaf((2, c, p, q), dtype, True),
                              _leaf((k, c, 3, 3), dtype, True), (2, k, p, q), True, target, monkeypatch)


def _transposed_stride(flags: dict) -> dict:
    """Stride and output padding of the transposed cases: both axes with several phases, and unequal strides
    (2, 3) in every case with a bias, so that row and column phases cannot be confused (the others take (2, 2):
    fewer phases, a cheaper case)."""
    sw = 3 if flags["HAS_BIAS"] else 2
    return dict(stride=(2, sw), padding=1, output_padding=(1, sw - 1))


def _case_conv2d_dgrad(target: Target, monkeypatch) -> list[LaunchRecord]:
    """conv_transpose2d (its forward is the input-gradient kernel) with several stride phases on both axes,
    groups 2, two tiles of rows and channels, two filter blocks; with the target's epilogue."""
    flags, cfg, dtype = target.flags, target.config, target.dtype
    unit = _unit(flags)
    c_out, c_in = _channels(cfg["BLOCK_N"], unit), _channels(cfg["BLOCK_K"], unit)
    side = _square(cfg["BLOCK_M"] // 2 + 1)
    cl = unit > 1
    conv = dict(**_transposed_stride(flags), groups=2)
    out_shape = (2, 2 * c_out, 2 * side, conv["stride"][1] * (side + 1))
    return _epilogue_case(True, conv, _leaf((2, 2 * c_in, side, side + 1), dtype, cl),
                          _leaf((2 * c_in, c_out, 3, 3), dtype, cl), out_shape, cl, target, monkeypatch)


def _case_conv2d_wgrad(target: Target, monkeypatch) -> list[LaunchRecord]:
    """conv2d forward and backward, groups 2, a (2, 2) kernel with padding 1, two tiles of filters and
    channels, and enough output pixels for the weight gradient to split its reduction (at least 8 blocks per
    split); then the weight gradient alone from a grad_out whose rows and images do not follow each other in
    memory (a window of a larger tensor), so that the pixel loop's jumps to the next row and image count.
    The flat variant: 3 channels per group, a kernel (R, 3) whose 9*R columns span two tiles, dilation (2, 1)."""
    cfg, dtype, unit = target.config, target.dtype, _unit(target.flags)
    kg, cg = _channels(cfg["BLOCK_M"], unit), _channels(cfg["BLOCK_N"], unit)
    (r, s), dilation = (2, 2), (1, 1)
    if target.flags["FLAT"]:
        cg, r, s, dilation = 3, -(-(cfg["BLOCK_N"] + 1) // 9), 3, (2, 1)
    side = _square((8 * cfg["BLOCK_K"]) // 2 + 1) + 1
    leaves = {"input": _leaf((2, 2 * cg, side, side + 1), dtype, unit > 1),
              "weight": _leaf((2 * kg, cg, r, s), dtype, unit > 1), "bias": _leaf((2 * kg,), dtype)}
    conv = dict(padding=1, dilation=dilation, groups=2)
    launches = _forward_backward(lambda **a: kernels.conv2d(**a, **conv), lambda **a: F.conv2d(**a, **conv),
                                 leaves, ALL, target, monkeypatch)
    x = leaves["input"].detach()
    p, q = side + 2 - dilation[0] * (r - 1), side + 3 - dilation[1] * (s - 1)  # the convolution's (P, Q)
    grad_out = _leaf((2, 2 * kg, p + 1, q + 1), dtype, unit > 1)[:, :, 1:, :-1]
    args = ((2 * kg, cg, r, s), (1, 1), (1, 1), dilation, 2)
    with _ours(target, monkeypatch) as alone:
        grad_w = torch.ops.kernels.conv2d_weight_grad(grad_out, x, *args)
    _compare([grad_w], [torch.nn.grad.conv2d_weight(x.double(), args[0], grad_out.double(), *args[1:])], dtype,
             ["weight gradient from a window of grad_out"])
    return launches + alone


def _leaf_3d(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """A 5-D leaf: channels_last_3d for 16-bit problems, NCDHW for float64 (both layouts reach every kernel)."""
    t = torch.randn(shape, dtype=dtype, device=DEVICE)
    return t.contiguous(memory_format=torch.channels_last_3d) if dtype != torch.float64 else t


def _box(pixels: int) -> tuple[int, int, int]:
    """Depth, rows and columns of a box of at least ``pixels`` pixels, the three sides unequal."""
    side = math.isqrt(max(pixels // 2, 1) - 1) + 1
    return 2, side, side + 1


_CONV3D = (conv3d_ops.conv3d, F.conv3d)


def _wrt_3d(flags: dict) -> tuple[str, ...]:
    """The gradients that check a stored pre-activation most cheaply in 3-D (the convolution's own backward
    over these problems costs seconds in the interpreter): the bias's (a channel sum of the activation's
    backward) or a residual added before the activation, else the weight's; and the residual's."""
    if flags["HAS_BIAS"]:
        return ("bias", "residual")
    if flags["HAS_RESIDUAL"] and flags["RESIDUAL_BEFORE_ACT"]:
        return ("residual",)
    return ("weight", "residual")
_CONV_TRANSPOSE3D = (conv3d_ops.conv_transpose3d, F.conv_transpose3d)


def _meta_shape(ref_op: Callable, input: torch.Tensor, weight: torch.Tensor, conv: dict) -> tuple[int, ...]:
    """The output shape of torch's op on these shapes (run on the meta device)."""
    meta = [torch.empty(t.shape, device="meta") for t in (input, weight)]
    return tuple(ref_op(*meta, **conv).shape)


def _case_conv3d_fwd(target: Target, monkeypatch) -> list[LaunchRecord]:
    """conv3d, groups 2, a (2, 2, 2) kernel with stride (1, 2, 1), padding (1, 0, 1) and dilation (1, 1, 2) (each
    axis its own parameters), two tiles of output pixels and of filters, two channel blocks; with the target's
    epilogue (forward only unless it stores the pre-activation). The flat variant: 3 channels per group and a
    (2, R, R + 1) kernel."""
    cfg, dtype = target.config, target.dtype
    cg, kg = cfg["BLOCK_K"] + 1, cfg["BLOCK_N"] + 1
    r, s = 2, 2
    if target.flags["FLAT"]:  # 3 channels per group, a kernel (2, R, R + 1) spanning three reduction blocks
        cg, (r, s) = 3, _flat_kernel(6, 2 * cfg["BLOCK_K"])
    z, p, q = _box(cfg["BLOCK_M"] // 2 + 1)
    conv = dict(stride=(1, 2, 1), padding=(1, 0, 1), dilation=(1, 1, 2), groups=2)
    input = _leaf_3d((2, 2 * cg, z - 1, 2 * p + r - 2, q + 2 * s - 4), dtype)
    weight = _leaf_3d((2 * kg, cg, 2, r, s), dtype)
    return _epilogue_case(False, conv, input, weight, _meta_shape(F.conv3d, input, weight, conv), False, target,
                          monkeypatch, _CONV3D)


def _case_conv3d_dgrad(target: Target, monkeypatch) -> list[LaunchRecord]:
    """conv_transpose3d (its forward is the input-gradient kernel) with stride (2, 3, 2): several phases on every
    axis, and on every axis a phase whose taps reach past the last grad_out pixel (padding 1 and a kernel
    (2, 3, 3)); groups 2, two tiles of phase pixels and of channels, two filter blocks; with the target's
    epilogue (forward only unless it stores the pre-activation)."""
    cfg, dtype = target.config, target.dtype
    c_out, c_in = cfg["BLOCK_N"] + 1, cfg["BLOCK_K"] + 1
    z, p, q = _box(cfg["BLOCK_M"] // 2 + 1)
    conv = dict(stride=(2, 3, 2), padding=1, output_padding=(1, 2, 1), groups=2)
    input, weight = _leaf_3d((2, 2 * c_in, z, p, q), dtype), _leaf_3d((2 * c_in, c_out, 2, 3, 3), dtype)
    return _epilogue_case(True, conv, input, weight, _meta_shape(F.conv_transpose3d, input, weight, conv), False,
                          target, monkeypatch, _CONV_TRANSPOSE3D)


def _case_conv3d_wgrad(target: Target, monkeypatch) -> list[LaunchRecord]:
    """conv3d forward and backward, groups 2, a (2, 2, 2) kernel with padding (1, 0, 1), two tiles of filters and
    channels, and enough output pixels for the weight gradient to split its reduction (at least 8 blocks per
    split). The flat variant: 3 channels per group, a (2, R, 3) kernel and dilation (1, 2, 1)."""
    cfg, dtype = target.config, target.dtype
    kg, cg = cfg["BLOCK_M"] + 1, cfg["BLOCK_N"] + 1
    kernel, dilation = (2, 2, 2), (1, 1, 1)
    if target.flags["FLAT"]:  # 3 channels per group, a kernel (2, R, 3) whose 18*R columns span two tiles
        cg, kernel, dilation = 3, (2, -(-(cfg["BLOCK_N"] + 1) // 18), 3), (1, 2, 1)
    z, p, q = _box(4 * cfg["BLOCK_K"] + 1)
    leaves = {"input": _leaf_3d((2, 2 * cg, z - 1, p + dilation[1] * (kernel[1] - 1), q + kernel[2] - 3), dtype),
              "weight": _leaf_3d((2 * kg, cg, *kernel), dtype), "bias": _leaf((2 * kg,), dtype)}
    conv = dict(padding=(1, 0, 1), dilation=dilation, groups=2)
    return _forward_backward(lambda **a: conv3d_ops.conv3d(**a, **conv), lambda **a: F.conv3d(**a, **conv), leaves,
                             ("input", "weight", "bias"), target, monkeypatch)


def _depthwise_side(cfg: KernelConfig) -> tuple[int, int]:
    """Output rows and columns spanning two tile rows and three tile columns (never square)."""
    return cfg["BLOCK_PIX"] // cfg["BLOCK_W"] + 1, 2 * cfg["BLOCK_W"] + 1  # two tile rows, three tile columns


def _case_depthwise_fwd(target: Target, monkeypatch) -> list[LaunchRecord]:
    """Depthwise 3x3 conv2d with channel multiplier 2, two images, three tile rows and four tile columns
    (never square), two channel blocks: per image, the two middle tiles of the full channel block have their
    windows inside the image (the unmasked path), the others reach the padding or past the last pixel or
    channel (the masked path); with the target's epilogue."""
    cfg, dtype = target.config, target.dtype
    p, q = 2 * (cfg["BLOCK_PIX"] // cfg["BLOCK_W"]) + 1, 3 * cfg["BLOCK_W"] + 1
    c = cfg["BLOCK_C"] // 2 + 1
    cl = cfg["BLOCK_C"] > 8
    return _epilogue_case(False, dict(padding=1, groups=c), _leaf((2, c, p, q), dtype, cl),
                          _leaf((2 * c, 1, 3, 3), dtype), (2, 2 * c, p, q), cl, target, monkeypatch)


def _case_depthwise_dgrad(target: Target, monkeypatch) -> list[LaunchRecord]:
    """Depthwise conv_transpose2d (the input-gradient kernel) with several stride phases on both axes, two
    tile rows and columns of phase pixels, and two input channels per output channel (the kernel's multiplier
    loop); with the target's epilogue."""
    flags, cfg, dtype = target.flags, target.config, target.dtype
    rows, cols = cfg["BLOCK_PIX"] // cfg["BLOCK_W"] + 1, cfg["BLOCK_W"] + 2
    c = cfg["BLOCK_C"] + 1
    conv = dict(**_transposed_stride(flags), groups=c)
    cl = cfg["BLOCK_C"] > 8
    out_shape = (2, c, 2 * rows, conv["stride"][1] * cols)
    return _epilogue_case(True, conv, _leaf((2, 2 * c, rows, cols), dtype, cl), _leaf((2 * c, 1, 3, 3), dtype),
                          out_shape, cl, target, monkeypatch)


def _case_depthwise_wgrad(target: Target, monkeypatch) -> list[LaunchRecord]:
    """Depthwise conv2d forward and backward: two images, two tile rows and columns (8 tiles: 2 splits of 4),
    two channel blocks."""
    cfg, dtype = target.config, target.dtype
    p, q = _depthwise_side(cfg)
    c = cfg["BLOCK_C"] // 2 + 1
    leaves = {"input": _leaf((2, c, p, q), dtype, cfg["BLOCK_C"] > 8), "weight": _leaf((2 * c, 1, 3, 3), dtype)}
    return _forward_backward(lambda **a: kernels.conv2d(**a, padding=1, groups=c),
                             lambda **a: F.conv2d(**a, padding=1, groups=c), leaves, ALL, target, monkeypatch)


def _leaf_5d(shape: tuple[int, ...], dtype: torch.dtype, channels_last: bool) -> torch.Tensor:
    t = torch.randn(shape, dtype=dtype, device=DEVICE)
    return t.contiguous(memory_format=torch.channels_last_3d) if channels_last else t


class _DepthwiseConv3d(torch.autograd.Function):
    """``conv3d(input, weight, bias, stride, padding, dilation, groups=C)`` straight through the depthwise 3-D
    launchers: the forward kernel, and the input- and weight-gradient kernels in the backward (the bias
    gradient is a plain sum); the weight-gradient case uses it."""

    @staticmethod
    def forward(ctx, input, weight, bias, stride, padding, dilation):
        g = conv3d_geometry(input.shape, weight.shape, None if bias is None else bias.shape, stride, padding,
                            dilation, input.shape[1])
        out = empty_nd((g.N, g.K, g.Z, g.P, g.Q), input, prefers_channels_last_3d(input))
        depthwise3d_fwd(input, weight, bias, g, out)
        ctx.save_for_backward(input, weight)
        ctx.geometry, ctx.has_bias = g, bias is not None
        return out

    @staticmethod
    def backward(ctx, grad_out):
        input, weight = ctx.saved_tensors
        g = ctx.geometry
        grad_in = empty_nd(input.shape, input, prefers_channels_last_3d(input))
        depthwise3d_dgrad(grad_out, weight, g, grad_in)
        grad_weight = depthwise3d_wgrad(grad_out, input, g)
        grad_bias = grad_out.sum((0, 2, 3, 4)) if ctx.has_bias else None
        return grad_in, grad_weight, grad_bias, None, None, None


def _depthwise_conv_transpose3d(input: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                                stride: tuple[int, int, int], padding: int, output_padding: tuple[int, int, int],
                                groups: int) -> torch.Tensor:
    """Depthwise ``conv_transpose3d`` (forward only): the input-gradient launcher with the bias."""
    g = conv_transpose3d_geometry(input.shape, weight.shape, None, stride, padding, output_padding, groups)
    out = empty_nd((g.N, g.C, g.D, g.H, g.W), input, prefers_channels_last_3d(input))
    depthwise3d_dgrad(input, weight, g, out, bias)
    return out


def _case_depthwise3d_fwd(target: Target, monkeypatch) -> list[LaunchRecord]:
    """Depthwise 3x3x3 conv3d (forward, through the public conv3d) with channel multiplier 2 and depth stride 2
    and the target's epilogue: two volumes, three output planes, three tile rows and four tile columns (never
    square), two channel blocks. The middle plane's two middle tiles of the full channel block have their
    windows inside the volume (the unmasked path), the others reach the padding or past the last pixel or
    channel (the masked path)."""
    cfg, dtype = target.config, target.dtype
    p, q = 2 * (cfg["BLOCK_PIX"] // cfg["BLOCK_W"]) + 1, 3 * cfg["BLOCK_W"] + 1
    c = cfg["BLOCK_C"] // 2 + 1
    conv = dict(stride=(2, 1, 1), padding=1, dilation=1, groups=c)
    cl = cfg["BLOCK_C"] > 8
    input, weight = _leaf_5d((2, c, 5, p, q), dtype, cl), _leaf((2 * c, 1, 3, 3, 3), dtype)
    return _epilogue_case(False, conv, input, weight, _meta_shape(F.conv3d, input, weight, conv), cl, target,
                          monkeypatch, _CONV3D, _wrt_3d(target.flags))


def _case_depthwise3d_dgrad(target: Target, monkeypatch) -> list[LaunchRecord]:
    """Depthwise conv_transpose3d (the input-gradient kernel, through the public conv_transpose3d) with several
    stride phases on every axis (strides (2, 3, 2) with a bias, (3, 2, 2) without: no two axes confusable over
    the two), two input slices, two tile rows and columns of phase pixels, two channel blocks, and two input
    channels per output channel (the kernel's multiplier loop); with the target's epilogue."""
    flags, cfg, dtype = target.flags, target.config, target.dtype
    rows, cols = cfg["BLOCK_PIX"] // cfg["BLOCK_W"] + 1, cfg["BLOCK_W"] + 2
    c = cfg["BLOCK_C"] + 1
    stride = (2, 3, 2) if flags["HAS_BIAS"] else (3, 2, 2)
    conv = dict(stride=stride, padding=1, output_padding=tuple(s - 1 for s in stride), groups=c)
    cl = cfg["BLOCK_C"] > 8
    input, weight = _leaf_5d((2, 2 * c, 2, rows, cols), dtype, cl), _leaf((2 * c, 1, 3, 3, 3), dtype)
    return _epilogue_case(True, conv, input, weight, _meta_shape(F.conv_transpose3d, input, weight, conv), cl,
                          target, monkeypatch, _CONV_TRANSPOSE3D, _wrt_3d(target.flags))


def _case_depthwise3d_wgrad(target: Target, monkeypatch) -> list[LaunchRecord]:
    """Depthwise 3x3x3 conv3d forward and backward: two volumes of two planes, two tile rows and columns
    (16 tiles: 4 splits of 4), two channel blocks, multiplier 2."""
    cfg, dtype = target.config, target.dtype
    p, q = cfg["BLOCK_PIX"] // cfg["BLOCK_W"] + 1, cfg["BLOCK_W"] + 1
    c = cfg["BLOCK_C"] // 2 + 1
    leaves = {"input": _leaf_5d((2, c, 2, p, q), dtype, cfg["BLOCK_C"] > 8),
              "weight": _leaf((2 * c, 1, 3, 3, 3), dtype), "bias": _leaf((2 * c,), dtype)}
    return _forward_backward(lambda input, weight, bias: _DepthwiseConv3d.apply(input, weight, bias, 1, 1, 1),
                             lambda **a: F.conv3d(**a, padding=1, groups=c), leaves, ALL, target, monkeypatch)


def _case_channel_sum(target: Target, monkeypatch) -> list[LaunchRecord]:
    """The bias gradient's reduction on its own: two channel blocks, two images, several splits of several
    pixel blocks each."""
    cfg, dtype = target.config, target.dtype
    side = _square(4 * cfg["BLOCK_PIX"] + 1)
    x = _leaf((2, cfg["BLOCK_C"] + 1, side, side + 1), dtype, cfg["BLOCK_C"] > 16)
    with _ours(target, monkeypatch) as launches:
        total = reduce_ops.channel_sum(x)
    _compare([total], [x.double().sum((0, 2, 3))], dtype, ["channel sum"])
    return launches


def _case_split_sum(target: Target, monkeypatch) -> list[LaunchRecord]:
    """The split-K reduction on its own: three splits, two blocks."""
    cfg, dtype = target.config, target.dtype
    partial = _leaf((3, cfg["BLOCK"] + 1), reduce_ops.acc_dtype(dtype))
    with _ours(target, monkeypatch) as launches:
        out = reduce_ops.sum_splits(partial, torch.empty(cfg["BLOCK"] + 1, dtype=dtype, device=DEVICE))
    _compare([out], [partial.double().sum(0)], dtype, ["split sum"])
    return launches


def _case_activation_backward(target: Target, monkeypatch) -> list[LaunchRecord]:
    """``grad * act'(saved)`` on its own: saved NCHW or channels_last, the gradient in the same or the other
    layout; two blocks."""
    flags, cfg, dtype = target.flags, target.config, target.dtype
    shape = (2, 3, 5, cfg["BLOCK"] // 30 + 1)
    saved = _leaf(shape, dtype, flags["CHANNELS_LAST"])
    grad = _leaf(shape, dtype, flags["CHANNELS_LAST"] == flags["SAME_LAYOUT"])
    epilogue = Epilogue(flags["ACTIVATION"], 0.1)
    with _ours(target, monkeypatch) as launches:
        got = activation_backward(grad, saved, epilogue)
    z = saved.double().requires_grad_()
    (slope,) = torch.autograd.grad(_act(flags["ACTIVATION"], z, 0.1).sum(), z)
    _compare([got], [grad.double() * slope], dtype, ["pre-activation gradient"])
    return launches


def _pool_input(cfg: KernelConfig, dtype: torch.dtype, side: int) -> torch.Tensor:
    """A ``side x (side + 1)`` pooling input (not square: rows and columns cannot be confused) with enough
    channels for two channel blocks (channels_last for channel-wide tiles)."""
    return _leaf((2, cfg["BLOCK_C"] + 1, side, side + 1), dtype, cfg["BLOCK_C"] > 1)


def _pool_sides(cfg: KernelConfig) -> tuple[int, int]:
    """Input and output sides of a 3x3 / stride 2 / padding 1 pooling with at least two pixel blocks of
    outputs (and so of inputs)."""
    out_side = _square(cfg["BLOCK_PIX"] // 2 + 1)
    return 2 * out_side, out_side


def _case_max_pool(target: Target, monkeypatch) -> list[LaunchRecord]:
    """Max pooling, strided (3x3, stride 2, padding 1: overlapping windows) or adaptive (uneven, overlapping
    windows); maxima saved as torch's flat indices when returned, else as positions in the window when needed
    for the backward, else not at all."""
    flags, cfg, dtype = target.flags, target.config, target.dtype
    side, out_side = _pool_sides(cfg)
    x = _pool_input(cfg, dtype, side)
    index = flags.get("INDEX", "window" if flags.get("WINDOW_INDEX") else "flat")  # (backward: what it reads)
    store = index == "flat"
    grads = index != "none"
    adaptive = flags["ADAPTIVE"]
    size = (out_side + 1, out_side + 2)  # windows of uneven lengths that overlap

    def ours(input):
        if adaptive:
            return kernels.adaptive_max_pool2d(input, size, return_indices=store)
        return kernels.max_pool2d(input, 3, 2, 1, return_indices=store)

    def ref(input):
        if adaptive:
            return F.adaptive_max_pool2d(input, size, return_indices=store)
        return F.max_pool2d(input, 3, 2, 1, return_indices=store)

    x.requires_grad_(grads)
    twin = _twin(x)
    with _ours(target, monkeypatch) as launches:
        got = ours(x)
        out = got[0] if store else got
        if grads:
            grad_out = torch.randn(out.shape, dtype=dtype, device=DEVICE)
            out.backward(grad_out)
    want = ref(twin)
    _compare([out], [want[0] if store else want], dtype, ["output"])
    if store:
        assert torch.equal(got[1], want[1]), "indices differ from torch's"
    if grads:
        (want[0] if store else want).backward(grad_out.double())
        _compare([x.grad], [twin.grad], dtype, ["grad of input"])
    return launches


def _case_max_pool_gather(target: Target, monkeypatch) -> list[LaunchRecord]:
    """Max pooling's double backward: the gradient of its backward gathers at the saved maxima (positions in
    the window, strided or adaptive, or torch's flat indices when they are returned)."""
    flags, cfg, dtype = target.flags, target.config, target.dtype
    side, out_side = _pool_sides(cfg)
    x = _pool_input(cfg, dtype, side).requires_grad_()
    twin = _twin(x)
    size = (out_side + 1, out_side + 2)
    flat = not flags["WINDOW_INDEX"]

    def pool(module, input):
        if flags["ADAPTIVE"]:
            return module.adaptive_max_pool2d(input, size)
        return module.max_pool2d(input, 3, 2, 1, return_indices=flat)[0] if flat else module.max_pool2d(input, 3, 2, 1)

    grad_out = torch.randn(pool(F, x.detach()).shape, dtype=dtype, device=DEVICE).requires_grad_()
    grad_twin = _twin(grad_out)
    probe = torch.randn(x.shape, dtype=dtype, device=DEVICE)
    with _ours(target, monkeypatch) as launches:
        (grad_x,) = torch.autograd.grad(pool(kernels, x), x, grad_out, create_graph=True)
        (got,) = torch.autograd.grad(grad_x, grad_out, probe)
    (grad_x_ref,) = torch.autograd.grad(pool(F, twin), twin, grad_twin, create_graph=True)
    (want,) = torch.autograd.grad(grad_x_ref, grad_twin, probe.double())
    _compare([got], [want], dtype, ["gradient of the backward"])
    return launches


def _case_avg_pool(target: Target, monkeypatch) -> list[LaunchRecord]:
    """Average pooling forward and backward, strided (3x3, stride 2, padding 1, count_include_pad as the
    target says) or adaptive (uneven, overlapping windows)."""
    flags, cfg, dtype = target.flags, target.config, target.dtype
    side, out_side = _pool_sides(cfg)
    x = _pool_input(cfg, dtype, side)
    size = (out_side + 1, out_side + 2)  # windows of uneven lengths that overlap
    if flags["ADAPTIVE"]:
        ours, ref = kernels.adaptive_avg_pool2d, F.adaptive_avg_pool2d
        args: tuple = (size,)
    else:
        ours, ref = kernels.avg_pool2d, F.avg_pool2d
        args = (3, 2, 1, False, flags["COUNT_INCLUDE_PAD"])
    return _forward_backward(lambda input: ours(input, *args), lambda input: ref(input, *args), {"input": x}, ALL,
                             target, monkeypatch)


def _case_global_avg_pool(target: Target, monkeypatch) -> list[LaunchRecord]:
    """Global average pooling: two images, two channel blocks, two blocks of the plane; the input is a
    spatial slice (rows not following each other in memory) for every other configuration."""
    cfg, dtype = target.config, target.dtype
    side = _square(cfg["BLOCK_HW"] + 1)
    sliced = list(SPACES["global_avg_pool2d_kernel"].configs).index(cfg) % 2 == 1
    shape = (2, cfg["BLOCK_C"] + 1, *((2 * side, side + 2) if sliced else (side, side + 1)))
    leaf = _leaf(shape, dtype, cfg["BLOCK_C"] > 1)
    view = (lambda t: t[:, :, ::2, 1:]) if sliced else (lambda t: t)  # sliced: side x (side + 1) as well
    return _forward_backward(lambda input: kernels.adaptive_avg_pool2d(view(input), 1),
                             lambda input: F.adaptive_avg_pool2d(view(input), 1), {"input": leaf}, ALL, target,
                             monkeypatch)


def _pool3d_input(cfg: KernelConfig, dtype: torch.dtype, sides: tuple[int, int, int]) -> torch.Tensor:
    """A pooling input of ``sides`` (never a cube) with enough channels for two channel blocks
    (channels_last_3d for channel-wide tiles)."""
    t = torch.randn((2, cfg["BLOCK_C"] + 1, *sides), dtype=dtype, device=DEVICE)
    return t.contiguous(memory_format=torch.channels_last_3d) if cfg["BLOCK_C"] > 1 else t


def _pool3d_sides(cfg: KernelConfig) -> tuple[tuple[int, int, int], tuple[int, int, int]]:
    """Input and output sides of a 3x3x3 / stride 2 / padding 1 pooling with at least two voxel blocks of
    outputs (and so of inputs) over two images; the adaptive cases pool the same input to one more output
    per axis (uneven, overlapping windows)."""
    out = (2, 3, -(-(cfg["BLOCK_PIX"] // 2 + 1) // 6))
    return (2 * out[0], 2 * out[1], 2 * out[2]), out


def _case_max_pool3d(target: Target, monkeypatch) -> list[LaunchRecord]:
    """3-D max pooling, strided (overlapping windows) or adaptive; maxima saved (flat) when returned or needed
    by the backward, else not at all."""
    flags, cfg, dtype = target.flags, target.config, target.dtype
    sides, out = _pool3d_sides(cfg)
    x = _pool3d_input(cfg, dtype, sides)
    grads = flags.get("INDEX", "flat") == "flat"
    size = tuple(o + 1 for o in out)

    def pool(module, input):
        if flags["ADAPTIVE"]:
            return module.adaptive_max_pool3d(input, size)
        return module.max_pool3d(input, 3, 2, 1)

    return _forward_backward(lambda input: pool(pool3d_functional, input), lambda input: pool(F, input),
                             {"input": x}, ALL if grads else (), target, monkeypatch)


def _case_max_pool3d_gather(target: Target, monkeypatch) -> list[LaunchRecord]:
    """3-D max pooling's double backward: the gradient of its backward gathers at the saved maxima."""
    cfg, dtype = target.config, target.dtype
    sides, _ = _pool3d_sides(cfg)
    x = _pool3d_input(cfg, dtype, sides).requires_grad_()
    twin = _twin(x)
    grad_out = torch.randn(F.max_pool3d(x.detach(), 3, 2, 1).shape, dtype=dtype, device=DEVICE).requires_grad_()
    grad_twin = _twin(grad_out)
    probe = torch.randn(x.shape, dtype=dtype, device=DEVICE)
    with _ours(target, monkeypatch) as launches:
        (grad_x,) = torch.autograd.grad(pool3d_functional.max_pool3d(x, 3, 2, 1), x, grad_out, create_graph=True)
        (got,) = torch.autograd.grad(grad_x, grad_out, probe)
    (grad_x_ref,) = torch.autograd.grad(F.max_pool3d(twin, 3, 2, 1), twin, grad_twin, create_graph=True)
    (want,) = torch.autograd.grad(grad_x_ref, grad_twin, probe.double())
    _compare([got], [want], dtype, ["gradient of the backward"])
    return launches


def _case_avg_pool3d(target: Target, monkeypatch) -> list[LaunchRecord]:
    """3-D average pooling forward and backward, strided (count_include_pad as the target says) or adaptive."""
    flags, cfg, dtype = target.flags, target.config, target.dtype
    sides, out = _pool3d_sides(cfg)
    x = _pool3d_input(cfg, dtype, sides)
    if flags["ADAPTIVE"]:
        ours, ref = pool3d_functional.adaptive_avg_pool3d, F.adaptive_avg_pool3d
        args: tuple = (tuple(o + 1 for o in out),)
    else:
        ours, ref = pool3d_functional.avg_pool3d, F.avg_pool3d
        args = (3, 2, 1, False, flags["COUNT_INCLUDE_PAD"])
    return _forward_backward(lambda input: ours(input, *args), lambda input: ref(input, *args), {"input": x}, ALL,
                             target, monkeypatch)


def _case_global_avg_pool3d(target: Target, monkeypatch) -> list[LaunchRecord]:
    """3-D global average pooling: two images, two channel blocks, two blocks of the volume; the input is a
    slice (voxels not following each other in memory) for every other configuration."""
    cfg, dtype = target.config, target.dtype
    rows = -(-(cfg["BLOCK_DHW"] + 1) // 6)
    sliced = list(SPACES["global_avg_pool3d_kernel"].configs).index(cfg) % 2 == 1
    x = _pool3d_input(cfg, dtype, (2, 2 * rows, 4) if sliced else (2, rows, 3))
    view = (lambda t: t[:, :, :, ::2, 1:]) if sliced else (lambda t: t)

    return _forward_backward(lambda input: pool3d_functional.adaptive_avg_pool3d(view(input), 1),
                             lambda input: F.adaptive_avg_pool3d(view(input), 1), {"input": x}, ALL, target,
                             monkeypatch)


CASES: dict[str, Callable[[Target, pytest.MonkeyPatch], list[LaunchRecord]]] = {
    "conv2d_fwd_kernel": _case_conv2d_fwd,
    "conv2d_fwd_tma_kernel": _case_conv2d_fwd_tma,
    "conv2d_dgrad_kernel": _case_conv2d_dgrad,
    "conv2d_wgrad_kernel": _case_conv2d_wgrad,
    "conv3d_fwd_kernel": _case_conv3d_fwd,
    "conv3d_dgrad_kernel": _case_conv3d_dgrad,
    "conv3d_wgrad_kernel": _case_conv3d_wgrad,
    "depthwise_fwd_kernel": _case_depthwise_fwd,
    "depthwise_dgrad_kernel": _case_depthwise_dgrad,
    "depthwise_wgrad_kernel": _case_depthwise_wgrad,
    "depthwise3d_fwd_kernel": _case_depthwise3d_fwd,
    "depthwise3d_dgrad_kernel": _case_depthwise3d_dgrad,
    "depthwise3d_wgrad_kernel": _case_depthwise3d_wgrad,
    "channel_sum_kernel": _case_channel_sum,
    "split_sum_kernel": _case_split_sum,
    "activation_backward_kernel": _case_activation_backward,
    "max_pool2d_fwd_kernel": _case_max_pool,
    "max_pool2d_bwd_kernel": _case_max_pool,
    "max_pool2d_gather_kernel": _case_max_pool_gather,
    "avg_pool2d_fwd_kernel": _case_avg_pool,
    "avg_pool2d_bwd_kernel": _case_avg_pool,
    "global_avg_pool2d_kernel": _case_global_avg_pool,
    "max_pool3d_fwd_kernel": _case_max_pool3d,
    "max_pool3d_bwd_kernel": _case_max_pool3d,
    "max_pool3d_gather_kernel": _case_max_pool3d_gather,
    "avg_pool3d_fwd_kernel": _case_avg_pool3d,
    "avg_pool3d_bwd_kernel": _case_avg_pool3d,
    "global_avg_pool3d_kernel": _case_global_avg_pool3d,
}


def _exercised(record: LaunchRecord) -> bool:
    return all(n >= 2 for n in record.counts().values())


@pytest.mark.parametrize("target", TARGETS, ids=lambda t: t.id)
def test_kernel_variant_and_configuration(target: Target, monkeypatch: pytest.MonkeyPatch) -> None:
    launches = CASES[target.space](target, monkeypatch)
    mine = [r for r in launches if r.space.name == target.space and r.variant == target.variant
            and r.config == target.config]
    seen = sorted({(r.space.name, str(dict(r.variant))) for r in launches})
    assert mine, f"{target.id} was not launched; launches: {seen}"
    assert any(_exercised(r) for r in mine), (
        f"{target.id}: no launch reached 2 on every count: {[r.counts() for r in mine]}")


def test_cases_cover_every_variant_and_configuration() -> None:
    """Every registered kernel has a case builder, and the cases reach every covering variant (for 16-bit
    and float64 problems) and every configuration of every space."""
    assert set(CASES) == set(SPACES), "a kernel space without coverage cases (or a case for no space)"
    for name, space in SPACES.items():
        mine = [t for t in TARGETS if t.space == name]
        wanted_variants = {v for dtype in FAMILIES for v in space.covering_variants(dtype, False)}
        assert wanted_variants <= {t.variant for t in mine}, name
        wanted_configs = {c for dtype in CONFIG_FAMILIES for c in space.for_dtype(dtype, False)}
        assert wanted_configs <= {t.config for t in mine}, name
        assert space.counts is not None, f"{name} declares no counts"


def test_kernel_constexprs_are_declared() -> None:
    """Every constexpr parameter of every kernel is a declared variant axis, a declared value or a block
    size, so that no code path can be added without the variant machinery seeing it."""
    for name, space in SPACES.items():
        constexprs = constexpr_params(space.kernel)
        blocks = {b for config in (*space.configs, *space.wide_configs) for b, _ in config.blocks}
        declared = {a.name for a in space.axes} | set(space.values) | blocks
        assert set(constexprs) == declared, (name, sorted(set(constexprs) ^ declared))


def test_undeclared_variants_are_refused() -> None:
    space = SPACES["max_pool2d_fwd_kernel"]
    with pytest.raises(ValueError, match="not declared"):
        space.check_variant({"ADAPTIVE": False, "INDEX": "none", "NEW_FLAG": True}, torch.float32, False)
    with pytest.raises(ValueError, match="not a declared value"):
        space.check_variant({"ADAPTIVE": 2, "INDEX": "none"}, torch.float32, False)
    conv = SPACES["conv2d_fwd_kernel"]
    aligned = {**dict(conv.covering_variants(torch.bfloat16, False)[0]), "R": 3, "S": 3, "PRECISION": "ieee",
               "ACC_DTYPE": None, "NEGATIVE_SLOPE": 0.0}
    assert aligned["VEC"] == 16
    with pytest.raises(ValueError, match="not declared valid"):
        conv.check_variant(aligned, torch.float32, False)
