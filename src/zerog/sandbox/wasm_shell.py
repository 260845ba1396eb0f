"""A small shell that runs *inside* the WASM sandbox (CPython 3.12 for WASI).

There is no ``/bin/sh`` and no ``fork`` in WASI, so the ``wasm`` backend runs each shell
command through this file: ``python -I -S -c <this source> <command>``. It understands
what goal checks and small steps use: ``;``, ``&&``, ``||`` and newlines; quotes,
backslashes, ``$VAR``/``${VAR}``/``$?``; ``VAR=value`` prefixes; redirections
``> >> 2> 2>> 2>&1 >&2 <``; the builtins ``: true false exit echo cat pwd cd env export
unset test [ sleep ls mkdir rm touch``; and ``python``/``python3`` with ``-c``, ``-m``
or a script, run in this same interpreter (modules they import are dropped afterwards;
``-I`` and ``-P`` keep the working directory and the script's directory off ``sys.path``,
as in CPython). A command's standard input is the guest's.
Anything else (pipes, background jobs, globs, other programs) fails with a clear message
and exit status 127 or 2: it is a small shell, not a POSIX one.

zerog never imports this module; it reads its source and hands it to the guest.
"""

from __future__ import annotations

import builtins
import os
import sys
import time

TYPE_CHECKING = False  # importing typing costs ~90 ms in the guest: only what is used, when used
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import TextIO

MEMORY_EXIT = 120  # the guest ran out of its memory limit (reported as memory_limit)
MAX_EXIT = 125  # WASI exit statuses stop at 125; 126 and above are reported as 125
OPERATORS = ("&&", "||", ";", "\n", "|", "&")
REDIRECTS = ("2>&1", ">&2", "1>&2", "2>>", "2>", ">>", "1>>", "1>", ">", "<")


class ShellError(Exception):
    """A command line this shell cannot run; exit status 2."""


class Word(str):
    """A word of the command line (a plain ``str`` is an operator or a redirection)."""


def tokenize(text: str, variables: dict[str, str]) -> list[str]:
    tokens: list[str] = []
    word: list[str] = []
    in_word = False
    i = 0

    def expand(at: int) -> tuple[str, int]:
        if at < len(text) and text[at] == "?":
            return variables.get("?", "0"), at + 1
        if at < len(text) and text[at] == "{":
            end = text.find("}", at)
            if end < 0:
                raise ShellError("missing } in ${...}")
            name = text[at + 1 : end]
            return os.environ.get(name, ""), end + 1
        end = at
        while end < len(text) and (text[end].isalnum() or text[end] == "_"):
            end += 1
        if end == at:
            return "$", at
        return os.environ.get(text[at:end], ""), end

    def flush() -> None:
        nonlocal in_word
        if in_word:
            tokens.append(Word("".join(word)))
        word.clear()
        in_word = False

    while i < len(text):
        c = text[i]
        if c in " \t\r":
            flush()
            i += 1
        elif c == "#" and not in_word:
            while i < len(text) and text[i] != "\n":
                i += 1
        elif c == "\\":
            if i + 1 < len(text) and text[i + 1] == "\n":
                i += 2
                continue
            word.append(text[i + 1 : i + 2])
            in_word = True
            i += 2
        elif c == "'":
            end = text.find("'", i + 1)
            if end < 0:
                raise ShellError("unterminated quote")
            word.append(text[i + 1 : end])
            in_word = True
            i = end + 1
        elif c == '"':
            i += 1
            in_word = True
            while True:
                if i >= len(text):
                    raise ShellError("unterminated quote")
                c = text[i]
                if c == '"':
                    i += 1
                    break
                if c == "\\" and i + 1 < len(text) and text[i + 1] in '"\\$`':
                    word.append(text[i + 1])
                    i += 2
                elif c == "$":
                    value, i = expand(i + 1)
                    word.append(value)
                else:
                    word.append(c)
                    i += 1
        elif c == "`" or text.startswith("$(", i):
            raise ShellError("command substitution is not supported")
        elif c == "$":
            value, i = expand(i + 1)
            word.append(value)
            in_word = True
        else:
            op = next((o for o in REDIRECTS + OPERATORS if text.startswith(o, i)), None)
            if op is not None and not (op[0] in "12" and in_word):
                flush()
                tokens.append(op)
                i += len(op)
            else:
                word.append(c)
                in_word = True
                i += 1
    flush()
    return tokens


