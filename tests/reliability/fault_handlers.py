"""Handlers the fault tests run inside a real pod (runtime hooks active)."""

import hashlib
import os
import time

BLOCK = 1024 * 1024


def write(payload: dict) -> dict:
    """Write ``mib`` MiB of ``fill`` bytes, pausing between megabytes so a fault can land."""
    block = payload["fill"].encode() * BLOCK
    digest = hashlib.sha256()
    with open(payload["path"], "wb") as f:
        for _ in range(payload["mib"]):
            f.write(block)
            digest.update(block)
            time.sleep(payload.get("pause", 0))
    return {"sha256": digest.hexdigest()}


def read(payload: dict) -> dict:
    digest = hashlib.sha256()
    size = 0
    with open(payload["path"], "rb") as f:
        while chunk := f.read(BLOCK):
            digest.update(chunk)
            size += len(chunk)
    return {"sha256": digest.hexdigest(), "size": size}


def exists(payload: dict) -> dict:
    return {"exists": os.path.exists(payload["path"])}


def load_or_start_fresh(payload: dict) -> dict:
    try:
        with open(payload["path"]) as f:
            return {"loaded": f.read()}
    except FileNotFoundError:
        return {"fresh": True}


def handle(payload: dict) -> dict:
    """One entry point so a single long-lived pod serves every step of a test."""
    operations = {
        "write": write,
        "read": read,
        "exists": exists,
        "load_or_start_fresh": load_or_start_fresh,
    }
    return operations[payload.pop("op")](payload)
