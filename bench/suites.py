"""Layer suites of real networks, shared by the benchmarks (and, later, the autotuner).

A layer is a dict of ``torch.nn.functional`` arguments plus the input shape; ``op`` names the function.
Pooling layers live in :data:`POOL_SUITES` (and :data:`POOL_SMOKE`), apart from :data:`SUITES`, whose
layers are all convolutions with a weight. :data:`SCALING` holds one dense and one depthwise layer over
batch 1..64 (drawn as time-vs-batch lines); its layer names end in ``_b<batch>``. The benchmark
(``python -m bench.run``) runs all three registries; the autotuner tunes :data:`SUITES` and :data:`POOL_SUITES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Layer:
    """One benchmarked call: ``op(input (N, C, H, W), weight, **kwargs)``; ``op(input, **kwargs)`` for the
    pooling ops, whose ``weight_shape`` is ``()``. ``epilogue``: a fused epilogue for a convolution
    (``activation``, ``residual``: bool, ``residual_before_activation``), measured against torch's chain of
    ops computing the same thing."""

    name: str
    op: str
    input_shape: tuple[int, int, int, int]
    weight_shape: tuple[int, ...]
    kwargs: dict = field(default_factory=dict)
    epilogue: dict = field(default_factory=dict)


def _fused(layer: Layer, activation: str | None, residual: bool = False, before: bool = False) -> Layer:
    epilogue = {"activation": activation, "residual": residual, "residual_before_activation": before}
    return Layer(layer.name, layer.op, layer.input_shape, layer.weight_shape, layer.kwargs, epilogue)


def _conv(name: str, n: int, c: int, hw: int, k: int, r: int, stride: int = 1, padding: int | None = None,
          groups: int = 1) -> Layer:
    pad = r // 2 if padding is None else padding
    return Layer(name, "conv2d", (n, c, hw, hw), (k, c // groups, r, r),
                 {"stride": stride, "padding": pad, "groups": groups})


def _pool(name: str, op: str, n: int, c: int, hw: int, **kwargs) -> Layer:
    return Layer(name, op, (n, c, hw, hw), (), kwargs)


def _up(name: str, n: int, c: int, hw: int, k: int, r: int, stride: int, padding: int) -> Layer:
    return Layer(name, "conv_transpose2d", (n, c, hw, hw), (c, k, r, r), {"stride": stride, "padding": padding})


SUITES: dict[str, list[Layer]] = {
    # ResNet-50 at batch 32: stem, the 3x3 of each stage, the 1x1 reductions and expansions.
    "resnet50": [
        _conv("conv1_7x7s2", 32, 3, 224, 64, 7, stride=2, padding=3),
        _conv("res2_1x1_reduce", 32, 256, 56, 64, 1),
        _conv("res2_3x3", 32, 64, 56, 64, 3),
        _conv("res2_1x1_expand", 32, 64, 56, 256, 1),
        _conv("res3_3x3s2", 32, 128, 56, 128, 3, stride=2),
        _conv("res3_3x3", 32, 128, 28, 128, 3),
        _conv("res4_3x3", 32, 256, 14, 256, 3),
        _conv("res4_1x1_expand", 32, 256, 14, 1024, 1),
        _conv("res5_3x3", 32, 512, 7, 512, 3),
    ],
    # ResNet-18 at batch 32: the stem, the 3x3 of each stage, the strided 3x3 and 1x1 downsamples.
    "resnet18": [
        _conv("conv1_7x7s2", 32, 3, 224, 64, 7, stride=2, padding=3),
        _conv("layer1_3x3", 32, 64, 56, 64, 3),
        _conv("layer2_3x3s2", 32, 64, 56, 128, 3, stride=2),
        _conv("layer2_down_1x1s2", 32, 64, 56, 128, 1, stride=2),
        _conv("layer2_3x3", 32, 128, 28, 128, 3),
        _conv("layer3_3x3s2", 32, 128, 28, 256, 3, stride=2),
        _conv("layer3_3x3", 32, 256, 14, 256, 3),
        _conv("layer4_3x3s2", 32, 256, 14, 512, 3, stride=2),
        _conv("layer4_3x3", 32, 512, 7, 512, 3),
    ],
    # Depthwise layers: MobileNetV2 3x3, EfficientNet 5x5, ConvNeXt-T 7x7.
    "depthwise": [
        _conv("mbv2_dw3x3_112", 32, 96, 112, 96, 3, stride=2, groups=96),
        _conv("mbv2_dw3x3_28", 32, 192, 28, 192, 3, groups=192),
        _conv("effnet_dw5x5_14", 32, 480, 14, 480, 5, groups=480),
        _conv("convnext_dw7x7_56", 32, 96, 56, 96, 7, groups=96),
        _conv("convnext_dw7x7_14", 32, 384, 14, 384, 7, groups=384),
    ],
    # UNet decoder and DCGAN generator up-convolutions.
    "transposed": [
        _up("unet_up_28", 16, 512, 28, 256, 2, 2, 0),
        _up("unet_up_56", 16, 256, 56, 128, 2, 2, 0),
        _up("dcgan_4to8", 64, 512, 4, 256, 4, 2, 1),
        _up("dcgan_16to32", 64, 128, 16, 64, 4, 2, 1),
    ],
    # Fused epilogues against conv + torch's elementwise ops: ResNet block ends (relu(conv + identity)),
    # ConvNeXt's pointwise expansion (gelu), an EfficientNet-style silu, a UNet decoder up-convolution with its
    # skip connection added after the relu.
    "fused": [
        _fused(_conv("resnet18_3x3_relu_res", 32, 128, 28, 128, 3), "relu", residual=True, before=True),
        _fused(_conv("resnet50_1x1_relu_res", 32, 64, 56, 256, 1), "relu", residual=True, before=True),
        _fused(_conv("convnext_1x1_gelu", 32, 96, 56, 384, 1), "gelu"),
        _fused(_conv("effnet_1x1_silu", 32, 40, 28, 240, 1), "silu"),
        _fused(_up("unet_up_56_relu_skip", 16, 256, 28, 128, 2, 2, 0), "relu", residual=True),
    ],
}

# Tiny stand-ins with the same options, for the interpreter smoke pass on a machine without a GPU.
SMOKE: dict[str, list[Layer]] = {
    "resnet50": [_conv("smoke_3x3", 1, 8, 8, 8, 3), _conv("smoke_7x7s2", 1, 3, 12, 8, 7, stride=2, padding=3)],
    "resnet18": [_conv("smoke_1x1s2", 1, 8, 8, 16, 1, stride=2)],
    "depthwise": [_conv("smoke_dw3x3", 1, 8, 8, 8, 3, groups=8)],
    "transposed": [_up("smoke_up", 1, 8, 4, 4, 2, 2, 0)],
    "fused": [_fused(_conv("smoke_3x3_relu_res", 1, 8, 8, 8, 3), "relu", residual=True, before=True),
              _fused(_up("smoke_up_gelu_skip", 1, 8, 4, 4, 2, 2, 0), "gelu", residual=True)],
}

# Pooling layers of the same networks at batch 32 (tuned by ``python -m kernels.autotune``).
POOL_SUITES: dict[str, list[Layer]] = {
    "pooling": [
        _pool("resnet_stem_max3x3s2", "max_pool2d", 32, 64, 112, kernel_size=3, stride=2, padding=1),
        _pool("vgg_max2x2_224", "max_pool2d", 32, 64, 224, kernel_size=2, stride=2),
        _pool("vgg_max2x2_28", "max_pool2d", 32, 512, 28, kernel_size=2, stride=2),
        _pool("inception_avg3x3_35", "avg_pool2d", 32, 192, 35, kernel_size=3, stride=1, padding=1),
        _pool("densenet_avg2x2_56", "avg_pool2d", 32, 128, 56, kernel_size=2, stride=2),
        _pool("resnet_global_avg_7", "adaptive_avg_pool2d", 32, 2048, 7, output_size=1),
        _pool("effnet_global_avg_14", "adaptive_avg_pool2d", 32, 672, 14, output_size=1),
    ],
}
POOL_SMOKE: dict[str, list[Layer]] = {
    "pooling": [
        _pool("smoke_max3x3s2", "max_pool2d", 1, 4, 9, kernel_size=3, stride=2, padding=1),
        _pool("smoke_avg2x2", "avg_pool2d", 1, 4, 8, kernel_size=2, stride=2),
        _pool("smoke_global_avg", "adaptive_avg_pool2d", 1, 8, 7, output_size=1),
    ],
}

# Time against batch: one ResNet 3x3 layer and one MobileNetV2 depthwise layer, batch 1..64.
SCALING_BATCHES: tuple[int, ...] = (1, 2, 4, 8, 16, 32, 64)
SCALING: dict[str, list[Layer]] = {
    "scaling": [
        *(_conv(f"res3_3x3_b{n}", n, 128, 28, 128, 3) for n in SCALING_BATCHES),
        *(_conv(f"mbv2_dw3x3_28_b{n}", n, 192, 28, 192, 3, groups=192) for n in SCALING_BATCHES),
    ],
}
SCALING_SMOKE: dict[str, list[Layer]] = {
    "scaling": [
        *(_conv(f"smoke_3x3_b{n}", n, 8, 8, 8, 3) for n in (1, 2)),
        *(_conv(f"smoke_dw3x3_b{n}", n, 8, 8, 8, 3, groups=8) for n in (1, 2)),
    ],
}
