"""Ahead-of-time compile check: every Triton kernel of the package, with every block configuration it may
be launched with, compiled for sm_90 and sm_80 without a GPU.

Triton's interpreter accepts code that the GPU compiler rejects, and it says nothing about registers,
spills, shared memory or tensor cores. This check closes that gap:

1. The public ops in :data:`OP_CASES` run under :func:`kernels.launch.recording` on tiny tensors, forward
   and backward, for each dtype in :data:`DTYPE_VARIANTS`. No kernel runs; every launch is recorded with
   its real arguments. A registered space that no case launches is a failure.
2. Each record gives the kernel's Triton signature: tensors become pointers of their dtype, Python ints
   ``i32`` (``i64`` when they need it), floats ``fp32``; ``None``, the constexprs and the configuration's
   block sizes become constexprs. Pointers get the 16-byte alignment hint the runtime would give the
   recorded tensors; integers get none of the runtime's specialisations (``== 1`` constants, divisibility
   by 16 hints), so the general code path is the one compiled: the worst case of the variants real
   launches get (with divisible strides and channel counts, those often need far fewer registers).
3. The first launch of each (kernel, dtype, variant) is compiled with every configuration of
   ``space.for_dtype(dtype, tf32, constexprs)`` (those this variant may launch) for each architecture, in a
   pool of processes, and the cubin is read with the ``cuobjdump`` that Triton ships: resource usage for
   every compile; the SASS (its disassembly costs about as much CPU as the compile) for the first
   configuration of each variant on sm_90 and of each kernel and dtype on other archs, and from the SASS
   the instruction mix of one trip of its main loop (``kernels/sass.py``: matrix instructions, TMA loads,
   asynchronous copies, global loads and their vector width, integer/address instructions). The other
   compiles are judged from their PTX, whose matrix and TMA instructions map one to one onto SASS opcodes
   (:func:`ptx_opcodes`); every compile whose SASS is read checks that map. ``--sass all`` reads every
   SASS; ``--sass kernel`` reads it once per kernel and dtype on every arch. These compiles are the worst
   case (no integer specialised); the benchmark layers as a GPU specialises them are compiled for the
   committed report by ``python -m bench.sass``.
4. The variants come from the kernels' spaces, not from the cases: every variant a space declares
   (:meth:`~kernels.launch.KernelSpace.covering_variants`: each combination of its flags with the heaviest
   activation, and each activation with the heaviest flags; per dtype) is compiled too, with its largest
   configuration, from a recorded launch of that kernel and dtype with the variant's constexprs put in.
   :func:`~kernels.launch.launch` refuses an undeclared variant, so none can reach a GPU uncompiled here.

A row fails on a compile error, on any spill (stack or local memory in the cubin), on dynamic shared memory
over the architecture's per-block limit, or when a ``uses_dot`` kernel lacks tensor-core instructions:
``HGMMA`` (warpgroup MMA) on sm_90 and ``HMMA`` on sm_80, required for float16, bfloat16 and for float32
with TF32 on (TF32 dots compile to ``HGMMA.*.TF32`` on sm_90 and ``HMMA.*.TF32`` on sm_80, so one rule
covers them). float32 without TF32 and float64 have no tensor-core requirement. A ``hopper_path`` kernel
compiled for sm_90 fails without a TMA load (``UTMALDG``) or an ``HGMMA``.

Command line: ``python -m kernels.aot [--arch 90 --arch 80] [--kernel NAME] [--workers N] [--sass all|variant|kernel]``;
it prints one row per compile and exits non-zero when any row fails.
"""

from __future__ import annotations

import argparse
import contextlib
import inspect
import math
import multiprocessing
import os
import re
import subprocess
import sys
import tempfile
import time
import traceback
import warnings
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass, field, replace
from functools import cache
from pathlib import Path
from typing import Any

import torch

from .launch import SHARED_LIMIT, SPACES, KernelConfig, KernelSpace, LaunchRecord, recording
from .ops.conv2d_hopper import hopper_tma
from .sass import LoopMix, main_loop
from .sass import parse as parse_sass

# --------------------------------------------------------------------------------------------------------
# What to exercise


@dataclass(frozen=True)
class OpCase:
    """One call of a public op of the package, ``kernels.<op>(*tensors, **kwargs)``.

    ``tensors``: shapes of the positional tensor arguments; ``None`` passes ``None`` (e.g. no bias);
    ``tensor_kwargs``: shapes of keyword tensor arguments (e.g. a residual). Every tensor requires grad, so
    the backward pass launches every gradient kernel. ``channels_last`` lays the 4-D tensors out as NHWC (5-D: NDHWC).
    ``double_backward`` also differentiates the gradients (the kernels only a second backward launches).
    ``hopper_tma`` switches conv2d's Hopper path on (``kernels.ops.conv2d_hopper``).
    """

    op: str
    label: str
    tensors: tuple[tuple[int, ...] | None, ...]
    kwargs: Mapping[str, Any] = field(default_factory=dict)
    channels_last: bool = False
    tensor_kwargs: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    double_backward: bool = False
    hopper_tma: bool = False


