"""Mutation check: plausible kernel bugs, planted one at a time, each of which the fast tests must catch.

Each :class:`Mutant` replaces one exact piece of source under ``kernels/`` (it must occur exactly once) by a
wrong one: a dropped channel block or tile, an off-by-one mask or loop bound, a wrong stride phase, a broken
split-K reduction, swapped strides in the aligned variant, a missing epilogue term. For each mutant the
runner copies the package and the tests to a temporary directory, plants the bug there and runs the part of
the fast subset that exercises the mutated kernel (``tests/test_coverage.py`` filtered to that kernel, or a
named test of ``tests/test_pool2d.py``); the mutant is caught when that run fails. It prints one row per
mutant and the mutation score, and exits non-zero unless every mutant is caught.

    python -m tests.mutants [--jobs 2] [--only NAME ...] [--list]

Every kernel file in ``kernels/jit/`` has mutants (``tests/test_mutants.py`` checks that, and that every
mutant still applies to today's source, in CI; the full run takes about ten minutes on two cores and is a
documented command rather than a CI step).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def coverage_of(kernel: str) -> tuple[str, ...]:
    """The coverage cases of one kernel: every variant and configuration of it."""
    return ("tests/test_coverage.py", "-k", kernel)


# The flat reduction's cases (forward and weight gradient against torch, with the launches checked).
FLAT_2D = ("tests/test_flat_reduction.py", "-k", "conv2d or conv_transpose2d or gradcheck")
FLAT_3D = ("tests/test_flat_reduction.py", "-k", "conv3d")


@dataclass(frozen=True)
class Mutant:
    """Replace ``find`` (exactly one occurrence) by ``replace`` in ``path``; ``tests`` must then fail."""

    name: str
    path: str
    find: str
    replace: str
    tests: tuple[str, ...]

    def apply(self, source: str) -> str:
        count = source.count(self.find)
        if count != 1:
            raise ValueError(f"mutant {self.name!r}: its text occurs {count} times in {self.path}, not once")
        return source.replace(self.find, self.replace)


JIT = "kernels/jit/"
MUTANTS: tuple[Mutant, ...] = (
    # --- kernels/jit/conv2d.py ------------------------------------------------------------------------
    Mutant("fwd: only the first channel block", JIT + "conv2d.py",
           "c_blocks = tl.cdiv(CG, BLOCK_K)", "c_blocks = 1", coverage_of("conv2d_fwd_kernel")),
    Mutant("fwd: every filter tile computes the first", JIT + "conv2d.py",
           "    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)\n    n_mask = offs_n < KG",
           "    offs_n = tl.arange(0, BLOCK_N)\n    n_mask = offs_n < KG", coverage_of("conv2d_fwd_kernel")),
    Mutant("fwd: off by one in the row mask", JIT + "conv2d.py",
           "pix_ok = m_mask & (h >= 0) & (h < H)", "pix_ok = m_mask & (h >= 1) & (h < H)",
           coverage_of("conv2d_fwd_kernel")),
    Mutant("fwd: output column stored at the row index", JIT + "conv2d.py",
           "(pq // Q).to(tl.int64) * syp + (pq % Q).to(tl.int64) * syq",
           "(pq // Q).to(tl.int64) * syp + (pq // Q).to(tl.int64) * syq", coverage_of("conv2d_fwd_kernel")),
    Mutant("fwd: group offset missing from the weight's filters", JIT + "conv2d.py",
           "k_idx = group * KG + offs_n\n    w_cols = w_ptr + k_idx.to(tl.int64) * swk",
           "k_idx = group * KG + offs_n\n    w_cols = w_ptr + offs_n.to(tl.int64) * swk",
           coverage_of("conv2d_fwd_kernel")),
    Mutant("dgrad: only the first filter block", JIT + "conv2d.py",
           "k_blocks = tl.cdiv(KG, BLOCK_K)", "k_blocks = 1", coverage_of("conv2d_dgrad_kernel")),
    Mutant("dgrad: column phase from the row stride", JIT + "conv2d.py",
           "    phase_w = pid_gp % stride_w\n\n    offs_m",
           "    phase_w = pid_gp % stride_h\n\n    offs_m", coverage_of("conv2d_dgrad_kernel")),
    Mutant("dgrad: tap test ignores the column phase", JIT + "conv2d.py",
           "if (num_h % stride_h == 0) & (num_w % stride_w == 0):", "if num_h % stride_h == 0:",
           coverage_of("conv2d_dgrad_kernel")),
    Mutant("dgrad: every channel tile computes the first", JIT + "conv2d.py",
           "    offs_n = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)\n    n_mask = offs_n < CG",
           "    offs_n = tl.arange(0, BLOCK_N)\n    n_mask = offs_n < CG", coverage_of("conv2d_dgrad_kernel")),
    Mutant("wgrad: channel tiles ignored", JIT + "conv2d.py",
           "pid_n = pid_tile % n_tiles", "pid_n = pid_tile // n_tiles", coverage_of("conv2d_wgrad_kernel")),
    Mutant("wgrad: splits start a block apart", JIT + "conv2d.py",
           "pix_start = split.to(tl.int64) * PIX_PER_SPLIT", "pix_start = split.to(tl.int64) * BLOCK_K",
           coverage_of("conv2d_wgrad_kernel")),
    Mutant("wgrad: x column misses the padding", JIT + "conv2d.py",
           "off_w = s * dil_w - pad_w", "off_w = s * dil_w", coverage_of("conv2d_wgrad_kernel")),
    Mutant("wgrad: column step taken in the row radix", JIT + "conv2d.py",
           "dq = BLOCK_K % Q ", "dq = BLOCK_K % P ", coverage_of("conv2d_wgrad_kernel")),
    Mutant("wgrad: column carry one late", JIT + "conv2d.py",
           "carry_q = q >= Q", "carry_q = q > Q", coverage_of("conv2d_wgrad_kernel")),
    Mutant("wgrad: column carry not added to the row", JIT + "conv2d.py",
           "p += dp + carry_q.to(tl.int32)", "p += dp", coverage_of("conv2d_wgrad_kernel")),
    Mutant("wgrad: aligned dy offsets not wrapped to the next image", JIT + "conv2d.py",
           "dy_off += tl.where(carry_q, dy_step_q, dy_step) + tl.where(carry_p, dy_wrap_p, 0)",
           "dy_off += tl.where(carry_q, dy_step_q, dy_step)", coverage_of("conv2d_wgrad_kernel")),
    Mutant("wgrad: general variant's image carry dropped", JIT + "conv2d.py",
           "n += dn + carry_p.to(tl.int32)", "n += dn", coverage_of("conv2d_wgrad_kernel")),
    Mutant("fwd flat: row tap decoded with the column count", JIT + "conv2d.py",
           "            r = kk % (R * S) // S\n", "            r = kk % (R * S) % S\n", FLAT_2D),
    Mutant("fwd flat: column tap's mask misses the dilation", JIT + "conv2d.py",
           "w = w_base[:, None] + (s * dil_w)[None, :]", "w = w_base[:, None] + s[None, :]", FLAT_2D),
    Mutant("fwd flat: the last partial reduction block dropped", JIT + "conv2d.py",
           "for t in range(0, tl.cdiv(depth, BLOCK_K)):", "for t in range(0, depth // BLOCK_K):", FLAT_2D),
    Mutant("wgrad flat: row tap's x offset misses the dilation", JIT + "conv2d.py",
           "col_h = offs_c % (R * S) // S * dil_h - pad_h", "col_h = offs_c % (R * S) // S - pad_h", FLAT_2D),
    Mutant("wgrad flat: column tap's x offset misses the padding", JIT + "conv2d.py",
           "col_w = offs_c % S * dil_w - pad_w", "col_w = offs_c % S * dil_w", FLAT_2D),
    Mutant("wgrad flat: partial rows a channel apart", JIT + "conv2d.py",
           "out_rel = (tl.arange(0, BLOCK_M).to(tl.int64) * CG * (R * S))[:, None] + tl.arange(0, BLOCK_N)[None, :]",
           "out_rel = (tl.arange(0, BLOCK_M).to(tl.int64) * CG)[:, None] + tl.arange(0, BLOCK_N)[None, :]", FLAT_2D),
    Mutant("wgrad flat launcher: columns count the channels only", "kernels/ops/conv2d.py",
           "cols, taps = (CG * g.R * g.S, 1) if flat", "cols, taps = (CG, 1) if flat", FLAT_2D),
    # --- kernels/jit/conv3d.py ------------------------------------------------------------------------
    Mutant("conv3d fwd: only the first channel block", JIT + "conv3d.py",
           "c_blocks = tl.cdiv(CG, BLOCK_K)", "c_blocks = 1", coverage_of("conv3d_fwd_kernel")),
    Mutant("conv3d fwd: depth padding missing", JIT + "conv3d.py",
           "d_base = z * stride_d - pad_d", "d_base = z * stride_d", coverage_of("conv3d_fwd_kernel")),
    Mutant("conv3d fwd: output depth stored with the row stride", JIT + "conv3d.py",
           "z.to(tl.int64) * syz", "z.to(tl.int64) * syp", coverage_of("conv3d_fwd_kernel")),
    Mutant("conv3d fwd: group offset missing from the weight's filters", JIT + "conv3d.py",
           "w_cols = w_ptr + k_idx.to(tl.int64) * swk", "w_cols = w_ptr + offs_n.to(tl.int64) * swk",
           coverage_of("conv3d_fwd_kernel")),
    Mutant("conv3d dgrad: tap test ignores the depth phase", JIT + "conv3d.py",
           "if (num_d % stride_d == 0) & (num_h % stride_h == 0)", "if (num_h % stride_h == 0)",
           coverage_of("conv3d_dgrad_kernel")),
    Mutant("conv3d dgrad: depth phase decoded with the row stride twice", JIT + "conv3d.py",
           "phase_d = phase // (stride_h * stride_w)", "phase_d = phase // (stride_h * stride_h)",
           coverage_of("conv3d_dgrad_kernel")),
    Mutant("conv3d dgrad: only the first filter block", JIT + "conv3d.py",
           "k_blocks = tl.cdiv(KG, BLOCK_K)", "k_blocks = 1", coverage_of("conv3d_dgrad_kernel")),
    Mutant("conv3d dgrad: off by one in the column bound", JIT + "conv3d.py",
           "(l_ < Q - dq)", "(l_ <= Q - dq)", coverage_of("conv3d_dgrad_kernel")),
    Mutant("conv3d wgrad: splits start a block apart", JIT + "conv3d.py",
           "    pix_start = split.to(tl.int64) * PIX_PER_SPLIT\n    count = tl.minimum(tl.maximum(N * Z * P * Q",
           "    pix_start = split.to(tl.int64) * BLOCK_K\n    count = tl.minimum(tl.maximum(N * Z * P * Q",
           coverage_of("conv3d_wgrad_kernel")),
    Mutant("conv3d wgrad: x depth misses the padding", JIT + "conv3d.py",
           "off_d = t * dil_d - pad_d", "off_d = t * dil_d", coverage_of("conv3d_wgrad_kernel")),
    Mutant("conv3d wgrad: row carry not added to the plane", JIT + "conv3d.py",
           "z += dz + carry_p.to(tl.int32)", "z += dz", coverage_of("conv3d_wgrad_kernel")),
    Mutant("conv3d wgrad: plane carry one late", JIT + "conv3d.py",
           "carry_z = z >= Z", "carry_z = z > Z", coverage_of("conv3d_wgrad_kernel")),
    Mutant("conv3d wgrad: plane step taken in the row radix", JIT + "conv3d.py",
           "dz = BLOCK_K // (P * Q) % Z", "dz = BLOCK_K // Q % Z", coverage_of("conv3d_wgrad_kernel")),
    Mutant("conv3d wgrad: channel tiles ignored", JIT + "conv3d.py",
           "pid_n = pid_tile % n_tiles", "pid_n = pid_tile // n_tiles", coverage_of("conv3d_wgrad_kernel")),
    Mutant("conv3d fwd epilogue: residual read from the output", JIT + "conv3d.py",
           "store_epilogue(acc, y_ptr, res_ptr, preact_ptr, y_offs,",
           "store_epilogue(acc, y_ptr, y_ptr, preact_ptr, y_offs,", coverage_of("conv3d_fwd_kernel")),
    Mutant("conv3d dgrad epilogue: leaky_relu's slope dropped", JIT + "conv3d.py",
           "store_epilogue(acc, dx_ptr, res_ptr, preact_ptr, dx_offs, m_mask[:, None] & n_mask[None, :],\n"
           "                   ACTIVATION, NEGATIVE_SLOPE,",
           "store_epilogue(acc, dx_ptr, res_ptr, preact_ptr, dx_offs, m_mask[:, None] & n_mask[None, :],\n"
           "                   ACTIVATION, 0.0,", coverage_of("conv3d_dgrad_kernel")),
    Mutant("conv3d wgrad launcher: split length rounded down to whole blocks", "kernels/ops/conv3d.py",
           'pix_per_split = cdiv(cdiv(max(npix, 1), split), config["BLOCK_K"]) * config["BLOCK_K"]',
           'pix_per_split = cdiv(max(npix, 1), split) // config["BLOCK_K"] * config["BLOCK_K"]',
           coverage_of("conv3d_wgrad_kernel")),
    Mutant("conv3d fwd flat: depth tap decoded without the plane", JIT + "conv3d.py",
           "t = kk % (T * R * S) // (R * S)", "t = kk // (R * S)", FLAT_3D),
    Mutant("conv3d fwd flat: row tap's x offset misses the dilation", JIT + "conv3d.py",
           "(r * dil_h).to(tl.int64) * sxh\n                     + (s * dil_w)",
           "r.to(tl.int64) * sxh\n                     + (s * dil_w)", FLAT_3D),
    Mutant("conv3d wgrad flat: depth tap's x offset misses the padding", JIT + "conv3d.py",
           "col_d = offs_c % (T * R * S) // (R * S) * dil_d - pad_d", "col_d = offs_c % (T * R * S) // (R * S) * dil_d",
           FLAT_3D),
    Mutant("conv3d wgrad flat: partial rows without the depth taps", JIT + "conv3d.py",
           "* (CG * (T * R * S)) + offs_c.to(tl.int64)[None, :]", "* (CG * (R * S)) + offs_c.to(tl.int64)[None, :]",
           FLAT_3D),
    # --- kernels/jit/depthwise.py ---------------------------------------------------------------------
    Mutant("depthwise fwd: weight not advanced along the row (unmasked path)", JIT + "depthwise.py",
           "                w_tap += sws\n            x_row += x_step_h\n", "            x_row += x_step_h\n",
           coverage_of("depthwise_fwd_kernel")),
    Mutant("depthwise fwd: weight not advanced along the row (masked path)", JIT + "depthwise.py",
           "                w_tap += sws\n                iw += dil_w\n", "                iw += dil_w\n",
           coverage_of("depthwise_fwd_kernel")),
    Mutant("depthwise fwd: input channel k % mult", JIT + "depthwise.py",
           "x_win = (x_ptr + n * sxn + (k // mult).to(tl.int64)[None, :] * sxc",
           "x_win = (x_ptr + n * sxn + (k % mult).to(tl.int64)[None, :] * sxc",
           coverage_of("depthwise_fwd_kernel")),
    Mutant("depthwise fwd: unmasked path for tiles whose windows start in the left padding",
           JIT + "depthwise.py", "(h_last < H) & (w_first >= 0) & (w_last < W)", "(h_last < H) & (w_last < W)",
           coverage_of("depthwise_fwd_kernel")),
    Mutant("depthwise fwd: masked path's row bound not advanced", JIT + "depthwise.py",
           "            ih += dil_h\n", "", coverage_of("depthwise_fwd_kernel")),
    Mutant("depthwise fwd: tile row from the column tiles", JIT + "depthwise.py",
           "    qb = pid_pix % tiles_q\n    rest = pid_pix // tiles_q\n    pb = rest % tiles_p",
           "    qb = pid_pix % tiles_q\n    rest = pid_pix // tiles_q\n    pb = rest % tiles_q",
           coverage_of("depthwise_fwd_kernel")),
    Mutant("depthwise dgrad: column phase tested with the row stride", JIT + "depthwise.py",
           "if (th % stride_h == 0) & (tw % stride_w == 0):", "if (th % stride_h == 0) & (tw % stride_h == 0):",
           coverage_of("depthwise_dgrad_kernel")),
    Mutant("depthwise dgrad: row bound tested against Q", JIT + "depthwise.py",
           "(p.to(tl.uint32, bitcast=True) < p_lim)", "(p.to(tl.uint32, bitcast=True) < q_lim)",
           coverage_of("depthwise_dgrad_kernel")),
    Mutant("depthwise dgrad: last multiplier channel dropped", JIT + "depthwise.py",
           "for m in range(mult):", "for m in range(mult - 1):", coverage_of("depthwise_dgrad_kernel")),
    Mutant("depthwise wgrad: splits overlap", JIT + "depthwise.py",
           "t_start = split * tiles_per_split", "t_start = split", coverage_of("depthwise_wgrad_kernel")),
    Mutant("depthwise wgrad: padding added instead of subtracted", JIT + "depthwise.py",
           "off_h = r * dil_h - pad_h", "off_h = r * dil_h + pad_h", coverage_of("depthwise_wgrad_kernel")),
    Mutant("depthwise wgrad: tile column carried at the row count", JIT + "depthwise.py",
           "carry_q = qb == tiles_q", "carry_q = qb == tiles_p", coverage_of("depthwise_wgrad_kernel")),
    Mutant("depthwise wgrad: run never moves to the next image", JIT + "depthwise.py",
           "n += carry_p.to(tl.int32)", "n += 0", coverage_of("depthwise_wgrad_kernel")),
    # --- kernels/jit/depthwise3d.py -------------------------------------------------------------------
    Mutant("depthwise3d fwd: window's first plane without the depth stride", JIT + "depthwise3d.py",
           "    d0 = z * stride_d - pad_d ", "    d0 = z - pad_d ", coverage_of("depthwise3d_fwd_kernel")),
    Mutant("depthwise3d fwd: weight not advanced to the next plane (unmasked path)", JIT + "depthwise3d.py",
           "            x_plane += x_step_d\n            w_plane += swt\n    else:",
           "            x_plane += x_step_d\n    else:", coverage_of("depthwise3d_fwd_kernel")),
    Mutant("depthwise3d fwd: masked path's depth bound not advanced", JIT + "depthwise3d.py",
           "            in_d += dil_d\n", "", coverage_of("depthwise3d_fwd_kernel")),
    Mutant("depthwise3d fwd: unmasked path for tiles whose windows start in the front padding",
           JIT + "depthwise3d.py", "interior = ((d0 >= 0) & (d_last < D)", "interior = ((d_last < D)",
           coverage_of("depthwise3d_fwd_kernel")),
    Mutant("depthwise3d fwd: every output plane stored at the first", JIT + "depthwise3d.py",
           "out_offs = (n * son + tl.cast(z, tl.int64) * soz + ", "out_offs = (n * son + ",
           coverage_of("depthwise3d_fwd_kernel")),
    Mutant("depthwise3d dgrad: depth phase tested with the row stride", JIT + "depthwise3d.py",
           "if ((td % stride_d == 0)", "if ((td % stride_h == 0)", coverage_of("depthwise3d_dgrad_kernel")),
    Mutant("depthwise3d dgrad: row phase from the column stride", JIT + "depthwise3d.py",
           "ph = (phase // stride_w) % stride_h", "ph = (phase // stride_w) % stride_w",
           coverage_of("depthwise3d_dgrad_kernel")),
    Mutant("depthwise3d dgrad: last multiplier channel dropped", JIT + "depthwise3d.py",
           "for m in range(mult):", "for m in range(mult - 1):", coverage_of("depthwise3d_dgrad_kernel")),
    Mutant("depthwise3d dgrad: tap plane without the slice", JIT + "depthwise3d.py",
           "zz = e + td // stride_d", "zz = td // stride_d", coverage_of("depthwise3d_dgrad_kernel")),
    Mutant("depthwise3d wgrad: splits overlap", JIT + "depthwise3d.py",
           "t_start = split * tiles_per_split", "t_start = split", coverage_of("depthwise3d_wgrad_kernel")),
    Mutant("depthwise3d wgrad: tap plane misses the padding", JIT + "depthwise3d.py",
           "off_d = t * dil_d - pad_d", "off_d = t * dil_d", coverage_of("depthwise3d_wgrad_kernel")),
    Mutant("depthwise3d wgrad: tap row from the plane", JIT + "depthwise3d.py",
           "    r = (tap // S) % R\n    s = tap % S\n    tiles_q",
           "    r = tap // (R * S)\n    s = tap % S\n    tiles_q",
           coverage_of("depthwise3d_wgrad_kernel")),
    Mutant("depthwise3d fwd epilogue: pre-activation stored over the residual", JIT + "depthwise3d.py",
           "store_epilogue(acc, out_ptr, res_ptr, preact_ptr, out_offs,",
           "store_epilogue(acc, out_ptr, res_ptr, res_ptr, out_offs,", coverage_of("depthwise3d_fwd_kernel")),
    Mutant("depthwise3d launcher: forward grid without the output planes", "kernels/ops/depthwise3d.py",
           "grid = (g.N * g.Z * cdiv(g.P, block_h)", "grid = (g.N * cdiv(g.P, block_h)",
           coverage_of("depthwise3d_fwd_kernel")),
    # --- kernels/jit/epilogue.py ----------------------------------------------------------------------
    Mutant("epilogue: residual after the activation dropped", JIT + "epilogue.py",
           "        if not RESIDUAL_BEFORE_ACT:\n            out += residual",
           "        if not RESIDUAL_BEFORE_ACT:\n            pass", coverage_of("conv2d_fwd_kernel")),
    Mutant("epilogue: residual before the activation dropped", JIT + "epilogue.py",
           "        if RESIDUAL_BEFORE_ACT:\n            pre += residual",
           "        if RESIDUAL_BEFORE_ACT:\n            pass", coverage_of("conv2d_dgrad_kernel")),
    Mutant("epilogue: pre-activation stored after the activation", JIT + "epilogue.py",
           "tl.store(preact_ptr + offsets, pre.to(preact_ptr.dtype.element_ty), mask=mask)",
           "tl.store(preact_ptr + offsets, activate(pre, ACTIVATION, NEGATIVE_SLOPE).to("
           "preact_ptr.dtype.element_ty), mask=mask)", coverage_of("depthwise_fwd_kernel")),
    Mutant("epilogue: gelu derivative misses the density term", JIT + "epilogue.py",
           "d = 0.5 * (1.0 + tl.math.erf(z * _SQRT1_2)) + z * _INV_SQRT_2PI * tl.exp(-0.5 * z * z)",
           "d = 0.5 * (1.0 + tl.math.erf(z * _SQRT1_2))", coverage_of("activation_backward_kernel")),
    Mutant("epilogue: leaky_relu slope applied to positives", JIT + "epilogue.py",
           "z = tl.where(z < 0, z * tl.full(z.shape, NEGATIVE_SLOPE, z.dtype), z)",
           "z = tl.where(z > 0, z * tl.full(z.shape, NEGATIVE_SLOPE, z.dtype), z)",
           coverage_of("conv2d_fwd_kernel")),
    Mutant("activation backward: channels_last width decoded with H", JIT + "epilogue.py",
           "            w = (offs // C) % W", "            w = (offs // C) % H",
           coverage_of("activation_backward_kernel")),
    # --- kernels/jit/pool2d.py ------------------------------------------------------------------------
    Mutant("pool tile: every channel block computes the first", JIT + "pool2d.py",
           "    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)\n    return n,",
           "    c = tl.arange(0, BLOCK_C)\n    return n,", coverage_of("max_pool2d_fwd_kernel")),
    Mutant("adaptive window end rounded down", JIT + "pool2d.py",
           "        hi = ((p + 1) * H + P - 1) // P\n    else:\n        start = p * stride - pad\n        first",
           "        hi = ((p + 1) * H) // P\n    else:\n        start = p * stride - pad\n        first",
           coverage_of("max_pool2d_fwd_kernel")),
    Mutant("max pool: NaN does not propagate", JIT + "pool2d.py",
           "take = (v > best) | (v != v)", "take = v > best",
           ("tests/test_pool2d.py", "-k", "test_max_nan_propagates")),
    Mutant("max pool: ties keep the last maximum", JIT + "pool2d.py",
           "take = (v > best) | (v != v)", "take = (v >= best) | (v != v)",
           ("tests/test_pool2d.py", "-k", "test_max_ties")),
    Mutant("max pool window index: row step without the column extent", JIT + "pool2d.py",
           "best_idx = tl.where(take, r * dil_h * extent_w + s * dil_w, best_idx)",
           "best_idx = tl.where(take, r * dil_h + s * dil_w, best_idx)", coverage_of("max_pool2d_fwd_kernel")),
    Mutant("max pool backward: window index rows scaled by the row extent", JIT + "pool2d.py",
           "            at = (h - _window_start(p, H, P, stride_h, pad_h, ADAPTIVE)) * extent_w \\\n",
           "            at = (h - _window_start(p, H, P, stride_h, pad_h, ADAPTIVE)) * extent_h \\\n",
           ("tests/test_pool2d.py", "-k", "one_byte")),
    Mutant("max pool gather: window column without the row removed", JIT + "pool2d.py",
           "ADAPTIVE)[:, None] + at - dh * extent_w).to(tl.int64)", "ADAPTIVE)[:, None] + at).to(tl.int64)",
           coverage_of("max_pool2d_gather_kernel")),
    Mutant("max pool backward: last covering window missed", JIT + "pool2d.py",
           "hi = tl.minimum((h + pad) // stride + 1, P)", "hi = tl.minimum((h + pad) // stride, P)",
           coverage_of("max_pool2d_bwd_kernel")),
    Mutant("max pool gather: column from the height", JIT + "pool2d.py",
           "        h = flat // W\n        w = flat - h * W", "        h = flat // W\n        w = flat - h * H",
           coverage_of("max_pool2d_gather_kernel")),
    Mutant("avg pool: padded divisor uses the rows twice", JIT + "pool2d.py",
           "        div = rows_pad * cols_pad\n    else:\n        div = rows_in * cols_in\n    empty",
           "        div = rows_pad * rows_pad\n    else:\n        div = rows_in * cols_in\n    empty",
           coverage_of("avg_pool2d_fwd_kernel")),
    Mutant("avg pool backward: window column from the row counter", JIT + "pool2d.py",
           "        q = q_lo + j\n        ok = pix_ok & (p < p_hi) & (q < q_hi)\n        rows_pad",
           "        q = q_lo + i\n        ok = pix_ok & (p < p_hi) & (q < q_hi)\n        rows_pad",
           coverage_of("avg_pool2d_bwd_kernel")),
    Mutant("global average, strided planes: rows stepped by W columns", JIT + "pool2d.py",
           "pix = (hw // W).to(tl.int64) * sxh + (hw % W).to(tl.int64) * sxw",
           "pix = (hw // W).to(tl.int64) * W * sxw + (hw % W).to(tl.int64) * sxw",
           coverage_of("global_avg_pool2d_kernel")),
    # --- kernels/jit/pool3d.py ------------------------------------------------------------------------
    Mutant("pool3d tile: every channel block computes the first", JIT + "pool3d.py",
           "    c = pid_c * BLOCK_C + tl.arange(0, BLOCK_C)\n    return n, vox",
           "    c = tl.arange(0, BLOCK_C)\n    return n, vox", coverage_of("max_pool3d_fwd_kernel")),
    Mutant("pool3d tile: depth decoded with the columns squared", JIT + "pool3d.py",
           "return n, vox // (ROWS * COLS), plane // COLS", "return n, vox // (COLS * COLS), plane // COLS",
           coverage_of("avg_pool3d_fwd_kernel")),
    Mutant("max pool3d: NaN does not propagate", JIT + "pool3d.py",
           "take = (v > best) | (v != v)", "take = v > best",
           ("tests/test_pool3d.py", "-k", "test_max_nan_propagates")),
    Mutant("max pool3d: ties keep the last maximum", JIT + "pool3d.py",
           "take = (v > best) | (v != v)", "take = (v >= best) | (v != v)",
           ("tests/test_pool3d.py", "-k", "test_max_pool3d_options")),
    Mutant("max pool3d: depth taps stepped by the row stride", JIT + "pool3d.py",
           "row = tl.cast(a * dil_d, tl.int64) * sxd + tl.cast(r * dil_h, tl.int64) * sxh",
           "row = tl.cast(a * dil_d, tl.int64) * sxh + tl.cast(r * dil_h, tl.int64) * sxh",
           coverage_of("max_pool3d_fwd_kernel")),
    Mutant("avg pool3d: window rows stepped by the depth stride", JIT + "pool3d.py",
           "row = tl.cast(a, tl.int64) * sxd + tl.cast(r, tl.int64) * sxh",
           "row = tl.cast(a, tl.int64) * sxd + tl.cast(r, tl.int64) * sxd",
           coverage_of("avg_pool3d_fwd_kernel")),
    Mutant("max pool3d: flat index depth scaled by W", JIT + "pool3d.py",
           "row_index = (d.to(tl.int64) * H + h) * W", "row_index = (d.to(tl.int64) * W + h) * W",
           coverage_of("max_pool3d_fwd_kernel")),
    Mutant("max pool3d backward: depth candidate from the row counter", JIT + "pool3d.py",
           "        t = t_lo + i\n        p = p_lo + j\n        q = q_lo + k\n        ok = (pix_ok",
           "        t = t_lo + j\n        p = p_lo + j\n        q = q_lo + k\n        ok = (pix_ok",
           coverage_of("max_pool3d_bwd_kernel")),
    Mutant("max pool3d gather: row with the depth removed by W", JIT + "pool3d.py",
           "    d = dh // H\n    h = dh - d * H", "    d = dh // H\n    h = dh - d * W",
           coverage_of("max_pool3d_gather_kernel")),
    Mutant("avg pool3d: unpadded divisor uses the rows for the depth", JIT + "pool3d.py",
           "div = depth_in * rows_in * cols_in", "div = rows_in * rows_in * cols_in",
           coverage_of("avg_pool3d_fwd_kernel")),
    Mutant("avg pool3d backward: column candidate from the row counter", JIT + "pool3d.py",
           "        q = q_lo + k\n        ok = pix_ok & (t", "        q = q_lo + j\n        ok = pix_ok & (t",
           coverage_of("avg_pool3d_bwd_kernel")),
    Mutant("global average 3d, strided volumes: depth stepped by rows", JIT + "pool3d.py",
           "vox = (dhw // HW).to(tl.int64) * sxd", "vox = (dhw // HW).to(tl.int64) * sxh",
           coverage_of("global_avg_pool3d_kernel")),
    # --- kernels/jit/reduce.py ------------------------------------------------------------------------
    Mutant("channel sum: splits start a block apart", JIT + "reduce.py",
           "pix_start = split * PIX_PER_SPLIT", "pix_start = split * BLOCK_PIX", coverage_of("channel_sum_kernel")),
    Mutant("channel sum: image stride from the height", JIT + "reduce.py",
           "        n_idx = offs_pix // (H * W)", "        n_idx = offs_pix // (H * H)",
           coverage_of("channel_sum_kernel")),
    Mutant("split sum drops the last split", JIT + "reduce.py",
           "for _ in range(1, SPLIT):", "for _ in range(1, SPLIT - 1):", coverage_of("split_sum_kernel")),
    # --- launchers --------------------------------------------------------------------------------------
    Mutant("conv2d launcher: the partial filter tile dropped", "kernels/ops/conv2d.py",
           'grid = (cdiv(rows, config["BLOCK_M"]), cdiv(KG, config["BLOCK_N"]), g.groups)',
           'grid = (cdiv(rows, config["BLOCK_M"]), KG // config["BLOCK_N"], g.groups)',
           coverage_of("conv2d_fwd_kernel")),
    Mutant("aligned variant: row and column strides swapped", "kernels/ops/conv2d.py",
           "    return n // unit, 1, h // unit, w // unit", "    return n // unit, 1, w // unit, h // unit",
           coverage_of("conv2d_wgrad_kernel")),
    Mutant("bias gradient: every batch chunk writes the first chunk's partial sums", "kernels/ops/reduce.py",
           "(xs, partial[index * split:(index + 1) * split], n1 - n0,", "(xs, partial[:split], n1 - n0,",
           ("tests/test_index_chunks.py",)),
    # --- every rank's autograd and call route ----------------------------------------------------------
    Mutant("transposed convolution: weight gradient with its operands exchanged", "kernels/autograd/conv.py",
           "grad_w = passes.weight_grad(x, grad_pre, g) if transposed else",
           "grad_w = passes.weight_grad(grad_pre, x, g) if transposed else",
           ("tests/test_conv_transpose2d.py", "tests/test_conv3d.py", "-k", "transpose")),
    Mutant("3-D pooling: adaptive max pooling keeps the input's layout", "kernels/functional/pool.py",
           "return not g.adaptive if is_max else g.is_global", "return True if is_max else g.is_global",
           ("tests/test_pool3d.py", "-k", "channels_last")),
    # --- whole-model inference (kernels.optimize) -------------------------------------------------------
    Mutant("BatchNorm fold: a transposed convolution scaled along its input channels", "kernels/optimize.py",
           "    if isinstance(conv, _CONV_TRANSPOSE):  # weight", "    if False:  # weight",
           ("tests/test_optimize.py", "-k", "test_fold_batch_norm")),
    Mutant("BatchNorm fold: the variance without eps", "kernels/optimize.py",
           "scale = torch.rsqrt(var + bn.eps)", "scale = torch.rsqrt(var)",
           ("tests/test_optimize.py", "-k", "test_fold_batch_norm")),
    Mutant("residual fusion: the add after the activation", "kernels/optimize.py",
           "conv._set_epilogue(name, slope, before and activation is not None)",
           "conv._set_epilogue(name, slope, False)", ("tests/test_optimize.py", "-k", "resnet18")),
    Mutant("conv2d without autocast", "kernels/functional/conv2d.py",
           '@autocast_inputs("conv")\ndef conv2d(', "def conv2d(", ("tests/test_autocast.py",)),
    Mutant("call plan: every tensor slot gets the first tensor", "kernels/call_plans.py",
           "                args[pos] = table[i]", "                args[pos] = table[0]",
           ("tests/test_call_plans.py",)),
    Mutant("training plan: every gradient goes to the first argument", "kernels/call_plans.py",
           "                out[index] = grad", "                out[0] = grad", ("tests/test_call_plans.py",)),
    Mutant("call plan key: strides left out", "kernels/call_plans.py",
           "return (kind, value.shape, value.stride(), value.dtype, value.device, value.requires_grad)",
           "return (kind, value.shape, value.dtype, value.device, value.requires_grad)",
           ("tests/test_call_plans.py",)),
    Mutant("Hopper path: taps without their dilation", JIT + "conv2d.py",
           "x_desc.load([n, p0 - pad_h + r * dil_h, q0 - pad_w + s * dil_w, c0])",
           "x_desc.load([n, p0 - pad_h + r, q0 - pad_w + s * dil_w, c0])", coverage_of("conv2d_fwd_tma_kernel")),
    Mutant("Hopper path: the last, partial channel block dropped", JIT + "conv2d.py",
           "    c_blocks = tl.cdiv(C, BLOCK_K)\n    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
           "    c_blocks = C // BLOCK_K\n    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=tl.float32)",
           coverage_of("conv2d_fwd_tma_kernel")),
    Mutant("Hopper path: the weight box of the transposed tap", JIT + "conv2d.py",
           "w_desc.load([k0, r, s, c0])", "w_desc.load([k0, s, r, c0])", coverage_of("conv2d_fwd_tma_kernel")),
    Mutant("Hopper path launcher: output rows addressed with the column stride", "kernels/ops/conv2d_hopper.py",
           "out.stride(0) // 8, out.stride(2) // 8, out.stride(3) // 8",
           "out.stride(0) // 8, out.stride(3) // 8, out.stride(3) // 8", coverage_of("conv2d_fwd_tma_kernel")),
    Mutant("direct launch: alignment not checked", "kernels/launch.py",
           "            if (t.data_ptr() & 15 == 0) != aligned:", "            if False:",
           ("tests/test_call_plans.py",)),
    Mutant("direct launch: the tensors in reverse places", "kernels/launch.py",
           "for position, t in zip(self.tensor_positions, tensors, strict=True):",
           "for position, t in zip(self.tensor_positions[::-1], tensors, strict=True):",
           ("tests/test_call_plans.py",)),
    Mutant("wgrad launcher: split length rounded down to whole blocks", "kernels/ops/conv2d.py",
           'pix_per_split = cdiv(cdiv(max(npq, 1), split), config["BLOCK_K"]) * config["BLOCK_K"]',
           'pix_per_split = cdiv(max(npq, 1), split) // config["BLOCK_K"] * config["BLOCK_K"]',
           coverage_of("conv2d_wgrad_kernel")),
)


@dataclass
class Outcome:
    mutant: Mutant
    caught: bool
    seconds: float
    detail: str


def _copy_tree(dest: Path) -> None:
    """The package, the tests, the benchmarks (some tests build their networks) and the project file: what a
    test run reads."""
    for name in ("kernels", "tests", "bench"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    shutil.copy2(ROOT / "pyproject.toml", dest / "pyproject.toml")


def _first_failure(output: str, returncode: int) -> str:
    """What caught the mutant: the first failing test, or the crash (a mutant may address memory it should
    not; the run dying counts as caught)."""
    if returncode < 0 or "Fatal Python error" in output:
        fatal = next((line for line in output.splitlines() if "Fatal Python error" in line), "")
        return f"the test run crashed ({fatal.strip() or f'signal {-returncode}'})"[:160]
    for line in output.splitlines():
        if line.startswith(("FAILED", "ERROR")):
            return line[:160]
    tail = output.strip().splitlines()
    return tail[-1][:160] if tail else ""


def run_mutant(mutant: Mutant, timeout: float = 300.0) -> Outcome:
    """Plant ``mutant`` in a fresh copy and run its tests there (stopping at the first failure). The slowest
    honest run takes about a minute; a mutant that corrupts memory (wrong pointers under the interpreter) can
    crash or hang its run, and a run past ``timeout`` seconds counts as caught."""
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="mutant-") as tmp:
        dest = Path(tmp)
        _copy_tree(dest)
        target = dest / mutant.path
        source = mutant.apply(target.read_text())
        compile(source, str(target), "exec")  # a mutant is a wrong program, never a syntax error
        target.write_text(source)
        env = {**os.environ, "PYTHONPATH": str(dest), "PYTHONDONTWRITEBYTECODE": "1"}
        command = [sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                   *mutant.tests]
        try:
            done = subprocess.run(command, cwd=dest, env=env, capture_output=True, text=True, timeout=timeout)
        except subprocess.TimeoutExpired:
            return Outcome(mutant, True, time.perf_counter() - start, "timed out (a hang counts as caught)")
        output = done.stdout + done.stderr
        if done.returncode == 5:  # no test selected: the mutant's test list is wrong, not the kernel
            raise RuntimeError(f"mutant {mutant.name!r}: its tests select nothing: {mutant.tests}")
        return Outcome(mutant, done.returncode != 0, time.perf_counter() - start,
                       _first_failure(output, done.returncode) if done.returncode else "all selected tests passed")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.mutants", description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=2, help="mutants run at once (default 2)")
    parser.add_argument("--only", action="append", help="only mutants whose name contains this (repeatable)")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args(argv)
    chosen = [m for m in MUTANTS if not args.only or any(o in m.name for o in args.only)]
    if args.list:
        for m in chosen:
            print(f"{m.path:28} {m.name}")
        return 0
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        outcomes = []
        for outcome in pool.map(run_mutant, chosen):
            outcomes.append(outcome)
            status = "caught  " if outcome.caught else "SURVIVED"
            print(f"{status} {outcome.seconds:6.1f} s  {outcome.mutant.path:26} {outcome.mutant.name}: "
                  f"{outcome.detail}", flush=True)
    caught = sum(o.caught for o in outcomes)
    print(f"\nmutation score: {caught}/{len(outcomes)} caught ({100 * caught / max(len(outcomes), 1):.0f}%) "
          f"in {time.perf_counter() - start:.0f} s")
    return 0 if caught == len(outcomes) else 1


if __name__ == "__main__":
    sys.exit(main())
