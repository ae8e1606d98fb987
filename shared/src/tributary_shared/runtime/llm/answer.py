"""What an LLM endpoint answered, whether in one body or as a stream of chunks.

Both ways of asking (``TRIBUTARY_LLM_STREAM``) end in one ``Answer``, from which
the client makes the call's ``Completion``: a streamed answer is the same
completion as the answer in one body. ``StreamedAnswer`` assembles the chunks
as they arrive: the text in pieces, each tool call from its deltas (matched by
their ``index``: the first carries the id and name, the arguments come in
pieces), the finish reason, and the usage the last chunk carries when asked for
(``stream_options.include_usage``).

The client iterates the SDK's raw stream of chunks rather than its
``chat.completions.stream()`` helper: the helper raises its own errors for a
truncated or filtered answer (the error table's ``check_finish`` decides those,
as for an answer in one body) and re-copies its whole snapshot on every chunk.

Pure: it reads the SDK's objects and does no I/O.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from tributary_shared.core.completions import ToolCall

__all__ = ["Answer", "StreamedAnswer", "answer_of"]


@dataclass(frozen=True)
class Answer:
    """The parts of the first choice of an answer that a completion is made of."""

    has_choice: bool
    """False when the endpoint answered with no choices at all."""
    content: str | None = None
    refusal: str | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    finish_reason: str | None = None
    model: str | None = None
    """The model the endpoint says served the answer (None: it did not say)."""
    prompt_tokens: int = 0
    completion_tokens: int = 0


def answer_of(response: Any) -> Answer:
    """The answer in a ``chat.completion`` object (the SDK's ``ChatCompletion``)."""
    usage = response.usage
    prompt_tokens = usage.prompt_tokens if usage else 0
    completion_tokens = usage.completion_tokens if usage else 0
    if not response.choices:
        return Answer(
            has_choice=False,
            model=response.model,
            prompt_tokens=prompt_tokens,
            completion_tokens=completion_tokens,
        )
    choice = response.choices[0]
    return Answer(
        has_choice=True,
        content=choice.message.content,
        refusal=getattr(choice.message, "refusal", None),
        tool_calls=tuple(
            ToolCall(id=call.id, name=call.function.name, arguments=call.function.arguments)
            for call in choice.message.tool_calls or ()
            if call.type == "function"
        ),
        finish_reason=choice.finish_reason,
        model=response.model,
        prompt_tokens=prompt_tokens,
        completion_tokens=completion_tokens,
    )


@dataclass
class _ToolCallParts:
    id: str | None = None
    type: str | None = None
    name: list[str] = field(default_factory=list)
    arguments: list[str] = field(default_factory=list)


class StreamedAnswer:
    """Assembles the ``chat.completion.chunk`` objects of one streamed answer."""

    def __init__(self) -> None:
        self._has_choice = False
        self._content: list[str] = []
        self._refusal: list[str] = []
        self._calls: dict[int, _ToolCallParts] = {}
        self._finish_reason: str | None = None
        self._model: str | None = None
        self._prompt_tokens = 0
        self._completion_tokens = 0

    @property
    def started(self) -> bool:
        """Whether the model has produced anything yet (text, a refusal or a tool call)."""
        return bool(self._content or self._refusal or self._calls)

    @property
    def finished(self) -> bool:
        """Whether the answer's finish reason has arrived (a whole answer has one)."""
        return self._finish_reason is not None

    def add(self, chunk: Any) -> str | None:
        """Take one chunk; returns the piece of text it carries, if any."""
        if chunk.model:
            self._model = self._model or chunk.model
        if chunk.usage is not None:
            self._prompt_tokens = chunk.usage.prompt_tokens
            self._completion_tokens = chunk.usage.completion_tokens
        text: str | None = None
        for choice in chunk.choices:
            if choice.index != 0:
                continue
            self._has_choice = True
            delta = choice.delta
            if delta.content:
                text = delta.content
                self._content.append(text)
            if getattr(delta, "refusal", None):
                self._refusal.append(delta.refusal)
            for call in delta.tool_calls or ():
                self._add_call(call)
            if choice.finish_reason is not None:
                self._finish_reason = choice.finish_reason
        return text

    def _add_call(self, delta: Any) -> None:
        parts = self._calls.setdefault(delta.index, _ToolCallParts())
        if delta.id and parts.id is None:
            parts.id = delta.id
        if delta.type and parts.type is None:
            parts.type = delta.type
        function = delta.function
        if function is not None:
            if function.name:
                parts.name.append(function.name)
            if function.arguments:
                parts.arguments.append(function.arguments)

    def answer(self) -> Answer:
        """The answer as it stands (call once the stream has ended)."""
        return Answer(
            has_choice=self._has_choice,
            # Content that never came stays None, as in an answer in one body.
            content="".join(self._content) if self._content else None,
            refusal="".join(self._refusal) if self._refusal else None,
            tool_calls=tuple(
                ToolCall(
                    id=parts.id or "", name="".join(parts.name), arguments="".join(parts.arguments)
                )
                for _, parts in sorted(self._calls.items())
                if parts.type in (None, "function")
            ),
            finish_reason=self._finish_reason,
            model=self._model,
            prompt_tokens=self._prompt_tokens,
            completion_tokens=self._completion_tokens,
        )
