"""The hostile payloads, and which backend claims to stop each one.

A payload is a shell command (``sh``, run by ``bwrap`` and ``local``), a Python program
(``py``, run as ``python3 -c`` everywhere, and the only form the ``wasm`` guest gets when
both exist), or a file action. ``stops`` names the backends that claim to stop it: the
suite runs it on exactly those and asserts the host is untouched. ``docs/sandboxes.md``
shows the same table (a test keeps the two in step).

Placeholders filled in per run: ``{home}`` (the canary HOME), ``{outside}`` (a canary
directory beside the workspace), ``{port}`` / ``{udp}`` (loopback listeners opened by the
test), ``{abstract}`` (an abstract unix socket name), ``{pid}`` (the test process).
Processes a payload starts carry ``4242`` or ``zerog-hostile`` in their command line, so
the suite can prove none of them survived.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from zerog.types import Status

ALL = frozenset({"bwrap", "wasm", "local"})
ISOLATED = frozenset({"bwrap", "wasm"})
BWRAP = frozenset({"bwrap"})


@dataclass(frozen=True)
class Payload:
    name: str
    category: str
    what: str
    sh: str | None = None
    py: str | None = None
    write: tuple[str, str] | None = None  # a file action: (path, content)
    stops: frozenset[str] = ALL
    limits: dict[str, float] = field(default_factory=dict)
    expect: frozenset[Status] | None = None  # allowed statuses (None: any)
    note: str = ""  # why a backend does not stop it, for the docs table

    def command(self, backend: str) -> str:
        import shlex

        if self.py is not None and (backend == "wasm" or self.sh is None):
            return "python3 -c " + shlex.quote(self.py + "\n#zerog-hostile")
        if self.sh is None:
            raise ValueError(f"{self.name} has no command")
        return self.sh


# Programs of the payloads that need more than a line or two. Each prints "escaped ..."
# for what got through (the suite fails on that word in the output).
SET_ID_FILES = """
import os, stat
def attempt(call, *args):
    try:
        call(*args)
    except Exception:
        pass
open('plain', 'w').close()
attempt(os.chmod, 'plain', 0o6755)
attempt(os.open, 'created', os.O_CREAT | os.O_WRONLY, 0o4755)
attempt(os.mkdir, 'setgid-dir', 0o2755)
attempt(getattr(os, 'mknod', None), 'node', 0o4755 | stat.S_IFREG)
fd = os.open('by-fd', os.O_CREAT | os.O_WRONLY, 0o644)
attempt(os.fchmod, fd, 0o4755)
attempt(os.chmod, 'by-fd', 0o2755)
try:
    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    open('at2', 'w').close()
    libc.syscall(452, -100, b'at2', 0o4755, 0)  # fchmodat2 (same number on both arches)
except Exception:
    pass
for name in os.listdir('.'):
    if os.lstat(name).st_mode & 0o6000:
        print('escaped', name, oct(os.lstat(name).st_mode))
"""

# System calls the seccomp filter denies, each made so that it would succeed (or fail
# with another error) for an unprivileged process without the filter.
DENIED_CALLS = """
import ctypes, errno, os
machine = os.uname().machine
NR = {
    'x86_64': dict(keyctl=250, personality=135, io_uring_setup=425, userfaultfd=323,
                   kcmp=312, process_vm_readv=310, unshare=272, name_to_handle_at=303,
                   setns=308, clone3=435, openat2=437, mount=165, pidfd_getfd=438,
                   pidfd_open=434, umount2=166, syslog=103),
    'aarch64': dict(keyctl=219, personality=92, io_uring_setup=425, userfaultfd=282,
                    kcmp=272, process_vm_readv=270, unshare=97, name_to_handle_at=264,
                    setns=268, clone3=435, openat2=437, mount=40, pidfd_getfd=438,
                    pidfd_open=434, umount2=39, syslog=116),
}[machine]
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
L = ctypes.c_long
def call(name, *args):
    ctypes.set_errno(0)
    result = libc.syscall(L(NR[name]), *[L(a) if isinstance(a, int) else a for a in args])
    return result, ctypes.get_errno()
