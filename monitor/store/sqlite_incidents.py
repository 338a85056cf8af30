"""SQLite tables of incidents, their timelines and the notification outbox."""


class IncidentsMixin:
    pass
