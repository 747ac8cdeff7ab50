"""The ``torch.library`` ops (``kernels.library``): opcheck on each, a ``torch.compile`` network with no
graph break whose forward and backward (made of the registered ops) match ``torch.nn`` in float64, and the
double backward that compiling does not have."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import DEVICE
from functorch.compile import make_boxed_func
from torch._dynamo.backends.common import aot_autograd

import kernels
from kernels import library

P2 = library.POOL_OPS[2]  # (the registered 2-D pooling ops)
C2 = library.CONV_OPS[2]  # (the registered 2-D convolution ops)

F64 = torch.float64


def _t(*shape: int, grad: bool = True) -> torch.Tensor:
    return torch.randn(*shape, dtype=F64, device=DEVICE, requires_grad=grad)


def _cases() -> list[tuple[object, tuple]]:
    x = _t(1, 2, 5, 5)
    x_cl = _t(1, 2, 5, 5).detach().to(memory_format=torch.channels_last).requires_grad_()
    w, dw, b = _t(3, 2, 3, 3), _t(4, 1, 3, 3), _t(3)
    gy = _t(1, 3, 3, 3, grad=False)
    idx = torch.zeros(1, 2, 2, 2, dtype=torch.int64, device=DEVICE)
    window_idx = torch.randint(0, 4, (1, 2, 2, 2), dtype=torch.uint8, device=DEVICE)  # positions in 2x2 windows
    conv = ([1, 1], [0, 0], [1, 1], 1)
    plain = ("none", 0.01, False, False)  # activation, negative_slope, residual_before_activation, store_preact
    return [
        (C2.conv, (x, w, b, None, [2, 1], [1, 0], [1, 1], 1, [3, 3], False, *plain)),
        (C2.conv, (x_cl, w, None, None, *conv, [3, 3], True, *plain)),
        (C2.conv, (x, dw, None, None, [1, 1], [1, 1], [1, 1], 2, [5, 5], False, *plain)),
        (C2.conv, (x, w, b, _t(1, 3, 3, 3), *conv, [3, 3], False, "gelu", 0.01, False, True)),
        (C2.conv, (x_cl, w, None, None, *conv, [3, 3], True, "relu", 0.01, False, True)),
        (C2.conv, (x, dw, _t(4), _t(1, 4, 3, 3), [1, 1], [0, 0], [1, 1], 2, [3, 3], False,
                             "leaky_relu", 0.2, True, True)),
        (C2.input_grad, (gy, w.detach(), [1, 2, 5, 5], *conv, False)),
        (C2.weight_grad, (gy, x.detach(), [3, 2, 3, 3], *conv)),
        (library.channel_sum_op, (gy,)),
        (library.activation_backward_op, (gy, _t(1, 3, 3, 3, grad=False), "gelu", 0.01)),
        (C2.conv_transpose, (x, _t(2, 3, 3, 3), _t(6), None, [2, 2], [1, 1], [1, 1], 2, [10, 10], False,
                                       *plain)),
        (C2.conv_transpose, (x_cl, _t(2, 1, 2, 2), None, None, [2, 2], [0, 0], [1, 1], 2, [10, 10], True,
                                       *plain)),
        (C2.conv_transpose, (x, _t(2, 3, 3, 3), _t(6), _t(1, 6, 10, 10), [2, 2], [1, 1], [1, 1], 2,
                                       [10, 10], False, "silu", 0.01, True, True)),
        (P2.max_pool, (x, [2, 2], [2, 2], [0, 0], [1, 1], False, True, False, False)),     # int64 indices
        (P2.max_pool, (x_cl, [3, 3], [2, 2], [1, 1], [1, 1], True, False, True, True)),  # uint8 in-window
        (P2.max_pool_backward, (_t(1, 2, 2, 2, grad=False), idx, [1, 2, 5, 5], [2, 2], [2, 2], [0, 0],
                                          [1, 1], False, False)),
        (P2.max_pool_backward, (_t(1, 2, 2, 2, grad=False), window_idx, [1, 2, 5, 5], [2, 2], [2, 2],
                                          [0, 0], [1, 1], False, False)),
        (P2.avg_pool, (x, [3, 3], [2, 2], [1, 1], True, False, 0, False, False)),
        (P2.avg_pool_backward, (_t(1, 2, 3, 3, grad=False), [1, 2, 5, 5], [3, 3], [2, 2], [1, 1], True,
                                          False, 0, False)),
        (P2.adaptive_avg_pool, (x, [2, 3], False, False)),
        (P2.adaptive_avg_pool, (x_cl, [1, 1], True, True)),
        (P2.adaptive_avg_pool_backward, (_t(1, 2, 2, 3, grad=False), [1, 2, 5, 5], False)),
        (P2.adaptive_max_pool, (x, [2, 3], True, False, False)),
        (P2.adaptive_max_pool, (x_cl, [3, 2], False, True, True)),
        (P2.adaptive_max_pool_backward, (_t(1, 2, 2, 2, grad=False), idx, [1, 2, 5, 5], False)),
    ]


@pytest.mark.parametrize("case", range(len(_cases())))
def test_opcheck(case: int) -> None:
    op, args = _cases()[case]
    torch.library.opcheck(op, args)


def test_every_op_is_checked() -> None:
    from test_conv3d import OPCHECKED  # (the 3-D ops are checked in their own files)
    from test_pool3d import OPCHECK

    assert {op for op, _ in _cases()} | OPCHECKED | {op for op, _ in OPCHECK} == set(library.OPS)


def _net(nn) -> torch.nn.Module:
    return torch.nn.Sequential(
        nn.Conv2d(2, 4, 3, padding=1), nn.MaxPool2d(2),
        nn.Conv2d(4, 4, 3, padding="same", groups=4, bias=False), nn.ConvTranspose2d(4, 3, 2, stride=2),
        nn.AvgPool2d(2, stride=1), nn.AdaptiveAvgPool2d(1),
    )


def _calls(graph: str, op: str) -> bool:
    """Whether a printed FX graph calls ``torch.ops.kernels.<op>`` (the packet or its default overload)."""
    return re.search(rf"torch\.ops\.kernels\.{op}(\.default)?\]", graph) is not None


def _compile_and_compare(ours: torch.nn.Module, ref: torch.nn.Module, input_shape: tuple[int, ...],
                         op_names: tuple[str, ...], backward_op_names: tuple[str, ...]) -> None:
    """Compile ``ours`` with ``fullgraph=True`` (aot_eager), check one graph calling each ``kernels.<op>`` and a
    backward graph calling each of ``backward_op_names``, and the forward, input gradient and parameter
    gradients against ``ref`` (same state) in float64."""
    torch._dynamo.reset()
    ours, ref = ours.to(device=DEVICE, dtype=F64), ref.to(device=DEVICE, dtype=F64)
    ref.load_state_dict(ours.state_dict())
    graphs: list[str] = []
    backward_graphs: list[str] = []

    def backward_compiler(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):
        backward_graphs.append(str(gm.graph))
        return make_boxed_func(gm)

    def backend(gm: torch.fx.GraphModule, example_inputs: list[torch.Tensor]):
        graphs.append(str(gm.graph))
        return aot_autograd(fw_compiler=lambda fw, _: make_boxed_func(fw), bw_compiler=backward_compiler)(
            gm, example_inputs)

    compiled = torch.compile(ours, fullgraph=True, backend=backend, dynamic=False)
    x = torch.randn(input_shape, dtype=F64, device=DEVICE)
    x_ours, x_ref = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, expected = compiled(x_ours), ref(x_ref)
    torch.testing.assert_close(out, expected)
    assert len(graphs) == 1
    for name in op_names:
        assert _calls(graphs[0], name), f"kernels.{name} not in the graph"
    grad = torch.randn_like(expected)
    out.backward(grad)
    expected.backward(grad)
    torch.testing.assert_close(x_ours.grad, x_ref.grad)
    for p, q in zip(ours.parameters(), ref.parameters(), strict=True):
        torch.testing.assert_close(p.grad, q.grad)
    assert len(backward_graphs) == 1
    for name in backward_op_names:
        assert _calls(backward_graphs[0], name), f"kernels.{name} not in the backward graph"


def test_compile_fullgraph_matches_torch() -> None:
    _compile_and_compare(_net(kernels.nn), _net(torch.nn), (2, 2, 6, 6),
                         ("conv2d", "conv_transpose2d", "max_pool2d", "avg_pool2d", "adaptive_avg_pool2d"),
                         ("conv2d", "conv2d_input_grad", "conv2d_weight_grad", "channel_sum", "max_pool2d_backward",
                          "avg_pool2d_backward", "adaptive_avg_pool2d_backward"))


class _FusedBlock(torch.nn.Module):
    """A residual block with fused epilogues (ours) or the same computation in torch.nn."""

    def __init__(self, nn, fused: bool) -> None:
        super().__init__()
        extras = {"activation": "relu"} if fused else {}
        self.fused = fused
        self.conv1 = nn.Conv2d(3, 3, 3, padding=1, **extras)
        extras = {"activation": "gelu", "residual_before_activation": True} if fused else {}
        self.conv2 = nn.Conv2d(3, 3, 3, padding=1, **extras)
        self.pool = nn.AdaptiveMaxPool2d((2, 3))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.fused:
            y = self.conv2(self.conv1(x), residual=x)
        else:
            y = torch.nn.functional.gelu(self.conv2(torch.relu(self.conv1(x))) + x)
        return self.pool(y)


def test_compile_fused_epilogues_and_adaptive_max_pool() -> None:
    _compile_and_compare(_FusedBlock(kernels.nn, fused=True), _FusedBlock(torch.nn, fused=False), (2, 3, 6, 7),
                         ("conv2d", "adaptive_max_pool2d"),
                         ("activation_backward", "conv2d_input_grad", "conv2d_weight_grad", "channel_sum",
                          "adaptive_max_pool2d_backward"))


def test_compiled_double_backward_raises() -> None:
    """Gradients of gradients are eager-only: under torch.compile the backward is not differentiable again,
    and torch says so."""
    torch._dynamo.reset()
    compiled = torch.compile(kernels.nn.Conv2d(2, 3, 3, padding=1).to(device=DEVICE, dtype=F64), fullgraph=True,
                             backend="aot_eager")
    x = _t(1, 2, 5, 5)
    (grad_x,) = torch.autograd.grad(compiled(x).square().sum(), x, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward"):
        grad_x.sum().backward()
