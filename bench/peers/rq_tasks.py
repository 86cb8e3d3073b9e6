"""add(a, b) for stock RQ (its result lands in RQ's result stream and finished registry)."""


def add(a: int, b: int) -> int:
    return a + b
