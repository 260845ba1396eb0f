"""Caches that save model tokens and sandbox work: exact model calls, deterministic tool
calls keyed on the workspace state, and a semantic plan cache behind a verification gate.

Nothing here is imported by ``import zerog``; the semantic part needs the ``cache`` extra.
"""
