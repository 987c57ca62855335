"""How the S3 connectors talk to S3: configuration, the boto3 client and the S3 error table.

Owns: reading the S3 environment (with errors naming the variable), building
one boto3 client per connector (connection pool, timeouts, capped retries of
throttling and 5xx answers, path-style addressing for custom endpoints), the
``S3`` handle that runs client calls in the connector's thread pool inside
the error table, and the table itself: S3 error codes and client exceptions
-> connector errors.

Environment: ``STATE_BUCKET`` (required), ``STATE_PREFIX``, ``AWS_REGION``
(or ``AWS_DEFAULT_REGION``), ``AWS_ENDPOINT_URL`` (MinIO and other
S3-compatible stores), the standard AWS credential chain
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``,
``AWS_PROFILE``, web identity, instance roles), ``S3_ADDRESSING_STYLE``
(auto | path | virtual; path when an endpoint is set), ``S3_PART_SIZE``
(multipart part size, default 8 MiB, at least 5 MiB), ``S3_PRESIGN_EXPIRES``
(seconds, default 3600), ``S3_MAX_CONNECTIONS`` (default 32; also the bound
on part requests in flight per connector), ``S3_PARTS_IN_FLIGHT`` (ranged
GETs or part uploads in flight per open file or upload, default 8),
``S3_TRANSFER_MEMORY`` (bytes of parts in flight per connector, default
256 MiB),
``S3_CONNECT_TIMEOUT_SECONDS`` (default 5), ``S3_READ_TIMEOUT_SECONDS``
(default 60), ``S3_MAX_ATTEMPTS`` (tries per request, default 5).

Must not: hold object bodies or decide connector semantics (conditions,
prefixes, listing); that is ``s3`` and ``s3.multipart``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, ParamSpec, TypeVar, cast

import boto3
import botocore.config
import botocore.exceptions as bx

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

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

AddressingStyle = Literal["auto", "path", "virtual"]
P = ParamSpec("P")
T = TypeVar("T")

MiB = 1024 * 1024
GiB = 1024 * MiB
MIN_PART_SIZE = 5 * MiB
MAX_PART_SIZE = 5 * GiB
MAX_PARTS = 10_000
# The largest object one PutObject or CopyObject may carry.
SINGLE_REQUEST_LIMIT = 5 * GiB
MAX_OBJECT_SIZE = 5 * 1024 * GiB
MAX_PRESIGN_SECONDS = 7 * 24 * 3600

# The S3 error table: error codes (and bare HTTP statuses, which is what HEAD
# answers carry) -> connector errors. Codes not listed fall back on the status.
_ERROR_CODES: dict[str, type[ConnectorError]] = {
    "NoSuchKey": NotFound,
    "NotFound": NotFound,
    "404": NotFound,
    "AccessDenied": PermissionDenied,
    "Forbidden": PermissionDenied,
    "403": PermissionDenied,
    "AllAccessDisabled": PermissionDenied,
    "InvalidAccessKeyId": PermissionDenied,
    "SignatureDoesNotMatch": PermissionDenied,
    "ExpiredToken": PermissionDenied,
    "InvalidToken": PermissionDenied,
    "AccountProblem": PermissionDenied,
    "PreconditionFailed": Conflict,
    "412": Conflict,
    # A concurrent conditional write on the same key won the race.
    "ConditionalRequestConflict": Conflict,
    "EntityTooLarge": TooLarge,
    "413": TooLarge,
    "InvalidArgument": BadRequest,
    "NoSuchBucket": BackendUnavailable,
    "SlowDown": BackendUnavailable,
    "Throttling": BackendUnavailable,
    "ThrottlingException": BackendUnavailable,
    "RequestLimitExceeded": BackendUnavailable,
    "ServiceUnavailable": BackendUnavailable,
    "InternalError": BackendUnavailable,
    "RequestTimeout": BackendTimeout,
}


def error_code(exc: bx.ClientError) -> str:
    return str(exc.response.get("Error", {}).get("Code", ""))


def map_s3_error(exc: BaseException, key: str | None) -> ConnectorError:
    """The S3 error table; ``key`` is the user's key (without the prefix) for messages."""
    if isinstance(exc, ConnectorError):
        return exc
    where = f" on {key!r}" if key else ""
    if isinstance(exc, bx.ClientError):
        code = error_code(exc)
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
        message = exc.response.get("Error", {}).get("Message", "") or code
        kind = _ERROR_CODES.get(code)
        if kind is None:
            kind = BackendUnavailable if status >= 500 else BackendError
        if code == "NoSuchBucket":
            return kind(f"the bucket does not exist{where}: {message}", key=key)
        return kind(f"S3 {code or status}{where}: {message}", key=key)
    detail = str(exc) or type(exc).__name__
    if isinstance(exc, bx.ReadTimeoutError):
        return BackendTimeout(f"S3 did not answer in time{where}: {detail}", key=key)
    if isinstance(
        exc, bx.ConnectionError | bx.HTTPClientError | bx.IncompleteReadError | ConnectionError
    ):
        return BackendUnavailable(f"S3 is unreachable{where}: {detail}", key=key)
    if isinstance(
        exc, bx.NoCredentialsError | bx.PartialCredentialsError | bx.CredentialRetrievalError
    ):
        return PermissionDenied(f"no usable AWS credentials{where}: {detail}", key=key)
    return BackendError(f"S3 client error{where}: {detail}", key=key)


