"""A page open as the server sees it: the page's files, then a websocket session running the Studio once.

What a browser asks of the Streamlit server to open the Studio, without the
browser's own work (compiling the JavaScript, drawing): ``GET /`` and the
scripts and styles it names, then a websocket to ``/_stcore/stream`` that asks
for the first script run (Streamlit's ``rerun_script`` message) and reads the
server's messages until the run has sent the Prompt box and finished. Used by
``bench/bench_load.py`` next to the browser tabs, whose figures on a 2-core
machine are mostly the browser's.
"""

from __future__ import annotations

import asyncio
import re
import time
from typing import Any
from urllib.parse import urljoin, urlsplit

ASSET = re.compile(r'(?:src|href)="(\./static/[^"]+\.(?:js|css))"')


async def server_open(app_url: str, client: Any, assets: bool = True) -> dict[str, float]:
    """Seconds for the page (``html``), its files (``assets``), the first script run (``script``).

    ``total`` is a first visit; ``returning`` leaves out the files, which the
    server marks immutable for a year (a browser that has been here has them).

    ``client`` is an ``httpx.AsyncClient`` (``max_connections=6`` for a browser's
    behaviour). The run is done when the server has
    sent the Prompt text area and ``script_finished``.
    """
    import websockets
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    started = time.perf_counter()
    html = (await client.get(app_url + "/")).text
    page = time.perf_counter()
    if assets:  # what a first visit fetches (6 connections, like a browser); cached for a year after
        paths = list(dict.fromkeys(ASSET.findall(html)))
        for response in await asyncio.gather(*(client.get(urljoin(app_url + "/", p)) for p in paths)):
            response.raise_for_status()
    files = time.perf_counter()
    host = urlsplit(app_url).netloc
    async with websockets.connect(
        f"ws://{host}/_stcore/stream",
        subprotocols=["streamlit"],  # type: ignore[list-item]
        origin=app_url,  # type: ignore[arg-type]
        max_size=None,
        open_timeout=120,
    ) as ws:
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        msg.rerun_script.page_script_hash = ""
        await ws.send(msg.SerializeToString())
        prompt = False
        while True:
            raw = await ws.recv()
            if not isinstance(raw, bytes):
                continue
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
                element = fwd.delta.new_element
                if element.WhichOneof("type") == "text_area" and element.text_area.label == "Prompt":
                    prompt = True
            elif kind == "script_finished" and fwd.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                if not prompt:
                    raise RuntimeError("the first script run ended without the Prompt box")
                break
    ended = time.perf_counter()
    return {
        "html": page - started,
        "assets": files - page,
        "script": ended - files,
        "returning": (page - started) + (ended - files),  # the files in the browser's cache
        "total": ended - started,
    }
