"""Tests for zerog.text: sanitizing, decoding and bounding untrusted text."""

from __future__ import annotations

import re

import pytest

from zerog.text import decode, elide, one_line, sanitize

ESC = "\x1b"
BEL = "\x07"
ST = "\x1b\\"


# ---------------------------------------------------------------- sanitize


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        (f"{ESC}[31mred{ESC}[0m plain", "red plain"),
        (f"{ESC}[1;38;5;196mbold{ESC}[m", "bold"),
        (f"{ESC}[2J{ESC}[Hcleared", "cleared"),
        (f"{ESC}[?25lhidden cursor{ESC}[?25h", "hidden cursor"),
        (f"a{ESC}[10Ab", "ab"),
        # C1 CSI (single byte 0x9b) is a CSI as well.
        ("x\x9b31my", "xy"),
    ],
)
def test_sanitize_strips_csi_sequences(raw: str, clean: str) -> None:
    assert sanitize(raw) == clean


@pytest.mark.parametrize(
    ("raw", "clean"),
    [
        # Window title, terminated by BEL and by ST.
        (f"{ESC}]0;evil title{BEL}after", "after"),
        (f"{ESC}]2;evil title{ST}after", "after"),
        # OSC 52 writes to the clipboard: the payload must disappear entirely.
        (f"before{ESC}]52;c;cm0gLXJmIH4K{BEL}after", "beforeafter"),
        (f"before{ESC}]52;c;cm0gLXJmIH4K{ST}after", "beforeafter"),
        # Hyperlinks (OSC 8).
        (f"{ESC}]8;;http://evil.example{ST}link{ESC}]8;;{ST}", "link"),
        # Unterminated OSC swallows the rest rather than leaking the payload.
        (f"ok{ESC}]52;c;payload", "ok"),
    ],
)
def test_sanitize_strips_osc_sequences(raw: str, clean: str) -> None:
    assert sanitize(raw) == clean


def test_sanitize_strips_dcs_and_two_byte_escapes() -> None:
    assert sanitize(f"a{ESC}Pq#0;payload{ST}b") == "ab"
    assert sanitize(f"a{ESC}_apc payload{ST}b") == "ab"
    # Save/restore cursor, reverse index, keypad modes, full reset.
    assert sanitize(f"a{ESC}7b{ESC}8c{ESC}Md{ESC}={ESC}>e{ESC}cf") == "abcdef"
    # Character set designation, as emitted by `tput sgr0`: ESC ( B.
    assert sanitize(f"{ESC}[1mbold{ESC}(B{ESC}[m rest") == "bold rest"
    # A lone trailing ESC or an incomplete CSI leaves no ESC behind.
    assert sanitize(f"end{ESC}") == "end"
    assert ESC not in sanitize(f"x{ESC}[")


def test_sanitize_strips_c0_c1_and_del_controls() -> None:
    c0 = "".join(chr(c) for c in range(0x20) if chr(c) not in "\t\n")
    c1 = "".join(chr(c) for c in range(0x80, 0xA0))
    raw = f"a{c0}b{chr(0x7F)}c{c1}d"
    assert sanitize(raw) == "abcd"


def test_sanitize_result_never_contains_control_characters() -> None:
    raw = "".join(chr(c) for c in range(0xA0)) + f"{ESC}[{ESC}]{ESC}"
    out = sanitize(raw)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]", out)
    assert "\t" in out
    assert "\n" in out


@pytest.mark.parametrize("char", ["\u202a", "\u202b", "\u202c", "\u202d", "\u202e"])
def test_sanitize_strips_bidi_overrides(char: str) -> None:
    assert sanitize(f"user{char}txt.exe") == "usertxt.exe"


@pytest.mark.parametrize("char", ["\u2066", "\u2067", "\u2068", "\u2069"])
def test_sanitize_strips_bidi_isolates(char: str) -> None:
    assert sanitize(f"a{char}b") == "ab"


def test_sanitize_keeps_newlines_tabs_and_unicode() -> None:
    text = "line one\n\tindented — café ✓ 日本語\nlast"
    assert sanitize(text) == text


