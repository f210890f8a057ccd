"""Package data shipped with Syllabus: the default config.yaml (a link to the repository root's file)."""
