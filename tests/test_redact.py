"""Tests for zerog.redact: secrets never reach a prompt, a sandbox, a trace or a log."""

from __future__ import annotations

from pathlib import Path

import pytest

from zerog.errors import ConfigError
from zerog.redact import (
    REDACTED,
    Redactor,
    is_secret_file,
    is_secret_name,
    redact_env,
    redact_text,
    sandbox_env,
)
from zerog.types import CheckResult, FailedTest, Observation, Status, Verdict

# ---------------------------------------------------------------- names and files


@pytest.mark.parametrize(
    "name",
    [
        "OPENAI_API_KEY",
        "ANTHROPIC_API_KEY",
        "GITHUB_TOKEN",
        "AWS_SECRET_ACCESS_KEY",
        "DB_PASSWORD",
        "PGPASSFILE",
        "MYSQL_PWD",
        "GOOGLE_APPLICATION_CREDENTIALS",
        "HTTP_AUTHORIZATION",
        "SSH_PRIVATE",
        "SESSION_ID",
        "COOKIE_JAR",
        "REQUEST_SIGNATURE",
        "SENTRY_DSN",
        "my_api_key",
        "Token",
    ],
)
def test_secret_names_are_detected(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", ["PATH", "HOME", "LANG", "LC_ALL", "TERM", "PYTHONPATH", "CI"])
def test_ordinary_names_are_not_secret(name: str) -> None:
    assert not is_secret_name(name)


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        ".env.local",
        "config/.env.production",
        "certs/server.pem",
        "tls.key",
        "home/.ssh/id_rsa",
        "id_rsa.pub",
        "id_ed25519",
        ".netrc",
        ".pgpass",
        "credentials",
        "aws/credentials.json",
        ".npmrc",
        ".pypirc",
    ],
)
def test_secret_files_are_detected(path: str) -> None:
    assert is_secret_file(path)


@pytest.mark.parametrize(
    "path", ["app.py", "README.md", "environment.yml", "keys.py", "src/envelope.txt"]
)
def test_ordinary_files_are_not_secret(path: str) -> None:
    assert not is_secret_file(path)


# ---------------------------------------------------------------- values in text

OPENAI = "sk-" + "A1b2C3d4E5f6G7h8I9j0KLmn"
ANTHROPIC = "sk-ant-" + "api03-abcdefghijklmnop_QRST"
GITHUB = "ghp_" + "abcdefghijklmnopqrstuvwxyz0123456789"
GITHUB_PAT = "github_pat_" + "11ABCDEFG0123456789_abcdefghijklmnop"
AWS = "AKIA" + "IOSFODNN7EXAMPLE"
SLACK = "xoxb-" + "123456789012-abcdefghij"
JWT = (
    "eyJhbGciOiJIUzI1NiJ9"
    + ".eyJzdWIiOiIxMjM0NTY3ODkwIn0"
    + ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U"
)


@pytest.mark.parametrize("secret", [OPENAI, ANTHROPIC, GITHUB, GITHUB_PAT, AWS, SLACK, JWT])
def test_token_values_are_redacted_in_text(secret: str) -> None:
    text = f"export X={secret}\nnext line"
    out = redact_text(text)
    assert secret not in out
    assert secret[8:] not in out
    assert f"export X={REDACTED}" in out
    assert out.endswith("\nnext line")


def test_several_secrets_in_one_text() -> None:
    text = f"a {OPENAI} b {GITHUB} c {AWS} d"
    assert redact_text(text) == f"a {REDACTED} b {REDACTED} c {REDACTED} d"


@pytest.mark.parametrize(
    "kind", ["RSA PRIVATE KEY", "OPENSSH PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY"]
)
def test_pem_private_keys_are_redacted(kind: str) -> None:
    body = "MIIEowIBAAKCAQEAvMX4q1k9w3\nZZZsecretmaterialZZZ\n"
    pem = f"-----BEGIN {kind}-----\n{body}-----END {kind}-----"
    out = redact_text(f"key follows:\n{pem}\ntrailer")
    assert "secretmaterial" not in out
    assert "BEGIN" not in out
    assert out == f"key follows:\n{REDACTED}\ntrailer"


def test_truncated_pem_private_key_is_redacted_to_the_end() -> None:
    out = redact_text("-----BEGIN RSA PRIVATE KEY-----\nMIIEsecret\nmore secret")
    assert out == REDACTED


def test_public_material_is_not_redacted() -> None:
    cert = "-----BEGIN CERTIFICATE-----\nMIIBcert\n-----END CERTIFICATE-----"
    assert redact_text(cert) == cert


