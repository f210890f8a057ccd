"""Syllabus: a local, offline study assistant for books and lectures."""

__version__ = "0.1.0"
