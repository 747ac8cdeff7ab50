"""Shared fixtures for the test suite.

* Every test is seeded from its own node id: inputs are fresh random numbers, different from test to test,
  and the same each time a given test runs (also under ``pytest -n``).
* TF32 is switched off for float32 during each test, so float32 results are held to float32 accuracy (on
  the CPU, through Triton's interpreter, it computes in float32 anyway).
* Triton's interpreter checks every 32-bit integer add, subtract and multiply for overflow, which compiled
  kernels do not: it doubles the interpreter's time. Those checks are off (``KERNELS_TEST_OVERFLOW_CHECKS=1``
  keeps them): the tests' tensors are small, so no correct index comes near 2**31 and a wrong one shows in
  the comparison with torch; the 64-bit offsets of huge tensors are the subject of ``test_index_chunks.py``
  and of the ahead-of-time compile.
* ``check_conv2d`` compares ``kernels.conv2d`` with ``torch.nn.functional.conv2d`` evaluated in float64 on
  the same (already rounded) inputs: the output, its shape, dtype and memory format, and the gradients
  with respect to input, weight and bias for one random upstream gradient.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import signal
import threading
import zlib
from collections.abc import Callable, Iterator

import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

import kernels
from kernels import call_plans

DEVICE = torch.device("cuda" if torch.cuda.is_available() and not kernels.INTERPRETING else "cpu")

# Tolerance of each dtype, relative to the largest magnitude of the reference tensor (and also applied as
# an elementwise relative tolerance). The reference is float64 on the same rounded inputs, so these bound
# our own rounding only: the output's last rounding to the dtype plus the accumulation error.
TOLERANCES: dict[torch.dtype, float] = {
    torch.float64: 1e-10,
    torch.float32: 1e-4,
    torch.float16: 1e-2,
    torch.bfloat16: 3e-2,
}


@pytest.fixture(autouse=True, scope="session")
def _no_interpreter_overflow_checks() -> Iterator[None]:
    """The interpreter's 32-bit overflow checks off for the session (see the module's docstring)."""
    builder = None
    if kernels.INTERPRETING and os.environ.get("KERNELS_TEST_OVERFLOW_CHECKS") != "1":
        from triton.runtime import interpreter

        builder = getattr(interpreter, "interpreter_builder", None)
    options = getattr(builder, "options", None)
    if options is None or not hasattr(options, "sanitize_overflow"):
        yield
        return
    builder.options = dataclasses.replace(options, sanitize_overflow=False)
    try:
        yield
    finally:
        builder.options = options


@pytest.fixture(autouse=True)
def _seed_per_test(request: pytest.FixtureRequest) -> int:
    seed = zlib.crc32(request.node.nodeid.encode())
    torch.manual_seed(seed)
    return seed


@pytest.fixture(autouse=True)
def _fresh_call_plans() -> None:
    """Each test starts without call plans (``kernels.call_plans``): a plan made by an earlier test must not
    stand in for code a test patches."""
    call_plans.clear()


@pytest.fixture(autouse=True)
def _no_tf32() -> Iterator[None]:
    saved = torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32, torch.backends.cuda.matmul.allow_tf32 = saved


_TORCH_CONV_OPS = ("convolution", "conv2d", "conv_depthwise", "conv_tbc", "conv_transpose")


class _ForbidTorchConvolution(TorchDispatchMode):
    """Fail when torch's own convolution runs: the kernels under test must compute the result."""

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func._schema.name
        if any(op in name for op in _TORCH_CONV_OPS):
            raise AssertionError(f"kernels fell back to torch's convolution ({name})")
        return func(*args, **(kwargs or {}))


@pytest.fixture
def forbid_torch_conv() -> Callable[[], contextlib.AbstractContextManager]:
    """``with forbid_torch_conv(): ...`` fails if torch's convolution is dispatched inside the block."""
    return _ForbidTorchConvolution


@contextlib.contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """Turn a hang into a failure (main thread on POSIX only; elsewhere no limit)."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def _raise(signum, frame):
        raise TimeoutError(f"did not finish within {seconds} s")

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


@pytest.fixture
def time_limit() -> Callable[[int], contextlib.AbstractContextManager]:
    return _time_limit


def _assert_close(actual: torch.Tensor, expected: torch.Tensor, dtype: torch.dtype, what: str = "") -> None:
    """``actual`` (any dtype) against a float64 reference, at ``dtype``'s tolerance."""
    assert actual.shape == expected.shape, f"{what}: shape {tuple(actual.shape)} != {tuple(expected.shape)}"
    tol = TOLERANCES[dtype]
    expected = expected.detach().to(torch.float64)
    actual = actual.detach().to(torch.float64)
    scale = expected.abs().max().item() if expected.numel() else 1.0
    torch.testing.assert_close(
        actual, expected, rtol=tol, atol=tol * max(scale, 1e-6), check_device=False,
        msg=lambda m: f"{what} ({dtype}): {m}",
    )


@pytest.fixture
def assert_close() -> Callable[..., None]:
    return _assert_close


