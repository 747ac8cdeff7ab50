"""torch's own sample inputs of an op, from its OpInfo database (``torch.testing._internal``).

Importing that database freezes ``torch.backends`` flags for the whole process (torch's test harness does so
to catch tests that set them without a context manager); the tests here set cuDNN/TF32 flags directly, so the
freeze is undone after the import.
"""

from __future__ import annotations

import torch


def op_samples(name: str, device: torch.device | str, max_samples: int) -> list:
    """At most ``max_samples`` sample inputs of ``torch.nn.functional.<name>`` in float64 with gradients,
    spread evenly over torch's list (``sample.input``, ``sample.args``, ``sample.kwargs``)."""
    frozen = torch.backends.flags_frozen()
    try:
        from torch.testing._internal.common_methods_invocations import op_db

        (info,) = [o for o in op_db if o.name == f"nn.functional.{name}" and not o.variant_test_name]
        samples = list(info.sample_inputs(device, torch.float64, requires_grad=True))
    finally:
        if not frozen:  # (undo the import's freeze)
            torch.backends.flags_frozen.__globals__["__allow_nonbracketed_mutation_flag"] = True
    return samples[::max(1, len(samples) // max_samples)]
