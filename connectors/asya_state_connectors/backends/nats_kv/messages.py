"""What a NATS KV message means to the connector, and the NATS error table.

Owns: the headers the connector reads and writes, the latest message of a
key as an ``Entry`` (live value or delete/expiry marker, its revision, content
type, time stamp and expiry), parsing ``Nats-TTL`` durations, and mapping
nats-py and JetStream exceptions to ConnectorError.

Must not: talk to the server (see ``nats_kv``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

import nats.errors as nx
import nats.js.errors as jx

from ...errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    ConnectorError,
    PermissionDenied,
    TooLarge,
)
from ...interface import ObjectMeta

CONTENT_TYPE = "Asya-Content-Type"
MSG_TTL = "Nats-TTL"
KV_OPERATION = "KV-Operation"
MARKER_REASON = "Nats-Marker-Reason"
_DURATION = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_SECONDS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}


def map_nats_error(
    exc: BaseException, key: str | None, *, denied: bool, connected: bool
) -> ConnectorError:
    """The NATS backend's error table.

    ``denied``: the server reported a refusal meanwhile; ``connected``: the
    client is still connected (a timeout without a connection is an outage).
    """
    if isinstance(exc, ConnectorError):
        return exc
    detail = str(exc) or type(exc).__name__
    where = f" on {key!r}" if key else ""
    if denied or isinstance(exc, nx.AuthorizationError):
        return PermissionDenied(f"NATS refused access{where}: {detail}", key=key)
    if isinstance(exc, jx.APIError) and exc.code == 403:
        return PermissionDenied(f"JetStream refused access{where}: {detail}", key=key)
    if isinstance(exc, nx.MaxPayloadError):
        return TooLarge(f"the value exceeds the NATS max_payload{where}", key=key)
    if isinstance(exc, jx.APIError) and exc.code == 503:
        # JetStream's own "try again": no stream leader yet (an election),
        # too few servers up to place a replicated bucket, a check that
        # cannot be made right now.
        return BackendUnavailable(f"JetStream is not available{where}: {detail}", key=key)
    if isinstance(exc, TimeoutError) and connected:
        return BackendTimeout(f"NATS did not answer in time{where}: {detail}", key=key)
    if isinstance(
        exc,
        nx.ConnectionClosedError
        | nx.ConnectionReconnectingError
        | nx.ConnectionDrainingError
        | nx.NoServersError
        | nx.NoRespondersError
        | nx.StaleConnectionError
        | nx.OutboundBufferLimitError
        | jx.ServiceUnavailableError
        | jx.NoStreamResponseError
        | OSError
        | TimeoutError,
    ):
        return BackendUnavailable(f"NATS is unreachable{where}: {detail}", key=key)
    return BackendError(f"NATS error{where}: {detail}", key=key)


def parse_duration(raw: str) -> float | None:
    """Seconds in a ``Nats-TTL`` value (``3600``, ``90s``, ``1h30m``); None for ``never``/unknown."""
    raw = raw.strip()
    if raw.isdigit():
        return float(raw)
    parts = _DURATION.findall(raw)
    if not parts or "".join(n + u for n, u in parts) != raw:
        return None
    return sum(float(n) * _SECONDS[u] for n, u in parts)


def header(headers: Mapping[str, str] | None, name: str) -> str | None:
    return headers.get(name) if headers else None


def is_absent(headers: Mapping[str, str] | None) -> bool:
    """A delete or purge marker, or a marker the server left for an expired entry."""
    return header(headers, KV_OPERATION) in ("DEL", "PURGE") or bool(header(headers, MARKER_REASON))


@dataclass(frozen=True, slots=True)
class Entry:
    """The latest message on a key's subject (live or a marker)."""

    seq: int
    data: bytes
    headers: Mapping[str, str]
    stamp: float  # message time, seconds since the epoch

    @property
    def live(self) -> bool:
        return not is_absent(self.headers)

    def meta(self, key: str, size: int | None = None) -> ObjectMeta:
        return ObjectMeta(
            key=key,
            size=len(self.data) if size is None else size,
            etag=str(self.seq),
            content_type=header(self.headers, CONTENT_TYPE) or None,
            last_modified=self.stamp,
        )

    def expires_at(self, bucket_max_age: float | None) -> float | None:
        raw = header(self.headers, MSG_TTL)
        ttl = parse_duration(raw) if raw is not None else bucket_max_age
        return None if ttl is None else self.stamp + ttl
