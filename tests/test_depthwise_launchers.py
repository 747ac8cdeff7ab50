"""The depthwise launchers against torch: forward, input gradient and weight gradient.

Each case draws fresh inputs, fills the preallocated outputs with NaN (so an element the kernels leave
unwritten shows), and compares with torch's float64 result on the same (rounded) inputs.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

import kernels  # (decides the runtime before the kernel modules are imported)
from kernels.launch import recording
from kernels.ops.depthwise import (
    DGRAD_SPACE,
    FWD_SPACE,
    WGRAD_SPACE,
    depthwise_dgrad,
    depthwise_fwd,
    depthwise_wgrad,
)
from kernels.shapes import conv2d_geometry

DEVICE = torch.device("cuda" if torch.cuda.is_available() and not kernels.INTERPRETING else "cpu")
TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 2e-2}


@dataclass(frozen=True)
class Case:
    N: int
    C: int
    H: int
    W: int
    mult: int
    R: int
    S: int
    stride: int | tuple[int, int] = 1
    padding: int | tuple[int, int] | str = 0
    dilation: int | tuple[int, int] = 1
    dtype: torch.dtype = torch.float32
    layout: str = "nchw"         # nchw | channels_last | strided (non-contiguous views)
    bias: bool = True


CASES = [
    Case(2, 3, 9, 11, 1, 3, 3, 1, 1, 1),
    Case(2, 4, 10, 13, 2, 3, 3, 2, 1, 1, layout="channels_last"),
    Case(1, 3, 11, 9, 1, 5, 5, 3, 2, 1, torch.float64),
    Case(2, 2, 13, 12, 2, 5, 3, (2, 3), (0, 2), (2, 1), torch.float64, "strided"),
    Case(1, 5, 8, 9, 1, 4, 4, 1, "same", 1, bias=False),
    Case(1, 3, 9, 10, 2, 4, 2, 1, "same", 2, layout="channels_last"),
    Case(2, 3, 11, 10, 2, 3, 5, 3, 1, 2, layout="strided"),
    Case(1, 2, 6, 37, 1, 3, 3, 1, 1, 1, torch.float64),                     # wide rows
    Case(1, 40, 5, 6, 1, 3, 3, 1, 1, 1, layout="channels_last"),             # two channel blocks
    Case(4, 2, 17, 17, 1, 3, 3, 1, 1, 1),                                    # wgrad split in many runs
    Case(1, 2, 7, 8, 1, 2, 2, 3, 0, 1, bias=False),                          # phases no tap reaches
    # Forward tiles whose windows lie inside the image (the unmasked path) beside edge tiles:
    Case(2, 16, 20, 19, 2, 3, 3, 1, 1, 1, torch.bfloat16, "channels_last"),
    Case(1, 32, 37, 35, 1, 3, 3, 2, 2, 2, layout="channels_last", bias=False),
    Case(1, 4, 12, 70, 1, 3, 3, 1, 1, 1, torch.float64),
    Case(1, 4, 21, 72, 1, 3, 5, (2, 1), (1, 4), (1, 2), torch.float64, "strided"),
    Case(1, 2, 2, 5, 2, 3, 3, 3, 1, 1, torch.float64),                       # fewer rows than the stride
    Case(2, 3, 10, 7, 1, 3, 3, 2, 0, 2, torch.float16),
    Case(1, 4, 9, 9, 2, 5, 5, 2, 2, 1, torch.bfloat16, "channels_last"),
]


def _tensor(shape: tuple[int, ...], dtype: torch.dtype, layout: str) -> torch.Tensor:
    """A random ``shape`` tensor laid out as asked."""
    if layout == "channels_last":
        return torch.randn(shape, dtype=dtype, device=DEVICE).contiguous(memory_format=torch.channels_last)
    if layout == "strided":
        n, c, h, w = shape
        return torch.randn((n, 2 * c, h, w + 3), dtype=dtype, device=DEVICE)[:, ::2, :, 1:w + 1]
    return torch.randn(shape, dtype=dtype, device=DEVICE)


def _nan(shape: tuple[int, ...], dtype: torch.dtype, layout: str) -> torch.Tensor:
    return _tensor(shape, dtype, layout).fill_(float("nan"))


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> None:
    assert got.dtype == dtype and got.shape == want.shape
    assert not got.isnan().any(), "unwritten (NaN) elements"
    scale = max(want.abs().max().item(), 1.0)
    torch.testing.assert_close(got.double(), want, rtol=0, atol=TOL[dtype] * scale)


@pytest.mark.filterwarnings("ignore:Using padding='same'")
@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c}")
def test_depthwise_against_torch(case: Case) -> None:
    dt, K = case.dtype, case.C * case.mult
    x = _tensor((case.N, case.C, case.H, case.W), dt, case.layout)
    w = torch.randn((K, 1, case.R, case.S), dtype=dt, device=DEVICE)
    b = torch.randn(K, dtype=dt, device=DEVICE) if case.bias else None
    if case.layout == "strided":
        w = torch.randn((K, 1, case.S, case.R), dtype=dt, device=DEVICE).transpose(2, 3)
        b = torch.randn(2 * K, dtype=dt, device=DEVICE)[::2] if case.bias else None
    g = conv2d_geometry(x.shape, w.shape, None, case.stride, case.padding, case.dilation, case.C)
    conv = dict(stride=(g.stride_h, g.stride_w), dilation=(g.dil_h, g.dil_w), groups=case.C)

    # Reference in float64 on the same inputs; 'same' goes through torch's own padding argument.
    xd, wd = x.double().requires_grad_(), w.double().requires_grad_()
    ref = F.conv2d(xd, wd, None if b is None else b.double(), padding=case.padding, **conv)
    assert ref.shape == (g.N, g.K, g.P, g.Q)

    out = _nan((g.N, g.K, g.P, g.Q), dt, case.layout)
    depthwise_fwd(x, w, b, g, out)
    _close(out, ref.detach(), dt)

    grad_out = _tensor((g.N, g.K, g.P, g.Q), dt, case.layout)
    ref_gi, ref_gw = torch.autograd.grad(ref, (xd, wd), grad_out.double())

    grad_in = _nan((g.N, g.C, g.H, g.W), dt, case.layout)
    depthwise_dgrad(grad_out, w, g, grad_in)
    _close(grad_in, ref_gi, dt)
    if b is not None:   # with a (C,) bias: the forward of the depthwise transposed convolution
        bc = torch.randn(2 * g.C, dtype=dt, device=DEVICE)[::2]
        depthwise_dgrad(grad_out, w, g, grad_in.fill_(float("nan")), bc)
        _close(grad_in, ref_gi + bc.double()[None, :, None, None], dt)

    grad_w = depthwise_wgrad(grad_out, x, g)
    assert grad_w.shape == (g.K, 1, g.R, g.S)
    _close(grad_w, ref_gw, dt)


def test_cases_reach_both_forward_paths() -> None:
    """The cases above launch the forward with tiles on the unmasked (interior) path and on the masked one."""
    interior = edge = 0
    for case in CASES:
        x = _tensor((case.N, case.C, case.H, case.W), case.dtype, case.layout)
        w = torch.empty((case.C * case.mult, 1, case.R, case.S), dtype=case.dtype, device=DEVICE)
        g = conv2d_geometry(x.shape, w.shape, None, case.stride, case.padding, case.dilation, case.C)
        with recording() as launches:
            depthwise_fwd(x, w, None, g, torch.empty((g.N, g.K, g.P, g.Q), dtype=case.dtype, device=DEVICE))
        counts = launches[0].counts()
        interior += counts["interior programs"]
        edge += counts["edge programs"]
    assert interior >= 4 and edge >= 4


def test_weight_with_wide_channel_stride_is_copied() -> None:
    """A weight whose channel block spans more than the forward's 32-bit offsets reach is copied with
    contiguous channels (same values); an ordinary one is passed as it is."""
    from kernels.ops.depthwise import narrow_weight_block

    w = torch.randn((6, 1, 3, 3), device=DEVICE)
    assert narrow_weight_block(w, 32) is w
    narrow = narrow_weight_block(w, 32, limit=100)
    assert narrow.stride(0) == 1 and torch.equal(narrow, w)


def test_empty_batch_launches_nothing() -> None:
    x = torch.randn(0, 3, 8, 8, device=DEVICE)
    w = torch.randn(6, 1, 3, 3, device=DEVICE)
    g = conv2d_geometry(x.shape, w.shape, None, 1, 1, 1, 3)
    out = torch.empty(0, 6, g.P, g.Q, device=DEVICE)
    with recording() as launches:
        depthwise_fwd(x, w, None, g, out)
        depthwise_dgrad(out, w, g, torch.empty_like(x))
        grad_w = depthwise_wgrad(out, x, g)
    assert launches == []
    assert grad_w.shape == (6, 1, 3, 3) and not grad_w.any()


def test_launches_use_configs_of_their_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every layout, width and dtype picks a configuration that its space lists for that dtype."""
    import kernels.ops.depthwise as ops

    seen: list[tuple[str, object]] = []

    def checking_launch(space, grid, args, config, dtype, tf32=False, **constexprs):
        assert config in space.for_dtype(dtype, tf32)
        assert all(d >= 1 for d in grid)
        seen.append((space.name, config))

    monkeypatch.setattr(ops, "launch", checking_launch)
    shapes = [((1, 2, 5, 40), "nchw"), ((1, 2, 5, 6), "nchw"), ((1, 8, 5, 6), "channels_last")]
    for dtype in (torch.float16, torch.float32, torch.float64):
        for shape, layout in shapes:
            x = _tensor(shape, dtype, layout)
            w = torch.randn(shape[1], 1, 3, 3, dtype=dtype, device=DEVICE)
            g = conv2d_geometry(x.shape, w.shape, None, 2, 1, 1, shape[1])
            out = torch.empty(g.N, g.K, g.P, g.Q, dtype=dtype, device=DEVICE)
            depthwise_fwd(x, w, None, g, out)
            depthwise_dgrad(out, w, g, torch.empty_like(x))
            depthwise_wgrad(out, x, g)
    names = [name for name, _ in seen]
    assert names == [FWD_SPACE.name, DGRAD_SPACE.name, WGRAD_SPACE.name] * 9
    # each layout/width its own; the forward's channels_last tile differs for 16-bit and wide dtypes
    assert len({cfg for name, cfg in seen if name == FWD_SPACE.name}) == 4
    for space in (DGRAD_SPACE, WGRAD_SPACE):  # (three tiles and the two one-row ones)
        assert 1 <= len(space.configs) <= 5
    # two more channels_last tiles of several pixels per thread, and the one-row tiles
    assert 1 <= len(FWD_SPACE.configs) <= 7


