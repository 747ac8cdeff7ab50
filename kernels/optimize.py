"""Whole-model inference: BatchNorm folded into the convolutions, the residual add and the activation fused into
their epilogue, every convolution and pooling layer on this package's kernels.

:func:`optimize` traces a model in eval mode with ``torch.fx`` and rewrites the graph:

1. a BatchNorm that follows a convolution (1-D, 2-D, 3-D; grouped, depthwise or transposed) and is its only
   user is folded into the convolution's weight and bias (computed in float64, stored in the weight's dtype),
   and removed;
2. the layers are converted (:func:`kernels.convert`);
3. the add of a same-shaped tensor to a convolution's output and an activation after it move into the
   convolution's epilogue: ``act(conv(x) + other)`` (ResNet blocks), ``conv(x) + other`` (inverted residuals),
   ``act(conv(x))`` and ``act(conv(x)) + other``. Activations: those of the epilogue (ReLU, LeakyReLU, GELU with
   ``approximate="none"``, SiLU), as modules, functions or methods.

Shapes come from ``example_inputs`` (run once through the traced model on the CPU or their device): without
them, residual adds are not fused (nothing proves the shapes equal).
"""

from __future__ import annotations

import copy
import operator
import warnings
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import fx

from . import nn as knn
from .convert import ConversionReport, convert, epilogue_activation_of, has_hooks

__all__ = ["optimize"]

