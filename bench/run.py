"""Measure layer suites: our kernels against torch eager (cuDNN) and, with ``--compile``, ``torch.compile``.

``python -m bench.run [--suite resnet50] [--dtype bf16] [--layout channels_last] [--mode fwd] [--budget-s 170]``
writes one JSON file per run under ``bench/results/`` (``--results-dir`` elsewhere, ``--out`` a given file):
``meta`` (GPU, driver, versions, date, the measured GEMM and copy ceilings) and one row per
(layer, dtype, layout, mode). Modes: ``fwd``, ``bwd`` (the backward alone, graph retained) and ``fwd+bwd``.

On a machine without a GPU it says so and runs the tiny smoke layers through Triton's interpreter (bf16,
channels_last, every mode), marking the data ``"timings": false``: it proves the pipeline works, it measures
nothing. ``--smoke`` picks the smoke layers on a GPU too.
"""

from __future__ import annotations

import argparse
import datetime
import functools
import math
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F
import triton

import kernels
from kernels.autotune.suites import (
    FAMILIES,
    POOL_SMOKE,
    POOL_SUITES,
    SCALING,
    SCALING_SMOKE,
    SMOKE,
    SMOKE_1D,
    SMOKE_3D,
    SUITES,
    SUITES_1D,
    SUITES_3D,
    Layer,
)
from kernels.launch import recording
from kernels.ops.conv2d_hopper import hopper_tma_enabled
from kernels.pool_shapes import (
    adaptive_max_window,
    adaptive_pool2d_geometry,
    avg_pool2d_geometry,
    max_pool2d_geometry,
    pool2d_bytes,
    pool_output_size,
)
from kernels.shapes import ConvGeometry, conv2d_geometry, conv_transpose2d_geometry
from kernels.shapes3d import ConvGeometry3d, conv3d_geometry, conv_transpose3d_geometry

from .loop import stream_rows

RESULTS = Path(__file__).resolve().parent / "results"
PLOTS = Path(__file__).resolve().parent / "plots"
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
LAYOUTS = ("channels_last", "nchw")
MODES = ("fwd", "bwd", "fwd+bwd")
IMPLS = ("ours", "eager", "compile")


def registry(smoke: bool = False) -> dict[str, list[Layer]]:
    """Every benchmarked suite by name: the 2-D convolutions, pooling and scaling, then the 1-D and 3-D
    families (the tiny stand-ins when ``smoke``)."""
    if smoke:
        return {**SMOKE, **POOL_SMOKE, **SCALING_SMOKE, **SMOKE_1D, **SMOKE_3D}
    return {**SUITES, **POOL_SUITES, **SCALING, **SUITES_1D, **SUITES_3D}


def missing_ops(layers: list[Layer]) -> list[str]:
    """The ops of ``layers`` that ``kernels`` does not have (yet), looked up now, in order of first use."""
    return [op for op in dict.fromkeys(layer.op for layer in layers) if not callable(getattr(kernels, op, None))]


def runnable_suites(smoke: bool = False, families: list[str] | None = None) -> list[str]:
    """The suites of :func:`registry` (of ``families`` of :data:`~kernels.autotune.suites.FAMILIES`, default all) whose
    every op ``kernels`` has: the default set of a run."""
    chosen = {s for f in (families or FAMILIES) for s in FAMILIES[f]}
    return [name for name, layers in registry(smoke).items() if name in chosen and not missing_ops(layers)]


def on_gpu() -> bool:
    """True when the kernels run compiled on a CUDA device (not through the interpreter)."""
    return torch.cuda.is_available() and not kernels.INTERPRETING


def environment() -> dict:
    """What produced the data: GPU, driver, versions, date, and whether the numbers are timings."""
    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "torch": torch.__version__,
        "triton": triton.__version__,
        "python": platform.python_version(),
        "timings": on_gpu(),
        "hopper_tma": hopper_tma_enabled(),
    }
    if on_gpu():
        meta["gpu"] = torch.cuda.get_device_name()
        meta["cuda"] = torch.version.cuda
        meta["cudnn"] = torch.backends.cudnn.version()
        try:
            meta["driver"] = subprocess.run(
                ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
                capture_output=True, text=True, check=True).stdout.strip().splitlines()[0]
        except (OSError, subprocess.CalledProcessError, IndexError):
            meta["driver"] = "unknown"
    else:
        meta["gpu"] = "none (Triton interpreter on the CPU)"
        meta["driver"] = None
    return meta