@pytest.mark.parametrize("dtype", [torch.float16, torch.float32], ids=str)
@pytest.mark.parametrize("layout", ["nchw", "channels_last"])
def test_one_row_outputs_take_one_row_tiles(dtype: torch.dtype, layout: str, monkeypatch: pytest.MonkeyPatch
                                            ) -> None:
    """A one-row output (conv1d's ``(N, C, 1, L)`` view) gets one-row tiles in the forward and both gradients,
    not tiles whose rows past the first are all masked off; the results are still torch's."""
    import kernels.ops.depthwise as ops

    picked: list = []
    real_launch = ops.launch

    def watching_launch(space, grid, args, config, dtype, tf32=False, **constexprs):
        picked.append((space.name, config))
        return real_launch(space, grid, args, config, dtype, tf32, **constexprs)

    monkeypatch.setattr(ops, "launch", watching_launch)
    x = _tensor((2, 8, 1, 70), dtype, layout).requires_grad_()
    w = torch.randn(8, 1, 1, 3, dtype=dtype, device=DEVICE, requires_grad=True)
    out = kernels.conv2d(x, w, None, 1, (0, 1), 1, 8)
    x64, w64 = x.detach().double().requires_grad_(), w.detach().double().requires_grad_()
    ref = F.conv2d(x64, w64, None, 1, (0, 1), 1, 8)
    torch.testing.assert_close(out.double(), ref, rtol=1e-2, atol=1e-2)
    grad = torch.randn_like(out)
    out.backward(grad)
    ref.backward(grad.double())
    torch.testing.assert_close(x.grad.double(), x64.grad, rtol=1e-2, atol=1e-2)
    torch.testing.assert_close(w.grad.double(), w64.grad, rtol=1e-2, atol=5e-2)
    for space in (FWD_SPACE, DGRAD_SPACE, WGRAD_SPACE):
        (config,) = [cfg for name, cfg in picked if name == space.name]
        assert config["BLOCK_PIX"] == config["BLOCK_W"], (space.name, config)
