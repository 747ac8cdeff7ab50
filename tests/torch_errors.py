"""Compare the exception a call raises with the one torch raises for the same arguments: type and message."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
import torch

# What only the call form decides, which a Python function cannot observe: torch's argument parser writes
# " (position N)" after an argument that was passed positionally, and for an overloaded function it lists the
# types of the arguments as they were passed ("got (Tensor, Tensor, stride=str)"), and under some overloads
# why they did not match those arguments ("didn't match because some of the keywords were incorrect: ...").
_POSITION = re.compile(r" \(position \d+\)")
_GOT = re.compile(r"(received an invalid combination of arguments - got )\(.*?\)(, but expected one of:)", re.S)
_WHY_NOT = re.compile(r"\n +didn't match because [^\n]*")
# Messages of torch's CPU backends (oneDNN, the slow CPU kernels' own dtype checks), not of its argument checks.
_CPU_BACKEND = ("could not create a primitive descriptor", "ONEDNN", "expected scalar type")


def normalise(message: str) -> str:
    """``message`` without what depends on the call form: ``(position N)``, the contents of ``got (...)`` and
    the ``didn't match because ...`` lines of an overloaded function's message."""
    return _WHY_NOT.sub("", _GOT.sub(r"\1(...)\2", _POSITION.sub("", message)))


def _outcome(fn: Callable[..., object], args: tuple, kwargs: dict) -> BaseException | None:
    try:
        fn(*args, **kwargs)
    except Exception as exc:
        return exc
    return None


def _on_cpu(value: object) -> object:
    return value.cpu() if isinstance(value, torch.Tensor) else value


def assert_raises_like_torch(torch_fn: Callable[..., object], our_fn: Callable[..., object], *args: object,
                             **kwargs: object) -> None:
    """``torch_fn(*args, **kwargs)`` must raise (else this is not an error case); ``our_fn`` with the same
    arguments must raise the same type (a subclass passes) with the same message, both compared after
    :func:`normalise`.

    Where torch's message comes from its CPU backend rather than its argument checks (oneDNN's "could not
    create a primitive descriptor ... ONEDNN_VERBOSE", a slow CPU kernel's "expected scalar type"), only the
    type is compared. When a tensor argument is not on the CPU, torch is also run on CPU copies of the tensor
    arguments, and its CPU outcome is accepted as well (torch's CPU and CUDA wordings may differ).
    """
    expected = [_outcome(torch_fn, args, kwargs)]
    if expected[0] is None:
        pytest.fail(f"torch accepted the arguments: not an error case ({args}, {kwargs})")
    if any(isinstance(v, torch.Tensor) and v.device.type != "cpu" for v in (*args, *kwargs.values())):
        cpu = _outcome(torch_fn, tuple(_on_cpu(a) for a in args), {k: _on_cpu(v) for k, v in kwargs.items()})
        expected += [cpu] if cpu is not None else []
    ours = _outcome(our_fn, args, kwargs)
    if ours is None:
        pytest.fail(f"torch raised {type(expected[0]).__name__}: {expected[0]}; ours raised nothing")
    for exc in expected:
        if isinstance(ours, type(exc)) and (any(s in str(exc) for s in _CPU_BACKEND)
                                            or normalise(str(ours)) == normalise(str(exc))):
            return
    wanted = "\n".join(f"  {type(e).__name__}: {normalise(str(e))!r}" for e in expected)
    pytest.fail(f"ours raised {type(ours).__name__}: {normalise(str(ours))!r}\ntorch raised:\n{wanted}")