def kind(layer: Layer) -> str:
    """'dense', 'depthwise', 'transposed' or 'pool' (any of the 1-D, 2-D and 3-D ops)."""
    if layer.op.startswith("conv_transpose"):
        return "transposed"
    if layer.op.startswith("conv"):
        groups = layer.kwargs.get("groups", 1)
        return "depthwise" if groups > 1 and groups == layer.input_shape[1] else "dense"
    return "pool"


_NEUTRAL = {"kernel_size": 1, "stride": 1, "padding": 0, "dilation": 1, "output_padding": 0, "output_size": 1}


def lift_1d(layer: Layer) -> Layer:
    """The 2-D layer a 1-D one runs as (``kernels``' 1-D ops are views of the 2-D ones with ``H = 1``): input
    ``(N, C, 1, L)``, weight ``(..., 1, k)``, each window option ``x`` as ``(neutral, x)``; a 2-D or 3-D layer is
    returned as it is."""
    if len(layer.input_shape) != 3:
        return layer
    op = layer.op.replace("1d", "2d")
    kwargs = dict(layer.kwargs)
    for name, neutral in _NEUTRAL.items():
        value = kwargs.get(name)
        if isinstance(value, int):
            kwargs[name] = (neutral, value)
        elif isinstance(value, tuple | list) and len(value) == 1:
            kwargs[name] = (neutral, value[0])
    n, c, length = layer.input_shape
    weight = (*layer.weight_shape[:2], 1, layer.weight_shape[2]) if layer.weight_shape else ()
    return Layer(layer.name, op, (n, c, 1, length), weight, kwargs, layer.epilogue)


def conv_geometry(layer: Layer) -> ConvGeometry | ConvGeometry3d:
    """The geometry of a convolution layer of any rank (``kernels.shapes`` / ``kernels.shapes3d``; a 1-D layer as
    the 2-D problem it runs as). For a transposed convolution, that of the convolution it transposes: its ``C``
    and spatial input are the layer's output, its ``K`` and spatial output the layer's input."""
    layer = lift_1d(layer)
    geometry = {"conv2d": conv2d_geometry, "conv_transpose2d": conv_transpose2d_geometry,
                "conv3d": conv3d_geometry, "conv_transpose3d": conv_transpose3d_geometry}[layer.op]
    return geometry(layer.input_shape, layer.weight_shape, None, **layer.kwargs)


def conv_sizes(g: ConvGeometry | ConvGeometry3d) -> tuple[int, int, int]:
    """Elements of the convolution's input ``N·C·(D·)H·W``, weight ``K·C/g·(T·)R·S`` and output ``N·K·(Z·)P·Q``
    (2-D geometries have no depth: one plane)."""
    depth, taps, planes = getattr(g, "D", 1), getattr(g, "T", 1), getattr(g, "Z", 1)
    return (g.N * g.C * depth * g.H * g.W, g.K * g.channels_per_group * taps * g.R * g.S,
            g.N * g.K * planes * g.P * g.Q)


def _values(value: object, dims: int) -> tuple[int, ...]:
    return (value,) * dims if isinstance(value, int) else tuple(value)


def pool_work(input_shape: tuple[int, ...], op: str, kwargs: dict, item: int) -> tuple[int, int]:
    """(operations, bytes) of one pooling pass over any number of spatial dimensions, by the rules of the 2-D
    helpers (``kernels.pool_shapes``): one operation per window element of every output (adaptive windows: their
    largest length per axis), bytes ``N·C·(input + output elements)·item`` (no saved indices)."""
    n, c, *sizes = input_shape
    dims = len(sizes)
    if op.startswith("adaptive"):
        target = kwargs["output_size"]
        targets = tuple(target) if isinstance(target, tuple | list) else (target,) * dims
        outputs = [size if out is None else out for size, out in zip(sizes, targets, strict=True)]
        windows = [adaptive_max_window(size, out) for size, out in zip(sizes, outputs, strict=True)]
    else:
        windows = list(_values(kwargs["kernel_size"], dims))
        strides = _values(kwargs.get("stride") or windows, dims)
        pads = _values(kwargs.get("padding", 0), dims)
        dilations = _values(kwargs.get("dilation", 1), dims)
        outputs = [pool_output_size(size, k, s, p, d, bool(kwargs.get("ceil_mode", False)))
                   for size, k, s, p, d in zip(sizes, windows, strides, pads, dilations, strict=True)]
    inputs, out_elements = math.prod(sizes), math.prod(outputs)
    return n * c * out_elements * math.prod(windows), n * c * (inputs + out_elements) * item


