"""Property tests of key validation and the key <-> URL-path encoding."""

from __future__ import annotations

import posixpath

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from asya_state_connectors.errors import ConfigError, InvalidKey
from asya_state_connectors.keys import MAX_KEY_BYTES, decode_key, encode_key, validate_key
from asya_state_connectors.settings import normalize_prefix

# Any Unicode text without NUL, '/' or surrogates, excluding the dot segments.
segment = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00/"),
    min_size=1,
    max_size=20,
).filter(lambda s: s not in (".", "..") and not s.startswith(".asya-tmp-"))
keys = (
    st.lists(segment, min_size=1, max_size=6)
    .map("/".join)
    .filter(lambda k: len(k.encode()) <= MAX_KEY_BYTES)
)


@given(keys)
@settings(max_examples=400)
def test_every_valid_key_round_trips_through_the_path_encoding(key: str) -> None:
    encoded = encode_key(key)
    assert all(c not in encoded for c in "?# \x00"), encoded
    assert decode_key(encoded) == key


@given(keys)
@settings(max_examples=300)
def test_a_valid_key_never_escapes_its_root(key: str) -> None:
    root = "/data/prefix"
    joined = posixpath.normpath(posixpath.join(root, validate_key(key)))
    assert joined.startswith(root + "/")


@given(
    st.lists(segment, max_size=3), st.sampled_from(["..", ".", ""]), st.lists(segment, max_size=3)
)
def test_dot_and_empty_segments_are_refused(before: list[str], bad: str, after: list[str]) -> None:
    key = "/".join([*before, bad, *after])
    with pytest.raises(InvalidKey):
        validate_key(key)


@given(keys, st.integers(min_value=0, max_value=5))
def test_nul_anywhere_is_refused(key: str, position: int) -> None:
    with pytest.raises(InvalidKey):
        validate_key(key[:position] + "\x00" + key[position:])


@pytest.mark.parametrize(
    "encoded",
    [
        "%2e%2e/etc/passwd",
        "a/%2E%2E/%2E%2E/b",
        "%00",
        "a%2",
        "%G1",
        "%C3%28",
        "/absolute",
        "k" * 1025,
    ],
)
def test_hostile_encodings_are_refused(encoded: str) -> None:
    with pytest.raises(InvalidKey):
        decode_key(encoded)


@given(st.lists(st.sampled_from(["p", "q", "", "deep"]), max_size=5))
def test_state_prefix_is_normalised_whatever_the_slashes(parts: list[str]) -> None:
    raw = "/".join(parts)
    for variant in (raw, "/" + raw, raw + "/", "//" + raw + "//"):
        normalised = normalize_prefix(variant)
        expected = "/".join(p for p in parts if p)
        assert normalised == (expected + "/" if expected else "")


@pytest.mark.parametrize("raw", ["../x", "a/../b", "./a"])
def test_state_prefix_with_dot_segments_is_a_config_error(raw: str) -> None:
    with pytest.raises(ConfigError, match="STATE_PREFIX"):
        normalize_prefix(raw)
