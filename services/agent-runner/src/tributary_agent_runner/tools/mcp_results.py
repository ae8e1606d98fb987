"""Turning an MCP tool result into the text a model reads.

Text parts are what the model can use, so they are passed on as they are;
images, audio and binary resources are summarised in one line (the chat
API's tool messages carry text only) rather than dumped as base64, which
would only waste context. The whole is capped like ``fetch_url``'s output.
"""

from __future__ import annotations

import json

from mcp.types import (
    AudioContent,
    CallToolResult,
    ContentBlock,
    ImageContent,
    ResourceLink,
    TextContent,
    TextResourceContents,
)

NO_OUTPUT = "(the tool returned no output)"


def _base64_size(data: str) -> int:
    """Decoded size of base64 text, without decoding it."""
    return len(data) * 3 // 4 - data[-2:].count("=")


def describe_block(block: ContentBlock) -> str:
    """One content part as text: text as is, everything else as a one-line summary."""
    if isinstance(block, TextContent):
        return block.text
    if isinstance(block, ImageContent):
        return f"[image: {block.mime_type}, {_base64_size(block.data)} bytes, not shown]"
    if isinstance(block, AudioContent):
        return f"[audio: {block.mime_type}, {_base64_size(block.data)} bytes, not shown]"
    if isinstance(block, ResourceLink):
        return f"[resource link: {block.name} {block.uri}]"
    resource = block.resource
    if isinstance(resource, TextResourceContents):
        return f"[resource {resource.uri}]\n{resource.text}"
    kind = resource.mime_type or "binary data"
    return f"[resource {resource.uri}: {kind}, {_base64_size(resource.blob)} bytes, not shown]"


def result_text(result: CallToolResult, max_chars: int) -> str:
    """The result's parts joined by newlines, cut at ``max_chars`` with a note saying so.

    When a tool sends only structured content (no parts), that is shown as JSON.
    """
    parts = [describe_block(block) for block in result.content]
    if not parts and result.structured_content is not None:
        parts.append(json.dumps(result.structured_content, ensure_ascii=False, default=str))
    text = "\n".join(parts).strip() or NO_OUTPUT
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n[... cut at {max_chars} of {len(text)} characters]"
    return text