# One entry per geometry; a new op is one more entry. The shapes are tiny: nothing runs under recording, only
# the launch arguments matter.
OP_CASES: tuple[OpCase, ...] = (
    OpCase("conv2d", "dense", ((2, 4, 6, 6), (8, 4, 3, 3), (8,)), {"padding": 1}),
    OpCase("conv2d", "dense stride 2", ((2, 4, 7, 7), (8, 4, 3, 3), None), {"stride": 2}),
    OpCase("conv2d", "dense 1x1 NHWC", ((2, 8, 5, 5), (16, 8, 1, 1), (16,)), channels_last=True),
    OpCase("conv2d", "dense dilation 2", ((2, 4, 9, 9), (4, 4, 3, 3), None), {"padding": 2, "dilation": 2}),
    OpCase("conv2d", "groups 2", ((2, 4, 6, 6), (6, 2, 3, 3), (6,)), {"padding": 1, "groups": 2}),
    OpCase("conv2d", "groups 2 stride 2 NHWC", ((2, 4, 7, 7), (6, 2, 3, 3), None), {"stride": 2, "groups": 2},
           channels_last=True),
    OpCase("conv2d", "depthwise", ((2, 4, 6, 6), (4, 1, 3, 3), (4,)), {"padding": 1, "groups": 4}),
    OpCase("conv2d", "depthwise stride 2", ((2, 4, 7, 7), (4, 1, 3, 3), None),
           {"stride": 2, "padding": 1, "groups": 4}),
    OpCase("conv2d", "depthwise x2", ((2, 4, 6, 6), (8, 1, 3, 3), (8,)), {"padding": 1, "groups": 4}),
    OpCase("conv2d", "depthwise x2 stride 2 NHWC", ((2, 4, 7, 7), (8, 1, 3, 3), None),
           {"stride": 2, "groups": 4}, channels_last=True),
    # conv_transpose2d(input, weight (Cin, Cout/groups, R, S), bias, stride, padding, output_padding, groups)
    OpCase("conv_transpose2d", "dense stride 2", ((2, 4, 4, 4), (4, 6, 3, 3), (6,)),
           {"stride": 2, "padding": 1, "output_padding": 1}),
    OpCase("conv_transpose2d", "depthwise", ((2, 4, 5, 5), (4, 1, 3, 3), (4,)), {"padding": 1, "groups": 4}),
    # conv3d(input, weight (K, C/groups, T, R, S), bias, ...); conv_transpose3d(input, weight (Cin, Cout/groups, ...))
    OpCase("conv3d", "dense", ((2, 4, 4, 5, 5), (8, 4, 3, 3, 3), (8,)), {"padding": 1}),
    OpCase("conv3d", "groups 2 stride 2 dilation NDHWC", ((2, 4, 5, 6, 7), (6, 2, 2, 3, 3), None),
           {"stride": 2, "dilation": (1, 2, 1), "groups": 2}, channels_last=True),
    OpCase("conv_transpose3d", "stride 2", ((2, 4, 3, 4, 4), (4, 6, 3, 3, 3), (6,)),
           {"stride": 2, "padding": 1, "output_padding": 1}),
    OpCase("conv_transpose3d", "groups 2 NDHWC", ((2, 4, 3, 4, 4), (4, 3, 2, 2, 2), None),
           {"stride": (1, 2, 2), "groups": 2}, channels_last=True),
    # conv3d(input (N, C, D, H, W), weight (K, 1, T, R, S), ...) with groups=C: the depthwise 3-D kernels
    OpCase("conv3d", "depthwise", ((2, 4, 5, 6, 6), (4, 1, 3, 3, 3), (4,)), {"padding": 1, "groups": 4}),
    OpCase("conv3d", "depthwise x2 stride 2 NDHWC", ((2, 4, 5, 7, 7), (8, 1, 3, 3, 3), None),
           {"stride": 2, "groups": 4}, channels_last=True),
    # fused epilogues: the heaviest (pre-activation stored and a residual) and the stored-output forms
    OpCase("conv2d", "dense gelu + residual", ((2, 4, 6, 6), (8, 4, 3, 3), (8,)),
           {"padding": 1, "activation": "gelu"}, tensor_kwargs={"residual": (2, 8, 6, 6)}),
    OpCase("conv2d", "dense relu(+residual) NHWC", ((2, 4, 6, 6), (8, 4, 3, 3), (8,)),
           {"padding": 1, "activation": "relu", "residual_before_activation": True},
           channels_last=True, tensor_kwargs={"residual": (2, 8, 6, 6)}),
    OpCase("conv2d", "depthwise silu + residual", ((2, 4, 6, 6), (4, 1, 3, 3), (4,)),
           {"padding": 1, "groups": 4, "activation": "silu"}, tensor_kwargs={"residual": (2, 4, 6, 6)}),
    OpCase("conv_transpose2d", "dense leaky_relu + residual NHWC", ((2, 4, 4, 4), (4, 6, 3, 3), (6,)),
           {"stride": 2, "padding": 1, "output_padding": 1, "activation": "leaky_relu"},
           channels_last=True, tensor_kwargs={"residual": (2, 6, 8, 8)}),
    OpCase("conv_transpose2d", "depthwise gelu + residual", ((2, 4, 5, 5), (4, 1, 3, 3), (4,)),
           {"padding": 1, "groups": 4, "activation": "gelu"}, tensor_kwargs={"residual": (2, 4, 5, 5)}),
    # the aligned variant (channels_last, channel counts multiples of 16): the large tiles launch here
    OpCase("conv3d", "dense gelu + residual", ((2, 4, 4, 5, 5), (8, 4, 3, 3, 3), (8,)),
           {"padding": 1, "activation": "gelu"}, tensor_kwargs={"residual": (2, 8, 4, 5, 5)}),
    OpCase("conv_transpose3d", "stride 2 gelu + residual", ((2, 4, 3, 4, 4), (4, 6, 3, 3, 3), (6,)),
           {"stride": 2, "activation": "gelu"}, tensor_kwargs={"residual": (2, 6, 7, 9, 9)}),
    OpCase("conv3d", "depthwise gelu + residual NDHWC", ((2, 4, 5, 6, 6), (4, 1, 3, 3, 3), (4,)),
           {"padding": 1, "groups": 4, "activation": "gelu"}, channels_last=True,
           tensor_kwargs={"residual": (2, 4, 5, 6, 6)}),
    OpCase("conv2d", "dense aligned NHWC", ((2, 16, 6, 6), (32, 16, 3, 3), (32,)), {"padding": 1},
           channels_last=True),
    OpCase("conv2d", "1x1 stride 2 aligned NHWC", ((2, 32, 7, 7), (16, 32, 1, 1), None), {"stride": 2},
           channels_last=True),
    OpCase("conv_transpose2d", "stride 2 aligned NHWC", ((2, 16, 4, 4), (16, 32, 2, 2), (32,)), {"stride": 2},
           channels_last=True),
    OpCase("conv2d", "dense aligned gelu + residual NHWC", ((2, 16, 6, 6), (32, 16, 3, 3), (32,)),
           {"padding": 1, "activation": "gelu"}, channels_last=True, tensor_kwargs={"residual": (2, 32, 6, 6)}),
    # the Hopper path (TMA operands, stride 1, 16-bit NHWC): only the 16-bit dtypes reach it
    OpCase("conv2d", "Hopper path 3x3 NHWC", ((2, 32, 6, 7), (40, 32, 3, 3), (40,)), {"padding": 1},
           channels_last=True, hopper_tma=True),
    OpCase("conv2d", "Hopper path 1x1 relu(+residual) NHWC", ((2, 64, 5, 5), (64, 64, 1, 1), None),
           {"activation": "relu", "residual_before_activation": True}, channels_last=True,
           tensor_kwargs={"residual": (2, 64, 5, 5)}, hopper_tma=True),
    # pooling(input, ...)
    OpCase("max_pool2d", "3x3 stride 2", ((2, 4, 9, 9),), {"kernel_size": 3, "stride": 2, "padding": 1}),
    OpCase("max_pool2d", "2x2 indices NHWC", ((2, 4, 8, 8),), {"kernel_size": 2, "return_indices": True},
           channels_last=True),
    OpCase("max_pool2d", "3x3 stride 2 double backward", ((2, 4, 9, 9),),
           {"kernel_size": 3, "stride": 2, "padding": 1}, double_backward=True),
    OpCase("avg_pool2d", "3x3 stride 2", ((2, 4, 9, 9),), {"kernel_size": 3, "stride": 2, "padding": 1}),
    OpCase("avg_pool2d", "2x2 ceil NHWC", ((2, 4, 7, 7),),
           {"kernel_size": 2, "ceil_mode": True, "count_include_pad": False}, channels_last=True),
    OpCase("adaptive_avg_pool2d", "global", ((2, 4, 7, 7),), {"output_size": 1}),
    OpCase("adaptive_avg_pool2d", "global NHWC", ((2, 4, 7, 7),), {"output_size": 1}, channels_last=True),
    OpCase("adaptive_avg_pool2d", "3x3", ((2, 4, 8, 8),), {"output_size": 3}),
    OpCase("adaptive_max_pool2d", "3x3", ((2, 4, 8, 8),), {"output_size": 3}),
    OpCase("max_pool3d", "3x3x3 stride 2", ((2, 4, 5, 5, 5),), {"kernel_size": 3, "stride": 2, "padding": 1}),
    OpCase("max_pool3d", "2x2x2 indices NDHWC", ((2, 4, 4, 4, 4),), {"kernel_size": 2, "return_indices": True},
           channels_last=True),
    OpCase("max_pool3d", "3x3x3 stride 2 double backward", ((2, 4, 5, 5, 5),),
           {"kernel_size": 3, "stride": 2, "padding": 1}, double_backward=True),
    OpCase("avg_pool3d", "3x3x3 stride 2", ((2, 4, 5, 5, 5),), {"kernel_size": 3, "stride": 2, "padding": 1}),
    OpCase("avg_pool3d", "2x2x2 ceil NDHWC", ((2, 4, 5, 5, 5),),
           {"kernel_size": 2, "ceil_mode": True, "count_include_pad": False}, channels_last=True),
    OpCase("adaptive_avg_pool3d", "global", ((2, 4, 3, 4, 4),), {"output_size": 1}),
    OpCase("adaptive_avg_pool3d", "global NDHWC", ((2, 4, 3, 4, 4),), {"output_size": 1}, channels_last=True),
    OpCase("adaptive_avg_pool3d", "2x3x3", ((2, 4, 4, 5, 5),), {"output_size": (2, 3, 3)}),
    OpCase("adaptive_max_pool3d", "2x3x3", ((2, 4, 4, 5, 5),), {"output_size": (2, 3, 3)}),
)


