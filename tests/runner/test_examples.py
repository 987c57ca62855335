"""Every runnable example, through ``asya-state run`` on the embedded local-directory backend."""

from __future__ import annotations

import json
from pathlib import Path

from .helpers import EXAMPLES, asya_run


def test_chat_agent_state_persists_across_runs(tmp_path: Path) -> None:
    first = asya_run(
        "agent.process",
        [{"prompt": "hi"}, {"prompt": "again"}],
        handler_path=EXAMPLES / "chat-agent",
        state_dir=tmp_path,
    )
    assert first.status == 0, first.stderr
    assert [o["turn"] for o in first.outputs] == [1, 2]
    second = asya_run(
        "agent.process",
        [{"prompt": "back"}],
        handler_path=EXAMPLES / "chat-agent",
        state_dir=tmp_path,
    )
    assert second.status == 0, second.stderr
    assert second.outputs[0]["turn"] == 3, "the second run continues the stored conversation"
    history = json.loads((tmp_path / "state" / "history.json").read_text())
    assert [m["content"] for m in history if m["role"] == "user"] == ["hi", "again", "back"]


def test_sessions_are_kept_apart(tmp_path: Path) -> None:
    messages = [
        {"session_id": "a", "message": "one"},
        {"session_id": "b", "message": "uno"},
        {"session_id": "a", "message": "two"},
    ]
    result = asya_run(
        "sessions.conversational_agent",
        messages,
        handler_path=EXAMPLES / "sessions",
        state_dir=tmp_path,
    )
    assert result.status == 0, result.stderr
    assert [o["messages"] for o in result.outputs] == [2, 2, 4]
    assert sorted(p.name for p in (tmp_path / "state" / "sessions").iterdir()) == [
        "a.json",
        "b.json",
    ]


def test_result_cache_hits_on_the_second_call(tmp_path: Path) -> None:
    result = asya_run(
        "cache.cached_computation",
        [{"input": "x"}, {"input": "x"}, {"input": "y"}],
        handler_path=EXAMPLES / "result-cache",
        state_dir=tmp_path,
    )
    assert result.status == 0, result.stderr
    assert [o["cached"] for o in result.outputs] == [False, True, False]
    assert result.outputs[0]["result"] == result.outputs[1]["result"]


def test_cleanup_lists_and_removes(tmp_path: Path) -> None:
    seeded = asya_run(
        "cleanup.seed",
        [{"files": ["temp-1", "keep.json", "temp-2"]}],
        handler_path=EXAMPLES / "cleanup",
        state_dir=tmp_path,
    )
    assert seeded.status == 0, seeded.stderr
    result = asya_run(
        "cleanup.cleanup_handler", [{}], handler_path=EXAMPLES / "cleanup", state_dir=tmp_path
    )
    assert result.status == 0, result.stderr
    assert result.outputs[0]["deleted_files"] == ["temp-1", "temp-2"]
    assert result.outputs[0]["remaining"] == ["keep.json"]


def test_model_weights_load_once_per_pod(tmp_path: Path) -> None:
    published = asya_run(
        "inference.publish",
        [{"size_mib": 6}],
        handler_path=EXAMPLES / "model-weights",
        mounts=["/state/weights=fs-buffered-lww,write=passthrough"],
        state_dir=tmp_path,
    )
    assert published.status == 0, published.stderr
    result = asya_run(
        "inference.Inference.process",
        [{"prompt": "a"}, {"prompt": "b"}],
        handler_path=EXAMPLES / "model-weights",
        mounts=["/state/weights"],
        state_dir=tmp_path,
    )
    assert result.status == 0, result.stderr
    assert [o["weights_loaded_times"] for o in result.outputs] == [1, 1]
    assert result.outputs[0]["weights_sha256"] == published.outputs[0]["sha256"]


def test_xattrs_expose_revision_url_and_content_type(tmp_path: Path) -> None:
    result = asya_run(
        "report.handler",
        [{"name": "r.json", "report": {"ok": True}}],
        handler_path=EXAMPLES / "xattrs",
        state_dir=tmp_path,
    )
    assert result.status == 0, result.stderr
    attrs = result.outputs[0]["attributes"]
    assert attrs["user.asya.content_type"] == "application/json"
    assert attrs["user.asya.url"].startswith("file://")
    assert attrs["user.asya.etag"]
