"""The seccomp filter of the bwrap sandbox: a deny list, as the BPF program bwrap loads.

``bwrap --seccomp FD`` reads a raw array of ``struct sock_filter`` (8 bytes each: u16 code,
u8 jt, u8 jf, u32 k, in the host's byte order) and installs it on the sandboxed command
just before it executes, so every process in the sandbox runs under it (``Seccomp: 2``).

The program, in the spirit of the default profiles of container runtimes, but a deny list:

- a system call of another architecture than the host's (i386 on x86_64, arm32 on
  aarch64) kills the process; on x86_64 the x32 range (``nr >= 0x40000000``) is ENOSYS;
- kernel keys, BPF, perf, userfaultfd, io_uring, modules and kexec, every mount API,
  swap, reboot, accounting, the clocks, file handles, quotas, namespaces (``setns``,
  ``unshare``, ``clone`` with a ``CLONE_NEW*`` flag), fanotify, port I/O, the kernel
  log, other processes' memory, ``kcmp``, ``chroot``: EPERM;
- ``personality`` other than the harmless values (Linux, 32-bit uname, query): EPERM;
- modes with the set-user-ID or set-group-ID bit (06000) in ``chmod``, ``fchmod``,
  ``fchmodat``, ``fchmodat2``, ``mkdir(at)``, ``mknod(at)``, ``creat`` and in
  ``open``/``openat`` when they create a file (``O_CREAT`` or ``O_TMPFILE``): EPERM. When
  zerog runs as root the workspace is an idmapped mount whose files belong to host root
  on disk, so without this a command could leave a set-user-ID-root program behind;
- ``openat2`` and ``clone3``, whose flags and modes sit in a structure a filter cannot
  read: ENOSYS (the C library falls back to ``openat`` and ``clone``).

``ptrace`` stays allowed: the commands of one sandbox all run as the same unprivileged
user in their own pid namespace, the kept sandbox's init is not dumpable, and debuggers
and ``strace`` keep working. Everything not listed is allowed.
"""

from __future__ import annotations

import errno
import struct
from collections.abc import Mapping
from dataclasses import dataclass

from zerog.sandbox.base import SandboxUnavailable

# struct seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6]
_NR = 0
_ARCH = 4


def _arg_low(index: int) -> int:
    """Offset of the low 32 bits of argument ``index`` (little-endian hosts only)."""
    return 16 + 8 * index


# BPF opcodes
_LD_W_ABS = 0x20  # BPF_LD | BPF_W | BPF_ABS
_JEQ = 0x15  # BPF_JMP | BPF_JEQ | BPF_K
_JGE = 0x35  # BPF_JMP | BPF_JGE | BPF_K
_JSET = 0x45  # BPF_JMP | BPF_JSET | BPF_K
_RET = 0x06  # BPF_RET | BPF_K

RET_ALLOW = 0x7FFF0000
RET_KILL_PROCESS = 0x80000000
RET_ERRNO = 0x00050000


def ret_errno(number: int) -> int:
    return RET_ERRNO | (number & 0xFFFF)


SETID_BITS = 0o6000
CLONE_NEW_FLAGS = 0x7E020000  # NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET
CREATES = 0o100 | 0o20000000  # O_CREAT | __O_TMPFILE (the same on x86_64 and aarch64)
X32_BIT = 0x40000000
# personality(): PER_LINUX, PER_LINUX32, UNAME26 alone and with PER_LINUX32, and the query.
PERSONALITIES = (0x0, 0x8, 0x20000, 0x20008, 0xFFFFFFFF)

DENIED = (
    "keyctl",
    "add_key",
    "request_key",
    "bpf",
    "perf_event_open",
    "userfaultfd",
    "io_uring_setup",
    "io_uring_enter",
    "io_uring_register",
    "kexec_load",
    "kexec_file_load",
    "init_module",
    "finit_module",
    "delete_module",
    "create_module",
    "query_module",
    "get_kernel_syms",
    "mount",
    "umount2",
    "pivot_root",
    "chroot",
    "move_mount",
    "open_tree",
    "open_tree_attr",
    "fsopen",
    "fsconfig",
    "fsmount",
    "fspick",
    "mount_setattr",
    "swapon",
    "swapoff",
    "reboot",
    "acct",
    "settimeofday",
    "clock_settime",
    "clock_adjtime",
    "adjtimex",
    "open_by_handle_at",
    "name_to_handle_at",
    "quotactl",
    "quotactl_fd",
    "setns",
    "unshare",
    "fanotify_init",
    "iopl",
    "ioperm",
    "syslog",
    "lookup_dcookie",
    "process_vm_readv",
    "process_vm_writev",
    "pidfd_getfd",
    "kcmp",
    "uselib",
    "vhangup",
    "nfsservctl",
    "_sysctl",
    "sethostname",
    "setdomainname",
)
NOT_IMPLEMENTED = ("openat2", "clone3")
# system call -> (index of its mode argument, index of its flags argument or None)
MODES: dict[str, tuple[int, int | None]] = {
    "chmod": (1, None),
    "fchmod": (1, None),
    "fchmodat": (2, None),
    "fchmodat2": (2, None),
    "creat": (1, None),
    "mkdir": (1, None),
    "mkdirat": (2, None),
    "mknod": (1, None),
    "mknodat": (2, None),
    "open": (2, 1),
    "openat": (3, 2),
}

