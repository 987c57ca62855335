"""How the GCS connectors talk to Cloud Storage: configuration, the client and the GCS error table.

Owns: reading the GCS environment (with errors naming the variable),
building one google-cloud-storage client per connector (the emulator
endpoint with anonymous credentials when ``STORAGE_EMULATOR_HOST`` is set,
Application Default Credentials otherwise, a connection pool as large as the
thread pool), the retry policy (429, 5xx and connection errors retried with
capped exponential backoff within a deadline), the ``Gcs`` handle that runs
client calls in the connector's thread pool inside the error table, and the
table itself: client exceptions and HTTP statuses -> connector errors.

Environment: ``STATE_BUCKET`` (required), ``STATE_PREFIX``, ``GCS_PROJECT``,
``STORAGE_EMULATOR_HOST`` (``http://host:port`` of an emulator),
``GCS_SIGNED_URL_EXPIRES`` (seconds, default 3600, at most 7 days),
``GCS_MAX_CONNECTIONS`` (default 32; also the bound on part requests in
flight per connector), ``GCS_TIMEOUT_SECONDS`` (per request, default 60),
``GCS_RETRY_DEADLINE_SECONDS`` (default 30), ``GCS_CHUNK_SIZE`` (the part
size of ranged reads and composed uploads, default 8 MiB, a multiple of
256 KiB), ``GCS_PARTS_IN_FLIGHT`` (ranged GETs or part uploads in flight per
open file or upload, default 8), ``GCS_TRANSFER_MEMORY`` (bytes of parts in
flight per connector, default 256 MiB).

Must not: hold object bodies or decide connector semantics; that is ``gcs``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, ParamSpec, TypeVar

import requests
import requests.adapters
import urllib3.exceptions
from google.api_core import exceptions as gx
from google.api_core.retry import Retry
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import storage
from google.cloud.storage.exceptions import InvalidResponse
from google.cloud.storage.retry import DEFAULT_RETRY

from ...errors import (
    BackendError,
    BackendTimeout,
    BackendUnavailable,
    BadRequest,
    ConfigError,
    Conflict,
    ConnectorError,
    NotFound,
    PermissionDenied,
    TooLarge,
)
from ...settings import Settings
from ..blocking_pool import BlockingPool
from ..object_store.transfer import TransferLimits, TransferSettings

P = ParamSpec("P")
T = TypeVar("T")

MiB = 1024 * 1024
CHUNK_MULTIPLE = 256 * 1024
MAX_SIGNED_URL_SECONDS = 7 * 24 * 3600

# The GCS error table by HTTP status; exceptions without one are classified below.
_STATUS_TABLE: dict[int, type[ConnectorError]] = {
    400: BadRequest,
    401: PermissionDenied,
    403: PermissionDenied,
    404: NotFound,
    409: Conflict,  # a concurrent request on the same object won
    412: Conflict,  # if_generation_match failed
    413: TooLarge,
    408: BackendTimeout,
    429: BackendUnavailable,
    504: BackendTimeout,
}


def _status_of(exc: BaseException) -> int | None:
    if isinstance(exc, gx.GoogleAPICallError) and exc.code is not None:
        return int(exc.code)
    if isinstance(exc, InvalidResponse):
        return int(exc.response.status_code)
    return None


def map_gcs_error(exc: BaseException, key: str | None) -> ConnectorError:
    """The GCS error table; ``key`` is the user's key (without the prefix) for messages."""
    if isinstance(exc, ConnectorError):
        return exc
    if isinstance(exc, gx.RetryError) and exc.cause is not None:
        # Retries ran out: the last failure says what went wrong.
        return map_gcs_error(exc.cause, key)
    where = f" on {key!r}" if key else ""
    detail = str(exc) or type(exc).__name__
    status = _status_of(exc)
    if status is not None:
        kind = _STATUS_TABLE.get(status)
        if kind is None:
            kind = BackendUnavailable if status >= 500 else BackendError
        return kind(f"GCS {status}{where}: {detail}", key=key)
    if isinstance(exc, auth_exceptions.RefreshError | auth_exceptions.DefaultCredentialsError):
        return PermissionDenied(f"no usable Google credentials{where}: {detail}", key=key)
    if isinstance(exc, requests.ConnectTimeout | urllib3.exceptions.ConnectTimeoutError):
        return BackendUnavailable(f"GCS is unreachable{where}: {detail}", key=key)
    if isinstance(
        exc, requests.Timeout | urllib3.exceptions.TimeoutError | TimeoutError | gx.RetryError
    ):
        return BackendTimeout(f"GCS did not answer in time{where}: {detail}", key=key)
    if isinstance(
        exc,
        requests.RequestException
        | urllib3.exceptions.HTTPError
        | auth_exceptions.TransportError
        | ConnectionError
        | OSError,
    ):
        return BackendUnavailable(f"GCS is unreachable{where}: {detail}", key=key)
    return BackendError(f"GCS client error{where}: {detail}", key=key)


