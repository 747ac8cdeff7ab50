"""``kernels.optimize``: BatchNorm folded into every kind of convolution, the residual add and the activation
fused into the epilogue, on torchvision's networks at small widths and the benchmark's UNet, in eval mode and
float64: the optimized model's output equals the unmodified model's while torch's convolution and BatchNorm
are forbidden; ``torch.compile(fullgraph=True)`` of it gives the same values; training mode is refused; a
model ``torch.fx`` cannot trace takes the module-by-module path with a warning.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import pytest
import torch
import torchvision  # noqa: F401  (required: an ImportError here must fail the run, not skip it)
from torch.utils._python_dispatch import TorchDispatchMode

import kernels
from bench.models import build
from kernels.optimize import fold_batch_norm

F64 = torch.float64
TOL = 1e-12


class _ForbidTorchConvAndNorm(TorchDispatchMode):
    """Fail when torch's own convolution or batch norm runs."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if "conv" in name or "batch_norm" in name:
            raise AssertionError(f"torch's {name} ran inside the optimized model")
        return func(*args, **(kwargs or {}))


def _close(actual: torch.Tensor, expected: torch.Tensor) -> None:
    scale = expected.abs().max().item()
    torch.testing.assert_close(actual, expected, rtol=TOL, atol=TOL * scale)


def _randomise_norms(model: torch.nn.Module) -> None:
    """Running statistics and affine parameters far from their defaults, so that a missed fold shows."""
    for m in model.modules():
        if isinstance(m, torch.nn.modules.batchnorm._BatchNorm):
            m.running_mean.uniform_(-1, 1)
            m.running_var.uniform_(0.5, 2)
            if m.affine:
                m.weight.data.uniform_(0.5, 1.5)
                m.bias.data.uniform_(-0.5, 0.5)


# --------------------------------------------------------------------------------------------------------
# Folding, every kind of convolution

_CONVS = {
    "conv1d grouped": (lambda: torch.nn.Conv1d(4, 6, 3, groups=2), (2, 4, 9)),
    "conv2d strided": (lambda: torch.nn.Conv2d(4, 6, 3, stride=2, padding=1), (2, 4, 7, 6)),
    "conv2d depthwise": (lambda: torch.nn.Conv2d(4, 8, 3, padding=1, groups=4, bias=False), (2, 4, 6, 5)),
    "conv3d": (lambda: torch.nn.Conv3d(3, 4, 2), (2, 3, 4, 5, 3)),
    "conv_transpose1d grouped": (lambda: torch.nn.ConvTranspose1d(4, 6, 3, groups=2), (2, 4, 5)),
    "conv_transpose2d": (lambda: torch.nn.ConvTranspose2d(4, 6, 2, stride=2, groups=2, bias=False), (2, 4, 3, 4)),
    "conv_transpose3d": (lambda: torch.nn.ConvTranspose3d(2, 4, 2, stride=2), (2, 2, 2, 3, 2)),
}


def _norm_for(conv: torch.nn.Module, affine: bool) -> torch.nn.Module:
    cls = {1: torch.nn.BatchNorm1d, 2: torch.nn.BatchNorm2d, 3: torch.nn.BatchNorm3d}[conv.weight.dim() - 2]
    return cls(conv.out_channels, affine=affine)


@pytest.mark.parametrize("affine", [True, False], ids=["affine", "plain"])
@pytest.mark.parametrize("kind", list(_CONVS))
def test_fold_batch_norm(kind: str, affine: bool) -> None:
    make, shape = _CONVS[kind]
    conv = make().to(F64)
    model = torch.nn.Sequential(conv, _norm_for(conv, affine).to(F64), torch.nn.ReLU()).eval()
    _randomise_norms(model)
    x = torch.randn(shape, dtype=F64)
    expected = model(x)

    folded = copy.deepcopy(conv)
    fold_batch_norm(folded, model[1])
    _close(torch.relu(folded(x)), expected)  # the arithmetic, through torch's own convolution

    optimized = kernels.optimize(model, (x,))
    report = optimized.optimize_report
    assert report.folded == [("0", "1")] and report.fused == [("0", "relu")], str(report)
    assert not any(isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in optimized.modules())
    with _ForbidTorchConvAndNorm():
        out = optimized(x)
    _close(out, expected)
    assert list(optimized.get_submodule("0").state_dict()) == ["weight", "bias"]  # (a bias-free one gains one)


