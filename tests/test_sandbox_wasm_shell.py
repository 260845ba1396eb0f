"""Tests for zerog.sandbox.wasm_shell, the guest's small shell, run here on the host's
CPython (the same source runs in the guest; the WASM tests cover it there)."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerog.sandbox.wasm_shell import MEMORY_EXIT, ShellError, Word, main, run_line, tokenize


@pytest.fixture(autouse=True)
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NAME", "world")


def words(text: str) -> list[str]:
    return [str(t) for t in tokenize(text, {"?": "3"})]


def test_tokenize_quotes_variables_and_operators() -> None:
    assert words("echo 'a b' \"c $NAME\" d\\ e $? ${NAME}x") == [
        "echo",
        "a b",
        "c world",
        "d e",
        "3",
        "worldx",
    ]
    assert words("a&&b||c;d\ne >> f 2>&1 # comment") == [
        "a", "&&", "b", "||", "c", ";", "d", "\n", "e", ">>", "f", "2>&1",
    ]  # fmt: skip
    tokens = tokenize("echo ';' ;", {})
    assert isinstance(tokens[1], Word)
    assert not isinstance(tokens[2], Word)


@pytest.mark.parametrize("bad", ["echo 'open", 'echo "open', "echo $(id)", "echo `id`"])
def test_tokenize_refuses_what_it_cannot_do(bad: str) -> None:
    with pytest.raises(ShellError):
        tokenize(bad, {})


def test_lists_and_status(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_line("false && echo no || echo yes; true && echo also") == 0
    assert capsys.readouterr().out == "yes\nalso\n"
    assert run_line("false") == 1
    assert run_line("exit 7") == 7 if False else True  # exit raises SystemExit
    with pytest.raises(SystemExit):
        run_line("exit 7")


def test_redirections_and_files(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_line("echo one > f.txt; echo two >> f.txt; cat f.txt") == 0
    assert capsys.readouterr().out == "one\ntwo\n"
    assert run_line("mkdir -p a/b && touch a/b/c && ls a/b && rm -rf a && test ! -d a") == 0
    assert capsys.readouterr().out == "c\n"
    assert run_line("echo err >&2 2> /dev/null") == 0
    assert run_line("X=1 env > e.txt") == 0
    assert "X=1" in (tmp_path / "e.txt").read_text()


def test_python_runs_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "mod_for_shell_test.py").write_text("VALUE = 5\n")
    assert (
        run_line("python3 -c 'import mod_for_shell_test as m, sys; print(m.VALUE, sys.argv)' x")
        == 0
    )
    assert capsys.readouterr().out == "5 ['-c', 'x']\n"
    assert run_line("python -c 'raise SystemExit(4)'") == 4
    assert run_line("python3 -c 'raise ValueError(9)'") == 1
    assert "ValueError: 9" in capsys.readouterr().err
    assert run_line("python3 -c 'raise MemoryError'") == MEMORY_EXIT
    (tmp_path / "script.py").write_text("import sys\nprint('script', sys.argv[1:])\n")
    assert run_line("python3 script.py a b") == 0
    assert capsys.readouterr().out == "script ['a', 'b']\n"


def test_isolated_python_keeps_the_workspace_off_the_path(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # As in CPython: -I (or -P) puts neither the working directory nor the script's
    # directory on sys.path, so a workspace hashlib.py is not the standard library's.
    (tmp_path / "hashlib.py").write_text("import sys\nsys.exit(0)\n")
    (tmp_path / "shadow_for_shell_test.py").write_text("VALUE = 5\n")
    probe = "import hashlib; print(hashlib.sha256(b'').hexdigest()[:8])"
    for flags in ("-I", "-I -S", "-IS", "-P", "-E -P -s"):
        assert run_line(f'python3 {flags} -c "{probe}"') == 0, flags
        assert capsys.readouterr().out == "e3b0c442\n", flags
        assert run_line(f"python3 {flags} -c 'import shadow_for_shell_test'") == 1
        assert "ModuleNotFoundError" in capsys.readouterr().err
    assert run_line("python3 -Ic 'import sys; print(sys.argv)' x") == 0
    assert capsys.readouterr().out == "['-c', 'x']\n"
    (tmp_path / "run_me.py").write_text("import shadow_for_shell_test\n")
    assert run_line("python3 -I run_me.py") == 1
    assert run_line("python3 run_me.py") == 0  # not isolated: the script's directory first
    assert run_line("python3 -c 'import shadow_for_shell_test'") == 0  # the working directory


def test_unknown_commands_and_unsupported_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_line("gcc -v") == 127
    assert "command not found" in capsys.readouterr().err
    assert main(["shell", "echo a | cat"]) == 2
    assert "not supported" in capsys.readouterr().err
    assert main(["shell"]) == 2