@pytest.mark.parametrize(
    ("url", "rest"),
    [
        ("postgres://admin:hunter2@db.internal:5432/app", "db.internal:5432/app"),
        ("https://user:p4ss-w0rd@example.com/path", "example.com/path"),
        ("redis+tls://default:s3cr3t@cache:6380", "cache:6380"),
    ],
)
def test_urls_with_credentials_are_redacted(url: str, rest: str) -> None:
    out = redact_text(f"connecting to {url} now")
    assert out == f"connecting to {REDACTED}{rest} now"
    assert "hunter2" not in out
    assert "p4ss-w0rd" not in out
    assert "s3cr3t" not in out


def test_ordinary_text_and_urls_are_untouched() -> None:
    text = (
        "see https://example.com/docs?a=b and git@github.com:org/repo.git; "
        "sk-short ghp_short AKIA123 user@example.com"
    )
    assert redact_text(text) == text


# ---------------------------------------------------------------- redact_env


def test_redact_env_returns_only_allow_listed_names_that_are_set() -> None:
    environ = {"LANG": "C", "EDITOR": "vi", "UNLISTED": "nope"}
    shown = redact_env(environ, ["LANG", "EDITOR", "NOT_SET"])
    assert shown == {"LANG": "C", "EDITOR": "vi"}


def test_redact_env_redacts_secret_named_values() -> None:
    environ = {"API_KEY": "plain-looking", "DB_PASSWORD": "hunter2", "LANG": "C"}
    shown = redact_env(environ, ["API_KEY", "DB_PASSWORD", "LANG"])
    assert shown == {"API_KEY": REDACTED, "DB_PASSWORD": REDACTED, "LANG": "C"}


def test_redact_env_redacts_secret_values_under_innocent_names() -> None:
    environ = {"DATABASE_URL": "postgres://u:pw@h/db", "NOTE": f"use {GITHUB}"}
    shown = redact_env(environ, ["DATABASE_URL", "NOTE"])
    assert shown == {"DATABASE_URL": f"{REDACTED}h/db", "NOTE": f"use {REDACTED}"}


def test_redact_env_with_empty_allow_list_is_empty() -> None:
    assert redact_env({"LANG": "C"}, []) == {}


# ---------------------------------------------------------------- sandbox_env


def test_sandbox_env_is_minimal_and_leaks_nothing() -> None:
    environ = {
        "PATH": "/opt/bin:/usr/bin",
        "HOME": "/root",
        "ZEROG_CANARY": "canary-value",
        "OPENAI_API_KEY": OPENAI,
        "LD_PRELOAD": "/tmp/evil.so",
    }
    env = sandbox_env(environ, [], home="/work/ws")
    assert env == {
        "PATH": "/usr/local/bin:/usr/bin:/bin",
        "HOME": "/work/ws",
        "LANG": "C.UTF-8",
        "LC_ALL": "C.UTF-8",
        "TERM": "dumb",
        "NO_COLOR": "1",
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    assert "ZEROG_CANARY" not in env
    assert "canary-value" not in env.values()
    assert OPENAI not in env.values()


def test_sandbox_env_has_a_default_path() -> None:
    env = sandbox_env({}, [], home="/h")
    assert env["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert env["HOME"] == "/h"


def test_sandbox_env_includes_allow_listed_names_that_are_set() -> None:
    environ = {"PATH": "/bin", "EDITOR": "vi", "ZEROG_CANARY": "x", "TZ": "UTC"}
    env = sandbox_env(environ, ["EDITOR", "TZ", "UNSET_NAME"], home="/h")
    assert env["EDITOR"] == "vi"
    assert env["TZ"] == "UTC"
    assert "UNSET_NAME" not in env
    assert "ZEROG_CANARY" not in env


@pytest.mark.parametrize("name", ["OPENAI_API_KEY", "GITHUB_TOKEN", "DB_PASSWORD", "my_secret"])
def test_sandbox_env_refuses_secret_looking_names(name: str) -> None:
    with pytest.raises(ConfigError, match=name):
        sandbox_env({name: "value"}, ["EDITOR", name], home="/h")


def test_sandbox_env_refuses_secret_names_even_when_unset() -> None:
    with pytest.raises(ConfigError, match="API_KEY"):
        sandbox_env({}, ["API_KEY"], home="/h")


def test_sandbox_env_does_not_mutate_the_environ() -> None:
    environ = {"PATH": "/bin", "EDITOR": "vi"}
    before = dict(environ)
    env = sandbox_env(environ, ["EDITOR"], home="/h")
    env["EDITOR"] = "changed"
    assert environ == before


def test_url_password_with_at_sign_is_fully_redacted() -> None:
    from zerog.redact import redact_text

    out = redact_text("clone https://u:p@ss@host/repo.git now")
    assert "ss@host" not in out
    assert "p@ss" not in out
    assert out.endswith("now")


def test_sandbox_env_path_is_fixed_for_isolated_backends_and_the_hosts_for_local() -> None:
    environ = {"PATH": "/home/me/.pyenv/shims:/usr/bin"}
    assert sandbox_env(environ, [], home="/h")["PATH"] == "/usr/local/bin:/usr/bin:/bin"
    assert sandbox_env(environ, [], home="/h", host_path=True)["PATH"] == environ["PATH"]
    toolchain = sandbox_env(environ, [], home="/h", extra_path=["/opt/tool/bin"])
    assert toolchain["PATH"] == "/opt/tool/bin:/usr/local/bin:/usr/bin:/bin"


@pytest.mark.parametrize("entry", ["relative/bin", "/a:/b", ""])
def test_sandbox_env_refuses_a_bad_extra_path_entry(entry: str) -> None:
    with pytest.raises(ConfigError, match="PATH entry"):
        sandbox_env({}, [], home="/h", extra_path=[entry])


# ---------------------------------------------------------------- labelled secrets


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("PASSWORD=hunter2", "PASSWORD=[redacted]"),
        ("export DB_PASS='a b c'", "export DB_PASS=[redacted]"),
        ("  SECRET_KEY = 'django-insecure-x'", "  SECRET_KEY = [redacted]"),
        ("aws_secret_access_key = wJalrXUtnFEMI/K7MDENG", "aws_secret_access_key = [redacted]"),
        ("Authorization: Basic dXNlcjpwYXNz", "Authorization: [redacted]"),
        ("curl -H 'authorization: token abc' x", "curl -H 'authorization: [redacted]' x"),
        ("error: Bearer abcdefghijkl rejected", "error: Bearer [redacted] rejected"),
        ('{"password": "p4ss", "user": "me"}', '{"password": [redacted], "user": "me"}'),
        ("key AIza" + "B" * 35 + " end", f"key {REDACTED} end"),
        ("stripe sk_live_" + "a" * 24, f"stripe {REDACTED}"),
        ("hf_" + "a" * 34, REDACTED),
    ],
)
def test_labelled_and_shaped_secrets_are_redacted(text: str, shown: str) -> None:
    assert redact_text(text) == shown