# Numbers from the kernel's tables (arch/x86/entry/syscalls/syscall_64.tbl and the
# generic table aarch64 uses); a name missing from an architecture does not exist there.
X86_64: Mapping[str, int] = {
    "open": 2,
    "clone": 56,
    "creat": 85,
    "mkdir": 83,
    "chmod": 90,
    "fchmod": 91,
    "ptrace": 101,
    "syslog": 103,
    "mknod": 133,
    "uselib": 134,
    "personality": 135,
    "vhangup": 153,
    "pivot_root": 155,
    "_sysctl": 156,
    "adjtimex": 159,
    "chroot": 161,
    "acct": 163,
    "settimeofday": 164,
    "mount": 165,
    "umount2": 166,
    "swapon": 167,
    "swapoff": 168,
    "reboot": 169,
    "sethostname": 170,
    "setdomainname": 171,
    "iopl": 172,
    "ioperm": 173,
    "create_module": 174,
    "init_module": 175,
    "delete_module": 176,
    "get_kernel_syms": 177,
    "query_module": 178,
    "quotactl": 179,
    "nfsservctl": 180,
    "lookup_dcookie": 212,
    "clock_settime": 227,
    "kexec_load": 246,
    "add_key": 248,
    "request_key": 249,
    "keyctl": 250,
    "openat": 257,
    "mkdirat": 258,
    "mknodat": 259,
    "fchmodat": 268,
    "unshare": 272,
    "perf_event_open": 298,
    "fanotify_init": 300,
    "name_to_handle_at": 303,
    "open_by_handle_at": 304,
    "clock_adjtime": 305,
    "setns": 308,
    "process_vm_readv": 310,
    "process_vm_writev": 311,
    "kcmp": 312,
    "finit_module": 313,
    "kexec_file_load": 320,
    "bpf": 321,
    "userfaultfd": 323,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "clone3": 435,
    "openat2": 437,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
    "quotactl_fd": 443,
    "fchmodat2": 452,
    "open_tree_attr": 467,
}
AARCH64: Mapping[str, int] = {
    "lookup_dcookie": 18,
    "mknodat": 33,
    "mkdirat": 34,
    "umount2": 39,
    "mount": 40,
    "pivot_root": 41,
    "nfsservctl": 42,
    "fchmod": 52,
    "fchmodat": 53,
    "chroot": 51,
    "openat": 56,
    "vhangup": 58,
    "quotactl": 60,
    "acct": 89,
    "personality": 92,
    "unshare": 97,
    "kexec_load": 104,
    "init_module": 105,
    "delete_module": 106,
    "clock_settime": 112,
    "syslog": 116,
    "ptrace": 117,
    "reboot": 142,
    "sethostname": 161,
    "setdomainname": 162,
    "settimeofday": 170,
    "adjtimex": 171,
    "add_key": 217,
    "request_key": 218,
    "keyctl": 219,
    "clone": 220,
    "swapon": 224,
    "swapoff": 225,
    "perf_event_open": 241,
    "fanotify_init": 262,
    "name_to_handle_at": 264,
    "open_by_handle_at": 265,
    "clock_adjtime": 266,
    "setns": 268,
    "process_vm_readv": 270,
    "process_vm_writev": 271,
    "kcmp": 272,
    "finit_module": 273,
    "bpf": 280,
    "userfaultfd": 282,
    "kexec_file_load": 294,
    "io_uring_setup": 425,
    "io_uring_enter": 426,
    "io_uring_register": 427,
    "open_tree": 428,
    "move_mount": 429,
    "fsopen": 430,
    "fsconfig": 431,
    "fsmount": 432,
    "fspick": 433,
    "clone3": 435,
    "openat2": 437,
    "pidfd_getfd": 438,
    "mount_setattr": 442,
    "quotactl_fd": 443,
    "fchmodat2": 452,
    "open_tree_attr": 467,
}


