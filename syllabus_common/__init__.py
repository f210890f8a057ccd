"""Shared leaf utilities that both ``ingest/`` and ``pipeline/`` import: errors, atomic writes,
SQLite files that many open at once (``sqlitedb``), time and place formats, model locations,
converted models in the user cache (``modelcache``), and the name → factory registry.
Nothing here imports ``ingest`` or ``pipeline``."""
