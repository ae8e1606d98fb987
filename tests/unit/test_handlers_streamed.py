"""The handler suite (``test_handlers``) again, with every LLM answer streamed:
the pipeline behaves the same whichever way the model answers."""

from tests.support.streamed import every_llm_call_streamed
from tests.unit.test_handlers import *  # noqa: F403

__all__ = ["every_llm_call_streamed"]
