"""JSON for a browser: integers JavaScript would round (record ids,
nanosecond times: beyond 2**53) as strings, and JSON that is safe inside
an HTML document."""

from __future__ import annotations

import json
from typing import Any

# The largest integer a JavaScript number holds exactly (Number.MAX_SAFE_INTEGER).
MAX_SAFE_INTEGER = 2**53 - 1


def browser_safe(value: Any) -> Any:
    """value with every integer beyond +-MAX_SAFE_INTEGER as its decimal text."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int):
        return str(value) if abs(value) > MAX_SAFE_INTEGER else value
    if isinstance(value, dict):
        return {key: browser_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [browser_safe(item) for item in value]
    return value


def dumps(value: Any) -> str:
    """JSON for JavaScript: large integers as strings (browser_safe)."""
    return json.dumps(browser_safe(value), ensure_ascii=False, separators=(",", ":"))


# Characters that could end or confuse a <script> element, or a line in JavaScript.
_SCRIPT_ESCAPES = {
    ord("<"): "\\u003c",
    ord(">"): "\\u003e",
    ord("&"): "\\u0026",
    0x2028: "\\u2028",
    0x2029: "\\u2029",
}


def script_json(value: Any) -> str:
    """dumps() that can stand inside <script type="application/json">:
    no '<', '>' or '&' in it, so '</script>' or '<!--' in a message cannot
    end the element."""
    return dumps(value).translate(_SCRIPT_ESCAPES)
