"""The SQL catalog (SQLite, PostgreSQL) with commit staging that scales with the commit,
not with the table's history (see :mod:`catalog.metadata`)."""

from __future__ import annotations

from typing import Any

from pyiceberg.catalog.sql import SqlCatalog
from pyiceberg.table import StagedTable, Table
from pyiceberg.table.locations import load_location_provider

from catalog.metadata import apply_updates


class LakehouseSqlCatalog(SqlCatalog):
    """pyiceberg's ``SqlCatalog``; only the staging of commits to existing tables differs."""

    def _update_and_stage_table(
        self,
        current_table: Table | None,
        table_identifier: Any,
        requirements: tuple[Any, ...],
        updates: tuple[Any, ...],
    ) -> StagedTable:
        if current_table is None:  # creating a table: keep pyiceberg's validated path
            return super()._update_and_stage_table(
                current_table, table_identifier, requirements, updates
            )
        for requirement in requirements:
            requirement.validate(current_table.metadata)
        metadata = apply_updates(
            current_table.metadata, updates, metadata_location=current_table.metadata_location
        )
        version = self._parse_metadata_version(current_table.metadata_location) + 1
        provider = load_location_provider(metadata.location, metadata.properties)
        location = provider.new_table_metadata_file_location(version)
        return StagedTable(
            identifier=table_identifier,
            metadata=metadata,
            metadata_location=location,
            io=self._load_file_io(properties=metadata.properties, location=location),
            catalog=self,
        )