@dataclass(frozen=True)
class DtypeVariant:
    """A problem dtype, and for float32 whether TF32 is allowed (``torch.backends.cudnn.allow_tf32``).
    ``declared``: the declared variants of every kernel are compiled for this dtype too. float16 leaves that
    to bfloat16 (the same 16-bit tensor-core code paths), and float32 without TF32 to float64 (the same wide
    tiles and code paths, in half the registers) and to TF32 (the kernels without ``tl.dot``); their recorded
    launches are compiled with every configuration."""

    label: str
    dtype: torch.dtype
    tf32: bool = False
    declared: bool = True


DTYPE_VARIANTS: tuple[DtypeVariant, ...] = (
    DtypeVariant("float16", torch.float16, declared=False),
    DtypeVariant("bfloat16", torch.bfloat16),
    DtypeVariant("float32+tf32", torch.float32, tf32=True),
    DtypeVariant("float32", torch.float32, tf32=False, declared=False),
    DtypeVariant("float64", torch.float64),
)

TENSOR_CORE_DTYPES = (torch.float16, torch.bfloat16)


def required_mma(arch: int) -> str:
    """The tensor-core instruction a ``tl.dot`` on 16-bit (or TF32) inputs must compile to."""
    return "HGMMA" if arch == 90 else "HMMA"


def dtype_label(dtype: torch.dtype, tf32: bool) -> str:
    name = str(dtype).removeprefix("torch.")
    return f"{name}+tf32" if tf32 else name


# --------------------------------------------------------------------------------------------------------
# Recording


