"""The Jinja2 environment over templates/.

JSON templates are rendered to text, parsed (so a template bug fails loudly here, not in a
user's project) and returned as Python values; the caller serializes them with
:func:`panorama_cli.project.manifests.dumps`. Values are inserted with ``| tojson`` in templates.
"""

from __future__ import annotations

import logging
from functools import cache
from typing import TYPE_CHECKING, Any

from panorama_cli.project.manifests import loads
from panorama_cli.resources import data_dir

if TYPE_CHECKING:
    import jinja2

log = logging.getLogger(__name__)


@cache
def _environment() -> jinja2.Environment:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(data_dir("templates"))),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        autoescape=False,
    )


def render_text(template: str, **context: Any) -> str:
    """Render ``template`` (a path under templates/) with ``context``."""
    log.debug("render %s", template)
    return str(_environment().get_template(template).render(**context))


def render_json(template: str, **context: Any) -> Any:
    """Render a JSON template and parse it (key order kept)."""
    return loads(render_text(template, **context), f"template {template}")
