"""The depthwise 3-D launchers against torch: forward, input gradient and weight gradient.

Each case draws fresh inputs, fills the preallocated outputs with NaN (so an element the kernels leave
unwritten shows), and compares with torch's float64 result on the same (rounded) inputs: ``F.conv3d`` with
``groups=C`` and its autograd gradients.
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
import torch
import torch.nn.functional as F

import kernels  # (decides the runtime before the kernel modules are imported)
from kernels.launch import recording
from kernels.ops.depthwise3d import (
    DGRAD_SPACE,
    FWD_SPACE,
    WGRAD_SPACE,
    depthwise3d_dgrad,
    depthwise3d_fwd,
    depthwise3d_wgrad,
)
from kernels.shapes3d import conv3d_geometry

DEVICE = torch.device("cuda" if torch.cuda.is_available() and not kernels.INTERPRETING else "cpu")
TOL = {torch.float64: 1e-10, torch.float32: 2e-5, torch.float16: 4e-3, torch.bfloat16: 2e-2}
Triple = int | tuple[int, int, int]


@dataclass(frozen=True)
class Case:
    N: int
    C: int
    D: int
    H: int
    W: int
    mult: int
    T: int
    R: int
    S: int
    stride: Triple = 1
    padding: Triple | str = 0
    dilation: Triple = 1
    dtype: torch.dtype = torch.float32
    layout: str = "ncdhw"        # ncdhw | channels_last | strided (non-contiguous views)
    bias: bool = True


CASES = [
    Case(2, 3, 5, 6, 7, 1, 3, 3, 3, 1, 1, 1),
    Case(2, 4, 5, 7, 6, 2, 3, 3, 3, 2, 1, 1, layout="channels_last"),
    Case(1, 3, 7, 6, 8, 1, 3, 2, 3, (2, 3, 2), (1, 0, 2), (2, 1, 1), torch.float64, "strided"),
    Case(1, 2, 5, 6, 5, 2, 2, 3, 4, 1, "same", (1, 2, 1), torch.float64, bias=False),
    Case(2, 3, 6, 5, 7, 2, 3, 3, 2, (3, 1, 2), 1, 1, torch.bfloat16, "channels_last"),
    Case(1, 2, 3, 4, 37, 1, 1, 3, 3, 1, (0, 1, 1), 1, torch.float64),             # wide rows
    Case(1, 40, 3, 4, 5, 1, 3, 3, 3, 1, 1, 1, layout="channels_last"),            # two channel blocks
    Case(2, 2, 4, 7, 7, 1, 3, 3, 3, 1, 1, 1, layout="strided"),                   # wgrad split in runs
    Case(1, 2, 5, 7, 8, 1, 2, 2, 2, 3, 0, 1, bias=False),                         # phases no tap reaches
    Case(1, 2, 2, 3, 5, 2, 3, 3, 3, 3, 1, 1, torch.float64),                      # fewer planes than the stride
    Case(2, 3, 5, 6, 5, 1, 3, 3, 3, 2, 0, 2, torch.float16),
    # Forward tiles whose windows lie inside the volume (the unmasked path) beside edge tiles:
    Case(1, 16, 3, 10, 10, 2, 3, 3, 3, 1, 0, 1, torch.bfloat16, "channels_last"),
    Case(1, 4, 4, 10, 70, 1, 3, 3, 3, 1, (1, 0, 1), 1, torch.float64),
]


def _tensor(shape: tuple[int, ...], dtype: torch.dtype, layout: str) -> torch.Tensor:
    """A random ``shape`` tensor laid out as asked."""
    if layout == "channels_last":
        return torch.randn(shape, dtype=dtype, device=DEVICE).contiguous(memory_format=torch.channels_last_3d)
    if layout == "strided":
        n, c, d, h, w = shape
        return torch.randn((n, 2 * c, d, h, w + 3), dtype=dtype, device=DEVICE)[:, ::2, :, :, 1:w + 1]
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
def test_depthwise3d_against_torch(case: Case) -> None:
    dt, K = case.dtype, case.C * case.mult
    x = _tensor((case.N, case.C, case.D, case.H, case.W), dt, case.layout)
    w = torch.randn((K, 1, case.T, case.R, case.S), dtype=dt, device=DEVICE)
    b = torch.randn(K, dtype=dt, device=DEVICE) if case.bias else None
    if case.layout == "strided":
        w = torch.randn((K, 1, case.S, case.R, case.T), dtype=dt, device=DEVICE).permute(0, 1, 4, 3, 2)
        b = torch.randn(2 * K, dtype=dt, device=DEVICE)[::2] if case.bias else None
    g = conv3d_geometry(x.shape, w.shape, None, case.stride, case.padding, case.dilation, case.C)
    conv = dict(stride=g.stride, dilation=g.dilation, groups=case.C)

    # Reference in float64 on the same inputs; 'same' goes through torch's own padding argument.
    xd, wd = x.double().requires_grad_(), w.double().requires_grad_()
    ref = F.conv3d(xd, wd, None if b is None else b.double(), padding=case.padding, **conv)
    assert ref.shape == (g.N, g.K, g.Z, g.P, g.Q)

    out = _nan((g.N, g.K, g.Z, g.P, g.Q), dt, case.layout)
    depthwise3d_fwd(x, w, b, g, out)
    _close(out, ref.detach(), dt)

    grad_out = _tensor((g.N, g.K, g.Z, g.P, g.Q), dt, case.layout)
    ref_gi, ref_gw = torch.autograd.grad(ref, (xd, wd), grad_out.double())

    grad_in = _nan((g.N, g.C, g.D, g.H, g.W), dt, case.layout)
    depthwise3d_dgrad(grad_out, w, g, grad_in)
    _close(grad_in, ref_gi, dt)
    if b is not None:   # with a (C,) bias: the forward of the depthwise transposed convolution
        bc = torch.randn(2 * g.C, dtype=dt, device=DEVICE)[::2]
        depthwise3d_dgrad(grad_out, w, g, grad_in.fill_(float("nan")), bc)
        _close(grad_in, ref_gi + bc.double()[None, :, None, None, None], dt)

    grad_w = depthwise3d_wgrad(grad_out, x, g)
    assert grad_w.shape == (g.K, 1, g.T, g.R, g.S)
    _close(grad_w, ref_gw, dt)


def test_transposed_forward_is_conv_transpose3d() -> None:
    """The input-gradient launcher with a bias is torch's depthwise conv_transpose3d (float64, strided,
    with output padding): the geometry of the convolution it transposes maps its output back onto the input."""
    C, mult = 3, 2
    x = torch.randn(2, C * mult, 3, 4, 3, dtype=torch.float64, device=DEVICE)
    w = torch.randn(C * mult, 1, 3, 2, 3, dtype=torch.float64, device=DEVICE)
    b = torch.randn(C, dtype=torch.float64, device=DEVICE)
    conv = dict(stride=(2, 3, 2), padding=(1, 0, 1), output_padding=(1, 2, 0), groups=C, dilation=(1, 1, 2))
    want = F.conv_transpose3d(x, w, b, **conv)
    g = conv3d_geometry(want.shape, w.shape, None, conv["stride"], conv["padding"], conv["dilation"], C)
    assert (g.Z, g.P, g.Q) == x.shape[2:]
    got = torch.full_like(want, float("nan"))
    depthwise3d_dgrad(x, w, g, got, b)
    _close(got, want, torch.float64)


def test_weight_gradient_is_deterministic() -> None:
    """The weight gradient's split reduction sums in a fixed order: two calls agree bit for bit."""
    x = torch.randn(2, 2, 4, 5, 5, device=DEVICE)
    w = torch.randn(2, 1, 3, 3, 3, device=DEVICE)
    g = conv3d_geometry(x.shape, w.shape, None, 1, 1, 1, 2)
    grad_out = torch.randn(g.N, g.K, g.Z, g.P, g.Q, device=DEVICE)
    with recording(run=True) as launches:
        first = depthwise3d_wgrad(grad_out, x, g)
    (wgrad,) = [r for r in launches if r.space is WGRAD_SPACE]
    assert wgrad.grid[1] >= 2, "the reduction was not split"
    assert torch.equal(first, depthwise3d_wgrad(grad_out, x, g))


