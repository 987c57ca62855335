"""The OpenAPI document of the wire protocol: valid, and naming every error code the connectors send."""

from __future__ import annotations

from pathlib import Path

import yaml
from openapi_spec_validator import validate

import asya_state_connectors
from asya_state_connectors.errors import ERRORS_BY_CODE

SPEC = Path(asya_state_connectors.__file__).parent / "openapi.yaml"


def test_the_spec_is_valid_openapi_and_lists_every_error_code() -> None:
    spec = yaml.safe_load(SPEC.read_text())
    validate(spec)
    assert set(spec["components"]["schemas"]["ErrorCode"]["enum"]) == set(ERRORS_BY_CODE)
