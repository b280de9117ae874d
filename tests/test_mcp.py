"""The MCP server (`python app.py --mcp`): a second in-process app with Gradio's MCP server on,
listed and called through the `mcp` package's own client over streamable HTTP on loopback."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from xsam_core.tasks import TASKS

mcp = pytest.importorskip("mcp")
from mcp import ClientSession  # noqa: E402
from mcp.client.streamable_http import streamable_http_client  # noqa: E402

SCENE = Path(__file__).resolve().parents[1] / "assets" / "examples" / "shapes-8.png"  # 220×180


class Teacher:
    """The reference model (random weights) answering "Sure, <SEG>." so that masks come back."""

    def __init__(self, predictor):
        self.predictor = predictor

    def __getattr__(self, name):
        return getattr(self.predictor, name)

    def predict(self, *args, **kwargs):
        return self.predictor.predict(*args, force_answer="Sure, <SEG>.", **kwargs)


@pytest.fixture(scope="module")
def mcp_url(predictor):
    from app import build_demo, launch_options

    demo = build_demo(Teacher(predictor))
    _, url, _ = demo.launch(prevent_thread_lock=True, quiet=True, mcp_server=True, **launch_options())
    yield url.rstrip("/") + "/gradio_api/mcp/"
    demo.close()


def session_call(url: str, fn):
    async def run():
        async with streamable_http_client(url) as (read, write, _), ClientSession(read, write) as session:
            await session.initialize()
            return await fn(session)

    return asyncio.run(run())


def test_the_tools_are_the_api_endpoints_described_for_agents(mcp_url):
    tools = session_call(mcp_url, lambda s: s.list_tools()).tools
    by_name = {t.name: t for t in tools}
    assert list(by_name) == ["segment", *TASKS]  # the page's own events are no tools
    segment = by_name["segment"]
    assert "picked from the request" in segment.description and "COCO RLE" in segment.description
    props = segment.inputSchema["properties"]
    assert list(props) == ["image", "text", "prompts", "threshold", "history"]
    assert "info.turn" in props["history"]["description"]
    assert "URL" in props["image"]["description"] and props["image"]["type"] == "string"
    assert "a class list" in props["text"]["description"]
    assert '"kind": "point"' in props["prompts"]["description"]
    assert "Exactly one region" in by_name["intseg"].inputSchema["properties"]["prompts"]["description"]


def test_an_agent_segments_through_the_segment_tool(mcp_url):
    image = "data:image/png;base64," + base64.b64encode(SCENE.read_bytes()).decode()
    args = {"image": image, "text": "segment the red circle", "prompts": "[]", "threshold": 0.5}
    steps = []

    async def progress(step, total, message):
        steps.append(message)

    # With a progress token Gradio streams the queue's progress and returns one content per output.
    result = session_call(mcp_url, lambda s: s.call_tool("segment", args, progress_callback=progress))
    assert not result.isError, result.content
    overlay, url, answer, found = result.content
    assert overlay.type == "image" and overlay.mimeType == "image/png"
    assert url.text.startswith("Image URL: http://127.0.0.1") and url.text.endswith("xsam-refseg-overlay.png")
    assert answer.text == "Sure, <SEG> ."  # the forced answer as the reference tokenizer decodes it
    assert "'task': 'refseg'" in found.text and "'counts'" in found.text
    assert "'ran_as': {'task': 'refseg', 'title': 'Referring segmentation'" in found.text
    assert steps

    # Without one (Gradio 6.31) the three outputs come back as one text: still all there.
    (text,) = session_call(mcp_url, lambda s: s.call_tool("segment", args)).content
    assert "xsam-refseg-overlay.png" in text.text and "'ran_as': {'task': 'refseg'" in text.text


def test_a_refused_request_is_a_tool_error_with_the_message(mcp_url):
    image = "data:image/png;base64," + base64.b64encode(SCENE.read_bytes()).decode()
    args = {"image": image, "text": "", "prompts": "[{kind: point", "threshold": 0.5}
    result = session_call(mcp_url, lambda s: s.call_tool("segment", args))
    assert result.isError and "not valid JSON" in result.content[0].text
