"""Backend metadata through extended attributes: revision, URL, content type, TTL."""

import json
import os


def handler(payload: dict) -> dict:
    path = f"/state/media/{payload['name']}"
    with open(path, "w") as f:
        json.dump(payload.get("report", {}), f)

    os.setxattr(path, "user.asya.content_type", b"application/json")
    attrs = {name: os.getxattr(path, name).decode() for name in os.listxattr(path)}
    return {"path": path, "attributes": attrs}