# ---------------------------------------------------------------------- builtins


def _echo(args: list[str], out: TextIO) -> int:
    newline = True
    if args and args[0] == "-n":
        newline, args = False, args[1:]
    out.write(" ".join(args) + ("\n" if newline else ""))
    return 0


def _cat(args: list[str], out: TextIO) -> int:
    if not args:
        out.write(sys.stdin.read())
        return 0
    status = 0
    for name in args:
        try:
            with open(name, encoding="utf-8", errors="replace") as handle:
                while chunk := handle.read(1 << 16):
                    out.write(chunk)
        except OSError as exc:
            sys.stderr.write(f"cat: {name}: {exc.strerror}\n")
            status = 1
    return status


def _test(args: list[str]) -> int:
    if args and args[0] == "!":
        return 1 - _test(args[1:])
    if not args:
        return 1
    if len(args) == 1:
        return 0 if args[0] else 1
    if len(args) == 2:
        op, value = args
        checks: dict[str, Callable[[str], bool]] = {
            "-f": os.path.isfile,
            "-d": os.path.isdir,
            "-e": os.path.exists,
            "-s": lambda p: os.path.isfile(p) and os.path.getsize(p) > 0,
            "-n": lambda s: bool(s),
            "-z": lambda s: not s,
            "-r": os.path.exists,
            "-w": os.path.exists,
        }
        if op not in checks:
            raise ShellError(f"test: unknown operator {op}")
        return 0 if checks[op](value) else 1
    if len(args) == 3:
        left, op, right = args
        if op in ("=", "=="):
            return 0 if left == right else 1
        if op == "!=":
            return 0 if left != right else 1
        numeric = {"-eq": "__eq__", "-ne": "__ne__", "-lt": "__lt__", "-gt": "__gt__"}
        numeric |= {"-le": "__le__", "-ge": "__ge__"}
        if op in numeric:
            return 0 if getattr(int(left), numeric[op])(int(right)) else 1
    raise ShellError("test: too many arguments")


def _ls(args: list[str], out: TextIO) -> int:
    show_all = "-a" in args or "-la" in args or "-al" in args
    paths = [a for a in args if not a.startswith("-")] or ["."]
    status = 0
    for path in paths:
        try:
            names = sorted(os.listdir(path)) if os.path.isdir(path) else [path]
        except OSError as exc:
            sys.stderr.write(f"ls: {path}: {exc.strerror}\n")
            status = 2
            continue
        for name in names:
            if show_all or not name.startswith("."):
                out.write(name + "\n")
    return status


def _files(name: str, args: list[str]) -> int:
    flags = {a for a in args if a.startswith("-")}
    paths = [a for a in args if not a.startswith("-")]
    for path in paths:
        try:
            if name == "mkdir":
                os.makedirs(path, exist_ok="-p" in flags) if "-p" in flags else os.mkdir(path)
            elif name == "touch":
                with open(path, "a"):
                    os.utime(path)
            elif os.path.isdir(path) and not os.path.islink(path):
                if not flags & {"-r", "-rf", "-fr", "-R"}:
                    raise IsADirectoryError(21, "Is a directory")
                import shutil

                shutil.rmtree(path)
            else:
                os.unlink(path)
        except OSError as exc:
            if name == "rm" and flags & {"-f", "-rf", "-fr"} and isinstance(exc, FileNotFoundError):
                continue
            sys.stderr.write(f"{name}: {path}: {exc.strerror}\n")
            return 1
    return 0


