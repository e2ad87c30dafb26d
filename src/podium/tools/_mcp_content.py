"""MCP results as `ToolOutput`: text blocks joined, images kept as `ToolImage`s (base64 and MIME
type), other content summarised in words; capped at the step's output limit."""

from __future__ import annotations

import json

import mcp_types

from podium.steps.output import with_marker
from podium.tools.base import ToolImage, ToolOutput

Part = str | ToolImage


def result_parts(result: mcp_types.CallToolResult) -> list[Part]:
    parts = [_block_part(block) for block in result.content]
    if not parts and result.structured_content is not None:
        parts = [json.dumps(result.structured_content, ensure_ascii=False)]
    return parts


def resource_parts(result: mcp_types.ReadResourceResult) -> list[Part]:
    return [_contents_part(contents) for contents in result.contents]


def as_text(parts: list[Part]) -> str:
    """The text a text-only caller gets: images said in words where they were."""
    return "\n".join(part if isinstance(part, str) else _image_words(part) for part in parts)


def as_output(parts: list[Part], limit_bytes: int) -> ToolOutput:
    """Text and images; images that would take the output past `limit_bytes` are said in words."""
    text = cap("\n".join(part for part in parts if isinstance(part, str)), limit_bytes)
    room = limit_bytes - len(text.encode())
    images: list[ToolImage] = []
    notes: list[str] = []
    for image in (part for part in parts if isinstance(part, ToolImage)):
        if len(image.data) <= room:
            images.append(image)
            room -= len(image.data)
        else:
            words = _image_words(image)
            notes.append(words.replace("not shown", "left out: over the output limit"))
    return ToolOutput(text="\n".join([text, *notes]) if notes else text, images=tuple(images))


def cap(text: str, limit: int) -> str:
    data = text.encode()
    if len(data) <= limit:
        return text
    kept = data[:limit].decode("utf-8", errors="ignore")
    return with_marker(kept, len(kept.encode()), len(data))


def _image_words(image: ToolImage) -> str:
    return f"[image content: {image.mime_type}, about {len(image.data) * 3 // 4} bytes, not shown]"


def _block_part(block: mcp_types.ContentBlock) -> Part:
    if isinstance(block, mcp_types.TextContent):
        return block.text
    if isinstance(block, mcp_types.ImageContent):
        return ToolImage(data=block.data, mime_type=block.mime_type)
    if isinstance(block, mcp_types.AudioContent):
        size = len(block.data) * 3 // 4
        return f"[audio content: {block.mime_type}, about {size} bytes, not shown]"
    if isinstance(block, mcp_types.ResourceLink):
        return f"[resource link: {block.uri} ({block.name})]"
    return _contents_part(block.resource)


def _contents_part(
    contents: mcp_types.TextResourceContents | mcp_types.BlobResourceContents,
) -> Part:
    if isinstance(contents, mcp_types.TextResourceContents):
        return contents.text
    mime = contents.mime_type or "unknown type"
    if mime.startswith("image/"):
        return ToolImage(data=contents.blob, mime_type=mime)
    return f"[binary resource: {contents.uri} ({mime}), not shown]"
