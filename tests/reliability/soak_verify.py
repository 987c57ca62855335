"""Verifies a soak ledger from inside a fresh pod (runtime hooks active)."""

import hashlib
import json


def verify(payload: dict) -> dict:
    mismatched = []
    for path, expected in payload["ledger"].items():
        try:
            with open(path, "rb") as f:
                got = hashlib.sha256(f.read()).hexdigest()
        except FileNotFoundError:
            got = None
        if got != expected:
            mismatched.append(f"{path}: stored {got}, ledger {expected}")
    with open(payload["counter"]) as f:
        counter = json.load(f)["count"]
    return {"mismatched": mismatched, "counter": counter}
