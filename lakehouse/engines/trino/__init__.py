"""The Trino engine: queries on a running server, the ordered view, the ``trino`` funnel
engine and the maintenance plan carried out by Trino.

:mod:`~lakehouse.engines.trino.client` (DB-API connection and queries),
:mod:`~lakehouse.engines.trino.endpoint` (host, port, catalog name),
:mod:`~lakehouse.engines.trino.sql` (quoting and typed literals),
:mod:`~lakehouse.engines.trino.views` (the ordered view ``events_ordered``),
:mod:`~lakehouse.engines.trino.funnel` (the ``trino`` funnel engine),
:mod:`~lakehouse.engines.trino.maintenance` (the maintenance jobs carried out by Trino:
:mod:`~lakehouse.engines.trino.optimize`, :mod:`~lakehouse.engines.trino.procedures`).

Installing, configuring and starting the server is :mod:`lakehouse.trino_server`; this
package does not import it. Modules load when used (nothing is imported here).
"""
