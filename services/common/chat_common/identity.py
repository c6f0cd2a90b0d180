"""Who is asking, when a sign-in proxy in front says so (TRUSTED_USER_HEADER; SECURITY.md)."""

from flask import Flask, g, request

from chat_common.errors import ApiError
from chat_common.messages import normalize_user


def require_signed_in(app: Flask, header: str) -> None:
    """Behind an authenticating proxy that names the signed-in user in ``header``: every
    public request must carry it, and it is the user's name (``g.user``) wherever a name
    is used; names sent in bodies or queries are ignored. The operational endpoints stay
    open to probes and scrapers. Only safe when nothing reaches the service around the
    proxy (SECURITY.md)."""

    @app.before_request
    def _signed_in() -> None:
        if request.blueprint == "ops":
            return
        raw = request.headers.get(header, "").strip()
        if not raw:
            raise ApiError(401, "unauthenticated", "Sign in first: this service only answers signed-in people.")
        user = normalize_user(raw)
        if user is None:
            raise ApiError(403, "invalid_identity", "Your sign-in name cannot be used as a chat name "
                           "(1 to 32 printable characters).")
        g.user = user
