"""Weights from one mount, loaded once per pod; answers cached per input on another mount."""

import hashlib
import json


class Inference:
    def __init__(self) -> None:
        self.weights: bytes | None = None

    def process(self, payload: dict) -> dict:
        if self.weights is None:
            try:
                with open("/state/weights/model.bin", "rb") as f:
                    self.weights = f.read()
            except FileNotFoundError:
                self.weights = b""
        key = hashlib.sha256(json.dumps(payload["input"]).encode()).hexdigest()[:16]
        path = f"/state/cache/{key}.json"
        try:
            with open(path) as f:
                return {**payload, **json.load(f), "cached": True}
        except FileNotFoundError:
            pass
        result = {"score": len(self.weights) + len(json.dumps(payload["input"]))}
        with open(path, "w") as f:
            json.dump(result, f)
        return {**payload, **result, "cached": False}
