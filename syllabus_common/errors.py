"""Errors a user can act on. The CLI prints them as one line; anything else is a bug."""

from __future__ import annotations


class SyllabusError(Exception):
    """A user-facing failure: the message says what went wrong and what to do."""

    exit_code = 1


class ConfigError(SyllabusError):
    """The configuration file or an option is invalid."""

    exit_code = 2


class IngestError(SyllabusError):
    """One input file could not be read; the rest of a batch goes on."""


class ModelNotAvailable(SyllabusError):
    """A model's weights are not on this machine; the message names what to install or set.
    A setup problem like a configuration error: exit code 2."""

    exit_code = 2


class KnowledgeBaseError(SyllabusError):
    """The knowledge base is missing, locked or damaged."""


class EnvironmentProblem(SyllabusError):
    """Something around the program is in the way (a busy port, a read-only folder): exit code 3."""

    exit_code = 3
