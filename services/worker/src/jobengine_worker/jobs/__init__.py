"""Implementations of the built-in job types (declared in jobengine.builtin_types)."""
