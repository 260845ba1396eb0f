"""Turning untrusted bytes into safe, bounded text for terminals, logs and prompts."""

from __future__ import annotations

import re

# CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/SOS/PM/APC strings, other escapes
# (ESC, optional intermediates, one final byte: ESC 7, ESC ( B, ESC c ...), and C1 CSI.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?"
    r"|\x1b[PX^_][^\x1b]*(?:\x1b\\)?"
    r"|\x1b[ -/]*[0-~]"
    r"|\x9b[0-?]*[ -/]*[@-~]"
)
# C0 controls except tab and newline, DEL, C1 controls, and bidi overrides.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
# For :func:`visible`: the same, invisible marks and separators that reorder or hide
# text (zero-width, LRM/RLM/ALM, line/paragraph separators, a BOM), and lone surrogates
# (the undecodable bytes of a file name).
_SHOWN = re.compile(
    r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff"
    r"\ud800-\udfff]"
)


def sanitize(text: str) -> str:
    """Strip terminal escape sequences and control characters; keep newlines and tabs."""
    text = text.replace("\r\n", "\n")
    text = _ANSI.sub("", text)
    return _CONTROL.sub("", text)


def visible(text: str) -> str:
    """Show every control character (ESC, CR, NUL, C1, bidi overrides, a lone surrogate
    from an undecodable file name) as an escape such as ``\\x1b``, keep newlines and tabs.

    For content a person reviews (a diff): stripping would hide what is really there.
    """
    return _SHOWN.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if 0xDC80 <= code <= 0xDCFF:  # surrogateescape: the undecodable byte itself
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def decode(data: bytes) -> str:
    """Decode bytes as UTF-8, replacing invalid sequences, then sanitize."""
    return sanitize(data.decode("utf-8", errors="replace"))


def elide(text: str, limit: int) -> str:
    """Keep the head and tail of ``text`` within ``limit`` characters, marking the cut."""
    if len(text) <= limit:
        return text
    keep = limit
    while True:  # the count in the marker must include the chars the marker displaces
        marker = f"\n[... {len(text) - keep} chars elided ...]\n"
        fitted = max(limit - len(marker), 0)
        if fitted == keep:
            break
        keep = fitted
    if len(marker) > limit:  # no room for a marker
        return text[:limit]
    head = keep // 2
    tail = keep - head
    return text[:head] + marker + (text[-tail:] if tail else "")


def one_line(text: str, limit: int = 120) -> str:
    """A sanitized single-line preview for progress displays."""
    flat = " ".join(sanitize(text).split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"
