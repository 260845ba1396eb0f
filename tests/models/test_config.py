"""The config file: keys stay secret, bad files fail with a clear message."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerog.config import Config, load_config
from zerog.errors import ConfigError
from zerog.models.pricing import Price

KEY = "sk-test0123456789abcdefghij"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_missing_default_file_is_an_empty_config(tmp_path: Path) -> None:
    config = load_config(None, {"HOME": str(tmp_path)})
    assert config == Config()


def test_default_path_follows_xdg(tmp_path: Path) -> None:
    (tmp_path / "zerog").mkdir()
    write(tmp_path / "zerog" / "config.toml", "[http]\ntimeout = 5\n")
    config = load_config(None, {"XDG_CONFIG_HOME": str(tmp_path), "HOME": "/nonexistent"})
    assert config.http.timeout == 5
    assert config.source == tmp_path / "zerog" / "config.toml"


def test_a_named_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "nope.toml", {})
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(None, {"ZEROG_CONFIG": str(tmp_path / "nope.toml")})


def test_full_file(tmp_path: Path) -> None:
    path = write(
        tmp_path / "c.toml",
        f"""
[keys]
openai = "{KEY}"

[prices."openai:my-model"]
input = 1.5
output = 2.5

[http]
max_retries = 1

[local]
model_dir = "{tmp_path}/models"
n_ctx = 4096
""",
    )
    config = load_config(path, {})
    assert config.keys.openai is not None
    assert config.keys.openai.get_secret_value() == KEY
    assert KEY not in repr(config)
    assert KEY not in str(config.model_dump())
    assert config.prices["openai:my-model"] == Price(input=1.5, output=2.5)
    assert config.http.max_retries == 1
    assert config.local.model_dir == tmp_path / "models"
    assert config.local.n_ctx == 4096


def test_keys_in_a_file_others_can_read_are_refused(tmp_path: Path) -> None:
    path = write(tmp_path / "c.toml", f'[keys]\nanthropic = "{KEY}"\n', mode=0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        load_config(path, {})
    # Without keys, a readable file is fine.
    write(path, "[http]\ntimeout = 3\n", mode=0o644)
    assert load_config(path, {}).http.timeout == 3


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (f'[keys]\nopenai = "{KEY}', "not valid TOML"),
        (f'[keys]\nopenai = "{KEY}"\nunknown = 1\n', "keys.unknown"),
        (f'[http]\ntimeout = "{KEY}"\n', "http.timeout"),
        ('[prices."x:y"]\ninput = -1\noutput = 1\n', "input"),
    ],
)
def test_bad_files_name_the_problem_never_the_value(
    tmp_path: Path, text: str, message: str
) -> None:
    path = write(tmp_path / "c.toml", text)
    with pytest.raises(ConfigError, match=message) as caught:
        load_config(path, {})
    assert KEY not in str(caught.value)
