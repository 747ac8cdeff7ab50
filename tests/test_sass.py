"""The main-loop reader of compiled kernels (``kernels.sass``) on hand-written SASS listings, and the
ahead-of-time check's rule for Hopper-path kernels."""

from __future__ import annotations

from kernels import aot, sass
from kernels.launch import KernelConfig, KernelSpace


def _listing(*lines: str, start: int = 0x100) -> str:
    """A cuobjdump-style listing: one instruction per line at consecutive addresses, encodings beside."""
    out = []
    for i, text in enumerate(lines):
        out.append(f"        /*{start + 16 * i:04x}*/                   {text} ;   /* 0x000000000000000000 */")
        out.append("                                                             /* 0x000fe20000000000 */")
    return "\n".join(out)


# an outer loop (0x100..) around an inner one (0x120..0x1a0): the inner one has the matrix instructions
LISTING = _listing(
    "IMAD.MOV.U32 R1, RZ, RZ, c[0x0][0x28]",  # 0x100
    "MOV R2, 0x0",  # 0x110
    "UTMALDG.2D [UR8], [UR4]",  # 0x120: inner loop starts
    "IMAD.WIDE R4, R3, 0x2, R6",  # 0x130
    "LDG.E.128 R8, desc[UR4][R4.64]",  # 0x140
    "HGMMA.64x128x16.F32.BF16 R24, gdesc[UR8], R24",  # 0x150
    "HGMMA.64x128x16.F32.BF16 R24, gdesc[UR12], R24",  # 0x160
    "IADD3 R3, R3, 0x1, RZ",  # 0x170
    "ISETP.GE.AND P0, PT, R3, R5, PT",  # 0x180
    "UIADD3 UR4, UR4, 0x40, URZ",  # 0x190
    "@!P0 BRA 0x120",  # 0x1a0: back to the inner loop
    "LDS.128 R12, [R2]",  # 0x1b0
    "LDGSTS.E.BYPASS.128 [R2], desc[UR4][R4.64]",  # 0x1c0
    "@P1 BRA 0x100",  # 0x1d0: back to the outer loop
    "BRA 0x1f0",  # 0x1e0: forward
    "BRA 0x1f0",  # 0x1f0: the trap loop on itself
    "EXIT",  # 0x200
)


def test_instructions_and_loops_are_read() -> None:
    instructions = sass.parse(LISTING)
    assert [i.opcode for i in instructions[:3]] == ["IMAD", "MOV", "UTMALDG"]
    assert instructions[3].modifiers == ".WIDE" and instructions[10].branch_target == 0x120
    bodies = sass.loops(instructions)
    assert [(b[0].address, b[-1].address) for b in bodies] == [(0x120, 0x1a0), (0x100, 0x1d0)]


def test_the_main_loop_is_the_one_with_the_matrix_instructions() -> None:
    mix = sass.main_loop(sass.parse(LISTING))
    assert mix == sass.LoopMix(instructions=9, mma=2, tma_loads=1, async_copies=0, global_loads=1,
                               widest_global_load=128, shared_loads=0, integer=3, uniform=1)
    assert mix.integer_per_mma == 1.5
    assert mix.label() == "9 instr, 2 mma, 1 tma, 0 ldgsts, 1 ldg.128, 0 lds, 3 int (1.5/mma), 1 uniform"


def test_without_matrix_instructions_the_loop_with_the_most_loads_is_main() -> None:
    listing = _listing("LDG.E.U16 R2, desc[UR4][R4.64]", "IADD3 R4, R4, 0x2, RZ", "@P0 BRA 0x100",
                       "LDG.E.64 R6, desc[UR4][R8.64]", "LDG.E.64 R10, desc[UR4][R8.64+0x8]", "IMAD R8, R8, 0x2, RZ",
                       "@P1 BRA 0x130", "EXIT")
    mix = sass.main_loop(sass.parse(listing))
    assert (mix.global_loads, mix.widest_global_load, mix.integer, mix.mma) == (2, 64, 1, 0)
    assert sass.main_loop(sass.parse(_listing("LDG.E R2, desc[UR4][R4.64]", "EXIT"))) is None


def _judged(space: KernelSpace, opcodes: list[str], arch: int) -> aot.Row:
    signature = aot.KernelSignature((), (), ())
    entry = aot._Planned(aot.CompileJob(space.name, signature, space.configs[0], arch), space)
    result = {"regs": 64, "spill": 0, "shared": 0, "mma": "", "mma_opcodes": [o for o in opcodes if "MMA" in o],
              "opcodes": opcodes, "loop": None}
    return aot._judge(entry, result)


def test_a_hopper_path_kernel_must_load_with_tma_and_multiply_with_hgmma_on_sm90() -> None:
    space = KernelSpace("tma_kernel", kernel=None, configs=[KernelConfig.of(BLOCK=64)], hopper_path=True)
    assert not _judged(space, ["HGMMA", "UTMALDG"], 90).failed
    assert _judged(space, ["HGMMA", "LDGSTS"], 90).problems == [
        "Hopper-path kernel without a TMA load (UTMALDG) on sm_90"]
    assert _judged(space, ["HMMA", "UTMALDG"], 90).problems == [
        "Hopper-path kernel without a warpgroup MMA (HGMMA) on sm_90"]
    assert not _judged(space, ["HMMA", "LDGSTS"], 80).failed  # (sm_80 has neither)
    plain = KernelSpace("pointer_kernel", kernel=None, configs=[KernelConfig.of(BLOCK=64)])
    assert not _judged(plain, ["LDG"], 90).failed
