"""The two small interfaces every outside system implements, and the errors they raise."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import ClassVar, Protocol

from health.records import Batch, ScoreWrite, WriteResult


class ConnectorError(Exception):
    """Something went wrong talking to an outside system."""


class TransientConnectorError(ConnectorError):
    """Worth retrying later: rate limits, 5xx, timeouts."""

    def __init__(self, message: str, *, retry_after: float | None = None):
        super().__init__(message)
        self.retry_after = retry_after


class PermanentConnectorError(ConnectorError):
    """Retrying will not help: a bad query, a missing field, a misconfiguration."""


class AuthConnectorError(PermanentConnectorError):
    """Credentials rejected: the message names the variable to fix."""


# added to a CRM's refusal of a record whose tier its tier field does not offer (a field set up
# before the tier existed): what the person reading `healthbot writeback --status` does next
UNKNOWN_TIER = (
    "the CRM's tier field lacks this tier (it was set up before the tier existed): run "
    "`healthbot crm setup` to add it, then `healthbot writeback --retry-parked`"
)


def renamed(defaults: Mapping[str, str], overrides: Mapping[str, str] | None, variable: str):
    """A CRM's name for each score field: `defaults` with the admin's renames from `variable`
    (JSON, keyed by score field); an unknown key is a configuration error naming it."""
    unknown = sorted(set(overrides or {}) - set(defaults))
    if unknown:
        raise PermanentConnectorError(
            f"{variable} names unknown keys {unknown}: use {', '.join(defaults)}"
        )
    return {**defaults, **(overrides or {})}


class Source(Protocol):
    name: ClassVar[str]

    def pull(self, since: str | None) -> Iterator[Batch]:
        """Yield batches of records changed since the watermark `since` (None: everything).
        Each batch carries the watermark that is safe to store once the batch is committed."""
        ...


class ScoreSink(Protocol):
    name: ClassVar[str]
    max_batch: ClassVar[int]

    def write(self, rows: Sequence[ScoreWrite]) -> WriteResult:
        """Write scores to the CRM; per-row result, never all-or-nothing. A request that
        fails as a whole raises (TransientConnectorError: try again later)."""
        ...

    def chunk_size(self, pending: int) -> int:
        """How many rows one `write` call should carry when `pending` rows wait: one
        request's worth (or one bulk job's), so a failure costs at most that chunk."""
        ...

    def read_fields(self, external_ids: Sequence[str]) -> dict[str, dict]:
        """What each CRM record shows now, by score field key (batched reads)."""
        ...

    def already_written(self, rows: Sequence[ScoreWrite]) -> set[str]:
        """External ids whose CRM record already shows these values (batched reads)."""
        ...
