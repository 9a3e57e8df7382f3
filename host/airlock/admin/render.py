"""Server-side HTML for the console: ``string.Template`` files in ``templates/``, escaped by default.

Every value put into a template is HTML-escaped (quotes too, so it is safe in attributes) unless it is an
``Html`` (markup this module or a template produced). Guest-controlled text (status reasons, error messages,
sender ids, metadata) therefore can never become markup; ``observability.docs.safe`` also escapes control
characters. Templates are read once and cached.
"""

from __future__ import annotations

import html
import time
from collections.abc import Iterable
from functools import cache
from importlib import resources
from string import Template

from ..observability.docs import safe

__all__ = ["Html", "ago", "attr", "esc", "join", "render"]


class Html(str):
    """Markup that is already safe to insert as it is."""


def esc(value: object, limit: int | None = None) -> Html:
    """``value`` as text, control characters escaped, cut to ``limit`` characters, HTML-escaped."""
    if isinstance(value, Html):
        return value
    return Html(html.escape(safe(str(value), limit), quote=True))


def attr(value: object) -> Html:
    """An attribute value (same escaping as ``esc``)."""
    return esc(value)


def join(parts: Iterable[Html], sep: str = "") -> Html:
    return Html(sep.join(parts))


@cache
def _template(name: str) -> Template:
    text = resources.files("airlock.admin").joinpath("templates", name).read_text(encoding="utf-8")
    return Template(text)


def render(template: str, /, **values: object) -> Html:
    """Template ``templates/<template>`` with ``values`` (escaped unless ``Html``). A missing key raises
    KeyError (a bug in the console, caught by its tests)."""
    escaped = {k: v if isinstance(v, Html) else esc(v) for k, v in values.items()}
    return Html(_template(template).substitute(escaped))


def ago(when: float | None, now: float | None = None) -> str:
    """``when`` (Unix seconds) as "12 s ago", "5 min ago", "3 h ago", or "never"."""
    if when is None:
        return "never"
    delta = max(0, int((now if now is not None else time.time()) - when))
    if delta < 120:
        return f"{delta} s ago"
    if delta < 7200:
        return f"{delta // 60} min ago"
    return f"{delta // 3600} h ago"