def test_cases_reach_both_forward_paths() -> None:
    """The cases above launch the forward with tiles on the unmasked (interior) path and on the masked one."""
    interior = edge = 0
    for case in CASES:
        x = _tensor((case.N, case.C, case.D, case.H, case.W), case.dtype, case.layout)
        w = torch.empty((case.C * case.mult, 1, case.T, case.R, case.S), dtype=case.dtype, device=DEVICE)
        g = conv3d_geometry(x.shape, w.shape, None, case.stride, case.padding, case.dilation, case.C)
        out = torch.empty((g.N, g.K, g.Z, g.P, g.Q), dtype=case.dtype, device=DEVICE)
        with recording() as launches:
            depthwise3d_fwd(x, w, None, g, out)
        counts = launches[0].counts()
        interior += counts["interior programs"]
        edge += counts["edge programs"]
    assert interior >= 4 and edge >= 4


def test_weight_with_wide_channel_stride_is_copied() -> None:
    """A weight whose channel block spans more than the forward's 32-bit offsets reach is copied with
    contiguous channels (same values); an ordinary one is passed as it is."""
    from kernels.ops.depthwise import narrow_weight_block

    w = torch.randn((6, 1, 3, 3, 3), device=DEVICE)
    assert narrow_weight_block(w, 32) is w
    narrow = narrow_weight_block(w, 32, limit=100)
    assert narrow.stride(0) == 1 and torch.equal(narrow, w)


