"""Typed errors. Each carries the CLI exit code of docs/interfaces.md so every entry point maps them once."""


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


class NotFoundError(BadInputError):
    """The encounter, note or resource named does not exist."""


class ForbiddenError(ScribeError):
    """The caller is known but may not do this (another clinician's encounter, a missing scope)."""

    exit_code = 2


class ConflictError(ScribeError):
    """The request clashes with the resource's state (a signed note is immutable)."""

    exit_code = 3


class PreconditionFailedError(ConflictError):
    """`If-Match` names a version that is no longer current."""


class PreconditionRequiredError(ConflictError):
    """A change that needs `If-Match` arrived without it."""


class PayloadTooLargeError(BadInputError):
    """A request body over the configured limit."""


class UnsupportedMediaTypeError(BadInputError):
    """A body whose media type this route does not take."""


class InvalidRequestError(BadInputError):
    """A request the server cannot parse or carry out as asked (HTTP 400), e.g. an unknown search parameter."""


class RateLimitedError(ScribeError):
    """Too many attempts in a short time (failed sign-ins): HTTP 429."""

    exit_code = 3