def test_sanitize_normalizes_crlf_and_drops_bare_cr() -> None:
    assert sanitize("a\r\nb\r\n") == "a\nb\n"
    # A bare carriage return could overwrite a line on a terminal.
    assert sanitize("safe\rEVIL") == "safeEVIL"


def test_sanitize_cannot_reassemble_an_escape_from_pieces() -> None:
    # Removing a control between ESC and '[' must not leave a working CSI behind.
    out = sanitize(f"{ESC}\x00[31mred")
    assert ESC not in out
    assert out.endswith("red")


def test_sanitize_is_idempotent() -> None:
    raw = f"{ESC}[31mA{ESC}]0;t{BEL}\x00B\u202eC\r\n"
    once = sanitize(raw)
    assert sanitize(once) == once == "ABC\n"


# ---------------------------------------------------------------- decode


def test_decode_replaces_invalid_utf8() -> None:
    out = decode(b"ok \xff\xfe bad \xc3( end")
    assert out.startswith("ok ")
    assert out.endswith(" end")
    assert "\ufffd" in out
    assert out.count("\ufffd") == 3


def test_decode_keeps_valid_utf8() -> None:
    assert decode("café ✓\n".encode()) == "café ✓\n"


def test_decode_sanitizes() -> None:
    assert decode(b"\x1b[32mgreen\x1b[0m\x07\r\n") == "green\n"
    # A raw C1 byte is invalid UTF-8 and becomes a replacement character, not a CSI.
    assert "\x9b" not in decode(b"\x9b31m")
    # An encoded C1 control is valid UTF-8 and is stripped.
    assert decode("a\u009b1;2Hb".encode()) == "ab"


# ---------------------------------------------------------------- elide


def test_elide_leaves_short_text_alone() -> None:
    assert elide("short", 10) == "short"
    assert elide("x" * 100, 100) == "x" * 100
    assert elide("", 0) == ""


def test_elide_keeps_head_and_tail_and_respects_limit() -> None:
    text = "HEAD" + "m" * 1000 + "TAIL"
    out = elide(text, 100)
    assert len(out) == 100
    assert out.startswith("HEAD")
    assert out.endswith("TAIL")
    assert "elided" in out
    assert out != text


@pytest.mark.parametrize("size", [101, 150, 999, 1000, 1001, 12_345, 100_000])
@pytest.mark.parametrize("limit", [60, 100, 300, 2_000])
def test_elide_reports_the_exact_number_of_elided_chars(size: int, limit: int) -> None:
    text = "".join(chr(ord("a") + i % 26) for i in range(size))
    out = elide(text, limit)
    if size <= limit:
        assert out == text
        return
    assert len(out) <= limit
    match = re.search(r"\n\[\.\.\. (\d+) chars elided \.\.\.\]\n", out)
    assert match is not None
    head, tail = out[: match.start()], out[match.end() :]
    assert text.startswith(head)
    assert text.endswith(tail)
    # What is shown plus what is reported as elided accounts for the whole text.
    assert len(head) + len(tail) + int(match.group(1)) == size
    assert abs(len(head) - len(tail)) <= 1


@pytest.mark.parametrize("limit", [0, 1, 5, 20])
def test_elide_never_exceeds_a_tiny_limit(limit: int) -> None:
    out = elide("z" * 500, limit)
    assert len(out) <= limit


# ---------------------------------------------------------------- one_line


def test_one_line_flattens_whitespace() -> None:
    assert one_line("  a\n\n b\t\tc  \r\n") == "a b c"


def test_one_line_sanitizes() -> None:
    assert one_line(f"{ESC}[31mred{ESC}[0m\n{ESC}]0;t{BEL}x\u202e") == "red x"


def test_one_line_truncates_with_ellipsis_at_limit() -> None:
    out = one_line("word " * 100, 20)
    assert len(out) == 20
    assert out.endswith("…")
    assert out.startswith("word word")
    assert one_line("x" * 120) == "x" * 120
    assert one_line("x" * 121) == "x" * 119 + "…"


def test_one_line_short_text_unchanged() -> None:
    assert one_line("hello world", 11) == "hello world"
