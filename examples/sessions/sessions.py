"""One conversation per session_id, each in its own state file."""

import json
import os


async def fake_llm(messages: list[dict[str, str]]) -> str:
    return f"echo: {messages[-1]['content']} ({len(messages)} messages so far)"


async def conversational_agent(payload: dict):
    session_id = payload["session_id"]
    state_path = f"/state/sessions/{session_id}.json"

    if os.path.exists(state_path):
        with open(state_path) as f:
            conversation = json.load(f)
    else:
        conversation = {"messages": []}

    conversation["messages"].append({"role": "user", "content": payload["message"]})
    response = await fake_llm(conversation["messages"])
    conversation["messages"].append({"role": "assistant", "content": response})

    with open(state_path, "w") as f:
        json.dump(conversation, f)

    payload["response"] = response
    payload["messages"] = len(conversation["messages"])
    yield payload
