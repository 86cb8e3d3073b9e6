"""Implementations: imported by the worker only, so heavy dependencies never reach the API."""

from collections import Counter

from .declarations import WordCountInput, WordCountResult


def wordcount(payload: WordCountInput) -> WordCountResult:
    words = payload.text.lower().split()
    return WordCountResult(words=len(words), top=Counter(words).most_common(payload.top))
