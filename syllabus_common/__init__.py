"""Shared leaf utilities that both ``ingest/`` and ``pipeline/`` import: errors, atomic writes,
time and place formats, model locations, and the name → factory registry. Nothing here imports
``ingest`` or ``pipeline``."""