@dataclass
class Recorded:
    """The launches of every case and variant, and the cases that raised."""

    records: list[LaunchRecord]
    errors: list[tuple[str, str]]  # (case and variant, error)


def _make_tensor(shape: tuple[int, ...], variant: DtypeVariant, device: torch.device, channels_last: bool
                 ) -> torch.Tensor:
    t = torch.randn(shape, dtype=variant.dtype, device=device)
    if channels_last and t.dim() in (4, 5):
        t = t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)
    return t.requires_grad_(True)


def _run_case(case: OpCase, variant: DtypeVariant, device: torch.device) -> None:
    import kernels

    op = getattr(kernels, case.op)
    tensors = [None if shape is None else _make_tensor(shape, variant, device, case.channels_last)
               for shape in case.tensors]
    keyword_tensors = {name: _make_tensor(shape, variant, device, case.channels_last)
                       for name, shape in case.tensor_kwargs.items()}
    with hopper_tma(True) if case.hopper_tma else contextlib.nullcontext():
        out = op(*tensors, **case.kwargs, **keyword_tensors)
    outs = [o for o in (out if isinstance(out, tuple | list) else (out,))
            if isinstance(o, torch.Tensor) and o.requires_grad]
    if not outs:
        return
    # laid out like the outputs, as a next layer hands them back; differentiable for a double backward
    grad_outs = [torch.randn_like(o).requires_grad_(case.double_backward) for o in outs]
    if case.double_backward:
        inputs = [t for t in (*tensors, *keyword_tensors.values()) if t is not None]
        grads = torch.autograd.grad(outs, inputs, grad_outs, create_graph=True)
        torch.autograd.backward(grads, [torch.randn_like(g) for g in grads])
    else:
        torch.autograd.backward(outs, grad_outs)


def collect_records(cases: Iterable[OpCase] = OP_CASES,
                    variants: Iterable[DtypeVariant] = DTYPE_VARIANTS) -> Recorded:
    """Run every case under every dtype variant, forward and backward, recording the launches."""
    from ._runtime import INTERPRETING

    device = torch.device("cpu" if INTERPRETING else "cuda")
    records: list[LaunchRecord] = []
    errors: list[tuple[str, str]] = []
    saved_tf32 = torch.backends.cudnn.allow_tf32
    try:
        for variant in variants:
            torch.backends.cudnn.allow_tf32 = variant.tf32
            for case in cases:
                with recording() as launches:
                    try:
                        _run_case(case, variant, device)
                    except Exception:  # noqa: BLE001  (reported as a failure row)
                        errors.append((f"{case.op} {case.label} [{variant.label}]", traceback.format_exc()))
                records.extend(launches)
    finally:
        torch.backends.cudnn.allow_tf32 = saved_tf32
    return Recorded(records, errors)


def missing_spaces(records: Iterable[LaunchRecord]) -> list[str]:
    """Registered spaces that no record launched."""
    seen = {r.space.name for r in records}
    return sorted(name for name in SPACES if name not in seen)


# --------------------------------------------------------------------------------------------------------
# Signatures

_POINTER_TYPES: dict[torch.dtype, str] = {
    torch.float16: "*fp16",
    torch.bfloat16: "*bf16",
    torch.float32: "*fp32",
    torch.float64: "*fp64",
    torch.int64: "*i64",
    torch.int32: "*i32",
    torch.int16: "*i16",
    torch.int8: "*i8",
    torch.uint8: "*u8",
    torch.bool: "*u1",  # Triton's own type for bool tensors
}


def triton_type(value: Any) -> str:
    """The Triton signature type of a runtime (non-constexpr) argument value, as the runtime derives it."""
    if isinstance(value, torch.Tensor):
        if value.dtype not in _POINTER_TYPES:
            raise TypeError(f"no Triton pointer type for a {value.dtype} tensor")
        return _POINTER_TYPES[value.dtype]
    if value is None:
        return "constexpr"
    if isinstance(value, bool):
        return "u1"
    if isinstance(value, int):
        if -(2**31) <= value < 2**31:
            return "i32"
        if -(2**63) <= value < 2**63:
            return "i64"
        return "u64"
    if isinstance(value, float):
        return "fp32"
    raise TypeError(f"no Triton type for a runtime argument of type {type(value).__name__}")


def _python_function(jit_fn: Any) -> Callable:
    return getattr(jit_fn, "fn", jit_fn)


def _param_names(jit_fn: Any) -> list[str]:
    names = getattr(jit_fn, "arg_names", None)
    return list(names) if names else list(inspect.signature(_python_function(jit_fn)).parameters)


def constexpr_params(jit_fn: Any) -> set[str]:
    """The names of a kernel's ``tl.constexpr`` parameters."""
    found = set()
    for name, p in inspect.signature(_python_function(jit_fn)).parameters.items():
        ann = p.annotation
        if ann is inspect.Parameter.empty:
            continue
        text = ann if isinstance(ann, str) else getattr(ann, "__name__", repr(ann))
        if "constexpr" in text:
            found.add(name)
    return found


def _listed_params(jit_fn: Any, names: Sequence[str], option: str) -> set[str]:
    """Parameters listed, by name or position, in a ``triton.jit`` option (``do_not_specialize_on_...``)."""
    listed = getattr(jit_fn, option, None)
    if listed is None:
        listed = getattr(jit_fn, "kwargs", {}).get(option)
    out = set()
    for item in listed or ():
        out.add(names[item] if isinstance(item, int) else item)
    return out


@dataclass(frozen=True)
class KernelSignature:
    """What Triton compiles one launch as (the configuration's blocks not included)."""

    types: tuple[tuple[str, str], ...]  # every parameter in order, "constexpr" for constexprs
    constexprs: tuple[tuple[str, Any], ...]  # the launch's constexprs and None arguments
    aligned: tuple[str, ...]  # parameters with the divisibility-by-16 hint (pointers: 16-byte aligned)


