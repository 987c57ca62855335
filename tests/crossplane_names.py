"""Crossplane's rule for naming a package it installs as a dependency, ported for the tests.

Crossplane's package resolver creates a dependency (a Function a
Configuration depends on) named ``xpkg.ToDNSLabel(ref.Context().RepositoryStr())``:
the repository path of the package reference without its registry host,
made a DNS label. A Composition that calls that Function must use that name.
"""

from __future__ import annotations

DOCKER_HUB = ("docker.io", "index.docker.io")


def repository_path(reference: str) -> str:
    """go-containerregistry's ``RepositoryStr``: the repository without host, tag or digest."""
    without_digest = reference.split("@", 1)[0]
    head, _, last = without_digest.rpartition("/")
    repository = f"{head}/{last.split(':', 1)[0]}" if head else last.split(":", 1)[0]
    first, _, rest = repository.partition("/")
    if rest and ("." in first or ":" in first or first == "localhost"):
        host, repository = first, rest
    else:
        host = "index.docker.io"
    if host in DOCKER_HUB and "/" not in repository:
        repository = f"library/{repository}"
    return repository


def to_dns_label(value: str) -> str:
    """``xpkg.ToDNSLabel``: keep [a-z0-9], separators become '-', at most 63 bytes, trimmed."""
    cut: list[str] = []
    for index, char in enumerate(value):
        if "a" <= char <= "z" or "0" <= char <= "9":
            cut.append(char)
        if char in "./:-" and index not in (0, 62, len(value) - 1):
            cut.append("-")
        if index == 62:
            break
    return "".join(cut).strip("-")


def dependency_name(package: str) -> str:
    """The name Crossplane gives a package it installs as a dependency."""
    return to_dns_label(repository_path(package))