@contextlib.contextmanager
def s3_errors(key: str | None = None) -> Iterator[None]:
    try:
        yield
    except ConnectorError:
        raise
    except (bx.BotoCoreError, bx.ClientError, OSError) as exc:
        raise map_s3_error(exc, key) from exc


def quote_etag(etag: str) -> str:
    return f'"{etag}"'


def strip_etag(raw: str) -> str:
    return raw.strip('"')


@dataclass(frozen=True)
class S3Config:
    bucket: str
    prefix: str
    region: str | None
    endpoint_url: str | None
    addressing_style: AddressingStyle
    part_size: int
    presign_expires: int
    max_connections: int
    connect_timeout: float
    read_timeout: float
    max_attempts: int
    access_key_id: str | None
    secret_access_key: str | None
    session_token: str | None
    profile: str | None
    transfer: TransferSettings

    @classmethod
    def from_settings(cls, settings: Settings) -> S3Config:
        endpoint = settings.optional("AWS_ENDPOINT_URL")
        if endpoint is not None and not endpoint.startswith(("http://", "https://")):
            raise ConfigError(
                f"AWS_ENDPOINT_URL must start with http:// or https://, got {endpoint!r}"
            )
        style = settings.optional("S3_ADDRESSING_STYLE", "path" if endpoint else "auto")
        if style not in ("auto", "path", "virtual"):
            raise ConfigError(f"S3_ADDRESSING_STYLE must be auto, path or virtual, got {style!r}")
        part_size = settings.integer("S3_PART_SIZE", 8 * MiB, minimum=MIN_PART_SIZE)
        if part_size > MAX_PART_SIZE:
            raise ConfigError(
                f"S3_PART_SIZE must be at most {MAX_PART_SIZE} (5 GiB), got {part_size}"
            )
        expires = settings.integer("S3_PRESIGN_EXPIRES", 3600, minimum=1)
        if expires > MAX_PRESIGN_SECONDS:
            raise ConfigError(
                f"S3_PRESIGN_EXPIRES must be at most {MAX_PRESIGN_SECONDS} (7 days), got {expires}"
            )
        max_connections = settings.integer("S3_MAX_CONNECTIONS", 32, minimum=1)
        access_key = settings.optional("AWS_ACCESS_KEY_ID")
        secret_key = settings.optional("AWS_SECRET_ACCESS_KEY")
        if (access_key is None) != (secret_key is None):
            raise ConfigError("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY must be set together")
        return cls(
            bucket=settings.required("STATE_BUCKET", hint="the S3 bucket that holds the state"),
            prefix=settings.prefix,
            region=settings.optional("AWS_REGION") or settings.optional("AWS_DEFAULT_REGION"),
            endpoint_url=endpoint,
            addressing_style=cast(AddressingStyle, style),
            part_size=part_size,
            presign_expires=expires,
            max_connections=max_connections,
            connect_timeout=settings.number("S3_CONNECT_TIMEOUT_SECONDS", 5.0, minimum=0.1),
            read_timeout=settings.number("S3_READ_TIMEOUT_SECONDS", 60.0, minimum=0.1),
            max_attempts=settings.integer("S3_MAX_ATTEMPTS", 5, minimum=1),
            access_key_id=access_key,
            secret_access_key=secret_key,
            session_token=settings.optional("AWS_SESSION_TOKEN"),
            profile=settings.optional("AWS_PROFILE"),
            transfer=TransferSettings.from_settings(
                settings, "S3", part_size=part_size, requests=max_connections
            ),
        )

    def make_client(self) -> S3Client:
        """A boto3 client; credentials not given here come from the standard chain."""
        config = botocore.config.Config(
            max_pool_connections=self.max_connections,
            connect_timeout=self.connect_timeout,
            read_timeout=self.read_timeout,
            # "standard" retries throttling, 5xx and connection errors with
            # capped exponential backoff and jitter.
            retries={"mode": "standard", "total_max_attempts": self.max_attempts},
            s3={"addressing_style": self.addressing_style},
            # SigV4 everywhere, presigned URLs included (newer regions accept nothing else).
            signature_version="s3v4",
        )
        try:
            session = boto3.session.Session(
                aws_access_key_id=self.access_key_id,
                aws_secret_access_key=self.secret_access_key,
                aws_session_token=self.session_token,
                region_name=self.region,
                profile_name=self.profile,
            )
            return session.client("s3", endpoint_url=self.endpoint_url, config=config)
        except bx.ProfileNotFound as exc:
            raise ConfigError(f"AWS_PROFILE names an unknown profile: {exc}") from exc
        except bx.NoRegionError as exc:
            raise ConfigError(
                "AWS_REGION is required (no region found in the AWS configuration)"
            ) from exc


class S3:
    """One bucket through one client; every call runs in the pool inside the error table."""

    def __init__(
        self, client: S3Client, pool: BlockingPool, bucket: str, transfer: TransferSettings
    ) -> None:
        self.client = client
        self.pool = pool
        self.bucket = bucket
        self.limits = TransferLimits(transfer)

    async def call(
        self, key: str | None, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs
    ) -> T:
        with s3_errors(key):
            return await self.pool.run(fn, *args, **kwargs)
