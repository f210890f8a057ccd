"""Turning files into text with provenance (pages, printed labels, sections)."""