pid = os.getpid()
buf = ctypes.create_string_buffer(4096)
iov_local = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 16)
iov_remote = (ctypes.c_void_p * 2)(ctypes.addressof(buf), 16)
handle = ctypes.create_string_buffer(8 + 128)
ctypes.memmove(handle, (128).to_bytes(4, 'little'), 4)
mount_id = ctypes.c_int()
pidfd, _ = call('pidfd_open', pid, 0)
attempts = {
    'keyctl': (call('keyctl', 0, -3, 0), errno.EPERM),
    'personality': (call('personality', 0x0040000), errno.EPERM),
    'io_uring_setup': (call('io_uring_setup', 1, buf), errno.EPERM),
    'userfaultfd': (call('userfaultfd', 1), errno.EPERM),
    'kcmp': (call('kcmp', pid, pid, 1, 0, 0), errno.EPERM),
    'process_vm_readv': (call('process_vm_readv', pid, iov_local, 1, iov_remote, 1, 0),
                         errno.EPERM),
    'unshare': (call('unshare', 0), errno.EPERM),
    'name_to_handle_at': (call('name_to_handle_at', -100, b'.', handle,
                               ctypes.byref(mount_id), 0), errno.EPERM),
    'setns': (call('setns', -1, 0), errno.EPERM),
    'clone3': (call('clone3', 0, 0), errno.ENOSYS),
    'openat2': (call('openat2', -100, b'.', 0, 0), errno.ENOSYS),
    'mount': (call('mount', 1, 1, 1, 0, 0), errno.EPERM),
    'umount2': (call('umount2', 1, 0), errno.EPERM),
    'syslog': (call('syslog', 10, 0, 0), errno.EPERM),
    'pidfd_getfd': (call('pidfd_getfd', pidfd, 0, 0), errno.EPERM),
}
for name, ((result, err), wanted) in attempts.items():
    if result >= 0 or err != wanted:
        print('escaped', name, result, errno.errorcode.get(err, err))
status = open('/proc/self/status').read()
if 'Seccomp:\t2' not in status:
    print('escaped: no seccomp filter')
"""

KEYRING_READ = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long
keyctl = {'x86_64': 250, 'aarch64': 219}[os.uname().machine]
L = ctypes.c_long
key = libc.syscall(L(keyctl), L(10), L(-3), b'user', b'zerog-hostile-key', L(0))  # SEARCH
if key > 0:
    buf = ctypes.create_string_buffer(256)
    size = libc.syscall(L(keyctl), L(11), L(key), buf, L(256))  # READ
    print('escaped', buf.raw[:max(size, 0)].decode())
for line in open('/proc/keys'):
    print('escaped', line)
"""

PROC_KERNEL_FILES = """
import os
for path in ('/proc/sys/kernel/core_pattern', '/proc/sys/kernel/printk_ratelimit_burst',
             '/proc/sysrq-trigger'):
    try:
        os.close(os.open(path, os.O_WRONLY))  # opened for writing; nothing written
        print('escaped: writable', path)
    except OSError:
        pass
for path in ('/proc/kcore', '/proc/kallsyms', '/proc/keys', '/proc/key-users',
             '/proc/timer_list', '/proc/sched_debug'):
    try:
        with open(path, 'rb') as handle:
            if handle.read(4096):
                print('escaped: readable', path)
    except OSError:
        pass
"""

S = Status
FAILED = frozenset({S.ERROR})
KILLED_OR_FAILED = frozenset(
    {S.ERROR, S.TIMEOUT, S.PROCESS_LIMIT, S.MEMORY_LIMIT, S.CPU_LIMIT, S.OUTPUT_LIMIT}
)