_CONV = (torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d)
_CONV_TRANSPOSE = (torch.nn.ConvTranspose1d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
_BATCH_NORM = (torch.nn.BatchNorm1d, torch.nn.BatchNorm2d, torch.nn.BatchNorm3d)
_FUSABLE = (knn.Conv1d, knn.Conv2d, knn.Conv3d, knn.ConvTranspose1d, knn.ConvTranspose2d, knn.ConvTranspose3d)
_IDENTITIES = (torch.nn.Identity, torch.nn.Dropout, torch.nn.Dropout1d, torch.nn.Dropout2d, torch.nn.Dropout3d,
               torch.nn.AlphaDropout)
_EVAL_NO_OPS = ("stochastic_depth",)  # functions traced with their ``training`` argument a constant
_ADDS = (operator.add, operator.iadd, torch.add)
# activation functions and methods of the graph -> the epilogue's name (their keyword defaults only)
_FUNCTIONS = {F.relu: "relu", torch.relu: "relu", F.silu: "silu", F.gelu: "gelu", F.leaky_relu: "leaky_relu"}
_METHODS = {"relu": "relu", "relu_": "relu"}


def fold_batch_norm(conv: torch.nn.Module, bn: torch.nn.Module) -> None:
    """Fold eval-mode ``bn`` (its running statistics and affine parameters) into ``conv``'s weight and bias, in
    place: ``bn(conv(x)) == conv'(x)``. Computed in float64, stored in the weight's dtype."""
    weight = conv.weight.detach()
    var = bn.running_var.detach().double()
    mean = bn.running_mean.detach().double()
    scale = torch.rsqrt(var + bn.eps)
    if bn.weight is not None:
        scale = scale * bn.weight.detach().double()
    shift = -mean * scale
    if bn.bias is not None:
        shift = shift + bn.bias.detach().double()
    bias = conv.bias.detach().double() if conv.bias is not None else torch.zeros_like(scale)
    w = weight.double()
    if isinstance(conv, _CONV_TRANSPOSE):  # weight (Cin, Cout/groups, *k): output channel g*Cout_g + j
        groups = conv.groups
        cin, cout_g = w.shape[:2]
        per_out = scale.view(groups, 1, cout_g, *(1,) * (w.dim() - 2))
        w = (w.view(groups, cin // groups, cout_g, *w.shape[2:]) * per_out).view_as(w)
    else:  # weight (Cout, Cin/groups, *k)
        w = w * scale.view(-1, *(1,) * (w.dim() - 1))
    with torch.no_grad():
        conv.weight.copy_(w.to(weight.dtype))
        folded = (bias * scale + shift).to(weight.dtype)
        if conv.bias is None:
            conv.bias = torch.nn.Parameter(folded, requires_grad=conv.weight.requires_grad)
        else:
            conv.bias.copy_(folded)


def _foldable(conv: torch.nn.Module, bn: torch.nn.Module) -> bool:
    return (isinstance(conv, _CONV + _CONV_TRANSPOSE) and type(bn) in _BATCH_NORM
            and bn.running_mean is not None and bn.num_features == conv.out_channels)


def _module(gm: fx.GraphModule, node: fx.Node) -> torch.nn.Module | None:
    return gm.get_submodule(node.target) if node.op == "call_module" else None


def _sole_user(node: fx.Node) -> fx.Node | None:
    return next(iter(node.users)) if len(node.users) == 1 else None


def _activation(gm: fx.GraphModule, node: fx.Node, source: fx.Node) -> tuple[str, float] | None:
    """The epilogue activation ``node`` applies to ``source`` (its only tensor argument), or None."""
    if node.op == "call_module":
        if len(node.args) != 1 or node.kwargs:
            return None
        module = _module(gm, node)
        return None if has_hooks(module) else epilogue_activation_of(module)
    if node.args[:1] != (source,) or len(node.args) > 1:
        return None
    if node.op == "call_function" and node.target in _FUNCTIONS:
        if set(node.kwargs) - {"inplace"}:
            return None
        return _FUNCTIONS[node.target], 0.01
    if node.op == "call_method" and node.target in _METHODS and not node.kwargs:
        return _METHODS[node.target], 0.01
    return None


def _residual_of(node: fx.Node, source: fx.Node) -> fx.Node | None:
    """The other operand of ``source + other`` (``node``), when both are same-shaped, same-dtype tensors."""
    if node.op != "call_function" or node.target not in _ADDS or node.kwargs or len(node.args) != 2:
        return None
    a, b = node.args
    other = b if a is source else a if b is source else None
    if not isinstance(other, fx.Node) or other is source:
        return None
    mine, theirs = source.meta.get("tensor_meta"), other.meta.get("tensor_meta")
    if mine is None or theirs is None or not hasattr(theirs, "shape"):
        return None
    return other if (mine.shape, mine.dtype) == (theirs.shape, theirs.dtype) else None


def _drop_eval_identities(gm: fx.GraphModule) -> None:
    """Remove what is the identity in eval mode (``nn.Identity``, dropout modules, torchvision's
    ``stochastic_depth`` traced with ``training=False``), so that what it separated can fuse."""
    for node in list(gm.graph.nodes):
        module = _module(gm, node)
        if module is not None and len(node.args) == 1 and not node.kwargs and isinstance(module, _IDENTITIES):
            identity = True
        elif node.op == "call_function" and getattr(node.target, "__name__", "") in _EVAL_NO_OPS:
            # traced with ``training`` a constant: False in eval mode (positional index 3, or the keyword)
            training = node.kwargs.get("training", node.args[3] if len(node.args) > 3 else True)
            identity = training is False
        else:
            identity = False
        if identity:
            node.replace_all_uses_with(node.args[0])
            gm.graph.erase_node(node)


def _module_calls(gm: fx.GraphModule) -> dict[str, int]:
    """How many nodes call each submodule (a module called more than once is neither folded nor fused)."""
    calls: dict[str, int] = {}
    for node in gm.graph.nodes:
        if node.op == "call_module":
            calls[node.target] = calls.get(node.target, 0) + 1
    return calls


def _fold(gm: fx.GraphModule) -> list[tuple[str, str]]:
    folded = []
    calls = _module_calls(gm)
    for node in list(gm.graph.nodes):
        bn = _module(gm, node)
        source = node.args[0] if node.args else None
        if bn is None or type(bn) not in _BATCH_NORM or not isinstance(source, fx.Node):
            continue
        conv = _module(gm, source)
        if (conv is None or not _foldable(conv, bn) or _sole_user(source) is not node or has_hooks(conv)
                or has_hooks(bn)):
            continue  # (a hook would see what folding changes)
        if calls[source.target] != 1:
            continue  # (a convolution module called twice keeps its BatchNorms apart)
        fold_batch_norm(conv, bn)
        node.replace_all_uses_with(source)
        gm.graph.erase_node(node)
        folded.append((source.target, node.target))
    return folded


def _fuse(gm: fx.GraphModule, report: ConversionReport) -> None:
    calls = _module_calls(gm)
    for conv_node in list(gm.graph.nodes):
        conv = _module(gm, conv_node)
        if (not isinstance(conv, _FUSABLE) or calls[conv_node.target] != 1 or conv.activation is not None
                or len(conv_node.args) != 1 or conv_node.kwargs or has_hooks(conv)):
            continue
        done: list[str] = []
        activation = residual = None
        before = False
        tail = conv_node  # the last node the convolution now stands for
        user = _sole_user(tail)
        if user is not None and (found := _activation(gm, user, tail)) is not None:
            activation, tail = found, user
            user = _sole_user(tail)
        if user is not None and (other := _residual_of(user, tail)) is not None:
            residual, tail = other, user
            if activation is None:
                before = True
                user = _sole_user(tail)
                if user is not None and (found := _activation(gm, user, tail)) is not None:
                    activation, tail = found, user
        if tail is conv_node:
            continue
        name, slope = activation if activation is not None else (None, 0.01)
        conv._set_epilogue(name, slope, before and activation is not None)
        if residual is not None:
            tail.prepend(conv_node)  # after the residual's definition
            conv_node.kwargs = {"residual": residual}
            done.append("residual add")
        if activation is not None:
            done.append(name)
        tail.replace_all_uses_with(conv_node)
        node = tail
        while node is not conv_node:  # erase the fused chain, last first
            previous = node.args[0] if node.args[0] is not residual else node.args[1]
            gm.graph.erase_node(node)
            node = previous
        report.fused.append((conv_node.target, " and ".join(done)))


def _fold_sequentials(model: torch.nn.Module) -> list[tuple[str, str]]:
    """The fallback's folding: a BatchNorm right after a convolution in an ``nn.Sequential`` (nothing else can
    be proved to be its input without a graph)."""
    folded = []
    for seq_name, seq in model.named_modules():
        if type(seq) is not torch.nn.Sequential:
            continue
        keys = list(seq._modules)
        for key, next_key in zip(keys, keys[1:], strict=False):
            conv, bn = seq._modules[key], seq._modules[next_key]
            if conv is not None and bn is not None and _foldable(conv, bn):
                fold_batch_norm(conv, bn)
                seq._modules[next_key] = torch.nn.Identity()
                prefix = f"{seq_name}." if seq_name else ""
                folded.append((prefix + key, prefix + next_key))
    return folded


def optimize(model: torch.nn.Module, example_inputs: Sequence[torch.Tensor] | None = None, *,
             inplace: bool = False) -> torch.nn.Module:
    """``model`` for inference on this package's kernels, with BatchNorm folded and epilogues fused.

    ``model`` must be in eval mode (BatchNorm's batch statistics of training mode cannot be folded: a
    ``RuntimeError`` says so). Returns a ``torch.fx.GraphModule`` with the same inputs and outputs; its
    ``optimize_report`` (a :class:`kernels.ConversionReport`) lists what was converted, folded and fused.

    * The folded BatchNorms and fused activations leave it, their ``state_dict`` keys with them; a convolution
      without bias that takes a BatchNorm's gains one (``bias``). Every other module keeps its name and state.
    * ``example_inputs``: a call's positional inputs, run once to learn the shapes that residual fusion needs
      (without them, residual adds stay as they are).
    * ``inplace``: rewrite ``model``'s own modules (by default a deep copy is rewritten).

    Where ``torch.fx`` cannot trace the model, a warning says so, and the model is converted module by module
    instead (:func:`kernels.convert` with ``fuse_activations``), BatchNorm folded where it directly follows a
    convolution in an ``nn.Sequential``; that model is returned.
    """
    if model.training:
        raise RuntimeError("kernels.optimize folds BatchNorm's running statistics into the convolutions, which "
                           "needs a model in eval mode: call model.eval() first")
    if not inplace:
        model = copy.deepcopy(model)
    try:
        gm = fx.symbolic_trace(model)
    except Exception as exc:  # noqa: BLE001  (any tracing failure takes the module-by-module path)
        warnings.warn(f"kernels.optimize: torch.fx cannot trace {type(model).__name__} ({type(exc).__name__}: "
                      f"{exc}); converting module by module, BatchNorm folded only inside nn.Sequential",
                      stacklevel=2)
        folded = _fold_sequentials(model)
        report = convert(model, fuse_activations=True)
        report.folded.extend(folded)
        model.optimize_report = report
        return model
    if example_inputs is not None:
        from torch.fx.passes.shape_prop import ShapeProp

        with torch.no_grad():
            ShapeProp(gm).propagate(*example_inputs)
    _drop_eval_identities(gm)
    folded = _fold(gm)
    report = convert(gm)
    report.folded.extend(folded)
    _fuse(gm, report)
    gm.graph.lint()
    gm.recompile()
    gm.delete_all_unused_submodules()
    gm.optimize_report = report
    return gm
