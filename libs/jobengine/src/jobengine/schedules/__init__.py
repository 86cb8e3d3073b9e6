"""Schedules: cron and interval jobs, one job per tick, fired by every API process with no leader.

spec.py (the resource and its validation), ticks.py (tick math and the catch-up decision, pure), store.py
(the Redis side: take, fire, write), loop.py (the firing loop), declared.py (schedules from a file).
docs/guarantees.md, "Schedules", says what is guaranteed and why.
"""
