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


def test_unknown_commands_and_unsupported_syntax(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_line("gcc -v") == 127
    assert "command not found" in capsys.readouterr().err
    assert main(["shell", "echo a | cat"]) == 2
    assert "not supported" in capsys.readouterr().err
    assert main(["shell"]) == 2
