"""Listing pagination shared by backends that enumerate keys themselves.

Owns: rolling keys up into common prefixes at a delimiter and cutting the
result into pages whose token is the last name returned. Works on any
key-ordered iterable, lazily, so a backend can stream keys from its store.

Must not: know how keys are stored.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import TypeVar

from .interface import ListPage, ObjectMeta

T = TypeVar("T")


def paginate(
    items: Iterable[T],
    key_of: Callable[[T], str],
    meta_of: Callable[[T], ObjectMeta],
    prefix: str,
    *,
    delimiter: str | None,
    page_token: str | None,
    limit: int,
) -> ListPage:
    """One page over ``items`` (sorted by key), after ``page_token``.

    A rolled-up prefix appears once; its token skips every key under it. An
    item whose key ends with the delimiter stands for a whole prefix (for
    backends that enumerate directories rather than keys); valid object keys
    never end with ``/``.
    """
    entries: list[ObjectMeta] = []
    prefixes: list[str] = []
    last: str | None = None
    for item in items:
        key = key_of(item)
        if not key.startswith(prefix):
            continue
        name = key
        if delimiter:
            cut = key.find(delimiter, len(prefix))
            if cut >= 0:
                name = key[: cut + len(delimiter)]
        if page_token is not None and name <= page_token:
            continue
        if name == last:
            continue
        if len(entries) + len(prefixes) == limit:
            return ListPage(entries, prefixes, next_token=last)
        if name == key and not (delimiter and key.endswith(delimiter)):
            entries.append(meta_of(item))
        else:
            prefixes.append(name)
        last = name
    return ListPage(entries, prefixes, next_token=None)