@contextlib.contextmanager
def gcs_errors(key: str | None = None) -> Iterator[None]:
    try:
        yield
    except ConnectorError:
        raise
    except Exception as exc:
        raise map_gcs_error(exc, key) from exc


@dataclass(frozen=True)
class GcsConfig:
    bucket: str
    prefix: str
    project: str | None
    emulator: str | None
    signed_url_expires: int
    max_connections: int
    timeout: float
    retry_deadline: float
    chunk_size: int
    transfer: TransferSettings

    @classmethod
    def from_settings(cls, settings: Settings) -> GcsConfig:
        emulator = settings.optional("STORAGE_EMULATOR_HOST")
        if emulator is not None and "://" not in emulator:
            emulator = f"http://{emulator}"
        expires = settings.integer("GCS_SIGNED_URL_EXPIRES", 3600, minimum=1)
        if expires > MAX_SIGNED_URL_SECONDS:
            raise ConfigError(
                f"GCS_SIGNED_URL_EXPIRES must be at most {MAX_SIGNED_URL_SECONDS} (7 days), got {expires}"
            )
        chunk = settings.integer("GCS_CHUNK_SIZE", 8 * MiB, minimum=CHUNK_MULTIPLE)
        if chunk % CHUNK_MULTIPLE:
            raise ConfigError(f"GCS_CHUNK_SIZE must be a multiple of 262144 (256 KiB), got {chunk}")
        max_connections = settings.integer("GCS_MAX_CONNECTIONS", 32, minimum=1)
        return cls(
            bucket=settings.required("STATE_BUCKET", hint="the GCS bucket that holds the state"),
            prefix=settings.prefix,
            project=settings.optional("GCS_PROJECT"),
            emulator=emulator,
            signed_url_expires=expires,
            max_connections=max_connections,
            timeout=settings.number("GCS_TIMEOUT_SECONDS", 60.0, minimum=0.1),
            retry_deadline=settings.number("GCS_RETRY_DEADLINE_SECONDS", 30.0, minimum=0.0),
            chunk_size=chunk,
            transfer=TransferSettings.from_settings(
                settings, "GCS", part_size=chunk, requests=max_connections
            ),
        )

    @property
    def retry(self) -> Retry:
        retry: Retry = DEFAULT_RETRY.with_delay(initial=0.1, maximum=2.0, multiplier=2.0)
        return retry.with_timeout(self.retry_deadline)

    def make_client(self) -> Any:
        """A storage client; may ask the metadata server for credentials, so run it in a thread."""
        if self.emulator is not None:
            client = storage.Client(
                project=self.project or "emulator",
                credentials=AnonymousCredentials(),  # type: ignore[no-untyped-call]
                client_options={"api_endpoint": self.emulator},
            )
        else:
            client = storage.Client(project=self.project)
        # One pooled connection per worker thread instead of the default ten.
        adapter = requests.adapters.HTTPAdapter(
            pool_connections=1, pool_maxsize=self.max_connections
        )
        client._http.mount("https://", adapter)
        client._http.mount("http://", adapter)
        return client


class Gcs:
    """One bucket through one client; every call runs in the pool inside the error table."""

    def __init__(self, client: Any, pool: BlockingPool, config: GcsConfig) -> None:
        self.client = client
        self.pool = pool
        self.bucket = client.bucket(config.bucket)
        self.retry = config.retry
        self.timeout = config.timeout
        self.limits = TransferLimits(config.transfer)

    async def call(
        self, key: str | None, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        with gcs_errors(key):
            return await self.pool.run(fn, *args, **kwargs)
