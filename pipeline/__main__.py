"""`python -m pipeline` runs the CLI (same as the `syllabus` command)."""

from pipeline.cli import main

main()