@pytest.mark.parametrize(
    "text",
    [
        "    token = next(tokens)",  # code, not a credential
        "PATH=/usr/bin:/bin",
        "the password is checked by login()",
        "bearer of bad news",
    ],
)
def test_ordinary_lines_stay(text: str) -> None:
    assert redact_text(text) == text


# ---------------------------------------------------------------- the redactor


def test_redactor_removes_known_values_and_shapes() -> None:
    redactor = Redactor(["unshaped-value-1234", "short"])
    out = redactor.text(f"a unshaped-value-1234 b short c {OPENAI}")
    assert out == f"a {REDACTED} b short c {REDACTED}"  # short values are ignored


def test_redactor_for_environment_takes_secret_variables_and_config_keys(tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    config.write_text('[keys]\nanthropic = "configured-key-5678"\n')
    config.chmod(0o600)
    environ = {
        "MY_SERVICE_TOKEN": "env-token-value-99",
        "EDITOR": "not-a-secret-value",
        "PWD": "/work/somewhere",
        "ZEROG_CONFIG": str(config),
    }
    redactor = Redactor.for_environment(environ)
    text = "env-token-value-99 configured-key-5678 not-a-secret-value /work/somewhere"
    assert redactor.text(text) == f"{REDACTED} {REDACTED} not-a-secret-value /work/somewhere"


def test_redactor_with_an_unreadable_config_keeps_the_environment(tmp_path: Path) -> None:
    environ = {"API_TOKEN": "env-token-value-99", "ZEROG_CONFIG": str(tmp_path / "missing")}
    assert Redactor.for_environment(environ).text("env-token-value-99") == REDACTED


def test_redactor_cleans_observations_and_check_results() -> None:
    redactor = Redactor(["known-secret-value"])
    observation = Observation(
        status=Status.ERROR, stdout="known-secret-value", stderr=f"PASSWORD=x {GITHUB}"
    )
    result = CheckResult(
        name="tests",
        passed=False,
        observation=observation,
        failed_tests=(FailedTest(name="t", message="known-secret-value", details=OPENAI),),
    )
    clean = redactor.verdict(Verdict(passed=False, results=(result,))).results[0]
    assert clean.observation.stdout == REDACTED
    assert clean.observation.stderr == f"PASSWORD={REDACTED}"
    assert clean.failed_tests[0].message == REDACTED
    assert clean.failed_tests[0].details == REDACTED
    assert clean.name == "tests"
    assert clean.observation.status is Status.ERROR
