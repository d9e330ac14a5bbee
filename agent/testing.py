"""A scripted chat model for graph tests: ``enqueue`` replies, inspect what it was sent.

langchain_core's fake chat models raise on ``bind_tools``; the graph binds tools every step,
so tests need this small one (llm's ``MockModel.enqueue`` habit). It is a test double for the
*model* only: the graph, the tools, the store and the checkpointer under test are all real.
"""

from __future__ import annotations

import uuid
from collections import deque
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr


class ScriptedChatModel(BaseChatModel):
    """Replays queued replies; ``calls`` records (messages, tool names offered) per invocation."""

    model_config = ConfigDict(arbitrary_types_allowed=True)
    bound_tools: list[str] = Field(default_factory=list)
    _script: Any = PrivateAttr(default=None)
    _calls: Any = PrivateAttr(default=None)

    def model_post_init(self, __context: Any) -> None:
        if self._script is None:
            self._script = deque()
            self._calls = []

    @property
    def _llm_type(self) -> str:
        return "scripted"

    def enqueue(self, content: str = "", tool_calls: list[tuple[str, dict[str, Any]]] | None = None, *,
                error: BaseException | None = None) -> "ScriptedChatModel":
        """Queue one reply: text and/or ``[(tool name, args)]``, or an exception to raise."""
        self._script.append((content, list(tool_calls or []), error))
        return self

    @property
    def calls(self) -> list[dict[str, Any]]:
        return self._calls

    @property
    def pending(self) -> int:
        return len(self._script)

    def bind_tools(self, tools: Any, **kwargs: Any) -> "ScriptedChatModel":
        names = [t["function"]["name"] if isinstance(t, dict) and "function" in t else getattr(t, "name", str(t))
                 for t in tools]
        bound = self.model_copy(update={"bound_tools": names})
        bound._script = self._script  # share the queue and the record with the original
        bound._calls = self._calls
        return bound

    def _generate(self, messages: list[BaseMessage], stop: list[str] | None = None,
                  run_manager: CallbackManagerForLLMRun | None = None, **kwargs: Any) -> ChatResult:
        self._calls.append({"messages": list(messages), "tools": list(self.bound_tools)})
        if not self._script:
            raise AssertionError("ScriptedChatModel: no scripted reply left")
        content, tool_calls, error = self._script.popleft()
        if error is not None:
            raise error
        calls = [{"name": n, "args": a, "id": f"call_{uuid.uuid4().hex[:8]}", "type": "tool_call"}
                 for n, a in tool_calls]
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=content, tool_calls=calls))])


__all__ = ["ScriptedChatModel"]
