"""The main loop of a compiled kernel, read from its SASS: a CPU-side proxy for its speed.

``cuobjdump -sass`` lists one instruction per line (``/*0250*/  @P1 IMAD.WIDE R2, R5, ...  ;``). A loop is
a backward branch: ``BRA`` to a lower address; its body is every instruction from the target to the branch.
The main loop is, of the innermost loops (those around no other loop), the one with the most matrix
instructions (kernels built on ``tl.dot``), then the most memory loads. Per trip of it, :class:`LoopMix`
counts what the speed depends on: matrix instructions, tensor-memory-accelerator loads (``UTMALDG``),
asynchronous copies (``LDGSTS``), global loads and their widest vector, shared-memory loads, and the
integer/address instructions spent around them (per matrix instruction for GEMM-like kernels: fewer is
better; Hopper's uniform datapath, ``U*``, counted apart since it runs beside the vector pipes).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_LINE = re.compile(r"^\s*/\*([0-9a-f]{4,})\*/\s+(@!?U?P\w+\s+)?([A-Z][A-Z0-9_]*)((?:\.[A-Z0-9_]+)*)\s*([^;]*);")
_TARGET = re.compile(r"0x([0-9a-f]+)")

MMA = frozenset({"HGMMA", "HMMA", "DMMA", "IMMA", "IGMMA", "QGMMA", "BMMA"})
TMA_LOADS = frozenset({"UTMALDG"})
ASYNC_COPIES = frozenset({"LDGSTS"})
GLOBAL_LOADS = frozenset({"LDG"})
SHARED_LOADS = frozenset({"LDS", "LDSM"})
INTEGER = frozenset({"IMAD", "IADD3", "IADD", "VIADD", "LEA", "SHF", "SHL", "SHR", "LOP3", "LOP", "ISETP", "SEL",
                     "IMNMX", "VIMNMX", "IABS", "IMUL", "ICMP", "SGXT", "BMSK", "PRMT"})


@dataclass(frozen=True)
class Instruction:
    address: int
    opcode: str  # e.g. "IMAD"
    modifiers: str  # e.g. ".WIDE.U32"
    operands: str

    @property
    def branch_target(self) -> int | None:
        """The target address of a branch, else None."""
        if self.opcode != "BRA":
            return None
        found = _TARGET.search(self.operands)
        return int(found.group(1), 16) if found else None


def parse(sass: str) -> list[Instruction]:
    """The instructions of a ``cuobjdump -sass`` listing (of one kernel), in address order."""
    out = []
    for line in sass.splitlines():
        found = _LINE.match(line)
        if found:
            address, _, opcode, modifiers, operands = found.groups()
            out.append(Instruction(int(address, 16), opcode, modifiers, operands.strip()))
    return out


def loops(instructions: list[Instruction]) -> list[list[Instruction]]:
    """The body of each loop (a backward branch), target to branch, innermost first."""
    bodies = []
    for i, ins in enumerate(instructions):
        target = ins.branch_target
        if target is not None and target < ins.address:
            bodies.append([x for x in instructions[: i + 1] if x.address >= target])
    return sorted(bodies, key=len)


def _load_bits(ins: Instruction) -> int:
    for width in (128, 64, 16, 8):  # LDG.E.128 ...; no width: 32 bits
        if f".{width}" in ins.modifiers or f".U{width}" in ins.modifiers or f".S{width}" in ins.modifiers:
            return width
    return 32


@dataclass(frozen=True)
class LoopMix:
    """What one trip of a kernel's main loop executes."""

    instructions: int
    mma: int
    tma_loads: int
    async_copies: int
    global_loads: int
    widest_global_load: int  # bits, 0 when none
    shared_loads: int
    integer: int
    uniform: int  # uniform-datapath instructions (U*), which run beside the vector pipes

    @property
    def integer_per_mma(self) -> float | None:
        return self.integer / self.mma if self.mma else None

    def label(self) -> str:
        """One line: ``41 instr: 4 HGMMA-class, 2 UTMALDG, 0 LDGSTS, 0 LDG, 3 LDS, 12 int (3.0/mma), 5 uniform``."""
        parts = [f"{self.instructions} instr", f"{self.mma} mma", f"{self.tma_loads} tma",
                 f"{self.async_copies} ldgsts"]
        loads = f"{self.global_loads} ldg"
        if self.global_loads:
            loads += f".{self.widest_global_load}"
        parts += [loads, f"{self.shared_loads} lds", f"{self.integer} int"
                  + (f" ({self.integer_per_mma:.1f}/mma)" if self.mma else ""), f"{self.uniform} uniform"]
        return ", ".join(parts)


def mix(body: list[Instruction]) -> LoopMix:
    """The instruction mix of one loop body."""
    names = [i.opcode for i in body]
    global_loads = [i for i in body if i.opcode in GLOBAL_LOADS]
    return LoopMix(
        instructions=len(body),
        mma=sum(n in MMA for n in names),
        tma_loads=sum(n in TMA_LOADS for n in names),
        async_copies=sum(n in ASYNC_COPIES for n in names),
        global_loads=len(global_loads),
        widest_global_load=max((_load_bits(i) for i in global_loads), default=0),
        shared_loads=sum(n in SHARED_LOADS for n in names),
        integer=sum(n in INTEGER for n in names),
        uniform=sum(n.startswith("U") and n not in TMA_LOADS for n in names),
    )


def main_loop(instructions: list[Instruction]) -> LoopMix | None:
    """The mix of the main loop (see the module docstring) of a kernel's listing, as :func:`parse` reads it;
    None when it has no loop."""
    bodies = loops(instructions)
    spans = [(body[0].address, body[-1].address) for body in bodies]
    innermost = [body for body, (lo, hi) in zip(bodies, spans, strict=True)
                 if not any(lo <= a and b <= hi and (a, b) != (lo, hi) for a, b in spans)]
    if not innermost:
        return None

    def weight(m: LoopMix) -> tuple[int, int]:
        return (m.mma, m.tma_loads + m.async_copies + m.global_loads + m.shared_loads)

    return max((mix(body) for body in innermost), key=weight)