@dataclass(frozen=True)
class CompileJob:
    """One compile: a kernel (by space name), its signature, a configuration, an arch."""

    kernel: str
    signature: KernelSignature
    config: KernelConfig
    arch: int
    read_sass: bool = True  # disassemble the cubin (about as costly as the compile); not part of the key

    def key(self) -> tuple:
        sig = self.signature
        values = tuple((k, repr(v)) for k, v in sig.constexprs)
        return (self.kernel, sig.types, values, sig.aligned, self.config, self.arch)


def signature_of(record: LaunchRecord, config: KernelConfig, specialise: bool = False) -> KernelSignature:
    """The Triton signature of one launch with one configuration: integers unspecialised (the worst case), or
    with ``specialise`` as Triton's runtime specialises the recorded values (an integer equal to 1 becomes
    the constant 1, one divisible by 16 gets the divisibility hint) unless the kernel opts out."""
    fn = record.space.kernel
    names = _param_names(fn)
    constexpr_names = constexpr_params(fn)
    if len(record.args) > len(names):
        raise TypeError(f"{len(record.args)} positional arguments for {len(names)} parameters")
    values: dict[str, Any] = dict(zip(names, record.args, strict=False))
    supplied = {**record.constexprs, **dict(config.blocks)}
    for name, value in supplied.items():
        if name not in names:
            raise TypeError(f"unknown parameter {name!r}")
        if name in values:
            raise TypeError(f"parameter {name!r} given twice")
        values[name] = value
    defaults = inspect.signature(_python_function(fn)).parameters
    unaligned = _listed_params(fn, names, "do_not_specialize_on_alignment")
    unspecialised = _listed_params(fn, names, "do_not_specialize")
    blocks = dict(config.blocks)
    signature: dict[str, str] = {}
    constexprs: dict[str, Any] = {}
    aligned: list[str] = []
    for name in names:
        if name not in values:
            default = defaults[name].default
            if default is inspect.Parameter.empty:
                raise TypeError(f"missing argument for parameter {name!r}")
            values[name] = default
        value = values[name]
        if name in constexpr_names or value is None:
            signature[name] = "constexpr"
            if name not in blocks:
                is_wrapped = type(value).__name__ == "constexpr"  # a tl.constexpr passed explicitly
                constexprs[name] = value.value if is_wrapped else value
            continue
        ty = triton_type(value)
        if specialise and type(value) is int and name not in unspecialised:
            if value == 1:
                signature[name] = "constexpr"
                constexprs[name] = 1
                continue
            if value % 16 == 0 and name not in unaligned:
                aligned.append(name)
        signature[name] = ty
        if ty.startswith("*") and name not in unaligned and value.data_ptr() % 16 == 0:
            aligned.append(name)
    return KernelSignature(tuple(signature.items()), tuple(constexprs.items()), tuple(aligned))


# --------------------------------------------------------------------------------------------------------
# Results


@dataclass
class Row:
    """One compile (or one failure that is not a compile: a case that raised, a space never launched)."""

    kernel: str
    dtypes: str
    config: str
    arch: int | None
    variant: str = ""  # the record's constexprs, to tell apart compiles of one kernel and config
    regs: int | None = None
    shared: int | None = None  # dynamic shared memory, bytes
    spill: int | None = None  # stack + local memory, bytes
    mma: str = ""  # tensor-core instructions in the SASS
    loop: LoopMix | None = None  # one trip of the main loop (kernels.sass)
    seconds: float = 0.0  # CPU seconds of the compile (Triton, ptxas, cuobjdump)
    problems: list[str] = field(default_factory=list)
    error: str = ""

    @property
    def failed(self) -> bool:
        return bool(self.problems)


def config_label(config: KernelConfig) -> str:
    blocks = " ".join(f"{k}={v}" for k, v in config.blocks)
    return f"{blocks} w{config.num_warps} s{config.num_stages}"


def _value_label(value: Any) -> str:
    return str(value) if not isinstance(value, str) else repr(value)


@dataclass
class _Planned:
    job: CompileJob
    space: KernelSpace
    dtypes: set[tuple[torch.dtype, bool]] = field(default_factory=set)


def distinct_variants(records: Iterable[LaunchRecord]) -> Iterator[LaunchRecord]:
    """The first recorded launch of each (kernel, dtype, TF32, variant): launches that differ only in value
    constexprs (the kernel size) or argument values compile to the same code paths."""
    seen: set[tuple] = set()
    for record in records:
        key = (record.space.name, record.dtype, record.tf32, record.variant)
        if key not in seen:
            seen.add(key)
            yield record


def largest_config(space: KernelSpace, dtype: torch.dtype, tf32: bool, constexprs: Mapping[str, Any]
                   ) -> KernelConfig:
    """The configuration of a variant taken as the hardest to compile: the largest product of block sizes
    (then stages and warps), which for tiled kernels means the most registers and shared memory."""
    return max(space.for_dtype(dtype, tf32, constexprs),
               key=lambda c: (math.prod(v for _, v in c.blocks), c.num_stages, c.num_warps))


