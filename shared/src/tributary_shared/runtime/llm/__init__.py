"""One LLM client layer over the ``openai`` SDK, shared by every service."""

from tributary_shared.core.completions import CallContext, Completion, Message, Role, ToolCall
from tributary_shared.runtime.llm.client import LLMClient

__all__ = ["CallContext", "Completion", "LLMClient", "Message", "Role", "ToolCall"]
