"""Built-in ``ask_human``: the agent puts a question to a person and waits for the answer.

The tool never runs as a function. The agent loop recognises the call, stops,
and the runner pauses the step (``core.machine.pause_step``): the conversation
is kept, the runner lets go of the step, and the answer, whenever it comes,
goes back to the model as this call's result when the step resumes.
"""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from tributary_agent_runner.tools.registry import Tool, ToolError
from tributary_shared.core.events import (
    INPUT_CHOICE_MAX_CHARS,
    INPUT_CHOICES_MAX,
    INPUT_QUESTION_MAX_CHARS,
)

__all__ = ["ASK_HUMAN", "AskHumanArgs", "ask_human_tool"]

ASK_HUMAN = "ask_human"

Choice = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=INPUT_CHOICE_MAX_CHARS)
]


class AskHumanArgs(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        min_length=1,
        max_length=INPUT_QUESTION_MAX_CHARS,
        description="The question, self-contained: the person sees nothing else of the task.",
    )
    choices: list[Choice] | None = Field(
        default=None,
        min_length=2,
        max_length=INPUT_CHOICES_MAX,
        description="The answers the person may pick from; omit it for a free-text answer.",
    )


async def _never_runs(args: AskHumanArgs) -> str:
    # The agent loop answers this call by pausing the step; reaching here is a bug.
    raise ToolError("ask_human is answered by a person, not run")


ask_human_tool: Tool[AskHumanArgs] = Tool(
    name=ASK_HUMAN,
    description="Ask a person a question when the step cannot go on without a decision or "
    "a fact only they have. The step waits (possibly for long) until they answer; the "
    "answer comes back as this call's result.",
    args_model=AskHumanArgs,
    run=_never_runs,
)
