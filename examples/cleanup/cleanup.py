"""List a state directory and delete the temporary files in it."""

import os


def seed(payload: dict) -> dict:
    """Create some files to clean up (for the example run)."""
    for name in payload["files"]:
        with open(f"/state/cache/{name}", "w") as f:
            f.write(name)
    return {"created": sorted(os.listdir("/state/cache/"))}


async def cleanup_handler(payload: dict):
    deleted = []
    for filename in sorted(os.listdir("/state/cache/")):
        if filename.startswith("temp-"):
            os.remove(f"/state/cache/{filename}")
            deleted.append(filename)
    payload["deleted_files"] = deleted
    payload["remaining"] = sorted(os.listdir("/state/cache/"))
    yield payload
