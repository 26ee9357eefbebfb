"""serve's web page (``GET /``): templates/serve/index.html.j2 rendered with the graph laid out.

The application graph is drawn as inline SVG in layers by kind (cameras and parameters, then
business logic, then models and HDMI outputs), one box per node, edges as arrows, and dashed
arrows from a business-logic node to each model it has called (shown once it has). Everything
the page needs is in the one HTML document (no CDN, no other files): the streams are
``<img class="stream">`` over ``/streams/<id>.mjpeg``, the tables are filled by a few lines of
vanilla JS from ``/api/status`` (every second) and ``/api/clips`` (every 5 s). Its one
``<script>`` and one ``<style>`` carry the response's CSP nonce; nothing else is inline (no
``style=`` attribute, no event handler attribute). :func:`render_login` is the login form
shown instead while the browser has no session (:mod:`.auth`).
"""

from __future__ import annotations

import logging
from typing import Any

log = logging.getLogger(__name__)

#: Layer (column) of each node kind, left to right.
LAYER = {"camera": 0, "parameter": 0, "business": 1, "other": 1, "model": 2, "hdmi": 2}
#: Fill colour of each node kind.
COLOR = {
    "camera": "#4e79a7",
    "parameter": "#9c755f",
    "business": "#f28e2b",
    "other": "#bab0ac",
    "model": "#59a14f",
    "hdmi": "#b07aa1",
}
BOX_W, BOX_H, GAP_X, GAP_Y, MARGIN = 170, 40, 90, 22, 16
#: Above this many streams the page polls JPEG snapshots instead of holding one MJPEG
#: connection per stream (browsers allow 6 connections per host over HTTP/1.1).
MAX_MJPEG = 4


def layout(graph: dict[str, Any]) -> dict[str, Any]:
    """Boxes and arrows of ``graph`` (:meth:`ServeView.graph`'s shape), in SVG pixels.

    Returns:
        ``{"width", "height", "nodes": [{"name", "kind", "package", "x", "y", "w", "h",
        "color"}], "edges": [{"producer", "consumer", "x1", "y1", "x2", "y2"}], "calls": [the
        same as edges]}``; an edge or call naming an unknown node is left out.
    """
    columns: dict[int, list[dict[str, Any]]] = {}
    for node in graph.get("nodes", []):
        kind = node.get("kind") if node.get("kind") in LAYER else "other"
        columns.setdefault(LAYER[kind], []).append({**node, "kind": kind})
    boxes: dict[str, dict[str, Any]] = {}
    for layer, nodes in sorted(columns.items()):
        for row, node in enumerate(nodes):
            box = {
                "name": str(node.get("name", "")),
                "kind": node["kind"],
                "package": str(node.get("package") or ""),
                "x": MARGIN + layer * (BOX_W + GAP_X),
                "y": MARGIN + row * (BOX_H + GAP_Y),
                "w": BOX_W,
                "h": BOX_H,
                "color": COLOR[node["kind"]],
            }
            boxes[box["name"]] = box
    edges, calls = _arrows(boxes, graph.get("edges", [])), _arrows(boxes, graph.get("calls", []))
    width = max((b["x"] + b["w"] for b in boxes.values()), default=0) + MARGIN
    height = max((b["y"] + b["h"] for b in boxes.values()), default=0) + MARGIN
    return {
        "width": width,
        "height": height,
        "nodes": list(boxes.values()),
        "edges": edges,
        "calls": calls,
    }


def _arrows(boxes: dict[str, dict[str, Any]], links: list[dict[str, Any]]) -> list[dict[str, Any]]:
    arrows = []
    for link in links:
        a, b = boxes.get(link.get("producer")), boxes.get(link.get("consumer"))
        if a is not None and b is not None:
            arrows.append({"producer": a["name"], "consumer": b["name"], **_ends(a, b)})
    return arrows


def _ends(a: dict[str, Any], b: dict[str, Any]) -> dict[str, float]:
    """Arrow from box a to box b: side to side across layers, bottom to top within one."""
    if b["x"] > a["x"]:
        return {
            "x1": a["x"] + a["w"],
            "y1": a["y"] + a["h"] / 2,
            "x2": b["x"],
            "y2": b["y"] + b["h"] / 2,
        }
    if b["x"] < a["x"]:
        return {
            "x1": a["x"],
            "y1": a["y"] + a["h"] / 2,
            "x2": b["x"] + b["w"],
            "y2": b["y"] + b["h"] / 2,
        }
    down = b["y"] > a["y"]
    return {
        "x1": a["x"] + a["w"] / 2,
        "y1": a["y"] + (a["h"] if down else 0),
        "x2": b["x"] + b["w"] / 2,
        "y2": b["y"] + (0 if down else b["h"]),
    }


def _env() -> Any:
    import jinja2

    from panorama_cli.resources import data_dir

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates") / "serve")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


def render(view: Any, host: str | None = None, nonce: str = "") -> str:
    """The page's HTML for ``view`` (a :class:`~.view.ServeView`); RTSP URLs name ``host``
    (the request's host name: the RTSP server listens where HTTP does) when given; ``nonce``
    is the CSP nonce of its script and style. An RTSP URL with a user (``rtsp://panorama@``)
    is shown with a note that its password is the login token (never the token itself)."""
    streams = [{"id": s, "rtsp": view.rtsp_url(s, host)} for s in view.streams()]
    return (
        _env()
        .get_template("index.html.j2")
        .render(
            graph=layout(view.graph()),
            kinds=COLOR,
            streams=streams,
            rtsp_auth=any("@" in (s["rtsp"] or "") for s in streams),
            mode="mjpeg" if len(streams) <= MAX_MJPEG else "snapshot",
            nonce=nonce,
        )
    )


def render_login(error: str | None, nonce: str = "") -> str:
    """The login page: a form posting the token to ``/login`` (``error`` shown above it)."""
    return _env().get_template("login.html.j2").render(error=error, nonce=nonce)
