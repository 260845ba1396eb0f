"""Host paths as the model and API clients see them (zerog.hostpaths)."""

from __future__ import annotations

from pathlib import Path

from pydantic import JsonValue

from zerog.hostpaths import PathMask


def test_paths_under_the_root_are_relative_and_named_places_are_named() -> None:
    mask = PathMask(Path("/srv/zerog/root"), {"/home/ann": "~", "/var/lib/zerog": "<store>"})
    text = (
        'File "/srv/zerog/root/demo/app.py", line 3\n'
        "workspaces /srv/zerog/root; store /var/lib/zerog/runs.db; home /home/ann/.cache\n"
        "scripted:/srv/zerog/root/script.jsonl"
    )
    assert mask.text(text) == (
        'File "demo/app.py", line 3\n'
        "workspaces .; store <store>/runs.db; home ~/.cache\n"
        "scripted:script.jsonl"
    )


def test_only_whole_path_components_are_rewritten() -> None:
    mask = PathMask(Path("/srv/root"), {"/home/ann": "~"})
    text = "/srv/rootfs/x /x/srv/root/y /home/anna /home/ann-old relative/home/ann"
    assert mask.text(text) == text


def test_the_longest_prefix_wins() -> None:
    mask = PathMask(Path("/home/ann/projects"), {"/home/ann": "~"})
    assert mask.text("/home/ann/projects/ws/x.py and /home/ann/.ssh") == "ws/x.py and ~/.ssh"


def test_the_file_system_root_and_empty_names_hide_nothing() -> None:
    mask = PathMask(Path("/"), {"": "~", "/": "<store>"})
    assert mask.text("/etc/passwd /usr/bin") == "/etc/passwd /usr/bin"


def test_json_values_are_rewritten_everywhere() -> None:
    mask = PathMask(Path("/r"), {})
    value: JsonValue = {"/r/k": ["/r/a", {"b": "/r/b"}, 3, None, True]}
    assert mask.json(value) == {"k": ["a", {"b": "b"}, 3, None, True]}
