"""Swap the torch.nn convolution and pooling layers of a model for this package's modules, in place.

Each swap changes only the instance's ``__class__`` to our subclass of the very same torch class, so every
attribute, Parameter, buffer and hook is kept: ``state_dict``, optimizers and registered hooks are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from . import nn as knn

# exact torch class -> our subclass overriding only forward / _conv_forward
_SWAPS: dict[type[torch.nn.Module], type[torch.nn.Module]] = {
    torch.nn.Conv2d: knn.Conv2d,
    torch.nn.ConvTranspose2d: knn.ConvTranspose2d,
    torch.nn.MaxPool2d: knn.MaxPool2d,
    torch.nn.AvgPool2d: knn.AvgPool2d,
    torch.nn.AdaptiveAvgPool2d: knn.AdaptiveAvgPool2d,
    torch.nn.AdaptiveMaxPool2d: knn.AdaptiveMaxPool2d,
    torch.nn.Conv1d: knn.Conv1d,
    torch.nn.ConvTranspose1d: knn.ConvTranspose1d,
    torch.nn.MaxPool1d: knn.MaxPool1d,
    torch.nn.AvgPool1d: knn.AvgPool1d,
    torch.nn.AdaptiveAvgPool1d: knn.AdaptiveAvgPool1d,
    torch.nn.AdaptiveMaxPool1d: knn.AdaptiveMaxPool1d,
    torch.nn.Conv3d: knn.Conv3d,
    torch.nn.ConvTranspose3d: knn.ConvTranspose3d,
    torch.nn.MaxPool3d: knn.MaxPool3d,
    torch.nn.AvgPool3d: knn.AvgPool3d,
    torch.nn.AdaptiveAvgPool3d: knn.AdaptiveAvgPool3d,
    torch.nn.AdaptiveMaxPool3d: knn.AdaptiveMaxPool3d,
}
_OURS = tuple(_SWAPS.values())
_CONVS = (knn.Conv1d, knn.Conv2d, knn.Conv3d, knn.ConvTranspose1d, knn.ConvTranspose2d,
          knn.ConvTranspose3d)  # those with a fused epilogue


@dataclass
class ConversionReport:
    """What :func:`convert` did: ``converted`` qualified module names (``""`` is the root module),
    ``kept`` ``(name, reason)`` for the candidate layers left as they were, ``already`` for modules that were
    already ours, ``fused`` ``(convolution, what)`` for epilogues fused; ``folded`` ``(convolution,
    BatchNorm)`` for the BatchNorms :func:`kernels.optimize` folded."""

    converted: list[str] = field(default_factory=list)
    kept: list[tuple[str, str]] = field(default_factory=list)
    already: list[str] = field(default_factory=list)
    fused: list[tuple[str, str]] = field(default_factory=list)
    folded: list[tuple[str, str]] = field(default_factory=list)  # (convolution, BatchNorm): kernels.optimize

    def __str__(self) -> str:
        lines = [f"converted {len(self.converted)} module(s), kept {len(self.kept)}, "
                 f"already converted {len(self.already)}"]
        lines += [f"  converted  {name or '<root>'}" for name in self.converted]
        lines += [f"  kept       {name or '<root>'}: {reason}" for name, reason in self.kept]
        lines += [f"  already    {name or '<root>'}" for name in self.already]
        lines += [f"  folded     {bn} into {conv}" for conv, bn in self.folded]
        lines += [f"  fused      {name}: {activation} into the convolution's epilogue"
                  for name, activation in self.fused]
        return "\n".join(lines)


def _unsupported(module: torch.nn.Module) -> str | None:
    """Why ``module`` (exactly a torch class in ``_SWAPS``) cannot run on our kernels, or None."""
    transposed = torch.nn.ConvTranspose1d | torch.nn.ConvTranspose2d | torch.nn.ConvTranspose3d
    if isinstance(module, transposed) and module.padding_mode != "zeros":
        return f"padding_mode={module.padding_mode!r} ({type(module).__name__} supports only 'zeros')"
    if isinstance(module, torch.nn.Conv1d | torch.nn.Conv2d | torch.nn.Conv3d) and module.padding_mode not in (
            "zeros", "reflect", "replicate", "circular"):
        return f"padding_mode={module.padding_mode!r}"
    return None


def convert(model: torch.nn.Module, fuse_activations: bool = False) -> ConversionReport:
    """Replace, in place, every module of ``model`` (``model`` itself included) whose type is exactly
    ``torch.nn.Conv2d``, ``ConvTranspose2d``, ``MaxPool2d``, ``AvgPool2d``, ``AdaptiveAvgPool2d`` or
    ``AdaptiveMaxPool2d``, or one of their 1-D or 3-D counterparts, by the ``kernels.nn`` twin, sharing every
    parameter and buffer.

    Subclasses of those torch classes (user layers that may override ``forward``) and unsupported options are
    left alone and reported with the reason. With ``fuse_activations``, a ReLU, LeakyReLU, GELU (erf form) or
    SiLU that follows a converted convolution (1-D, 2-D or 3-D; ``nn.Identity`` layers between them aside) in an
    ``nn.Sequential`` moves into the
    convolution's epilogue and its slot becomes ``nn.Identity`` (``state_dict`` keys are unchanged: activations have no
    state); modules with hooks, or used in more than one place, are not fused. Returns a
    :class:`ConversionReport`.
    """
    report = ConversionReport()
    for name, module in model.named_modules(remove_duplicate=True):
        cls = type(module)
        if isinstance(module, _OURS):
            report.already.append(name)
            continue
        target = _SWAPS.get(cls)
        if target is None:
            base = next((t for t in _SWAPS if isinstance(module, t)), None)
            if base is not None:
                report.kept.append((name, f"{cls.__qualname__} subclasses torch.nn.{base.__name__} "
                                          "(custom layer, may override forward)"))
            continue
        reason = _unsupported(module)
        if reason is not None:
            report.kept.append((name, reason))
            continue
        module.__class__ = target
        report.converted.append(name)
    if fuse_activations:
        _fuse_activations(model, report)
    return report


def epilogue_activation_of(module: torch.nn.Module) -> tuple[str, float] | None:
    """The fused-epilogue activation equal to ``module`` (exact torch classes only), or None."""
    cls = type(module)
    if cls is torch.nn.ReLU:
        return "relu", 0.01
    if cls is torch.nn.LeakyReLU:
        return "leaky_relu", float(module.negative_slope)
    if cls is torch.nn.GELU and module.approximate == "none":
        return "gelu", 0.01
    if cls is torch.nn.SiLU:
        return "silu", 0.01
    return None


def has_hooks(module: torch.nn.Module) -> bool:
    return bool(module._forward_hooks or module._forward_pre_hooks or module._backward_hooks)


def _fuse_activations(model: torch.nn.Module, report: ConversionReport) -> None:
    uses: dict[int, int] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        uses[id(module)] = uses.get(id(module), 0) + 1
    for seq_name, seq in model.named_modules():
        if type(seq) is not torch.nn.Sequential:
            continue
        keys = list(seq._modules)
        for i, key in enumerate(keys):
            # the next layer that is not an nn.Identity (such as a folded BatchNorm)
            next_key = next((k for k in keys[i + 1:] if type(seq._modules[k]) is not torch.nn.Identity), None)
            if next_key is None:
                continue
            conv, act = seq._modules[key], seq._modules[next_key]
            found = epilogue_activation_of(act) if act is not None else None
            if (found is None or not isinstance(conv, _CONVS)
                    or conv.activation is not None or uses[id(conv)] > 1 or has_hooks(conv) or has_hooks(act)):
                continue
            conv._set_epilogue(found[0], found[1], False)
            seq._modules[next_key] = torch.nn.Identity()
            report.fused.append((f"{seq_name}.{key}" if seq_name else key, found[0]))
