"""Typed constructors for the pyiceberg row filters we build (pyiceberg's expression
classes take positional arguments that type checkers do not see)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pyiceberg import expressions as ex


def ts_at_least(column: str, value: datetime) -> ex.BooleanExpression:
    ctor: Any = ex.GreaterThanOrEqual
    result: ex.BooleanExpression = ctor(column, value.isoformat())
    return result


def ts_before(column: str, value: datetime) -> ex.BooleanExpression:
    ctor: Any = ex.LessThan
    result: ex.BooleanExpression = ctor(column, value.isoformat())
    return result


def is_in(column: str, values: Sequence[str]) -> ex.BooleanExpression:
    ctor: Any = ex.In
    result: ex.BooleanExpression = ctor(column, list(values))
    return result


def greater_than(column: str, value: str) -> ex.BooleanExpression:
    ctor: Any = ex.GreaterThan
    result: ex.BooleanExpression = ctor(column, value)
    return result


def starts_with(column: str, prefix: str) -> ex.BooleanExpression:
    ctor: Any = ex.StartsWith
    result: ex.BooleanExpression = ctor(column, prefix)
    return result
