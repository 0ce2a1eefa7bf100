"""Core commands: init, ingest, demo, health."""

from __future__ import annotations

import click


def register(group: click.Group) -> None:
    """Attach the core commands to the ``lakehouse`` group."""
