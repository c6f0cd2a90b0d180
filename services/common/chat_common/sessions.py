"""The browser's session: a signed, HttpOnly cookie holding a random session id.

It is not a sign-in. It lets the services tell one browser from another, so that a name
held by a present session is refused to everyone else (SECURITY.md). Flask's own session
cookie does the signing, with ``SESSION_SECRET``, which ingest and stream must share;
without a secret there are no sessions and names are not held.
"""

import secrets

from flask import Flask, current_app, session
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer

COOKIE_NAME = "chat_session"


class SignedCookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, with the signer made once per process rather than
    once per request (Flask builds a new one for every request; the key never changes)."""

    def __init__(self) -> None:
        self._serializer: URLSafeTimedSerializer | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        if self._serializer is None:
            self._serializer = super().get_signing_serializer(app)
        return self._serializer


def init_sessions(app: Flask, secret: str, secure_cookie: bool) -> None:
    if not secret:
        return
    app.secret_key = secret
    app.session_interface = SignedCookieSessions()
    app.config.update(
        SESSION_COOKIE_NAME=COOKIE_NAME,
        SESSION_COOKIE_HTTPONLY=True,  # scripts on the page never see it
        SESSION_COOKIE_SAMESITE="Strict",  # never sent with another site's requests
        SESSION_COOKIE_SECURE=secure_cookie,  # HTTPS only, behind a TLS ingress
    )


def session_id() -> str | None:
    """This request's session id, or None (no cookie, a forged one, or sessions off)."""
    sid = session.get("sid")
    return sid if isinstance(sid, str) else None


def start_session() -> str | None:
    """This request's session id; a new one, sent back as a cookie, if it had none.
    None when sessions are off."""
    if not current_app.secret_key:
        return None
    sid = session_id()
    if sid is None:
        sid = session["sid"] = secrets.token_urlsafe(18)
    return sid
