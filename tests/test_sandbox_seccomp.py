"""Tests for zerog.sandbox.seccomp: the program's verdict for each system call.

The program is run by a small classic-BPF interpreter written here (the subset seccomp
programs use: absolute loads, conditional jumps on constants, returns); what it does in a
real kernel is shown by the hostile payloads (``tests/hostile``), which call the denied
system calls inside the sandbox.
"""

from __future__ import annotations

import errno
import struct

import pytest

from zerog.sandbox.base import SandboxUnavailable
from zerog.sandbox.seccomp import (
    AARCH64,
    ARCHES,
    DENIED,
    MODES,
    RET_ALLOW,
    RET_KILL_PROCESS,
    X86_64,
    Arch,
    arch_for,
    program,
    ret_errno,
)

EPERM = ret_errno(errno.EPERM)
ENOSYS = ret_errno(errno.ENOSYS)
AUDIT_I386 = 0x40000003
AUDIT_ARM = 0x40000028


def run(code: bytes, nr: int, arch: int, *args: int) -> int:
    """What the program returns for system call ``nr`` of ``arch`` with ``args``."""
    data = struct.pack("=iIQ6Q", nr, arch, 0, *(list(args) + [0] * (6 - len(args))))
    insns = [struct.unpack_from("=HBBI", code, i) for i in range(0, len(code), 8)]
    acc = 0
    pc = 0
    for _ in range(len(insns) + 1):  # a classic BPF program only jumps forward
        op, jt, jf, k = insns[pc]
        pc += 1
        if op == 0x20:  # ld [k]
            (acc,) = struct.unpack_from("=I", data, k)
        elif op == 0x06:  # ret k
            return int(k)
        elif op in (0x15, 0x35, 0x45):
            taken = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[op]
            pc += jt if taken else jf
        else:
            raise AssertionError(f"unexpected instruction {op:#x}")
    raise AssertionError("the program did not return")


@pytest.fixture(params=sorted(ARCHES), ids=sorted(ARCHES))
def arch(request: pytest.FixtureRequest) -> Arch:
    return ARCHES[str(request.param)]


def test_program_is_whole_instructions_and_returns_everywhere(arch: Arch) -> None:
    code = program(arch)
    assert len(code) % 8 == 0
    assert len(code) // 8 < 4096  # BPF_MAXINSNS
    for nr in range(0, 600):
        assert run(code, nr, arch.audit) in (RET_ALLOW, EPERM, ENOSYS)


def test_denied_calls_get_eperm(arch: Arch) -> None:
    code = program(arch)
    denied = [name for name in DENIED if name in arch.numbers]
    assert len(denied) >= 45
    for name in denied:
        assert run(code, arch.numbers[name], arch.audit) == EPERM, name
    # The brief's list, by name, on both architectures where the call exists.
    for name in ("keyctl", "bpf", "io_uring_setup", "mount", "open_tree", "setns", "kcmp"):
        assert run(code, arch.numbers[name], arch.audit) == EPERM, name


def test_ordinary_calls_are_allowed() -> None:
    x86 = program(ARCHES["x86_64"])
    # read, write, close, mmap, execve, exit_group, getpid, socket, ptrace
    for nr in (0, 1, 3, 9, 59, 231, 39, 41, 101):
        assert run(x86, nr, ARCHES["x86_64"].audit) == RET_ALLOW, nr
    arm = program(ARCHES["aarch64"])
    # read, write, close, mmap, execve, exit_group, getpid, socket, ptrace
    for nr in (63, 64, 57, 222, 221, 94, 172, 198, 117):
        assert run(arm, nr, ARCHES["aarch64"].audit) == RET_ALLOW, nr


def test_openat2_and_clone3_are_not_implemented(arch: Arch) -> None:
    code = program(arch)
    assert run(code, arch.numbers["openat2"], arch.audit) == ENOSYS
    assert run(code, arch.numbers["clone3"], arch.audit) == ENOSYS


def test_other_architectures_are_killed_and_x32_refused() -> None:
    x86 = ARCHES["x86_64"]
    code = program(x86)
    assert run(code, 1, AUDIT_I386) == RET_KILL_PROCESS
    assert run(code, 1, ARCHES["aarch64"].audit) == RET_KILL_PROCESS
    assert run(code, 0x40000000 + 1, x86.audit) == ENOSYS  # x32 write
    arm = ARCHES["aarch64"]
    assert run(program(arm), 64, AUDIT_ARM) == RET_KILL_PROCESS
    assert run(program(arm), 64, x86.audit) == RET_KILL_PROCESS


def test_set_id_modes_are_refused(arch: Arch) -> None:
    code = program(arch)
    for name, (mode, flags) in MODES.items():
        if name not in arch.numbers:
            continue
        nr = arch.numbers[name]
        args = [0] * 6
        if flags is not None:
            args[flags] = 0o100  # O_CREAT
        for bits, verdict in ((0o755, RET_ALLOW), (0o1777, RET_ALLOW)):
            args[mode] = bits
            assert run(code, nr, arch.audit, *args) == verdict, (name, oct(bits))
        for bits in (0o4755, 0o2755, 0o6755, 0o104755):
            args[mode] = bits
            assert run(code, nr, arch.audit, *args) == EPERM, (name, oct(bits))
        if flags is not None:  # without O_CREAT or O_TMPFILE the mode is ignored
            args[flags] = 0o2  # O_RDWR
            args[mode] = 0o4755
            assert run(code, nr, arch.audit, *args) == RET_ALLOW, name
            args[flags] = 0o20000000 | 0o2  # __O_TMPFILE | O_RDWR
            assert run(code, nr, arch.audit, *args) == EPERM, name


def test_namespaces_through_clone_are_refused(arch: Arch) -> None:
    code = program(arch)
    clone = arch.numbers["clone"]
    assert run(code, clone, arch.audit, 0x01200011) == RET_ALLOW  # what fork() passes
    assert run(code, clone, arch.audit, 0x003D0F00) == RET_ALLOW  # what pthread passes
    for flag in (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000):
        assert run(code, clone, arch.audit, 0x11 | flag) == EPERM, hex(flag)
    assert run(code, clone, arch.audit, 0x40000000) == EPERM  # CLONE_NEWNET


def test_personality_only_harmless_values(arch: Arch) -> None:
    code = program(arch)
    nr = arch.numbers["personality"]
    for value in (0, 8, 0x20000, 0x20008, 0xFFFFFFFF):
        assert run(code, nr, arch.audit, value) == RET_ALLOW, hex(value)
    for value in (0x0040000, 0x0400000, 0x0200000, 0x0008000):  # no ASLR, READ_IMPLIES_EXEC...
        assert run(code, nr, arch.audit, value) == EPERM, hex(value)


def test_tables_agree_where_the_generic_numbers_are_shared() -> None:
    generic = {name: nr for name, nr in AARCH64.items() if nr >= 403}
    for name, nr in generic.items():
        assert X86_64[name] == nr, name


def test_unknown_machine_fails_closed() -> None:
    assert arch_for("amd64") is ARCHES["x86_64"]
    assert arch_for("arm64") is ARCHES["aarch64"]
    with pytest.raises(SandboxUnavailable, match="no seccomp filter"):
        arch_for("riscv64")