def declared_variant_records(records: Sequence[LaunchRecord], variants: Iterable[DtypeVariant] = DTYPE_VARIANTS
                             ) -> tuple[list[tuple[LaunchRecord, KernelConfig]], list[Row]]:
    """For every registered space, dtype variant and covering variant the space declares
    (:meth:`KernelSpace.covering_variants`): a launch to compile it from, with the configuration to compile
    it with (:func:`largest_config`). The launch is a recorded one of the same space and dtype whose variant
    agrees with the declared one on the most axes (so that arguments whose type follows a variant, such as
    max pooling's index tensor, have it), with the declared variant's constexprs put in. Rows for declared
    variants that no recorded launch can stand for."""
    by_space: dict[tuple[str, torch.dtype, bool], list[LaunchRecord]] = {}
    for record in records:
        by_space.setdefault((record.space.name, record.dtype, record.tf32), []).append(record)
    out: list[tuple[LaunchRecord, KernelConfig]] = []
    rows: list[Row] = []
    for name, space in SPACES.items():
        for variant in (v for v in variants if v.declared):
            tf32 = variant.tf32 and space.uses_dot
            candidates = by_space.get((name, variant.dtype, tf32), [])
            for declared in space.covering_variants(variant.dtype, tf32, lightest=False):
                if not candidates:
                    rows.append(Row(name, dtype_label(variant.dtype, tf32), "", None, str(dict(declared)),
                                    problems=["declared variant, but no op case launches this kernel in this dtype"]))
                    continue
                wanted = dict(declared)
                base = max(candidates, key=lambda r: sum(r.constexprs.get(k) == v for k, v in wanted.items()))
                constexprs = {**base.constexprs, **wanted}
                record = LaunchRecord(space, base.args, constexprs, variant.dtype, tf32)
                out.append((record, largest_config(space, variant.dtype, tf32, constexprs)))
    return out, rows


def plan(records: Iterable[LaunchRecord], archs: Sequence[int], kernels: Sequence[str] | None = None
         ) -> tuple[list[_Planned], list[Row]]:
    """Distinct compile jobs (with the dtypes each serves): the first recorded launch of each variant with
    every configuration that variant may launch, and every declared covering variant of every space with its
    largest configuration (:func:`declared_variant_records`); and rows for what could not be planned."""
    records = list(distinct_variants(records))
    declared, rows = declared_variant_records(records)
    if kernels:
        rows = [r for r in rows if r.kernel in kernels]
    planned: dict[tuple, _Planned] = {}
    bad: set[tuple] = set()
    work = [(r, c) for r in records for c in r.space.for_dtype(r.dtype, r.tf32, r.constexprs)] + declared
    for record, config in work:
        space = record.space
        if kernels and space.name not in kernels:
            continue
        try:
            signature = signature_of(record, config)
        except Exception as exc:  # noqa: BLE001  (reported as a failure row)
            key = (space.name, config, str(exc))
            if key not in bad:
                bad.add(key)
                rows.append(Row(space.name, dtype_label(record.dtype, record.tf32), config_label(config),
                                None, problems=[f"bad launch arguments: {exc}"], error=str(exc)))
            continue
        for arch in archs:
            if space.hopper_path and arch != 90:
                continue  # (TMA and warpgroup MMA are sm_90's)
            job = CompileJob(space.name, signature, config, arch)
            entry = planned.setdefault(job.key(), _Planned(job, space))
            entry.dtypes.add((record.dtype, record.tf32))
    return list(planned.values()), rows


def _dtype_order(item: tuple[torch.dtype, bool]) -> int:
    for i, v in enumerate(DTYPE_VARIANTS):
        if (v.dtype, v.tf32) == item:
            return i
    return len(DTYPE_VARIANTS)


def _judge(entry: _Planned, result: dict[str, Any]) -> Row:
    job = entry.job
    dtypes = sorted(entry.dtypes, key=_dtype_order)
    variant = " ".join(f"{k}={_value_label(v)}" for k, v in job.signature.constexprs)
    row = Row(job.kernel, ", ".join(dtype_label(*d) for d in dtypes), config_label(job.config), job.arch,
              variant, seconds=result.get("seconds", 0.0))
    if "error" in result:
        row.problems.append("compile failed: " + result["error"].strip().splitlines()[-1][:160])
        row.error = result["error"]
        return row
    row.regs, row.shared, row.spill = result["regs"], result["shared"], result["spill"]
    row.mma, row.loop = result["mma"], result["loop"]
    if row.spill:
        row.problems.append(f"spills {row.spill} bytes")
    limit = SHARED_LIMIT.get(job.arch)
    if limit is not None and row.shared is not None and row.shared > limit:
        row.problems.append(f"shared memory {row.shared} B over the sm_{job.arch} limit {limit} B")
    needs_tensor_cores = entry.space.uses_dot and any(
        dtype in TENSOR_CORE_DTYPES or (dtype == torch.float32 and tf32) for dtype, tf32 in dtypes
    )
    want = required_mma(job.arch)
    if needs_tensor_cores and want not in result["mma_opcodes"]:
        row.problems.append(f"no {want} on sm_{job.arch}")
    if job.read_sass and "ptx_opcodes" in result:
        in_sass = CHECKED_OPCODES.intersection(result["opcodes"])
        if in_sass != set(result["ptx_opcodes"]):
            row.problems.append(f"PTX gives {sorted(result['ptx_opcodes'])} but the SASS has {sorted(in_sass)}: "
                                "the PTX rule for compiles whose SASS is not read is wrong")
    if entry.space.hopper_path and job.arch == 90:
        for opcode, what in (("UTMALDG", "TMA load"), ("HGMMA", "warpgroup MMA")):
            if opcode not in result["opcodes"]:
                row.problems.append(f"Hopper-path kernel without a {what} ({opcode}) on sm_90")
    return row


# --------------------------------------------------------------------------------------------------------
# Compiling (in worker processes, with the interpreter off)


def cuobjdump_path() -> Path:
    """The ``cuobjdump`` shipped with Triton's NVIDIA backend."""
    import triton

    return Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"


