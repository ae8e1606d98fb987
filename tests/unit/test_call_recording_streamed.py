"""The call-recording suite (``test_call_recording``) again, with every LLM answer
streamed: the services record the same calls whichever way the model answers."""

from tests.support.streamed import every_llm_call_streamed
from tests.unit.test_call_recording import *  # noqa: F403

__all__ = ["every_llm_call_streamed"]