def _python_options(args: list[str]) -> tuple[bool, str, list[str]]:
    """(safe path, mode, the rest) of ``python`` arguments: the mode is ``-c``, ``-m`` or a
    script's path; options may be grouped (``-Ic``). ``-I`` (isolated) and ``-P`` (safe
    path) mean that neither the working directory nor the script's directory is put on
    ``sys.path``, as in CPython. The others change nothing here: the guest never imports
    :mod:`site` and reads no ``PYTHON*`` variables, so ``-S``, ``-s`` and ``-E`` always hold."""
    safe = False
    i = 0
    while i < len(args) and args[i].startswith("-") and args[i] != "-":
        word = args[i]
        i += 1
        if word.startswith(("-W", "-X")):
            i += 1 if word in ("-W", "-X") else 0  # their value is the next word, or attached
            continue
        letters = word[1:]
        cut = min((letters.index(m) for m in "cm" if m in letters), default=len(letters))
        safe = safe or "I" in letters[:cut] or "P" in letters[:cut]
        if cut < len(letters):
            attached = letters[cut + 1 :]
            return safe, f"-{letters[cut]}", ([attached] if attached else []) + args[i:]
    if i >= len(args):
        raise ShellError("python: an interactive interpreter is not available")
    return safe, args[i], args[i + 1 :]


def _python(args: list[str]) -> int:
    """``python [-flags] (-c CODE | -m MODULE | SCRIPT) [args]`` in this interpreter."""
    safe, mode, rest = _python_options(args)
    saved_argv, saved_path, saved_modules = sys.argv, sys.path[:], set(sys.modules)
    try:
        if mode == "-c":
            if not rest:
                raise ShellError("python: -c needs an argument")
            sys.argv = ["-c", *rest[1:]]
            if not safe:
                sys.path.insert(0, os.getcwd())
            code = compile(rest[0], "<string>", "exec")
            exec(code, {"__name__": "__main__", "__builtins__": builtins})  # noqa: S102
        elif mode == "-m":
            if not rest:
                raise ShellError("python: -m needs an argument")
            sys.argv = [rest[0], *rest[1:]]
            import runpy  # before the working directory is on sys.path

            if not safe:
                sys.path.insert(0, os.getcwd())
            runpy.run_module(rest[0], run_name="__main__", alter_sys=True)
        else:
            sys.argv = [mode, *rest]
            import runpy  # before the script's directory is on sys.path

            if not safe:
                sys.path.insert(0, os.path.dirname(os.path.abspath(mode)))

            runpy.run_path(mode, run_name="__main__")
        return 0
    except SystemExit as exc:
        if exc.code is None:
            return 0
        if isinstance(exc.code, int):
            return exc.code & 0xFF
        sys.stderr.write(f"{exc.code}\n")
        return 1
    except MemoryError:
        sys.stderr.write("MemoryError\n")
        return MEMORY_EXIT
    except ShellError:
        raise
    except BaseException as exc:  # the program's own failure: print it like python does
        _forget(saved_path, saved_modules)  # the traceback module comes from the stdlib
        import traceback

        traceback.print_exception(
            type(exc), exc, exc.__traceback__.tb_next if exc.__traceback__ else None
        )
        return 1
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.argv = saved_argv
        _forget(saved_path, saved_modules)


def _forget(path: list[str], modules: set[str]) -> None:
    """Put ``sys.path`` back and drop the modules a program imported."""
    sys.path[:] = path
    for name in set(sys.modules) - modules:
        del sys.modules[name]


# ---------------------------------------------------------------------- running