def test_batch_norm_with_other_users_or_a_shared_convolution_is_not_folded() -> None:
    class TwoUsers(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.bn = torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4)
            self.shared, self.bn2, self.bn3 = torch.nn.Conv2d(4, 4, 1), torch.nn.BatchNorm2d(4), torch.nn.BatchNorm2d(4)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            z = self.bn(y) + y  # the convolution's output is used twice
            return self.bn2(self.shared(z)) + self.bn3(self.shared(z))  # one convolution, two BatchNorms

    model = TwoUsers().to(F64).eval()
    _randomise_norms(model)
    x = torch.randn(2, 3, 6, 5, dtype=F64)
    optimized = kernels.optimize(model, (x,))
    assert optimized.optimize_report.folded == []
    _close(optimized(x), model(x))


def test_modules_with_hooks_are_neither_folded_nor_fused() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.Conv2d(4, 4, 1),
                                torch.nn.ReLU()).to(F64).eval()
    _randomise_norms(model)
    seen = []
    model[1].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    model[3].register_forward_hook(lambda module, args, out: seen.append(out.shape))
    x = torch.randn(2, 3, 6, 5, dtype=F64)
    optimized = kernels.optimize(model, (x,))
    assert optimized.optimize_report.folded == [] and optimized.optimize_report.fused == []
    seen.clear()
    _close(optimized(x), model(x))
    assert len(seen) == 4  # each hook ran in both models


# --------------------------------------------------------------------------------------------------------
# Whole networks


def _tiny_resnet18() -> torch.nn.Module:
    from torchvision.models.resnet import BasicBlock, ResNet

    return ResNet(BasicBlock, [1, 1, 1, 1], num_classes=10)


def _tiny_resnext() -> torch.nn.Module:
    from torchvision.models.resnet import Bottleneck, ResNet

    class NarrowBottleneck(Bottleneck):
        expansion = 1

    return ResNet(NarrowBottleneck, [1, 1, 1, 1], num_classes=10, groups=4, width_per_group=4)


def _tiny_regnet() -> torch.nn.Module:
    from torchvision.models.regnet import BlockParams, RegNet

    return RegNet(BlockParams.from_init_params(depth=3, w_0=8, w_a=8.0, w_m=2.0, group_width=4), num_classes=10)


def _tiny_efficientnet() -> torch.nn.Module:
    from torchvision.models.efficientnet import EfficientNet, MBConvConfig

    # two MBConv blocks per stage, so that the second has its residual (through stochastic depth)
    setting = [MBConvConfig(1, 3, 1, 32, 16, 2, width_mult=0.25, depth_mult=1.0),
               MBConvConfig(6, 5, 2, 16, 24, 2, width_mult=0.25, depth_mult=1.0)]
    return EfficientNet(setting, dropout=0.2, stochastic_depth_prob=0.2, num_classes=10)


def _tiny_mobilenet_v2() -> torch.nn.Module:
    from torchvision.models import mobilenet_v2

    return mobilenet_v2(width_mult=0.25, num_classes=10)


# name -> (model, input side, the least number of residual adds fused)
NETWORKS: dict[str, tuple[Callable[[], torch.nn.Module], int, int]] = {
    "resnet18": (_tiny_resnet18, 16, 4),
    "resnet50": (lambda: build("resnet50", tiny=True), 16, 4),
    "resnext": (_tiny_resnext, 16, 4),
    "regnet": (_tiny_regnet, 16, 3),
    "mobilenet_v2": (_tiny_mobilenet_v2, 16, 5),
    "mobilenet_v3_large": (lambda: build("mobilenet_v3_large", tiny=True), 16, 5),
    "efficientnet_b0": (lambda: build("efficientnet_b0", tiny=True), 16, 0),
    "efficientnet": (_tiny_efficientnet, 16, 2),
    "unet": (lambda: build("unet", tiny=True), 8, 0),
}


