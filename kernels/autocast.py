"""``torch.autocast`` for the functional entry points, matching what torch does for its own ops.

Under ``torch.autocast(device_type, dtype=...)`` torch casts the inputs of convolutions (``conv2d``,
``conv_transpose2d``) to the autocast dtype: every floating tensor argument except float64 ones (float32,
float16 and bfloat16 alike), then runs the op in that dtype. Pooling is not on autocast's lists: it runs
in the dtype of its input. :func:`autocast_inputs` reproduces that in front of a Triton op, and runs the op
itself with autocast disabled so the torch ops it calls inside (padding, reductions) don't cast again.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Literal, TypeVar

import torch

__all__ = ["autocast_inputs"]

Fn = TypeVar("Fn", bound=Callable[..., Any])
OpKind = Literal["conv", "pool"]


def _device_type(args: tuple[Any, ...], kwargs: dict[str, Any]) -> str | None:
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            return value.device.type
    return None


# the devices our kernels run on (others are refused by the device check); a fixed set rather than
# ``torch.amp.is_autocast_available``, which dynamo cannot trace in some torch releases
_AUTOCAST_DEVICES = frozenset({"cuda", "cpu"})


def _autocast_dtype(device_type: str | None) -> torch.dtype | None:
    """The autocast dtype active for ``device_type``, or None when autocast is off there."""
    if device_type not in _AUTOCAST_DEVICES:
        return None
    if not torch.is_autocast_enabled(device_type):
        return None
    return torch.get_autocast_dtype(device_type)


def _any_autocast_enabled() -> bool:
    """Whether autocast is on for any device: one C call, so calls outside autocast pay nothing more (falls
    back to True, the full check, where torch lacks it)."""
    check = getattr(torch._C, "_is_any_autocast_enabled", None)
    return True if check is None else bool(check())


def _cast(value: Any, dtype: torch.dtype) -> Any:
    if isinstance(value, torch.Tensor) and value.is_floating_point() and value.dtype != torch.float64:
        return value.to(dtype)
    return value


def autocast_inputs(op_kind: OpKind) -> Callable[[Fn], Fn]:
    """Decorator giving a functional op torch's autocast behaviour.

    ``op_kind="conv"``: when autocast is enabled for the device of the first tensor argument, cast the
    floating tensor arguments (input ``(N, C, H, W)``, weight, bias; not float64 ones) to the autocast dtype
    and call the op with autocast disabled. The output is then in the autocast dtype, and gradients flow back
    to the original dtypes through the casts, as with torch. ``op_kind="pool"``: run in the input dtype
    (autocast leaves pooling alone), i.e. call the op unchanged.
    """
    if op_kind not in ("conv", "pool"):
        raise ValueError(f"op_kind must be 'conv' or 'pool', got {op_kind!r}")

    def decorate(fn: Fn) -> Fn:
        if op_kind == "pool" or getattr(fn, "__autocast_op_kind__", None) is not None:
            return fn

        @functools.wraps(fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if not _any_autocast_enabled() and not torch.compiler.is_compiling():
                return fn(*args, **kwargs)
            device_type = _device_type(args, kwargs)
            dtype = _autocast_dtype(device_type)
            if dtype is None:
                return fn(*args, **kwargs)
            args = tuple(_cast(a, dtype) for a in args)
            kwargs = {k: _cast(v, dtype) for k, v in kwargs.items()}
            with torch.autocast(device_type, enabled=False):
                return fn(*args, **kwargs)

        wrapper.__autocast_op_kind__ = op_kind  # type: ignore[attr-defined]
        return wrapper  # type: ignore[return-value]

    return decorate
