"""The edit-block parser: whole files in fences, SEARCH/REPLACE blocks, strict errors."""

from __future__ import annotations

import pytest

from zerog import blocks
from zerog.blocks import BlockError, Edit

SOURCE = "def add(a, b):\n    return a - b\n\n\ndef sub(a, b):\n    return a - b\n"


def sr(search: str, replace: str) -> str:
    return f"<<<<<<< SEARCH\n{search}=======\n{replace}>>>>>>> REPLACE\n"


def test_whole_file_from_a_fenced_block_with_prose_around() -> None:
    answer = "Here is the fix:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    assert blocks.whole_file(answer, "calc.py") == "def add(a, b):\n    return a + b\n"


def test_whole_file_takes_the_longest_of_several_blocks() -> None:
    answer = "```python\nx = 1\ny = 2\n```\nUsage:\n```python\nprint(x)\n```\n"
    assert blocks.whole_file(answer, "m.py") == "x = 1\ny = 2\n"


def test_whole_file_with_crlf_answer_is_normalized() -> None:
    answer = "```python\r\nx = 1\r\ny = 2\r\n```\r\n"
    assert blocks.whole_file(answer, "m.py") == "x = 1\ny = 2\n"


def test_unterminated_block_is_an_error_that_says_so() -> None:
    with pytest.raises(BlockError, match=r"starts at line 2 of your answer is not closed"):
        blocks.whole_file("Sure.\n```python\ndef add(a, b):\n    return a +", "calc.py")


def test_no_block_is_an_error_quoting_the_answer() -> None:
    with pytest.raises(BlockError, match=r"no fenced block with the content of calc.py.*I cannot"):
        blocks.whole_file("I cannot do that.", "calc.py")


def test_empty_block_is_an_error() -> None:
    with pytest.raises(BlockError, match="is empty"):
        blocks.whole_file("```python\n\n```\n", "calc.py")


def test_a_markdown_file_keeps_its_own_fences() -> None:
    readme = "# Title\n\n```python\nprint(1)\n```\n\nMore text.\n"
    answer = f"```markdown\n{readme}```\n"
    assert blocks.whole_file(answer, "README.md") == readme


def test_a_longer_fence_holds_inner_fences_in_any_file() -> None:
    content = 'DOC = """\n```\nexample\n```\n"""\n'
    fence = blocks.fence_for(content)
    assert fence == "````"
    answer = f"{fence}python\n{content}{fence}\n"
    assert blocks.whole_file(answer, "doc.py") == content


def test_fence_for_plain_content_is_three_backticks() -> None:
    assert blocks.fence_for("x = 1\n") == "```"


def test_search_replace_blocks_parse_in_order() -> None:
    answer = "```python\n" + sr(
        "    return a - b\n\n\ndef sub\n", "    return a + b\n\n\ndef sub\n"
    )
    answer += "```\n" + sr("x\n", "")
    assert blocks.edit_blocks(answer, "calc.py") == (
        Edit("    return a - b\n\n\ndef sub\n", "    return a + b\n\n\ndef sub\n"),
        Edit("x\n", ""),
    )


def test_search_replace_with_crlf_answer() -> None:
    answer = sr("a\n", "b\n").replace("\n", "\r\n")
    assert blocks.edit_blocks(answer, "f.txt") == (Edit("a\n", "b\n"),)


def test_replace_text_may_hold_fences() -> None:
    answer = sr("old\n", "```python\nprint(1)\n```\n")
    assert blocks.edit_blocks(answer, "README.md") == (Edit("old\n", "```python\nprint(1)\n```\n"),)


@pytest.mark.parametrize(
    ("answer", "problem"),
    [
        ("<<<<<<< SEARCH\nold\n=======\nnew\n", "not closed .was the answer cut off"),
        ("<<<<<<< SEARCH\nold\n>>>>>>> REPLACE\n", "has no ======= line before line 3"),
        ("<<<<<<< SEARCH\nold\n=======\nnew\n<<<<<<< SEARCH\n", "not closed with >>>>>>> REPLACE"),
        ("<<<<<<< SEARCH\n=======\nnew\n>>>>>>> REPLACE\n", "SEARCH text .* is empty"),
        ("=======\nnew\n>>>>>>> REPLACE\n", r"line 1 of your answer \('======='\) is outside"),
        ("I would change the return.", "no SEARCH/REPLACE block for calc.py"),
    ],
)
def test_malformed_search_replace_blocks(answer: str, problem: str) -> None:
    with pytest.raises(BlockError, match=problem):
        blocks.edit_blocks(answer, "calc.py")


def test_apply_replaces_each_search_once_in_turn() -> None:
    edits = (Edit("def add(a, b):\n    return a - b\n", "def add(a, b):\n    return a + b\n"),)
    assert blocks.apply(SOURCE, edits, "calc.py") == SOURCE.replace("a - b", "a + b", 1)


def test_apply_sees_the_earlier_edits() -> None:
    edits = (Edit("return a - b\n\n\ndef sub", "return a + b\n\n\ndef sub"), Edit("a + b", "b + a"))
    assert "return b + a" in blocks.apply(SOURCE, edits, "calc.py")


def test_search_not_found_quotes_it() -> None:
    with pytest.raises(BlockError, match=r"block 1 \('return a \* b'\) does not occur in calc.py"):
        blocks.apply(SOURCE, (Edit("return a * b\n", "x\n"),), "calc.py")


def test_ambiguous_search_says_how_often() -> None:
    with pytest.raises(BlockError, match=r"occurs 2 times in calc\.py: quote more lines"):
        blocks.apply(SOURCE, (Edit("    return a - b\n", "    return a + b\n"),), "calc.py")


def test_crlf_puts_windows_line_ends_back() -> None:
    assert blocks.crlf("a\nb\n") == "a\r\nb\r\n"
    assert blocks.crlf("a\r\nb\n") == "a\r\nb\r\n"


def test_has_edit_blocks() -> None:
    assert blocks.has_edit_blocks(sr("a\n", "b\n"))
    assert not blocks.has_edit_blocks("```python\nx = 1\n```\n")
