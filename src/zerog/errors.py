"""The exceptions zerog raises. Every one carries a message meant for a person."""

from __future__ import annotations


class ZerogError(Exception):
    """Base of every error zerog raises on purpose."""


class ConfigError(ZerogError):
    """Bad user input: a goal, a flag, a model spec, a file."""


class ModelError(ZerogError):
    """A model backend could not produce a response (transport, auth, exhausted script)."""


class ModelOutputError(ZerogError):
    """The model answered, but not with what the schema asks for, even after a re-ask."""


class SandboxError(ZerogError):
    """A sandbox could not run at all (not the same as a command that failed)."""
