"""Where latency is timed: a target's ``ssh://`` URL and its interpreter, checked when settings are read
(torch-free, so a bad value is one line before anything loads; ``measure.remote`` uses them to connect)."""
from __future__ import annotations

import re

from core.errors import UsageError

URL = re.compile(r"ssh://(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9._-]+)"
                 r"(?::(?P<port>\d{1,5}))?/?")


def parse_target(url: str) -> dict | None:
    """None for ``local``; else user, host and port of ``ssh://user@host[:port]``. A bad URL is a
    ``UsageError`` that never repeats a password."""
    if url == "local":
        return None
    if isinstance(url, str) and re.match(r"ssh://[^@/]*:[^@/]*@", url):
        raise UsageError("latency.target holds a password: bneck never takes one; install your public key on the "
                         "target (ssh-copy-id user@host) and pass latency.target=ssh://user@host[:port]")
    m = URL.fullmatch(url) if isinstance(url, str) else None
    if not m or (m["port"] and not 0 < int(m["port"]) < 65536):
        shown = url if isinstance(url, str) and len(url) < 200 else "(that value)"
        raise UsageError(f"latency.target={shown} must be local or ssh://user@host[:port]: pass e.g. "
                         f"latency.target=ssh://pi@raspberrypi.local or latency.target=ssh://me@10.0.0.7:2222")
    return {"user": m["user"], "host": m["host"].strip("[]"), "port": int(m["port"]) if m["port"] else None}


def check_python(python: str) -> str:
    """The target's interpreter: one word (a command or a path; it is quoted for the remote shell)."""
    if not isinstance(python, str) or not python or any(c.isspace() for c in python):
        raise UsageError(f"latency.target_python={python!r} must be an interpreter's command or path without spaces: "
                         f"pass e.g. latency.target_python=python3 or latency.target_python=/home/pi/venv/bin/python")
    return python
