"""Persistence of verdicts, evidence, incidents, the outbox and maintenance windows."""

from monitor.store.base import Store, StoreError, open_store

__all__ = ["Store", "StoreError", "open_store"]