def work(layer: Layer, dtype: torch.dtype) -> tuple[float, float]:
    """(flop, compulsory bytes) of one pass of ``layer`` (forward, or one of the backward kernels).

    Convolutions (1-D, 2-D, 3-D): flop 2·N·K·C/g·(T·)R·S·(Z·)P·Q; bytes: input + weight + output once each (a
    backward pass reads and writes the same three sizes). Pooling: one operation per window element; bytes
    from ``pool2d_bytes`` (read input, write output; no indices, which an implementation may choose to keep),
    the same count for 1-D (as the 2-D problem it runs as) and 3-D pooling (:func:`pool_work`).
    """
    item = torch.empty((), dtype=dtype).element_size()
    if kind(layer) != "pool":
        g = conv_geometry(layer)
        x_elements, w_elements, y_elements = conv_sizes(g)
        elements = x_elements + w_elements + y_elements
        if layer.epilogue.get("residual"):  # the residual, the size of the layer's output, is read once
            elements += x_elements if layer.op.startswith("conv_transpose") else y_elements
        return float(g.flops), float(elements * item)
    if len(layer.input_shape) == 5:
        ops, nbytes = pool_work(layer.input_shape, layer.op, layer.kwargs, item)
        return float(ops), float(nbytes)
    layer = lift_1d(layer)
    if layer.op == "max_pool2d":
        p = max_pool2d_geometry(layer.input_shape, **layer.kwargs)
    elif layer.op == "avg_pool2d":
        p = avg_pool2d_geometry(layer.input_shape, **layer.kwargs)
    else:
        p = adaptive_pool2d_geometry(layer.input_shape, layer.kwargs["output_size"], layer.op)
    return float(p.N * p.C * p.P * p.Q * p.kh * p.kw), float(pool2d_bytes(p, dtype))


def passes(layer: Layer, mode: str) -> int:
    """Passes per mode: a convolution's backward is two (input and weight gradients), pooling's one."""
    bwd = 1 if kind(layer) == "pool" else 2
    return {"fwd": 1, "bwd": bwd, "fwd+bwd": 1 + bwd}[mode]


def timer(fn: Callable[[], object]) -> float:
    """Median milliseconds: ``triton.testing.do_bench`` on a GPU (warm-up, L2 flushed), one warm wall-clock
    run in the interpreter (not a timing)."""
    if on_gpu():
        return float(triton.testing.do_bench(fn, warmup=10, rep=40, return_mode="median"))
    fn()
    start = time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3


_GRAPH_CAPTURE = {"ok": True}  # a failed capture turns graph timing off for the rest of the process


def graph_timer(make_call: Callable[[], Callable[[], object]], rep_ms: float = 20.0) -> float:
    """Median milliseconds of one call replayed from a CUDA graph: the GPU time with the host's launch work
    taken out. ``make_call`` builds the timed closure (for ``bwd``, running the forward it differentiates):
    it is built, warmed up and captured on one side stream, so the backward runs on the capturing stream.
    Inputs stay in L2 between replays (no flush)."""
    stream = torch.cuda.Stream()
    stream.wait_stream(torch.cuda.current_stream())
    start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

    def timed(graph: torch.cuda.CUDAGraph) -> float:
        start.record(stream)
        graph.replay()
        end.record(stream)
        torch.cuda.synchronize()
        return start.elapsed_time(end)

    with torch.cuda.stream(stream):
        fn = make_call()
        fn()
        fn()
        torch.cuda.synchronize()
        single = torch.cuda.CUDAGraph()
        with torch.cuda.graph(single, stream=stream):
            fn()
        repeat = int(min(max(rep_ms / max(timed(single), 1e-3), 1), 1000))
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, stream=stream):
            for _ in range(repeat):
                fn()
        return statistics.median(timed(graph) / repeat for _ in range(10))


