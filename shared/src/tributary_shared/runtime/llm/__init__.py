"""One LLM client layer over the ``openai`` SDK, shared by every service."""

from tributary_shared.core.completions import Completion, Message, Role, ToolCall
from tributary_shared.runtime.llm.client import LLMClient

__all__ = ["Completion", "LLMClient", "Message", "Role", "ToolCall"]
