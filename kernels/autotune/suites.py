"""Layer suites of real networks, shared by the benchmarks and the autotuner.

A layer is a dict of ``torch.nn.functional`` arguments plus the input shape; ``op`` names the function (and
``kernels``' twin of it, looked up when the layer runs). The 2-D registries: pooling layers live in
:data:`POOL_SUITES` (and :data:`POOL_SMOKE`), apart from :data:`SUITES`, whose layers are all convolutions
with a weight; :data:`SCALING` holds one dense and one depthwise layer over batch 1..64 (drawn as time-vs-batch
lines), its layer names ending in ``_b<batch>``. The 1-D and 3-D families have their own registries,
:data:`SUITES_1D` and :data:`SUITES_3D` (convolutions and pooling together; smoke twins :data:`SMOKE_1D`,
:data:`SMOKE_3D`). The benchmark (``python -m bench.run``) runs every registry; the autotuner tunes
:data:`SUITES` and :data:`POOL_SUITES`.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Layer:
    """One benchmarked call: ``op(input (N, C, *spatial), weight, **kwargs)`` (spatial ``(L)``, ``(H, W)`` or
    ``(D, H, W)``); ``op(input, **kwargs)`` for the pooling ops, whose ``weight_shape`` is ``()``. ``epilogue``: a
    fused epilogue for a convolution (``activation``, ``residual``: bool, ``residual_before_activation``), measured
    against torch's chain of ops computing the same thing."""

    name: str
    op: str
    input_shape: tuple[int, ...]
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


# --------------------------------------------------------------------------------------------------------
# The 1-D family: inputs (N, C, L), weights (K, C // groups, k).


