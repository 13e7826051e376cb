"""Every error the library raises, in one small module.

Callers (the HTTP layer, MCP tools, the CLI) map these classes to their own
outcomes: `InvalidInput` -> 422, `NotFound` -> 404, `Conflict` -> 409, `Overloaded` -> 503 with
Retry-After, and any other `RagError` (`IndexProblem`, `ModelError`) -> 503 /
refuse to serve. Messages are written for the person who sent the input and
never quote file contents.
"""


class RagError(Exception):
    """Base class: anything the library refuses to do, with a readable reason."""


class InvalidInput(RagError):
    """A question or parameter that cannot be answered as given."""


class NotFound(RagError):
    """An unknown document or passage id."""


class Conflict(RagError):
    """A write that would clash with what is there: an id already taken (use replace), the same content under another id."""


class IndexProblem(RagError):
    """The on-disk index is missing, corrupt, or does not match what made it."""


class IndexStale(IndexProblem):
    """The index was built from another corpus, model or chunker than the current one."""


class IndexCorrupt(IndexProblem):
    """The index files do not match their manifest (checksums, counts, format)."""


class ModelError(RagError):
    """The embedding model cannot be loaded or is not the model it claims to be."""


class Overloaded(RagError):
    """The service is busy beyond its queue limits; the caller may retry after `retry_after` seconds."""

    def __init__(self, message: str, retry_after: int = 1):
        super().__init__(message)
        self.retry_after = retry_after


class Unreadable(RagError):
    """A file in seeds/ that cannot become a document (bad type, encoding, metadata, parse).

    The message is the skip reason shown to the user: one sentence, never quoting file content."""
