"""``convert`` swaps torch.nn conv/pool layers for ours in place, sharing parameters, buffers and hooks."""

from __future__ import annotations

import copy

import torch

import kernels.nn as knn
from kernels.convert import ConversionReport, convert


class MyConv(torch.nn.Conv2d):
    """A user layer: a subclass must be left alone (it may override forward)."""


def _model() -> torch.nn.Sequential:
    torch.manual_seed(0)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
        torch.nn.ReLU(),
        torch.nn.MaxPool2d(2, ceil_mode=True),
        torch.nn.Conv2d(4, 4, 3, padding=1, groups=4),
        torch.nn.AvgPool2d(3, stride=1, padding=1, count_include_pad=False),
        torch.nn.ConvTranspose2d(4, 2, 2, stride=2),
        MyConv(2, 2, 1),
        torch.nn.Sequential(torch.nn.AdaptiveMaxPool2d((2, 3)), torch.nn.AdaptiveAvgPool2d(1)),
    ).double()


def test_convert_swaps_classes_and_shares_parameters() -> None:
    model = _model()
    reference = copy.deepcopy(model)
    params = {name: p for name, p in model.named_parameters()}
    state = {k: v.data_ptr() for k, v in model.state_dict().items()}
    hits: list[int] = []
    model[0].register_forward_hook(lambda *_: hits.append(1))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)

    report = convert(model)

    assert isinstance(report, ConversionReport)
    assert report.converted == ["0", "2", "3", "4", "5", "7.0", "7.1"]
    assert [name for name, _ in report.kept] == ["6"]
    assert "MyConv" in report.kept[0][1]
    assert type(model[0]) is knn.Conv2d and type(model[2]) is knn.MaxPool2d
    assert type(model[5]) is knn.ConvTranspose2d and type(model[7][0]) is knn.AdaptiveMaxPool2d
    assert type(model[6]) is MyConv
    assert all(p is params[name] for name, p in model.named_parameters())
    assert {k: v.data_ptr() for k, v in model.state_dict().items()} == state
    assert optimizer.param_groups[0]["params"][0] is model[0].weight
    text = str(report)
    assert "converted 7" in text and "6: MyConv" in text

    x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
    y = model(x)
    assert hits == [1]
    torch.testing.assert_close(y, reference(x), rtol=1e-10, atol=1e-10)

    again = convert(model)
    assert again.converted == [] and again.already == report.converted


def test_convert_root_module_and_unsupported_option() -> None:
    conv = torch.nn.Conv2d(1, 1, 3)
    assert convert(conv).converted == [""] and type(conv) is knn.Conv2d
    tconv = torch.nn.ConvTranspose2d(1, 1, 3)
    tconv.padding_mode = "reflect"  # the constructor refuses it; set afterwards to reach the check
    report = convert(torch.nn.Sequential(tconv))
    assert report.converted == [] and "padding_mode='reflect'" in report.kept[0][1]
    assert type(tconv) is torch.nn.ConvTranspose2d


def _fusable() -> torch.nn.Sequential:
    torch.manual_seed(1)
    shared = torch.nn.Conv2d(4, 4, 3, padding=1)
    return torch.nn.Sequential(
        torch.nn.Conv2d(3, 4, 3, padding=1), torch.nn.ReLU(inplace=True),
        torch.nn.Conv2d(4, 4, 3, padding=1), torch.nn.LeakyReLU(0.2),
        torch.nn.ConvTranspose2d(4, 4, 2, stride=2), torch.nn.GELU(),
        torch.nn.Conv2d(4, 4, 1), torch.nn.GELU(approximate="tanh"),   # not the erf form: kept
        shared, torch.nn.SiLU(), shared,                                # used twice: not fused
        torch.nn.Conv2d(4, 4, 1), torch.nn.Tanh(),                      # no such epilogue: kept
    ).double()


def test_convert_fuses_following_activations() -> None:
    reference = _fusable()
    model = copy.deepcopy(reference)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    report = convert(model, fuse_activations=True)
    assert report.fused == [("0", "relu"), ("2", "leaky_relu"), ("4", "gelu")]
    assert "fused      2: leaky_relu" in str(report)
    assert isinstance(model[1], torch.nn.Identity) and isinstance(model[7], torch.nn.GELU)
    assert model[2].activation == "leaky_relu" and model[2].negative_slope == 0.2
    assert model[8].activation is None
    assert model.state_dict().keys() == state.keys()
    x = torch.randn(2, 3, 6, 5, dtype=torch.float64)
    torch.testing.assert_close(model(x), reference(x))


def test_convert_does_not_fuse_by_default_or_across_hooks() -> None:
    model = _fusable()
    assert convert(copy.deepcopy(model)).fused == []
    model[1].register_forward_hook(lambda module, args, out: None)
    report = convert(model, fuse_activations=True)
    assert ("0", "relu") not in report.fused and isinstance(model[1], torch.nn.ReLU)
