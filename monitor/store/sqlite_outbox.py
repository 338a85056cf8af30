"""SQLite table of the notification outbox: one row per (event, notifier) to deliver."""


class OutboxMixin:
    pass