@dataclass(frozen=True)
class Arch:
    """One architecture the filter knows: its audit number and system call numbers."""

    machine: str
    audit: int
    numbers: Mapping[str, int]
    x32: bool  # the x32 ABI shares the audit number: refuse its range


ARCHES = {
    "x86_64": Arch("x86_64", 0xC000003E, X86_64, x32=True),
    "aarch64": Arch("aarch64", 0xC00000B7, AARCH64, x32=False),
}


def arch_for(machine: str) -> Arch:
    """The architecture ``machine`` (``platform.machine()``) names, or
    :class:`SandboxUnavailable`: without a filter there is no sandbox."""
    found = ARCHES.get({"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine))
    if found is None:
        raise SandboxUnavailable(
            f"the bwrap sandbox has no seccomp filter for this machine ({machine!r}; it knows "
            f"{', '.join(sorted(ARCHES))}); choose --sandbox wasm"
        )
    return found


class _Assembler:
    """Instructions with symbolic jump targets, resolved to BPF's relative offsets."""

    def __init__(self) -> None:
        self._code: list[tuple[int, int | str, int | str, int]] = []
        self._labels: dict[str, int] = {}

    def label(self, name: str) -> None:
        if name in self._labels:
            raise ValueError(f"label {name} defined twice")
        self._labels[name] = len(self._code)

    def load(self, offset: int) -> None:
        self._code.append((_LD_W_ABS, 0, 0, offset))

    def jump(self, op: int, k: int, true: int | str = 0, false: int | str = 0) -> None:
        self._code.append((op, true, false, k))

    def ret(self, value: int) -> None:
        self._code.append((_RET, 0, 0, value))

    def _offset(self, at: int, target: int | str) -> int:
        if isinstance(target, int):
            return target
        offset = self._labels[target] - at - 1
        if not 0 <= offset <= 255:
            raise ValueError(f"jump to {target} out of range ({offset})")
        return offset

    def assemble(self) -> bytes:
        out = bytearray()
        for at, (code, true, false, k) in enumerate(self._code):
            out += struct.pack("=HBBI", code, self._offset(at, true), self._offset(at, false), k)
        return bytes(out)


def program(arch: Arch) -> bytes:
    """The filter for ``arch``, ready for ``bwrap --seccomp FD``."""
    asm = _Assembler()
    numbers = arch.numbers
    asm.load(_ARCH)
    asm.jump(_JEQ, arch.audit, false="kill")
    asm.load(_NR)
    if arch.x32:
        asm.jump(_JGE, X32_BIT, true="enosys")
    for name in DENIED:
        if name in numbers:
            asm.jump(_JEQ, numbers[name], true="eperm")
    for name in NOT_IMPLEMENTED:
        asm.jump(_JEQ, numbers[name], true="enosys")
    asm.jump(_JEQ, numbers["personality"], true="personality")
    asm.jump(_JEQ, numbers["clone"], true="clone")
    for name in MODES:
        if name in numbers:
            asm.jump(_JEQ, numbers[name], true=f"mode-{name}")
    asm.ret(RET_ALLOW)

    asm.label("personality")
    asm.load(_arg_low(0))
    for value in PERSONALITIES:
        asm.jump(_JEQ, value, true="allow")
    asm.ret(ret_errno(errno.EPERM))

    asm.label("clone")  # the flags are the first argument on both architectures
    asm.load(_arg_low(0))
    asm.jump(_JSET, CLONE_NEW_FLAGS, true="eperm")
    asm.ret(RET_ALLOW)

    for name, (mode, flags) in MODES.items():
        if name not in numbers:
            continue
        asm.label(f"mode-{name}")
        if flags is not None:
            asm.load(_arg_low(flags))
            asm.jump(_JSET, CREATES, false="allow")
        asm.load(_arg_low(mode))
        asm.jump(_JSET, SETID_BITS, true="eperm")
        asm.ret(RET_ALLOW)

    asm.label("allow")
    asm.ret(RET_ALLOW)
    asm.label("eperm")
    asm.ret(ret_errno(errno.EPERM))
    asm.label("enosys")
    asm.ret(ret_errno(errno.ENOSYS))
    asm.label("kill")
    asm.ret(RET_KILL_PROCESS)
    return asm.assemble()
