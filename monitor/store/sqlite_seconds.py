"""SQLite tables of verdict runs, minute counts, evidence and maintenance windows."""


class SecondsMixin:
    pass