@pytest.mark.parametrize("name", list(NETWORKS))
def test_optimized_network_matches_torch(name: str, time_limit: Callable) -> None:
    make, side, residuals = NETWORKS[name]
    torch.manual_seed(0)
    model = make().to(F64).eval()
    _randomise_norms(model)
    x = torch.randn(2, 3, side, side, dtype=F64)
    with torch.no_grad():
        expected = model(x)
        optimized = kernels.optimize(model, (x,))
        report = optimized.optimize_report
        with time_limit(240), _ForbidTorchConvAndNorm():
            out = optimized(x)
    _close(out, expected)
    norms = [n for n, m in model.named_modules() if isinstance(m, torch.nn.modules.batchnorm._BatchNorm)]
    assert len(report.folded) == len(norms) and not any(
        isinstance(m, torch.nn.modules.batchnorm._BatchNorm) for m in optimized.modules()), str(report)
    assert sum("residual" in what for _, what in report.fused) >= residuals, str(report)
    assert all(type(m) is not torch.nn.ReLU for m in optimized.modules()) or name.startswith("mobilenet_v3")


def test_compiled_optimized_model_gives_the_same_values() -> None:
    torch.manual_seed(0)
    model = _tiny_resnext().to(F64).eval()
    _randomise_norms(model)
    x = torch.randn(2, 3, 16, 16, dtype=F64)
    optimized = kernels.optimize(model, (x,))
    with torch.no_grad():
        expected = optimized(x)
        compiled = torch.compile(optimized, fullgraph=True, backend="aot_eager", dynamic=False)
        _close(compiled(x), expected)


# --------------------------------------------------------------------------------------------------------
# Options and refusals


def test_training_mode_is_refused() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4))
    with pytest.raises(RuntimeError, match=r"eval mode: call model\.eval\(\) first"):
        kernels.optimize(model)


def test_without_example_inputs_residual_adds_stay_and_the_rest_fuses() -> None:
    model = _tiny_resnet18().to(F64).eval()
    _randomise_norms(model)
    x = torch.randn(1, 3, 16, 16, dtype=F64)
    optimized = kernels.optimize(model)
    report = optimized.optimize_report
    assert report.fused and not any("residual" in what for _, what in report.fused)
    with torch.no_grad():
        _close(optimized(x), model(x))


def test_the_original_model_is_left_alone_unless_inplace() -> None:
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.SiLU()).to(F64).eval()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    kernels.optimize(model)
    assert type(model[0]) is torch.nn.Conv2d and all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    kernels.optimize(model, inplace=True)
    assert not torch.equal(before["0.weight"], model[0].weight)


def test_an_untraceable_model_is_converted_module_by_module() -> None:
    class Branchy(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.body = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.BatchNorm2d(4), torch.nn.ReLU())

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.body(x if x.sum() > 0 else -x)  # data-dependent control flow: torch.fx cannot trace it

    model = Branchy().to(F64).eval()
    _randomise_norms(model)
    x = torch.randn(2, 3, 6, 6, dtype=F64)
    with pytest.warns(UserWarning, match="cannot trace Branchy"):
        optimized = kernels.optimize(model)
    report = optimized.optimize_report
    assert report.folded == [("body.0", "body.1")] and report.fused == [("body.0", "relu")]
    assert isinstance(optimized.body[1], torch.nn.Identity) and isinstance(optimized.body[0], kernels.nn.Conv2d)
    with _ForbidTorchConvAndNorm():
        out = optimized(x)
    _close(out, model(x))


def test_resnet50_traffic_proxy() -> None:
    """``bench.traffic`` at batch 4: the launch counts do not depend on the batch (ResNet-50's 53 convolutions,
    53 BatchNorms, 49 ReLUs, 16 adds, max pool, mean, classifier), and the optimized model moves at most 60% of
    eager's bytes (39% at batch 4; 35% at batch 32 in the committed data)."""
    from bench import traffic

    row = traffic.measure("resnet50", batch=4, side=224)
    eager, optimized = row["eager"], row["optimized"]
    assert eager["ops"] == {"convolution": 53, "native_batch_norm": 53, "relu_": 49, "add_": 16,
                            "max_pool2d_with_indices": 1, "mean": 1, "addmm": 1}
    assert (optimized["our_launches"], optimized["torch_ops"]) == (55, {"addmm": 1})  # 53 convolutions, 2 pools
    assert (optimized["folded"], optimized["fused"]) == (53, 49)
    assert row["byte_ratio"] <= 0.6, row