def host_time(fn: Callable[[], object], reps: int = 20) -> float:
    """Median milliseconds of host work per call with our kernel launches recorded, not run: the Python in
    front of the GPU. A layer whose GPU time is below this (plus Triton's own launch) is launch-bound."""
    with recording() as launches:
        fn()
        samples = []
        for _ in range(reps):
            launches.clear()  # (records hold the call's tensors: let them go, as a run would)
            start = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1e3


def ceilings() -> dict:
    """The measured ceilings of this device: bf16 GEMM TFLOP/s (torch.matmul), the fp32 FMA rate (an fp32
    GEMM with TF32 off: FFMA on the CUDA cores) and device copy GB/s."""
    n, elements = (8192, 1 << 28) if on_gpu() else (256, 1 << 20)
    device = "cuda" if on_gpu() else "cpu"
    a = torch.randn(n, n, dtype=torch.bfloat16, device=device)
    b = torch.randn(n, n, dtype=torch.bfloat16, device=device)
    gemm_ms = timer(lambda: torch.matmul(a, b))
    a32, b32 = a.float(), b.float()
    tf32 = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        fma_ms = timer(lambda: torch.matmul(a32, b32))
    finally:
        torch.backends.cuda.matmul.allow_tf32 = tf32
    src = torch.empty(elements, dtype=torch.float32, device=device).uniform_()
    dst = torch.empty_like(src)
    copy_ms = timer(lambda: dst.copy_(src))
    copy_bytes = 2 * src.numel() * src.element_size()
    return {"gemm_shape": [n, n, n], "gemm_dtype": "bf16", "gemm_tflops": 2 * n**3 / gemm_ms / 1e9,
            "fp32_fma_tflops": 2 * n**3 / fma_ms / 1e9,
            "copy_bytes": copy_bytes, "copy_gbps": copy_bytes / copy_ms / 1e6}


def floor_ms(row: dict, meta_ceilings: dict) -> float | None:
    """A direct (non-GEMM) layer's roofline floor in ms: its compulsory bytes at the measured copy bandwidth or
    its flop at the measured fp32 FMA rate, whichever takes longer (None for data without the FMA ceiling)."""
    fma = meta_ceilings.get("fp32_fma_tflops")
    if not fma:
        return None
    return max(row["bytes"] / meta_ceilings["copy_gbps"] / 1e6, row["flop"] / fma / 1e9)


_TORCH_ACTIVATIONS: dict[str | None, Callable[[torch.Tensor], torch.Tensor]] = {
    None: lambda z: z, "relu": F.relu, "leaky_relu": F.leaky_relu, "gelu": F.gelu, "silu": F.silu,
}


def ours_op(name: str) -> Callable:
    """``kernels``' function ``name``, looked up when called: a suite of ops that ``kernels`` lacks still builds,
    and each call records the AttributeError as that implementation's error."""

    def call(*args, **kwargs):
        return getattr(kernels, name)(*args, **kwargs)

    call.__name__ = call.__qualname__ = name
    return call


def _with_epilogue(layer: Layer) -> tuple[Callable, Callable]:
    """``(ours, torch's)`` for a layer with a fused epilogue: ``fn(x, w[, residual], **kwargs)``."""
    op, torch_op = ours_op(layer.op), getattr(F, layer.op)
    activation = layer.epilogue.get("activation")
    before = bool(layer.epilogue.get("residual_before_activation"))
    act = _TORCH_ACTIVATIONS[activation]

    def ours(x, w, *residual, **kwargs):
        return op(x, w, **kwargs, activation=activation, residual=residual[0] if residual else None,
                  residual_before_activation=before)

    def chain(x, w, *residual, **kwargs):
        z = torch_op(x, w, **kwargs)
        if residual and before:
            return act(z + residual[0])
        return act(z) + residual[0] if residual else act(z)

    return ours, chain


def _functions(layer: Layer, use_compile: bool) -> dict[str, Callable]:
    if layer.epilogue:
        ours, eager = _with_epilogue(layer)
    else:
        ours, eager = ours_op(layer.op), getattr(F, layer.op)
    fns: dict[str, Callable] = {"ours": ours, "eager": eager}
    if use_compile:
        kwargs = layer.kwargs
        fns["compile"] = torch.compile(lambda *args: eager(*args, **kwargs), mode="max-autotune", dynamic=False)
    return fns


