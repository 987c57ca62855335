"""Model weights loaded once per pod by a class handler, written by streaming.

``publish`` streams a weights file in 1 MiB writes (passthrough mounts send
each write as it happens); ``Inference.process`` loads it on the first
message only and keeps it in memory for the next ones.
"""

import hashlib


def publish(payload: dict) -> dict:
    size_mib = int(payload.get("size_mib", 8))
    digest = hashlib.sha256()
    block = hashlib.sha256(b"weights").digest() * (1024 * 1024 // 32)
    with open("/state/weights/model.bin", "wb") as f:
        for _ in range(size_mib):
            f.write(block)
            digest.update(block)
    return {"published_mib": size_mib, "sha256": digest.hexdigest()}


class Inference:
    def __init__(self) -> None:
        self.weights: bytes | None = None
        self.loads = 0

    async def process(self, payload: dict):
        if self.weights is None:
            with open("/state/weights/model.bin", "rb") as f:
                self.weights = f.read()
            self.loads += 1
        payload["weights_sha256"] = hashlib.sha256(self.weights).hexdigest()
        payload["weights_loaded_times"] = self.loads
        yield payload