def test_empty_batch_launches_nothing() -> None:
    x = torch.randn(0, 3, 4, 5, 5, device=DEVICE)
    w = torch.randn(6, 1, 3, 3, 3, device=DEVICE)
    g = conv3d_geometry(x.shape, w.shape, None, 1, 1, 1, 3)
    out = torch.empty(0, 6, g.Z, g.P, g.Q, device=DEVICE)
    with recording() as launches:
        depthwise3d_fwd(x, w, None, g, out)
        depthwise3d_dgrad(out, w, g, torch.empty_like(x))
        grad_w = depthwise3d_wgrad(out, x, g)
    assert launches == []
    assert grad_w.shape == (6, 1, 3, 3, 3) and not grad_w.any()


def test_not_depthwise_is_refused() -> None:
    x = torch.randn(1, 4, 3, 3, 3, device=DEVICE)
    w = torch.randn(4, 2, 1, 1, 1, device=DEVICE)
    g = conv3d_geometry(x.shape, w.shape, None, 1, 0, 1, 2)
    with pytest.raises(ValueError, match="depthwise"):
        depthwise3d_fwd(x, w, None, g, torch.empty(1, 4, 3, 3, 3, device=DEVICE))


def test_launches_use_configs_of_their_spaces(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every layout, width and dtype picks a configuration that its space lists for that dtype."""
    import kernels.ops.depthwise3d as ops

    seen: list[tuple[str, object]] = []

    def checking_launch(space, grid, args, config, dtype, tf32=False, **constexprs):
        assert config in space.for_dtype(dtype, tf32, constexprs)
        assert all(d >= 1 for d in grid)
        seen.append((space.name, config))

    monkeypatch.setattr(ops, "launch", checking_launch)
    shapes = [((1, 2, 3, 5, 40), "ncdhw"), ((1, 2, 3, 5, 6), "ncdhw"), ((1, 8, 3, 5, 6), "channels_last")]
    for dtype in (torch.float16, torch.float32, torch.float64):
        for shape, layout in shapes:
            x = _tensor(shape, dtype, layout)
            w = torch.randn(shape[1], 1, 3, 3, 3, dtype=dtype, device=DEVICE)
            g = conv3d_geometry(x.shape, w.shape, None, 2, 1, 1, shape[1])
            out = torch.empty(g.N, g.K, g.Z, g.P, g.Q, dtype=dtype, device=DEVICE)
            depthwise3d_fwd(x, w, None, g, out)
            depthwise3d_dgrad(out, w, g, torch.empty_like(x))
            depthwise3d_wgrad(out, x, g)
    names = [name for name, _ in seen]
    assert names == [FWD_SPACE.name, DGRAD_SPACE.name, WGRAD_SPACE.name] * 9
    # each layout/width its own; the forward's channels_last tile differs for 16-bit and wide dtypes
    assert len({cfg for name, cfg in seen if name == FWD_SPACE.name}) == 4
    assert len({cfg for name, cfg in seen if name == DGRAD_SPACE.name}) == 3