def in_layout(t: torch.Tensor, layout: str) -> torch.Tensor:
    """``t`` (N, C, *spatial) in ``layout``: 'nchw' as it is (contiguous), 'channels_last' with the channels
    innermost: ``torch.channels_last`` for 4-D, ``torch.channels_last_3d`` for 5-D, and for 3-D ``(N, C, L)``
    the transpose of a contiguous ``(N, L, C)`` (as a sequence model hands its activations to a convolution)."""
    if layout != "channels_last":
        return t
    if t.dim() == 3:
        return t.transpose(1, 2).contiguous().transpose(1, 2)
    return t.contiguous(memory_format=torch.channels_last if t.dim() == 4 else torch.channels_last_3d)


def _call(fn: Callable, args: tuple, kwargs: dict, mode: str) -> Callable[[], object]:
    """The timed closure of one implementation in one mode."""
    if mode == "fwd":
        def forward() -> object:
            with torch.no_grad():
                return fn(*args, **kwargs)
        return forward
    out = fn(*args, **kwargs)
    grad = torch.randn_like(out)
    if mode == "bwd":
        return lambda: torch.autograd.grad(out, args, grad, retain_graph=True)
    return lambda: torch.autograd.grad(fn(*args, **kwargs), args, grad)


def measure(layer: Layer, dtype_name: str, layout: str, modes: list[str], use_compile: bool,
            meta_ceilings: dict, graphs: bool = False) -> list[dict]:
    """One row per mode for ``layer`` in one dtype and layout; a failing implementation records its error.
    ``graphs``: also time each implementation replayed from a CUDA graph (``<impl>_graph_ms``)."""
    dtype = DTYPES[dtype_name]
    graphs = graphs and _GRAPH_CAPTURE["ok"]
    device = "cuda" if on_gpu() else "cpu"

    def tensor(shape: tuple[int, ...], channels_last: bool) -> torch.Tensor:
        t = torch.randn(shape, dtype=dtype, device=device)
        return (in_layout(t, layout) if channels_last else t).requires_grad_()

    x = tensor(layer.input_shape, True)
    args: tuple = (x,)
    if layer.weight_shape:
        w = tensor(layer.weight_shape, len(layer.weight_shape) > 3)  # (a module keeps 1-D weights contiguous)
        args = (x, w)
        if layer.epilogue.get("residual"):
            with torch.no_grad():
                shape = getattr(F, layer.op)(x, w, **layer.kwargs).shape
            args = (x, w, tensor(shape, True))
    flop, nbytes = work(layer, dtype)
    fns = _functions(layer, use_compile)
    rows = []
    for mode in modes:
        k = passes(layer, mode)
        row: dict = {"layer": layer.name, "op": layer.op, "kind": kind(layer), "input": list(layer.input_shape),
                     "weight": list(layer.weight_shape), "kwargs": dict(layer.kwargs),
                     "epilogue": dict(layer.epilogue), "dtype": dtype_name,
                     "layout": layout, "mode": mode, "flop": flop * k, "bytes": nbytes * k,
                     "intensity": flop / nbytes}
        for impl, fn in fns.items():
            try:
                call = _call(fn, args, layer.kwargs, mode)
                row[f"{impl}_ms"] = timer(call)
                if impl == "ours":
                    row["ours_host_ms"] = host_time(call)
            except Exception as exc:  # noqa: BLE001  (recorded; the other implementations and layers go on)
                row[f"{impl}_ms"] = None
                row[f"{impl}_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
            if graphs:
                try:
                    row[f"{impl}_graph_ms"] = graph_timer(functools.partial(_call, fn, args, layer.kwargs, mode))
                except Exception as exc:  # noqa: BLE001  (recorded; a failed capture can leave CUDA unusable,
                    # so graph timing stops for the rest of the run)
                    row[f"{impl}_graph_ms"] = None
                    row[f"{impl}_graph_error"] = f"{type(exc).__name__}: {str(exc)[:200]}"
                    graphs = _GRAPH_CAPTURE["ok"] = False
        for impl in fns:
            ms = row[f"{impl}_ms"]
            row[f"{impl}_tflops"] = row["flop"] / ms / 1e9 if ms else None
            row[f"{impl}_gbps"] = row["bytes"] / ms / 1e6 if ms else None
        for base in fns:
            if base != "ours":
                ok = row["ours_ms"] and row[f"{base}_ms"]
                row[f"speedup_vs_{base}"] = row[f"{base}_ms"] / row["ours_ms"] if ok else None
        row["frac_gemm"] = row["ours_tflops"] / meta_ceilings["gemm_tflops"] if row["ours_tflops"] else None
        row["frac_copy"] = row["ours_gbps"] / meta_ceilings["copy_gbps"] if row["ours_gbps"] else None
        floor = floor_ms(row, meta_ceilings) if row["kind"] in ("depthwise", "pool") else None
        row["floor_ms"] = floor
        row["frac_floor"] = floor / row["ours_ms"] if floor and row["ours_ms"] else None
        if graphs:
            ours_graph = row["ours_graph_ms"]
            for base in fns:
                if base != "ours":
                    ok = ours_graph and row[f"{base}_graph_ms"]
                    row[f"speedup_graph_vs_{base}"] = row[f"{base}_graph_ms"] / ours_graph if ok else None
            tflops, gbps = (row["flop"] / ours_graph / 1e9, row["bytes"] / ours_graph / 1e6) if ours_graph else (0, 0)
            row["frac_gemm_graph"] = tflops / meta_ceilings["gemm_tflops"] if ours_graph else None
            row["frac_copy_graph"] = gbps / meta_ceilings["copy_gbps"] if ours_graph else None
            row["frac_floor_graph"] = floor / ours_graph if floor and ours_graph else None
            for impl in fns:  # the host's cost as the GPU sees it: as called minus the graph replay
                called, graph = row[f"{impl}_ms"], row.get(f"{impl}_graph_ms")
                row[f"{impl}_overhead_ms"] = called - graph if called and graph else None
        rows.append(row)
    return rows


def _shown(row: dict, impl: str) -> str:
    """An implementation's time, or in words why there is none: torch without a CPU kernel for the dtype (the
    smoke pass) is not a failure of ours."""
    ms = row[f"{impl}_ms"]
    if ms is not None:
        return f"{ms:9.3f} ms"
    if impl != "ours" and "not implemented for" in row.get(f"{impl}_error", "") and not on_gpu():
        return f"(torch: no {row['dtype']} CPU kernel)"
    return "   failed   "


def default_out(results_dir: Path, meta: dict, smoke: bool) -> Path:
    """``<results>/<gpu>[-hopper-tma][-<tag>].json`` for GPU timings, ``<results>/smoke/smoke.json`` for the
    smoke pass."""
    if not meta["timings"] or smoke:
        return results_dir / "smoke" / "smoke.json"
    path = "-hopper-tma" if meta.get("hopper_tma") else ""
    tag = f"-{meta['tag']}" if meta.get("tag") else ""
    return results_dir / f"{meta['gpu'].lower().replace(' ', '-')}{path}{tag}.json"


def run(suites: list[str] | None, dtypes: list[str], layouts: list[str], modes: list[str], *,
        out: Path | None = None, results_dir: Path = RESULTS, smoke: bool = False, use_compile: bool = False,
        budget_s: float | None = None, graphs: bool = True, tag: str | None = None,
        families: list[str] | None = None) -> Path:
    """Measure every (suite layer, dtype, layout, mode), the first dtype and layout first; stop at
    ``budget_s`` (the rest is listed as skipped). The JSON is rewritten after every layer, so an
    interrupted run leaves its data. ``suites``: None for every suite of ``families`` (default all) whose ops
    ``kernels`` has (the others are named in ``meta["suites_without_ops"]``); a suite named here runs even so,
    each call of a missing op recording its error. ``tag``: a second data file of the same GPU
    (``<gpu>-<tag>.json``, its plots ``<gpu>-<tag>_*.png``). Returns the JSON path."""
    start = time.perf_counter()
    smoke = smoke or not on_gpu()
    if not on_gpu():
        print("No GPU: running the smoke layers through Triton's interpreter; the data is marked as not timings.")
        dtypes, layouts, use_compile = ["bf16"], ["channels_last"], False
    table = registry(smoke)
    without_ops = [s for s in table if s not in runnable_suites(smoke)]
    if suites is None:
        suites = runnable_suites(smoke, families)
        if without_ops:
            print(f"suites left out, their ops not in kernels yet: {without_ops}")
    unknown = [s for s in suites if s not in table]
    if unknown:
        raise SystemExit(f"unknown suite(s) {unknown}; known: {sorted(table)}")
    torch.backends.cudnn.benchmark = True
    torch.backends.cudnn.allow_tf32 = False  # fp32 means fp32, for cuDNN as for our kernels
    torch.backends.cuda.matmul.allow_tf32 = False
    meta = environment()
    graphs = graphs and on_gpu()
    meta.update({"graphs": graphs, "smoke": smoke, "compile": use_compile, "budget_s": budget_s, "fp32_tf32": False,
                 "timer": "triton.testing.do_bench median" if on_gpu() else "one wall-clock run (interpreter)",
                 "suites_without_ops": without_ops, "tag": tag})
    meta["ceilings"] = ceilings()
    out = out or default_out(results_dir, meta, smoke)
    out.parent.mkdir(parents=True, exist_ok=True)
    jobs = [(s, layer, d, lay) for d in dtypes for lay in layouts for s in suites for layer in table[s]]

    def measure_job(job: tuple[str, Layer, str, str]) -> list[dict]:
        suite, layer, dtype, layout = job
        return [{"suite": suite, **row}
                for row in measure(layer, dtype, layout, modes, use_compile, meta["ceilings"], graphs)]

    def echo(job: tuple[str, Layer, str, str], row: dict) -> None:
        suite, layer, dtype, layout = job
        speed = row.get("speedup_vs_eager")
        print(f"{suite:10s} {layer.name:20s} {dtype:5s} {layout:13s} {row['mode']:7s} ours "
              f"{_shown(row, 'ours')}  eager {_shown(row, 'eager')}  "
              f"{f'x{speed:.2f}' if speed else '-'}", flush=True)

    stream_rows(jobs, measure_job, out, meta, start=start, budget_s=budget_s, unit="layer runs",
                describe=lambda job: f"{job[0]}/{job[1].name} {job[2]} {job[3]}", echo=echo)
    return out


def geomean(values: list[float]) -> float:
    """Geometric mean of positive values (nan when there are none)."""
    values = [v for v in values if v and v > 0]
    return math.exp(sum(map(math.log, values)) / len(values)) if values else float("nan")


def main(argv: list[str] | None = None) -> Path:
    """Command line; returns the JSON path."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", action="append",
                        help=f"repeatable; default every suite whose ops kernels has: {sorted(registry())}")
    parser.add_argument("--family", action="append", choices=sorted(FAMILIES),
                        help="without --suite: the suites of these families (repeatable; default all)")
    parser.add_argument("--dtype", action="append", choices=sorted(DTYPES), help="repeatable; default bf16 fp16 fp32")
    parser.add_argument("--layout", action="append", choices=LAYOUTS, help="repeatable; default both")
    parser.add_argument("--mode", action="append", choices=MODES, help="repeatable; default all three")
    parser.add_argument("--compile", action="store_true",
                        help="also time torch.compile(mode='max-autotune') (minutes of compile per layer)")
    parser.add_argument("--no-graphs", action="store_true",
                        help="skip the second timing of each implementation replayed from a CUDA graph")
    parser.add_argument("--smoke", action="store_true", help="the tiny smoke layers (always so without a GPU)")
    parser.add_argument("--budget-s", type=float, help="stop starting new layers after this many seconds")
    parser.add_argument("--tag", help="file name suffix: <gpu>-<tag>.json, beside the untagged data of the GPU")
    parser.add_argument("--results-dir", type=Path, default=RESULTS, help="where the JSON goes (default bench/results)")
    parser.add_argument("--out", type=Path, help="write the JSON to this file instead")
    args = parser.parse_args(argv)
    return run(args.suite, args.dtype or ["bf16", "fp16", "fp32"],
               args.layout or list(LAYOUTS), args.mode or list(MODES), out=args.out, results_dir=args.results_dir,
               smoke=args.smoke, use_compile=args.compile, budget_s=args.budget_s, graphs=not args.no_graphs,
               tag=args.tag, families=args.family)


if __name__ == "__main__":
    main()
