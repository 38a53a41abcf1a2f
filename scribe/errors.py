"""Typed errors. Each carries the CLI exit code of CONTRACTS.md so every entry point maps them once."""


class ScribeError(Exception):
    """Base of every error scribe reports to a user instead of a traceback."""

    exit_code = 5


class ConfigError(ScribeError):
    """Settings (environment or SCRIBE_CONFIG file) that cannot be used."""

    exit_code = 2


class BadInputError(ScribeError):
    """The user's input (audio, records, transcript) cannot be used as given."""

    exit_code = 3


class AudioError(BadInputError):
    """Audio that cannot be decoded, is empty, or is over the configured limits."""


class RecordsError(BadInputError):
    """A prior-records file that is not a usable FHIR R4 Bundle."""


class EngineUnavailableError(ScribeError):
    """An engine or its weights (or the libraries it needs) are not available here."""

    exit_code = 4


class ChecksumError(EngineUnavailableError):
    """Model weights whose SHA-256 does not match the expected value."""
