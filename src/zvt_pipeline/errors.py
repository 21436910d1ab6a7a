"""Error classes shared by every component.

Each error knows whether retrying the same input can succeed (``retryable``). Invokers map this flag to
their own mechanism: a Redis Streams entry is left pending (retryable) or dead-lettered at once (terminal);
a Hatchet task raises ``NonRetryableException`` for terminal errors; a Lambda reports a function error.
"""

from __future__ import annotations


class ZvtError(Exception):
    """Base class. ``code`` is a stable machine-readable name; ``retryable`` drives invokers."""

    code = "error"
    retryable = False


class TerminalError(ZvtError):
    """Retrying the same input cannot succeed."""


class RetryableError(ZvtError):
    """A transient failure: the same input may succeed later."""

    retryable = True


class InvalidMessage(TerminalError):
    """Input failed validation (malformed JSON, unknown type, wrong field). Nothing was written."""

    code = "invalid_message"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PayloadTooLarge(InvalidMessage):
    code = "payload_too_large"


class ConfigError(TerminalError):
    """Bad configuration, detected at start. The message names the variable."""

    code = "config_error"


class ConcurrencyConflict(RetryableError):
    """An append's ``expected_version`` did not match the stream's current version."""

    code = "concurrency_conflict"

    def __init__(self, stream_id: str, expected: int, actual: int) -> None:
        super().__init__(
            f"stream {stream_id!r}: expected version {expected}, but the stream is at version {actual}"
        )
        self.stream_id = stream_id
        self.expected = expected
        self.actual = actual


class StoreUnavailable(RetryableError):
    """The event store or Redis could not be reached."""

    code = "store_unavailable"


class VenueError(ZvtError):
    """Base for exchange-side errors; subclasses set ``retryable``."""

    code = "venue_error"


class VenueRetryable(VenueError):
    code = "venue_retryable"
    retryable = True


class VenueTerminal(VenueError):
    code = "venue_terminal"


class AmbiguousSubmit(VenueRetryable):
    """A submit timed out or the connection broke: the order may or may not exist at the venue.

    Never resubmit blindly; look the order up by ``clientOrderId`` first.
    """

    code = "ambiguous_submit"