_RES_USAGE = re.compile(r"REG:(\d+)\s+STACK:(\d+)\s+SHARED:(\d+)\s+LOCAL:(\d+)")
_MMA = re.compile(r"\b(HGMMA|HMMA|DMMA|IMMA|IGMMA|QGMMA)((?:\.\w+)*)")
# PTX instructions and the SASS opcodes ptxas turns them into, one to one: what the checks need to know of a
# cubin whose SASS is not read.
_PREDICATE = r"^\s*(?:@!?%\w+\s+)?"  # a line's start and an instruction's guard predicate
_PTX_OPCODES = (
    (re.compile(_PREDICATE + r"(wgmma\.mma_async\S*)", re.M), "HGMMA"),
    (re.compile(_PREDICATE + r"(mma\.sync\S*\.f64\S*)", re.M), "DMMA"),
    (re.compile(_PREDICATE + r"(mma\.sync\S*)", re.M), "HMMA"),
    (re.compile(_PREDICATE + r"(cp\.async\.bulk\.tensor\.\d+d\.shared::\w+\.global\S*)", re.M), "UTMALDG"),
)
CHECKED_OPCODES = frozenset(opcode for _, opcode in _PTX_OPCODES)


def ptx_opcodes(ptx: str) -> dict[str, str]:
    """The checked SASS opcodes (:data:`CHECKED_OPCODES`) a PTX text compiles to, each with the first PTX
    instruction that gives it."""
    out: dict[str, str] = {}
    claimed: set[int] = set()
    for pattern, opcode in _PTX_OPCODES:
        for match in pattern.finditer(ptx):
            if match.start() not in claimed:
                claimed.add(match.start())
                out.setdefault(opcode, match.group(1))
    return out


@cache
def _worker_kernels() -> dict[str, Any]:
    warnings.filterwarnings("ignore", message=".*TRITON_DEFAULT_FP_FUSION.*")
    import triton

    import kernels  # noqa: F401  (registers every space)

    from ._runtime import INTERPRETING

    if INTERPRETING:
        raise RuntimeError("compile worker started with TRITON_INTERPRET on")
    out = {}
    for name, space in SPACES.items():
        if not isinstance(space.kernel, triton.runtime.JITFunction):
            raise RuntimeError(f"{name}: kernel is {type(space.kernel).__name__}, not a JITFunction")
        out[name] = space.kernel
    return out


def _cuobjdump(flag: str, path: str) -> str:
    done = subprocess.run([str(cuobjdump_path()), flag, path], capture_output=True, text=True, check=True)
    return done.stdout


def _cpu_seconds() -> float:
    """CPU time of this process and its finished children (ptxas, cuobjdump)."""
    import resource

    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def compile_job(job: CompileJob) -> dict[str, Any]:
    """Compile one job and read the cubin: registers, shared memory, spills, MMA instructions."""
    start = _cpu_seconds()
    try:
        import triton
        from triton.backends.compiler import GPUTarget
        from triton.compiler import ASTSource

        fn = _worker_kernels()[job.kernel]
        names = list(fn.arg_names)
        sig = job.signature
        constexprs = {**dict(sig.constexprs), **dict(job.config.blocks)}
        attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in sig.aligned}
        src = ASTSource(fn, dict(sig.types), constexprs=constexprs, attrs=attrs)
        options = {"num_warps": job.config.num_warps, "num_stages": job.config.num_stages}
        compiled = triton.compile(src, target=GPUTarget("cuda", job.arch, 32), options=options)
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "kernel.cubin")
            with open(path, "wb") as f:
                f.write(compiled.asm["cubin"])
            res = _cuobjdump("-res-usage", path)
            sass = _cuobjdump("-sass", path) if job.read_sass else None
        usage = [tuple(int(x) for x in m) for m in _RES_USAGE.findall(res)]
        if not usage:
            raise RuntimeError(f"no resource usage in cuobjdump output:\n{res}")
        from_ptx = ptx_opcodes(compiled.asm["ptx"])
        result = {
            "regs": max(u[0] for u in usage),
            "spill": max(u[1] + u[3] for u in usage),
            "shared": int(compiled.metadata.shared),
            "ptx_opcodes": sorted(from_ptx),
        }
        if sass is None:
            mma = [from_ptx[op] for op in ("HGMMA", "HMMA", "DMMA") if op in from_ptx]
            result.update(mma=" ".join(mma), mma_opcodes=sorted(set(from_ptx) - {"UTMALDG"}),
                          opcodes=sorted(from_ptx), loop=None)
        else:
            instructions = parse_sass(sass)
            first: dict[str, str] = {}
            for opcode, modifiers in _MMA.findall(sass):
                first.setdefault(opcode, opcode + modifiers)
            result.update(mma=" ".join(first.values()), mma_opcodes=sorted(first),
                          opcodes=sorted({i.opcode for i in instructions}), loop=main_loop(instructions))
        return {**result, "seconds": _cpu_seconds() - start}
    except Exception as exc:  # noqa: BLE001  (returned as a failure row)
        text = str(exc) if str(exc) else traceback.format_exc()
        return {"error": f"{type(exc).__name__}: {text}", "seconds": _cpu_seconds() - start}


def _run_jobs(jobs: Sequence[CompileJob], workers: int) -> list[dict[str, Any]]:
    """Compile in a pool of fresh (spawned) processes that import the package with the interpreter off:
    kernels decorated under the interpreter cannot be compiled."""
    results: list[dict[str, Any] | None] = [None] * len(jobs)
    if not jobs:
        return []
    previous = os.environ.get("TRITON_INTERPRET")
    os.environ["TRITON_INTERPRET"] = "0"  # inherited by the spawned workers
    try:
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=max(1, workers), mp_context=context) as pool:
            futures = {pool.submit(compile_job, job): i for i, job in enumerate(jobs)}
            for future in as_completed(futures):
                i = futures[future]
                try:
                    results[i] = future.result()
                except BrokenProcessPool as exc:
                    results[i] = {"error": f"worker process died: {exc}"}
    finally:
        if previous is None:
            os.environ.pop("TRITON_INTERPRET", None)
        else:
            os.environ["TRITON_INTERPRET"] = previous
    return [r if r is not None else {"error": "not compiled"} for r in results]