def run_simple(words: list[str], variables: dict[str, str]) -> int:
    assignments = []
    while words and "=" in words[0] and words[0].split("=", 1)[0].isidentifier():
        assignments.append(words.pop(0).split("=", 1))
    for name, value in assignments:
        os.environ[name] = value
    if not words:
        return 0
    name, args = words[0], words[1:]
    out = sys.stdout
    base = os.path.basename(name)
    if base in ("python", "python3") or base.startswith("python3."):
        return _python(args)
    if name in (":", "true"):
        return 0
    if name == "false":
        return 1
    if name == "exit":
        raise SystemExit(int(args[0]) & 0xFF if args else int(variables.get("?", "0")))
    if name == "echo":
        return _echo(args, out)
    if name == "cat":
        return _cat(args, out)
    if name == "pwd":
        out.write(os.getcwd() + "\n")
        return 0
    if name == "cd":
        os.chdir(args[0] if args else os.environ.get("HOME", "/"))
        return 0
    if name == "env":
        out.write("".join(f"{k}={v}\n" for k, v in os.environ.items()))
        return 0
    if name == "export":
        for arg in args:
            key, _, value = arg.partition("=")
            if value or "=" in arg:
                os.environ[key] = value
        return 0
    if name == "unset":
        for arg in args:
            os.environ.pop(arg, None)
        return 0
    if name in ("test", "["):
        if name == "[":
            if not args or args[-1] != "]":
                raise ShellError("[: missing ]")
            args = args[:-1]
        return _test(args)
    if name == "sleep":
        time.sleep(sum(float(a) for a in args))
        return 0
    if name == "ls":
        return _ls(args, out)
    if name in ("mkdir", "rm", "touch"):
        return _files(name, args)
    sys.stderr.write(
        f"{name}: command not found (the wasm sandbox runs python and a few shell builtins)\n"
    )
    return 127


def _open(redirect: str, target: str) -> TextIO:
    if redirect == "<":
        return open(target, encoding="utf-8", errors="replace")
    if target == "/dev/null":  # WASI has no /dev/null
        import io

        return io.StringIO()
    return open(target, "a" if redirect.endswith(">>") else "w", encoding="utf-8")


def run_command(tokens: list[str], variables: dict[str, str]) -> int:
    """One simple command with its redirections."""
    words: list[str] = []
    opened: list[TextIO] = []
    saved = sys.stdin, sys.stdout, sys.stderr
    try:
        i = 0
        while i < len(tokens):
            piece = tokens[i]
            i += 1
            if isinstance(piece, Word):
                words.append(piece)
            elif piece == "2>&1":
                setattr(sys, "stderr", sys.stdout)  # noqa: B010 - typeshed pins the type
            elif piece in (">&2", "1>&2"):
                setattr(sys, "stdout", sys.stderr)  # noqa: B010
            else:
                if i >= len(tokens) or not isinstance(tokens[i], Word):
                    raise ShellError(f"missing file name after {piece}")
                handle = _open(piece, tokens[i])
                i += 1
                opened.append(handle)
                name = "stdin" if piece == "<" else "stderr" if piece[0] == "2" else "stdout"
                setattr(sys, name, handle)
        return run_simple(words, variables)
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdin, sys.stdout, sys.stderr = saved
        for handle in opened:
            handle.close()


def run_line(text: str) -> int:
    variables = {"?": "0"}
    tokens = tokenize(text, variables)
    status = 0
    skip = False
    command: list[str] = []
    for piece in [*tokens, ";"]:
        if isinstance(piece, Word) or piece in REDIRECTS:
            command.append(piece)
            continue
        if piece in ("|", "&"):
            raise ShellError(f"'{piece}' is not supported (no pipes or background jobs)")
        if command and not skip:
            try:
                status = run_command(command, variables)
            except ShellError:
                raise
            except MemoryError:
                sys.stderr.write("MemoryError\n")
                status = MEMORY_EXIT
            except (OSError, ValueError) as exc:
                sys.stderr.write(f"{command[0]}: {exc}\n")
                status = 1
            variables["?"] = str(status)
        command = []
        if piece == "&&":
            skip = status != 0
        elif piece == "||":
            skip = status == 0
        else:
            skip = False
    return status


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        sys.stderr.write("usage: wasm_shell COMMAND\n")
        return 2
    # The guest runs with -I, which ignores PYTHON* variables: this one matters (the
    # sandbox sets it), or every python command would write bytecode into the workspace.
    sys.dont_write_bytecode = bool(os.environ.get("PYTHONDONTWRITEBYTECODE"))
    try:
        if os.environ.get("PWD"):
            os.chdir(os.environ["PWD"])  # WASI starts in "/"; the host passes the workspace
        return run_line(argv[1])
    except ShellError as exc:
        sys.stderr.write(f"wasm shell: {exc}\n")
        return 2
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else 1


if __name__ == "__main__":
    code = min(main(sys.argv), MAX_EXIT)
    sys.stdout.flush()
    sys.stderr.flush()
    sys.exit(code)