def _conv1(name: str, n: int, c: int, length: int, k: int, r: int, stride: int = 1, padding: int = 0,
           groups: int = 1) -> Layer:
    return Layer(name, "conv1d", (n, c, length), (k, c // groups, r),
                 {"stride": stride, "padding": padding, "groups": groups})


def _up1(name: str, n: int, c: int, length: int, k: int, r: int, stride: int, padding: int) -> Layer:
    return Layer(name, "conv_transpose1d", (n, c, length), (c, k, r), {"stride": stride, "padding": padding})


def _pool1(name: str, op: str, n: int, c: int, length: int, **kwargs) -> Layer:
    return Layer(name, op, (n, c, length), (), kwargs)


WAV2VEC2_ENCODER: tuple[tuple[int, int], ...] = ((10, 5), (3, 2), (3, 2), (3, 2), (3, 2), (2, 2), (2, 2))


def wav2vec2_encoder(n: int, length: int, width: int = 512) -> list[Layer]:
    """The seven unpadded convolutions of wav2vec 2.0's feature encoder (``(kernel, stride)`` in
    :data:`WAV2VEC2_ENCODER`, ``width`` channels, one input channel: the waveform), at batch ``n`` on ``length``
    samples; each layer's length is the previous one's output, ``(L - kernel) // stride + 1``."""
    layers, channels = [], 1
    for i, (kernel, stride) in enumerate(WAV2VEC2_ENCODER):
        layers.append(_conv1(f"w2v_conv{i}_k{kernel}s{stride}_{length}", n, channels, length, width, kernel,
                             stride=stride))
        channels, length = width, (length - kernel) // stride + 1
    return layers


SUITES_1D: dict[str, list[Layer]] = {
    # wav2vec 2.0's feature encoder at batch 8 on one second at 16 kHz: lengths 16000, 3199, 1599, 799, 399, 199,
    # 99 (and 49 frames out).
    "wav2vec2": wav2vec2_encoder(8, 16000),
    # Mamba's depthwise causal convolution (kernel 4, padding 3; the block keeps the first L outputs) over the
    # inner width 2 * d_model at batch 8: Mamba-130m (1536), -370m (2048), -1.4b (4096).
    "mamba": [
        _conv1("mamba130m_dw4_L2048", 8, 1536, 2048, 1536, 4, padding=3, groups=1536),
        _conv1("mamba370m_dw4_L4096", 8, 2048, 4096, 2048, 4, padding=3, groups=2048),
        _conv1("mamba1.4b_dw4_L2048", 8, 4096, 2048, 4096, 4, padding=3, groups=4096),
        _conv1("mamba1.4b_dw4_L8192", 8, 4096, 8192, 4096, 4, padding=3, groups=4096),
    ],
    # HiFi-GAN V1's generator up-convolutions at batch 16 on a 8192-sample segment (32 mel frames):
    # 32 -> 256 -> 2048 -> 4096 -> 8192 samples, 512 -> 32 channels.
    "hifigan": [
        _up1("hifigan_up1_k16s8", 16, 512, 32, 256, 16, 8, 4),
        _up1("hifigan_up2_k16s8", 16, 256, 256, 128, 16, 8, 4),
        _up1("hifigan_up3_k4s2", 16, 128, 2048, 64, 4, 2, 1),
        _up1("hifigan_up4_k4s2", 16, 64, 4096, 32, 4, 2, 1),
    ],
    # An M5 raw-waveform classifier (Dai et al. 2017: 32000 samples at 8 kHz, unpadded convolutions, 128-512
    # channels) at batch 32: the max pooling by 4 after each convolution and the global average at the end; and
    # HiFi-GAN's multi-scale discriminator's AvgPool1d(4, 2, padding=2) on the waveform at batch 16.
    "pool1d": [
        _pool1("m5_max4_7981", "max_pool1d", 32, 128, 7981, kernel_size=4),
        _pool1("m5_max4_1993", "max_pool1d", 32, 128, 1993, kernel_size=4),
        _pool1("m5_max4_496", "max_pool1d", 32, 256, 496, kernel_size=4),
        _pool1("m5_max4_122", "max_pool1d", 32, 512, 122, kernel_size=4),
        _pool1("m5_global_avg_30", "avg_pool1d", 32, 512, 30, kernel_size=30),
        _pool1("hifigan_msd_avg4s2_8192", "avg_pool1d", 16, 1, 8192, kernel_size=4, stride=2, padding=2),
    ],
}
SMOKE_1D: dict[str, list[Layer]] = {
    "wav2vec2": wav2vec2_encoder(1, 40, width=4)[:2],
    "mamba": [_conv1("smoke_dw4_causal", 1, 8, 16, 8, 4, padding=3, groups=8)],
    "hifigan": [_up1("smoke_up_k4s2", 1, 8, 4, 4, 4, 2, 1)],
    "pool1d": [
        _pool1("smoke_max4", "max_pool1d", 1, 4, 16, kernel_size=4),
        _pool1("smoke_avg4s2p2", "avg_pool1d", 1, 1, 16, kernel_size=4, stride=2, padding=2),
        _pool1("smoke_global_avg_6", "avg_pool1d", 1, 8, 6, kernel_size=6),
    ],
}


# --------------------------------------------------------------------------------------------------------
# The 3-D family: inputs (N, C, D, H, W), weights (K, C // groups, T, R, S).


def _triple(value: int | tuple[int, int, int]) -> tuple[int, int, int]:
    return value if isinstance(value, tuple) else (value, value, value)


def _conv3(name: str, n: int, c: int, dhw: int | tuple[int, int, int], k: int, r: int | tuple[int, int, int],
           stride: int | tuple[int, int, int] = 1, padding: int | tuple[int, int, int] | None = None) -> Layer:
    kernel = _triple(r)
    pad = tuple(t // 2 for t in kernel) if padding is None else padding
    return Layer(name, "conv3d", (n, c, *_triple(dhw)), (k, c, *kernel), {"stride": stride, "padding": pad})


def _up3(name: str, n: int, c: int, dhw: int, k: int, r: int, stride: int, padding: int) -> Layer:
    return Layer(name, "conv_transpose3d", (n, c, *_triple(dhw)), (c, k, r, r, r),
                 {"stride": stride, "padding": padding})


def _pool3(name: str, op: str, n: int, c: int, dhw: int | tuple[int, int, int], **kwargs) -> Layer:
    return Layer(name, op, (n, c, *_triple(dhw)), (), kwargs)


SUITES_3D: dict[str, list[Layer]] = {
    # torchvision's R3D-18 at batch 8 on 16x112x112 clips: the stem (3x7x7, stride (1, 2, 2)), the 3x3x3 of each
    # stage, the strided 3x3x3 and 1x1x1 shortcut downsamples.
    "r3d18": [
        _conv3("stem_3x7x7s122", 8, 3, (16, 112, 112), 64, (3, 7, 7), stride=(1, 2, 2)),
        _conv3("layer1_3x3x3", 8, 64, (16, 56, 56), 64, 3),
        _conv3("layer2_3x3x3s2", 8, 64, (16, 56, 56), 128, 3, stride=2),
        _conv3("layer2_down_1x1x1s2", 8, 64, (16, 56, 56), 128, 1, stride=2),
        _conv3("layer2_3x3x3", 8, 128, (8, 28, 28), 128, 3),
        _conv3("layer3_3x3x3s2", 8, 128, (8, 28, 28), 256, 3, stride=2),
        _conv3("layer3_down_1x1x1s2", 8, 128, (8, 28, 28), 256, 1, stride=2),
        _conv3("layer3_3x3x3", 8, 256, (4, 14, 14), 256, 3),
        _conv3("layer4_3x3x3s2", 8, 256, (4, 14, 14), 512, 3, stride=2),
        _conv3("layer4_down_1x1x1s2", 8, 256, (4, 14, 14), 512, 1, stride=2),
        _conv3("layer4_3x3x3", 8, 512, (2, 7, 7), 512, 3),
    ],
    # A 3D UNet (Cicek et al. 2016) at batch 2 on 64^3 volumes, 32..256 channels over 64^3..8^3: the encoder's
    # 3x3x3 (the first from one channel), the 2x2x2 stride-2 up-convolutions and the decoder's 3x3x3 over the
    # concatenated skip.
    "unet3d": [
        _conv3("enc1_in_3x3x3_64", 2, 1, 64, 32, 3),
        _conv3("enc1_3x3x3_64", 2, 32, 64, 32, 3),
        _conv3("enc2_3x3x3_32", 2, 64, 32, 64, 3),
        _conv3("enc3_3x3x3_16", 2, 128, 16, 128, 3),
        _conv3("bottom_3x3x3_8", 2, 256, 8, 256, 3),
        _up3("up3_2x2x2s2_8", 2, 256, 8, 128, 2, 2, 0),
        _conv3("dec3_3x3x3_16", 2, 256, 16, 128, 3),
        _up3("up2_2x2x2s2_16", 2, 128, 16, 64, 2, 2, 0),
        _conv3("dec2_3x3x3_32", 2, 128, 32, 64, 3),
        _up3("up1_2x2x2s2_32", 2, 64, 32, 32, 2, 2, 0),
        _conv3("dec1_3x3x3_64", 2, 64, 64, 32, 3),
    ],
    # The 3D UNet's 2x2x2 max pooling (batch 2), R3D-18's global average (batch 8), C3D's first max pooling
    # (1x2x2, batch 8) and I3D's final average pooling (2x7x7, stride 1, batch 8).
    "pool3d": [
        _pool3("unet3d_max2_64", "max_pool3d", 2, 32, 64, kernel_size=2),
        _pool3("unet3d_max2_32", "max_pool3d", 2, 64, 32, kernel_size=2),
        _pool3("unet3d_max2_16", "max_pool3d", 2, 128, 16, kernel_size=2),
        _pool3("c3d_max1x2x2_112", "max_pool3d", 8, 64, (16, 112, 112), kernel_size=(1, 2, 2)),
        _pool3("i3d_avg2x7x7_7", "avg_pool3d", 8, 1024, (8, 7, 7), kernel_size=(2, 7, 7), stride=1),
        _pool3("r3d18_global_avg_7", "adaptive_avg_pool3d", 8, 512, (2, 7, 7), output_size=1),
    ],
}
SMOKE_3D: dict[str, list[Layer]] = {
    "r3d18": [_conv3("smoke_3x3x3s122", 1, 3, (4, 6, 6), 4, 3, stride=(1, 2, 2)),
              _conv3("smoke_1x1x1s2", 1, 4, 4, 8, 1, stride=2)],
    "unet3d": [_conv3("smoke_3x3x3", 1, 4, 4, 4, 3), _up3("smoke_up_2x2x2s2", 1, 8, 2, 4, 2, 2, 0)],
    "pool3d": [
        _pool3("smoke_max2", "max_pool3d", 1, 4, 4, kernel_size=2),
        _pool3("smoke_avg2x3x3", "avg_pool3d", 1, 4, (3, 5, 5), kernel_size=(2, 3, 3), stride=1),
        _pool3("smoke_global_avg", "adaptive_avg_pool3d", 1, 8, (2, 3, 3), output_size=1),
    ],
}

# The suites of each family by name (``python -m bench.run --family``).
FAMILIES: dict[str, tuple[str, ...]] = {
    "2d": (*SUITES, *POOL_SUITES, *SCALING),
    "1d": tuple(SUITES_1D),
    "3d": tuple(SUITES_3D),
}