PAYLOADS: tuple[Payload, ...] = (
    # ------------------------------------------------------------ resources
    Payload(
        "fork-bomb",
        "resources",
        "shell fork bomb",
        sh="f(){ f | f & }; f; sleep 4242",
        stops=frozenset({"bwrap", "wasm"}),
        expect=frozenset({S.PROCESS_LIMIT, S.TIMEOUT, S.ERROR}),
        note="local: no pids cgroup, and RLIMIT_NPROC is not enforced for root",
    ),
    Payload(
        "fork-bomb-python",
        "resources",
        "os.fork() in a loop",
        py="import os, time\nwhile True:\n    os.fork()",
        stops=ISOLATED,
        expect=frozenset({S.PROCESS_LIMIT, S.TIMEOUT, S.ERROR}),
        note="local: no pids cgroup",
    ),
    Payload(
        "thread-bomb",
        "resources",
        "threads until something gives",
        py="import threading, time\nwhile True:\n"
        "    threading.Thread(target=time.sleep, args=(4242,), daemon=True).start()",
        stops=ISOLATED,
        expect=frozenset({S.PROCESS_LIMIT, S.ERROR, S.TIMEOUT, S.MEMORY_LIMIT}),
        note="local: no pids cgroup",
    ),
    Payload(
        "memory-bomb",
        "resources",
        "one process allocating without end",
        py="x = []\nwhile True:\n    x.append(bytearray(10_000_000))",
        expect=frozenset({S.MEMORY_LIMIT, S.ERROR}),
    ),
    Payload(
        "memory-many-processes",
        "resources",
        "eight processes, each under the limit, together over it",
        sh="for i in 1 2 3 4 5 6 7 8; do "
        'python3 -c \'import time; x = bytearray(60_000_000); x[::4096] = b"1" * len(x[::4096]);'
        " time.sleep(4242) #zerog-hostile' & done; wait",
        stops=frozenset({"bwrap", "wasm"}),
        expect=frozenset({S.MEMORY_LIMIT, S.TIMEOUT, S.ERROR}),
        note="local: RLIMIT_DATA is per process; no memory cgroup",
    ),
    Payload(
        "tmpfs-fill",
        "resources",
        "fill the private /tmp (RAM-backed)",
        sh="head -c 100000000 /dev/zero > /tmp/fill; ls -la /tmp",
        stops=ISOLATED,
        note="local: /tmp is the host's /tmp (bounded only by max_file_bytes per file)",
    ),
    Payload(
        "shm-fill",
        "resources",
        "fill /dev/shm",
        sh="head -c 100000000 /dev/zero > /dev/shm/fill",
        stops=ISOLATED,
        note="local: /dev/shm is the host's",
    ),
    Payload(
        "cpu-spin",
        "resources",
        "a busy loop",
        py="while True:\n    pass",
        limits={"timeout": 10.0},
        expect=frozenset({S.CPU_LIMIT}),
    ),
    Payload(
        "cpu-spin-shell",
        "resources",
        "a busy shell loop",
        sh="while :; do :; done",
        stops=frozenset({"bwrap", "local"}),
        limits={"timeout": 10.0},
        expect=frozenset({S.CPU_LIMIT}),
        note="wasm: runs Python only (the loop is refused)",
    ),
    Payload(
        "sleep-forever",
        "resources",
        "sleep past the deadline",
        sh="sleep 4242",
        py="import time\ntime.sleep(4242)",
        expect=frozenset({S.TIMEOUT}),
    ),
    Payload(
        "sleeping-children",
        "resources",
        "background children holding the pipes",
        sh="sleep 4242 & sleep 4242 & wait",
        stops=frozenset({"bwrap", "local"}),
        expect=frozenset({S.TIMEOUT}),
        note="wasm: no background jobs (refused)",
    ),
    Payload(
        "stdout-flood",
        "output",
        "endless stdout",
        sh="yes zerog-hostile",
        py="import sys\nwhile True:\n    sys.stdout.write('x' * 65536)",
        expect=frozenset({S.OUTPUT_LIMIT}),
    ),
    Payload(
        "stderr-flood",
        "output",
        "endless stderr",
        sh="yes zerog-hostile >&2",
        py="import sys\nwhile True:\n    sys.stderr.write('x' * 65536)",
        expect=frozenset({S.OUTPUT_LIMIT}),
    ),
    Payload(
        "giant-line",
        "output",
        "one 20 MB line without a newline",
        py="import sys\nsys.stdout.write('a' * 20_000_000)",
        limits={"kill_output_bytes": 64_000_000},
        expect=frozenset({S.SUCCESS}),
    ),
    Payload(
        "binary-garbage",
        "output",
        "random bytes on stdout and stderr",
        py="import os, sys\nsys.stdout.buffer.write(os.urandom(200_000))\n"
        "sys.stderr.buffer.write(os.urandom(200_000))",
        expect=frozenset({S.SUCCESS}),
    ),
    Payload(
        "terminal-escapes",
        "output",
        "clipboard (OSC 52), title, colours, cursor, bidi and C1 controls in the output",
        py="import sys\nsys.stdout.write('\\x1b]52;c;cHduZWQ=\\x07\\x1b]0;pwned\\x07\\x1b[31mred"
        "\\x1b[2J\\x1b[H\\u202e\\x9b31m\\x07\\x08ok\\n')\n"
        "sys.stderr.write('\\x1bP+q\\x1b\\\\\\x1b[6n\\x1bc')",
        expect=frozenset({S.SUCCESS}),
    ),
    Payload(
        "closed-stdout-keeps-running",
        "output",
        "close stdout and stderr, keep running",
        sh="exec >&- 2>&-; sleep 4242",
        py="import os, time\nos.close(1)\nos.close(2)\ntime.sleep(4242)",
        expect=frozenset({S.TIMEOUT}),
    ),
    Payload(
        "disk-one-file",
        "disk",
        "one file past the size limit",
        sh="head -c 100000000 /dev/zero > big",
        py="with open('big', 'wb') as f:\n    f.write(b'0' * 100_000_000)",
        expect=frozenset({S.FILE_LIMIT}),
    ),
    Payload(
        "disk-many-files",
        "disk",
        "many files, each under the size limit",
        py="for i in range(200):\n    open(f'f{i}', 'wb').write(b'0' * 4_000_000)",
        limits={"timeout": 20.0, "cpu_seconds": 20.0},
        expect=frozenset({S.DISK_LIMIT}),
    ),
    Payload(
        "inode-fill",
        "disk",
        "a hundred thousand empty files",
        py="import os\nos.mkdir('many')\n"
        "for i in range(100_000):\n    open(f'many/{i}', 'w').close()",
        limits={"timeout": 30.0, "cpu_seconds": 30.0},
        expect=frozenset({S.DISK_LIMIT}),
    ),
    Payload(
        "zip-bomb",
        "disk",
        "extract a zip whose one member is 64 MB of zeros",
        sh="python3 -m zipfile -e bomb.zip out",
        py="import zipfile\nzipfile.ZipFile('bomb.zip').extractall('out')",
        expect=frozenset({S.FILE_LIMIT}),
    ),
    Payload(
        "tar-bomb",
        "disk",
        "extract a tar.gz of 100 files of 1 MB of zeros",
        sh="tar xzf bomb.tar.gz",
        py="import tarfile\ntarfile.open('bomb.tar.gz').extractall('.', filter='data')",
        limits={"timeout": 20.0},
        expect=frozenset({S.DISK_LIMIT}),
    ),
    # ------------------------------------------------------------ file system
    Payload(
        "write-parent",
        "filesystem",
        "write ../ outside the workspace",
        sh="echo pwned > ../pwned.txt; echo pwned > {outside}/../pwned2.txt",
        py="open('../pwned.txt', 'w').write('pwned')",
        stops=ISOLATED,
        note="local: a shell command can write anywhere the user can",
    ),
    Payload(
        "write-absolute",
        "filesystem",
        "write absolute paths: a canary directory, /etc, /usr, the home directory",
        sh="echo pwned > {outside}/pwned.txt; echo pwned > /etc/pwned; echo pwned > /usr/pwned;"
        " echo pwned > {home}/pwned.txt",
        py="for p in ['{outside}/pwned.txt', '/etc/pwned', '{home}/pwned.txt']:\n"
        "    try:\n        open(p, 'w').write('pwned')\n    except OSError:\n        pass",
        stops=ISOLATED,
        note="local: a shell command can write anywhere the user can",
    ),
    Payload(
        "overwrite-canary",
        "filesystem",
        "overwrite a file that exists on the host",
        sh="echo pwned > {outside}/canary.txt; rm -f {outside}/canary.txt",
        py="import os\nopen('{outside}/canary.txt', 'w').write('pwned')",
        stops=ISOLATED,
        note="local: a shell command can write anywhere the user can",
    ),
    Payload(
        "symlink-escape",
        "filesystem",
        "a symlink to a host directory, then write through it",
        sh="ln -s {outside} link && echo pwned > link/pwned.txt",
        py="import os\nos.symlink('{outside}', 'link')\nopen('link/pwned.txt', 'w').write('pwned')",
        stops=ISOLATED,
        note="local: follows the link",
    ),
    Payload(
        "symlink-relative-escape",
        "filesystem",
        "a relative symlink climbing out, then write through it",
        sh="ln -s ../outside up && echo pwned > up/pwned.txt",
        py="import os\nos.symlink('../outside', 'up')\nopen('up/pwned.txt', 'w').write('pwned')",
        stops=ISOLATED,
        note="local: follows the link",
    ),
    Payload(
        "hardlink-escape",
        "filesystem",
        "a hard link to a host file, then write through it",
        sh="ln {outside}/canary.txt hard && echo pwned > hard",
        py="import os\nos.link('{outside}/canary.txt', 'hard')\nopen('hard', 'w').write('pwned')",
        stops=ISOLATED,
        note="local: the link works",
    ),
    Payload(
        "file-action-dotdot",
        "filesystem",
        "a write_file action to ../",
        write=("../pwned.txt", "pwned"),
    ),
    Payload(
        "file-action-absolute",
        "filesystem",
        "a write_file action to an absolute path",
        write=("{outside}/pwned.txt", "pwned"),
    ),
    Payload(
        "file-action-through-symlink",
        "filesystem",
        "a write_file action through a symlink planted by an earlier command",
        write=("planted/pwned.txt", "pwned"),
    ),
    Payload(
        "tamper-zerog-state",
        "filesystem",
        "rewrite zerog's snapshots in .zerog/",
        sh="echo pwned > .zerog/state.txt",
        stops=BWRAP,
        note="wasm: the workspace is pre-opened whole, .zerog/ included; local: writable",
    ),
    Payload(
        "set-id-files",
        "filesystem",
        "leave a set-user-ID or set-group-ID file in the workspace (chmod, fchmod, "
        "fchmodat2, open, mkdir, mknod)",
        py=SET_ID_FILES,
        stops=ISOLATED,
        note="local: the files are made (set-user-ID root when zerog is root)",
    ),
    # ------------------------------------------------------------ secrets
    Payload(
        "read-home-canary",
        "secrets",
        "read a secret in the caller's home directory",
        sh="cat {home}/.ssh/id_rsa {home}/secret.txt; cat ~/.ssh/id_rsa",
        py="print(open('{home}/secret.txt').read())",
        stops=ISOLATED,
        note="local: can read anything the user can",
    ),
    Payload(
        "env-canary",
        "secrets",
        "print the environment",
        sh="env; echo $ZEROG_HOSTILE_CANARY",
        py="import os\nprint(dict(os.environ))",
    ),
    Payload(
        "proc-parent-environ",
        "secrets",
        "read the environment of the parent and of pid 1 through /proc",
        sh="cat /proc/$PPID/environ /proc/1/environ /proc/{pid}/environ | tr '\\0' '\\n'",
        py="for p in ['/proc/1/environ', '/proc/{pid}/environ']:\n"
        "    try:\n        print(open(p).read())\n    except OSError:\n        pass",
        stops=ISOLATED,
        note="local: /proc/<parent>/environ is readable",
    ),
    Payload(
        "proc-scan-environ",
        "secrets",
        "read the environment of every visible process",
        sh="cat /proc/[0-9]*/environ 2>/dev/null | tr '\\0' '\\n'",
        stops=ISOLATED,
        note="local: sees every process of the user",
    ),
    Payload(
        "read-shadow",
        "secrets",
        "read /etc/shadow and the SSH host keys",
        sh="cat /etc/shadow /etc/gshadow /etc/ssh/ssh_host_*_key",
        stops=ISOLATED,
        note="local: root reads them",
    ),
    Payload(
        "read-host-proc-cmdlines",
        "secrets",
        "list the host's processes",
        sh="ps -ef 2>/dev/null || ls /proc",
        stops=ISOLATED,
        note="local: sees the host's processes",
    ),
    Payload(
        "keyring-read",
        "secrets",
        "read a key from zerog's session keyring (keyctl, /proc/keys)",
        py=KEYRING_READ,
        stops=ISOLATED,
        note="local: shares zerog's session keyring",
    ),
    # ------------------------------------------------------------ network
    Payload(
        "tcp-loopback",
        "network",
        "connect to a listener on the host's 127.0.0.1",
        py="import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\n"
        "s.sendall(b'pwned')",
        stops=ISOLATED,
        note="local: shares the host's network",
    ),
    Payload(
        "udp-loopback",
        "network",
        "send a datagram to the host's 127.0.0.1",
        py="import socket\nsocket.socket(socket.AF_INET, socket.SOCK_DGRAM)"
        ".sendto(b'pwned', ('127.0.0.1', {udp}))",
        stops=ISOLATED,
        note="local: shares the host's network",
    ),
    Payload(
        "abstract-unix-socket",
        "network",
        "connect to an abstract unix socket of the host",
        py="import socket\ns = socket.socket(socket.AF_UNIX)\ns.connect('\\0{abstract}')\n"
        "s.sendall(b'pwned')",
        stops=ISOLATED,
        note="local: shares the host's network namespace",
    ),
    Payload(
        "dns-lookup",
        "network",
        "resolve a public name",
        py="import socket\nprint(socket.getaddrinfo('example.com', 443))",
        stops=ISOLATED,
        expect=frozenset({S.ERROR}),
        note="local: would reach the resolver (not run: no test reaches the internet)",
    ),
    # ------------------------------------------------------------ processes
    Payload(
        "background-survivor",
        "processes",
        "leave a background process and exit",
        sh="(sleep 4242 &) ; exit 0",
        stops=frozenset({"bwrap", "local"}),
        note="wasm: no background jobs (refused)",
    ),
    Payload(
        "nohup-survivor",
        "processes",
        "nohup a process and exit",
        sh="nohup sleep 4242 > /dev/null 2>&1 & exit 0",
        stops=frozenset({"bwrap", "local"}),
        note="wasm: no background jobs (refused)",
    ),
    Payload(
        "setsid-survivor",
        "processes",
        "start a new session and exit",
        sh="setsid sleep 4242 > /dev/null 2>&1 < /dev/null & exit 0",
        stops=BWRAP,
        note="local: a new session leaves the process group zerog kills; wasm: refused",
    ),
    Payload(
        "daemonize",
        "processes",
        "double fork and setsid from Python",
        py="import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        "        time.sleep(4242)\n    os._exit(0)\nos._exit(0)",
        stops=ISOLATED,
        note="local: the daemon escapes",
    ),
    Payload(
        "kill-parent",
        "processes",
        "SIGKILL the parent",
        sh="kill -9 $PPID; kill -9 {pid}; sleep 1",
        py="import os, signal\nos.kill(os.getppid(), signal.SIGKILL)",
        stops=ISOLATED,
        note="local: would kill zerog",
    ),
    Payload(
        "kill-everything",
        "processes",
        "SIGKILL every process it can see",
        sh="kill -9 -1; sleep 1",
        stops=ISOLATED,
        note="local: as root, kills every process on the machine",
    ),
    Payload(
        "nested-userns",
        "processes",
        "create a user namespace to regain capabilities",
        sh="unshare -Ur id && echo escaped",
        py="import os\nos.unshare(os.CLONE_NEWUSER)\nprint('escaped')",
        stops=ISOLATED,
        note="local: root needs no namespace",
    ),
    Payload(
        "mount-and-sysctl",
        "processes",
        "mount a file system, write a sysctl (its own value back), reach the cgroup tree",
        sh="mount -t tmpfs none /mnt && echo escaped mount; "
        "v=$(cat /proc/sys/kernel/printk_ratelimit_burst) && "
        'echo "$v" > /proc/sys/kernel/printk_ratelimit_burst && echo escaped sysctl; '
        "ls /sys/fs/cgroup",
        stops=ISOLATED,
        note="local: root can",
    ),
    Payload(
        "proc-kernel-files",
        "processes",
        "open core_pattern, a sysctl and sysrq-trigger for writing; read kcore, kallsyms, "
        "every key, timers",
        py=PROC_KERNEL_FILES,
        stops=ISOLATED,
        note="local: root can (and any user reads /proc/keys and /proc/timer_list)",
    ),
    Payload(
        "denied-system-calls",
        "processes",
        "keyctl, personality, io_uring, userfaultfd, kcmp, process_vm_readv, unshare, "
        "file handles, setns, clone3, openat2, mount, syslog, pidfd_getfd",
        py=DENIED_CALLS,
        stops=ISOLATED,
        note="local: no seccomp filter",
    ),
    # ------------------------------------------------------------ terminal
    Payload(
        "tiocsti",
        "terminal",
        "push keystrokes into the controlling terminal (TIOCSTI)",
        py="import fcntl, os, termios\nfor fd in (0, 1, 2):\n    try:\n"
        "        fcntl.ioctl(fd, termios.TIOCSTI, b'x')\n        print('injected', fd)\n"
        "    except OSError:\n        pass\n"
        "tty = os.open('/dev/tty', os.O_RDWR)\nfcntl.ioctl(tty, termios.TIOCSTI, b'x')\n"
        "print('injected tty')",
        stops=ISOLATED,
        note="local: same session as zerog, so /dev/tty is zerog's terminal",
    ),
)


def by_name() -> dict[str, Payload]:
    return {p.name: p for p in PAYLOADS}
