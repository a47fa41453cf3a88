"""Passwords out of everything bneck prints, logs or stores.

A URL is read by two rules below and by the library that defines database URLs (SQLAlchemy's
``make_url``). Where both readings agree, the library renders it (``hide_password``, secret query values
hidden); where they differ (SQLAlchemy ends a password at its first ``@``) or the library cannot read
it (``redis://``, ``amqp://``...), every span either reading calls secret is replaced by ``***``:

* userinfo: from the first ``:`` after ``scheme://`` (the user may be empty) to the *last* ``@`` of
  the URL, so a raw ``@``, ``/``, ``?`` or ``#`` in the password is hidden with it
  (``mysql://u:pa@ss@db/x`` -> ``mysql://u:***@db/x``). A query value holding an ``@`` makes it hide
  more than the password, never less.
* query: the value of every key that names a secret (``password``, ``sslpassword``, ``token``...),
  as libpq and SQLAlchemy accept ``postgresql://db/x?password=...``.

Free text (error messages, tracebacks, log records, ``--cfg job``) has every ``scheme://...`` token
redacted that way, plus every password :func:`remember` was told about, replaced wherever it appears
(a password with a space or a quote ends a token early; the literal catches the rest). Passwords
shorter than ``MIN_LITERAL`` characters are left to the URL rules: replacing one letter everywhere
would garble the output.
"""
from __future__ import annotations

import re
from urllib.parse import quote, unquote

HIDDEN = "***"
MIN_LITERAL = 4
# A query or key=value parameter whose value is a secret (password, sslpassword, passwd, pwd, token...).
_SECRET_KEY = re.compile(r"(pass(word|wd|phrase)?|pwd|secret|token|api_?key)$", re.I)
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*")
# Trailing punctuation is the sentence's ("in postgresql://u:***@db/x; ..."), not the URL's.
_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://(?:[^\s'\"<>`]*[^\s'\"<>`.,;:!)\]}])?")
# key=value outside a URL, as in a libpq DSN ("host=db password=x") or a logged query string.
_PAIR_IN_TEXT = re.compile(r"(?<![\w*])([\w.-]*(?:pass(?:word|wd|phrase)?|pwd|secret|token|api_?key)=)(?!\*\*\*)"
                           r"([^\s&;'\"]*[^\s&;'\".,:!)\]}]|[^\s&;'\"]+)", re.I)

_PARAM = re.compile(r"(^|[&;?])([^=&;#?]+)=([^&;#]*)")
_known: set[str] = set()


def redact(text: str) -> str:
    """``text`` with the password of every URL in it, and every remembered password, hidden."""
    text = str(text)
    for secret in sorted(_known, key=len, reverse=True):
        text = text.replace(secret, HIDDEN)
    text = _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)
    return _PAIR_IN_TEXT.sub(lambda m: m.group(1) + HIDDEN, text)


def redact_url(url: str) -> str:
    """``url`` with its password hidden, in the userinfo and in secret query parameters."""
    scheme, sep, rest = str(url).partition("://")
    if not sep or not _SCHEME.fullmatch(scheme):
        return url
    spans, password, keys = _secret_spans(rest)
    if not spans:
        return url  # nothing to hide: as written, not as a library would render it
    try:
        from sqlalchemy.engine import make_url

        parsed = make_url(url)
        agrees = (parsed.drivername == scheme and parsed.password == (None if password is None else unquote(password))
                  and {k for k in parsed.query if _SECRET_KEY.search(k)} == keys)
    except Exception:  # noqa: BLE001 -- not a URL SQLAlchemy reads (or it is missing): the rules alone
        agrees = False
    if agrees:
        query = {k: HIDDEN if _SECRET_KEY.search(k) else v for k, v in parsed.query.items()}
        return parsed.set(query=query).render_as_string(hide_password=True).replace(quote(HIDDEN, safe=""), HIDDEN)
    # The library reads another structure (an '@' in the password, say): hide all either reading calls secret.
    out, last = [], 0
    for start, end in spans:
        out += [rest[last:start], HIDDEN]
        last = end
    return f"{scheme}://{''.join(out)}{rest[last:]}"


def password_of(url: str) -> str | None:
    """The password in ``url``'s userinfo, as written (None: none there)."""
    scheme, sep, rest = str(url).partition("://")
    split = _userinfo(rest) if sep and _SCHEME.fullmatch(scheme) else None
    return split[1] if split else None


def remember(url) -> None:
    """Hide the passwords of ``url`` wherever they appear from now on: as written, percent-decoded and
    percent-encoded (a password with a space or a quote ends a URL found in free text early)."""
    url = str(url)
    secrets = [password_of(url)] + [v for k, v in _query_pairs(url.partition("://")[2]) if _SECRET_KEY.search(k)]
    for s in filter(None, secrets):
        for form in {s, unquote(s), quote(s, safe=""), quote(unquote(s), safe="")}:
            if len(form) >= MIN_LITERAL:
                _known.add(form)


def _userinfo(rest: str) -> tuple[str, str, str] | None:
    """(user, password, what follows the ``@``) of the part after ``scheme://``, or None: no password."""
    at = rest.rfind("@")
    if at < 0:
        return None
    user, colon, password = rest[:at].partition(":")
    if not colon or "/" in user or "?" in user or "#" in user:
        return None  # no password, or the '@' lies in a path or query (sqlite:///a@b.db)
    return user, password, rest[at + 1:]


def _query_pairs(rest: str) -> list[tuple[str, str]]:
    """(key, value) of each parameter after the first ``?`` of the part after ``scheme://``."""
    return [(m.group(2), m.group(3)) for m in _PARAM.finditer(rest.partition("?")[2])]


def _secret_spans(rest: str) -> tuple[list[tuple[int, int]], str | None, set[str]]:
    """The merged (start, end) spans of ``rest`` (the part after ``scheme://``) that hold a secret, the
    userinfo password, and the secret query keys. The query is read both from the first ``?`` and from
    the first ``?`` after the userinfo, as a ``?`` may sit in either the password or the query."""
    spans, keys = [], set()
    split = _userinfo(rest)
    if split:
        start = len(split[0]) + 1
        spans.append((start, start + len(split[1])))
    for origin in {rest.find("?"), rest.find("?", len(rest) - len(split[2])) if split else -1} - {-1}:
        for m in _PARAM.finditer(rest[origin + 1:]):
            if _SECRET_KEY.search(m.group(2)):
                keys.add(m.group(2))
                spans.append((origin + 1 + m.start(3), origin + 1 + m.end(3)))
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged, split[1] if split else None, keys


def guard_process() -> None:
    """Redact what this process prints without going through bneck's own messages: the traceback of a
    crash and every log record (Optuna's, SQLAlchemy's), message and exception text alike."""
    import logging
    import sys
    import traceback

    if getattr(sys.excepthook, "redacting", False):
        return

    def excepthook(kind, value, tb):
        sys.stderr.write(redact("".join(traceback.format_exception(kind, value, tb))))

    excepthook.redacting = True
    sys.excepthook = excepthook
    make_record = logging.getLogRecordFactory()

    def record(*args, **kwargs):
        r = make_record(*args, **kwargs)
        try:
            r.msg, r.args = redact(r.getMessage()), ()
        except Exception:  # noqa: BLE001 -- a bad format string: logging reports it when the record is emitted
            r.msg = redact(str(r.msg))
        if r.exc_info and not r.exc_text:
            r.exc_text = redact("".join(traceback.format_exception(*r.exc_info)).rstrip("\n"))
        return r

    logging.setLogRecordFactory(record)