# --------------------------------------------------------------------------------------------------------
# The check


def sass_once_per_variant(planned: Sequence[_Planned], per: str = "variant") -> list[_Planned]:
    """Which compiles have their SASS read (the disassembler costs about as much CPU as the compile): with
    ``per="variant"``, on sm_90 the first configuration of each variant, on other archs the first of each
    kernel and dtype; with ``per="kernel"``, the first of each kernel and dtype on every arch. The others are
    judged from their PTX (:func:`ptx_opcodes`), and every compile whose SASS is read checks that rule
    against it."""
    seen: set[tuple] = set()
    out = []
    for entry in planned:
        job = entry.job
        key = ((job.kernel, job.arch, job.signature) if job.arch == 90 and per == "variant"
               else (job.kernel, job.arch, frozenset(entry.dtypes)))
        out.append(_Planned(replace(job, read_sass=key not in seen), entry.space, entry.dtypes))
        seen.add(key)
    return out


def check(archs: Sequence[int] = (90, 80), kernels: Sequence[str] | None = None, workers: int | None = None,
          sass: str = "variant", recorded: Recorded | None = None) -> list[Row]:
    """Record every op, compile every kernel and configuration for ``archs``; one row per compile plus one
    per case that raised and per registered space never launched. Failures have ``row.failed``.

    ``kernels``: only these registered spaces. ``workers``: compile processes (default: CPU count).
    ``sass``: ``"all"`` reads the SASS of every compile; ``"variant"`` and ``"kernel"`` once per variant or per
    kernel and dtype (:func:`sass_once_per_variant`). ``recorded``: the op cases' launches, when already
    recorded (:func:`collect_records`).
    """
    for arch in archs:
        if arch not in SHARED_LIMIT:
            raise ValueError(f"unsupported arch {arch}; known: {sorted(SHARED_LIMIT)}")
    if recorded is None:
        recorded = collect_records()
    rows: list[Row] = [
        Row("(op case)", "", where, None, problems=["op raised under recording"], error=error)
        for where, error in recorded.errors
    ]
    for name in missing_spaces(recorded.records):
        if not kernels or name in kernels:
            rows.append(Row(name, "", "", None, problems=["registered but never launched by any op case"]))
    if kernels:
        for name in kernels:
            if name not in SPACES:
                rows.append(Row(name, "", "", None, problems=["no such registered space"]))
    planned, bad_rows = plan(recorded.records, archs, kernels)
    rows.extend(bad_rows)
    if sass != "all":
        planned = sass_once_per_variant(planned, sass)
    results = _run_jobs([p.job for p in planned], workers or os.cpu_count() or 1)
    compiled = [_judge(entry, result) for entry, result in zip(planned, results, strict=True)]
    order = {name: i for i, name in enumerate(SPACES)}
    compiled.sort(key=lambda r: (order.get(r.kernel, len(order)), r.kernel, r.dtypes, r.variant, r.config,
                                 -(r.arch or 0)))
    return rows + compiled


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table."""
    header = ("kernel", "dtype", "config", "arch", "regs", "shared", "spill", "tensor core", "main loop",
              "constexprs", "cpu s", "status")

    def cell(v: Any) -> str:
        return "-" if v is None or v == "" else str(v)

    body = [
        (r.kernel, r.dtypes, r.config, f"sm_{r.arch}" if r.arch else "", cell(r.regs), cell(r.shared),
         cell(r.spill), cell(r.mma), r.loop.label() if r.loop else "-", r.variant,
         f"{r.seconds:.1f}" if r.arch else "",
         "FAIL: " + "; ".join(r.problems) if r.failed else "ok")
        for r in rows
    ]
    widths = [max(len(str(x)) for x in col) for col in zip(header, *body, strict=True)]
    lines = ["  ".join(str(x).ljust(w) for x, w in zip(line, widths, strict=True)).rstrip()
             for line in (header, *body)]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_failures(rows: Sequence[Row], max_chars: int = 4000) -> str:
    """Each failing row with its problems and, for errors, the message."""
    out = []
    for r in rows:
        if not r.failed:
            continue
        arch = f"sm_{r.arch}" if r.arch else ""
        where = " ".join(x for x in (r.kernel, r.dtypes, r.config, arch, r.variant) if x)
        out.append(f"FAIL {where}: {'; '.join(r.problems)}")
        if r.error:
            out.append("    " + r.error[:max_chars].replace("\n", "\n    "))
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    """Command-line entry: print the table, return 1 when any row fails."""
    parser = argparse.ArgumentParser(prog="python -m kernels.aot", description=__doc__.split("\n\n")[0])
    parser.add_argument("--arch", type=int, action="append", choices=sorted(SHARED_LIMIT),
                        help="compute capability, e.g. 90 or 80 (repeatable; default: 90 and 80)")
    parser.add_argument("--kernel", action="append", help="only this registered space (repeatable)")
    parser.add_argument("--workers", type=int, default=None, help="compile processes (default: CPU count)")
    parser.add_argument("--sass", choices=("all", "variant", "kernel"), default="variant",
                        help="whose SASS is read: every compile, the first of each variant (sm_90; default) or of "
                             "each kernel and dtype; the rest are judged from their PTX")
    args = parser.parse_args(argv)
    start = time.perf_counter()
    rows = check(tuple(args.arch or (90, 80)), args.kernel, args.workers, args.sass)
    elapsed = time.perf_counter() - start
    print(format_table(rows))
    failures = [r for r in rows if r.failed]
    compiles = [r for r in rows if r.arch is not None]
    cpu = sum(r.seconds for r in compiles)
    if failures:
        print("\n" + format_failures(failures))
    print(f"\n{len(compiles)} compiles of {len({r.kernel for r in compiles})} kernels in {elapsed:.1f} s "
          f"({cpu:.1f} CPU s of compiling); {len(failures)} failing rows")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
