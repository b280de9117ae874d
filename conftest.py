"""Pytest root: makes the repository importable as-is (no install step needed)."""
