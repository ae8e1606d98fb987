"""One LLM client layer over the ``openai`` SDK, shared by every service."""

from tributary_shared.runtime.llm.client import Completion, LLMClient, Role, ToolCall

__all__ = ["Completion", "LLMClient", "Role", "ToolCall"]
