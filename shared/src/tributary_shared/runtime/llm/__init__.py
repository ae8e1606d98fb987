"""One LLM client layer over the ``openai`` SDK, shared by every service."""

from tributary_shared.runtime.llm.client import LLMClient
from tributary_shared.runtime.llm.types import Completion, Message, Role, ToolCall

__all__ = ["Completion", "LLMClient", "Message", "Role", "ToolCall"]
