"""No secret is ever printed: database passwords out of everything kextlog
writes about itself (errors, the daemon's log and reload lines,
--check-config, status, the state file, tracebacks).

A password can stand in a URL (postgresql://user:PASSWORD@host/db, or
?password=PASSWORD) and, once kextlog has seen the URL, anywhere else a
message quotes it (a driver's error): redact() removes both.  Cheap to
import: no SQLAlchemy.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote

HIDDEN = "***"
# The password of a URL's user information, and a password= parameter (of a
# URL's query or a libpq connection string).
_USERINFO = re.compile(r"(\b[a-z][a-z0-9+.-]*://[^:/?#@\s]*:)[^@\s]*(?=@)", re.IGNORECASE)
_PARAMETER = re.compile(r"(\bpassword=)[^&\s'\"]*", re.IGNORECASE)
# A password this short could be any few letters of a message: it is only
# ever removed where it stands in a URL.
_SHORTEST = 3
_remembered: set[str] = set()


def remember(url: str) -> None:
    """url's password is a secret: from now on redact() removes it from any
    text, as written in the URL and decoded."""
    for pattern in (_USERINFO, _PARAMETER):
        for match in pattern.finditer(url):
            secret = url[match.end(1) : match.end()]
            _remembered.update(text for text in (secret, unquote(secret)) if len(text) >= _SHORTEST)


def redact_all(value: Any) -> Any:
    """value, a string or the lists and dicts of JSON, with redact() applied
    to every string in it (the daemon's state, before it is written)."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redact_all(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redact_all(item) for item in value]
    return value


def redact(text: str) -> str:
    """text with every password it holds as ***: in URLs, password=
    parameters, and every password remember() was told of."""
    text = _USERINFO.sub(rf"\g<1>{HIDDEN}", text)
    text = _PARAMETER.sub(rf"\g<1>{HIDDEN}", text)
    for secret in sorted(_remembered, key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    return text
