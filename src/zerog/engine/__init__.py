"""The engine: plan, act, validate, roll back, re-plan (filled in below)."""
