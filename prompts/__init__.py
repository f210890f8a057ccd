"""Prompt templates, one plain-text file per task and language."""