def _float64_twin(t: torch.Tensor | None) -> torch.Tensor | None:
    """A float64 copy with the same strides (``.to`` preserves the layout of a dense tensor)."""
    if t is None:
        return None
    return t.detach().clone().to(torch.float64).requires_grad_(t.requires_grad)


def _layout(t: torch.Tensor) -> tuple[bool, bool]:
    cl = t.dim() == 4 and t.is_contiguous(memory_format=torch.channels_last)
    return t.is_contiguous(), cl


def reference_layout(op: Callable[..., torch.Tensor], ref: torch.Tensor, *args, **kwargs) -> tuple[bool, bool]:
    """Torch's output layout for the dtype under test. It is the float64 reference's, except on CUDA, where
    torch's convolutions choose the layout per dtype (float64: contiguous whatever the inputs' layout); there
    it is read off torch's ``op`` run on ``args`` in their own dtype."""
    if not ref.is_cuda:
        return _layout(ref)
    with torch.no_grad():
        return _layout(op(*(a.detach() if isinstance(a, torch.Tensor) else a for a in args), **kwargs))


@pytest.fixture(autouse=True)
def _default_device_is_the_kernels() -> Iterator[None]:
    """Tests that create tensors without naming a device get them where the kernels run (the GPU, when the
    kernels are compiled for it)."""
    if DEVICE.type == "cpu":
        yield
        return
    with torch.device(DEVICE):
        yield


def _identity(t):
    return t


def _check_conv2d(
    x: torch.Tensor,
    w: torch.Tensor,
    b: torch.Tensor | None = None,
    *,
    x_view: Callable[[torch.Tensor], torch.Tensor] = _identity,
    w_view: Callable[[torch.Tensor], torch.Tensor] = _identity,
    b_view: Callable[[torch.Tensor], torch.Tensor] = _identity,
    grads: bool | tuple[bool, bool, bool] = True,
    **conv_kwargs,
) -> torch.Tensor:
    """Compare ``kernels.conv2d(x_view(x), w_view(w), b_view(b), **conv_kwargs)`` with torch.

    ``x``, ``w``, ``b`` are leaves in the dtype under test; the ``*_view`` functions turn them into the
    arguments actually passed (a slice, a transpose, an expansion...), applied identically to the float64
    twins used for the reference. ``grads`` says which of the three leaves require a gradient. Checks the
    output (value, shape, dtype, device, finiteness, memory format as torch gives it), that the arguments
    are left unmodified, and the gradients of the leaves for one random upstream gradient. Returns our
    output.
    """
    dtype = x.dtype
    if isinstance(grads, bool):
        grads = (grads, grads, grads and b is not None)
    leaves = (x, w, b)
    for t, g in zip(leaves, grads, strict=True):
        if t is not None:
            t.requires_grad_(g)
    before = [None if t is None else t.detach().clone() for t in leaves]
    twins = [_float64_twin(t) for t in leaves]

    args = (x_view(x), w_view(w), None if b is None else b_view(b))
    ref_args = (x_view(twins[0]), w_view(twins[1]), None if b is None else b_view(twins[2]))

    with _ForbidTorchConvolution():
        out = kernels.conv2d(*args, **conv_kwargs)
    ref = F.conv2d(*ref_args, **conv_kwargs)

    assert isinstance(out, torch.Tensor)
    assert out.dtype == dtype, f"output dtype {out.dtype}, expected {dtype}"
    assert out.device == x.device
    assert out.shape == ref.shape, f"output shape {tuple(out.shape)}, torch gives {tuple(ref.shape)}"
    expected_layout = reference_layout(F.conv2d, ref, *args, **conv_kwargs)
    assert _layout(out) == expected_layout, (
        f"output layout (contiguous, channels_last) = {_layout(out)}, torch gives {expected_layout}; "
        f"output strides {out.stride()}"
    )
    assert torch.isfinite(out).all(), "output has non-finite values"
    _assert_close(out, ref, dtype, "output")
    assert out.requires_grad == ref.requires_grad

    if any(grads):
        # the upstream gradient in the output's layout, as the next layer of a network would hand it back
        fmt = torch.channels_last if expected_layout == (False, True) else torch.contiguous_format
        grad_out = torch.randn(ref.shape, dtype=dtype, device=x.device).contiguous(memory_format=fmt)
        with _ForbidTorchConvolution():
            out.backward(grad_out)
        ref.backward(grad_out.to(torch.float64))
        for name, t, twin, g in zip(("input", "weight", "bias"), leaves, twins, grads, strict=True):
            if t is None:
                continue
            if not g:
                assert t.grad is None, f"{name} does not require grad but got one"
                continue
            assert t.grad is not None, f"no gradient for {name}"
            assert t.grad.dtype == dtype and t.grad.shape == t.shape
            assert torch.isfinite(t.grad).all(), f"grad of {name} has non-finite values"
            _assert_close(t.grad, twin.grad, dtype, f"grad of {name}")

    for name, t, saved in zip(("input", "weight", "bias"), leaves, before, strict=True):
        if t is not None:
            assert torch.equal(t.detach(), saved), f"{name} was modified"
    return out


@pytest.fixture
def check_conv2d() -> Callable[..., torch.Tensor]:
    return _check_conv2d
