"""A chat agent that remembers the conversation in /state/history.json.

The handler is plain Python file I/O; the runtime sends it to whichever
backend the mount is configured with. The "LLM" is a stub so the example
runs anywhere.
"""

import json


def fake_llm(history: list[dict[str, str]]) -> str:
    turns = sum(1 for message in history if message["role"] == "user")
    return f"You said {history[-1]['content']!r}. That is turn {turns} of our conversation."


def process(state: dict) -> dict:
    try:
        with open("/state/history.json") as f:
            history = json.load(f)
    except FileNotFoundError:
        history = []

    history.append({"role": "user", "content": state["prompt"]})
    response = fake_llm(history)
    history.append({"role": "assistant", "content": response})

    with open("/state/history.json", "w") as f:
        json.dump(history, f)

    state["response"] = response
    state["turn"] = len(history) // 2
    return state
