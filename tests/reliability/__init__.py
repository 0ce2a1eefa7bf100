"""The reliability campaign: crashes, concurrency, bad input, catalog faults, hostile
names and secrets, checked against the promise that every accepted event ends up in the
table exactly once and that readers always see a consistent snapshot.

Short mode: the ``tests/reliability/test_*.py`` tests (marked ``slow``), part of
``./dev test``. Long mode: ``.venv/bin/python -m tests.reliability.campaign --minutes 30``.
See RELIABILITY.md for the invariants and the figures.
"""
