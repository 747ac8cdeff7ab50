"""Where the kernels run: compiled on a CUDA GPU, or through Triton's interpreter on the CPU.

Triton reads ``TRITON_INTERPRET`` when a kernel is decorated, so this module must be imported before any
module under ``kernels.jit``. The package's ``__init__`` does that. The rule:

* ``TRITON_INTERPRET`` already set by the user: respected as it is.
* otherwise, no CUDA device visible: ``TRITON_INTERPRET=1`` (kernels run, slowly, on CPU tensors).
* otherwise: kernels are compiled for the GPU and take CUDA tensors.
"""

from __future__ import annotations

import os

import torch


def _decide_interpreter() -> bool:
    if "TRITON_INTERPRET" not in os.environ and not torch.cuda.is_available():
        os.environ["TRITON_INTERPRET"] = "1"
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


def _patch_interpreter_bf16_dot() -> None:
    """Triton's interpreter keeps bfloat16 tiles as raw uint16 bits and multiplies those bits in ``tl.dot``.
    Widen bfloat16 operands to float32 first (exact), which is what the tensor cores compute on a GPU."""
    try:
        import numpy as np
        import triton.language as tl
        from triton.runtime import interpreter
    except ImportError:
        return
    builder = getattr(interpreter, "InterpreterBuilder", None)
    original = getattr(builder, "create_dot", None)
    if original is None or getattr(original, "_widens_bf16", False):
        return

    def widen(handle):
        if handle.dtype.scalar != tl.bfloat16:
            return handle
        bits = handle.data.astype(np.uint32) << 16
        return interpreter.TensorHandle(bits.view(np.float32), tl.float32)

    def create_dot(self, a, b, d, input_precision, max_num_imprecise_acc):
        return original(self, widen(a), widen(b), d, input_precision, max_num_imprecise_acc)

    create_dot._widens_bf16 = True
    builder.create_dot = create_dot


def _patch_interpreter_scalar_index() -> None:
    """Triton 3.6's interpreter turns a scalar into a Python int (``range(n)`` over a kernel argument) with
    ``int()`` of its one-element array, which numpy 2.4 refuses. Convert through ``squeeze()``, as later
    Tritons do; a no-op where the interpreter already does."""
    try:
        from triton.runtime import interpreter
    except ImportError:
        return
    original = getattr(interpreter, "_patch_lang_tensor", None)
    if original is None or getattr(original, "_squeezes_index", False):
        return
    import inspect

    if "int(self.handle.data))" not in inspect.getsource(original):
        return

    def patch_lang_tensor(tensor, scope):
        original(tensor, scope)
        scope.set_attr(tensor, "__index__", lambda self: int(self.handle.data.squeeze()))

    patch_lang_tensor._squeezes_index = True
    interpreter._patch_lang_tensor = patch_lang_tensor


def _interpret_preloaded_triton_language() -> None:
    """When triton was imported before this package switched the interpreter on, the jit functions of
    ``triton.language`` (``tl.cdiv``, ``tl.sum``, ``tl.max``...) were built for the compiler and cannot be
    called from an interpreted kernel. Rebuild them as interpreted functions."""
    import triton.language as tl
    from triton.runtime.interpreter import InterpretedFunction
    from triton.runtime.jit import JITFunction

    for module in (tl, tl.standard, tl.math):
        for name, value in list(vars(module).items()):
            if isinstance(value, JITFunction) and not isinstance(value, InterpretedFunction):
                setattr(module, name, InterpretedFunction(value.fn))


INTERPRETING: bool = _decide_interpreter()
# torch's (major, minor): some argument checks are worded differently before and after a release
TORCH_VERSION: tuple[int, int] = tuple(int(part) for part in torch.__version__.split("+")[0].split(".")[:2])
if INTERPRETING:
    _patch_interpreter_bf16_dot()
    _patch_interpreter_scalar_index()
    _interpret_preloaded_triton_language()


def check_device(*tensors: torch.Tensor | None) -> None:
    """Raise like torch when tensors sit on different devices or on a device our kernels cannot reach."""
    present = [t for t in tensors if t is not None]
    devices = {t.device for t in present}
    if len(devices) > 1:
        names = ", ".join(sorted(str(d) for d in devices))
        raise RuntimeError(f"Expected all tensors to be on the same device, but found at least two devices: {names}")
    if not present:
        return
    device = present[0].device
    if device.type == "cuda" or (device.type == "cpu" and INTERPRETING):
        return
    if device.type == "cpu":
        raise RuntimeError(
            "kernels: CPU tensors run only through Triton's interpreter (TRITON_INTERPRET=1, the default when no "
            "GPU is visible); on a GPU machine move the tensors to CUDA"
        )
    raise RuntimeError(f"kernels: tensors on device type '{device.type}' are not supported")
