"""The stream's refusals, one factory each: the same code, message and Retry-After wherever
the refusal is raised."""

from chat_common.errors import ApiError

REDIS_RETRY_S = 2
HISTORY_RETRY_S = 2
OPEN_STREAMS_RETRY_S = 10  # as the gateway's own answer to the same


def redis_unavailable(what: str = "Live updates are") -> ApiError:
    """Redis refused (down, timed out, out of memory): the request changed nothing, and no
    protection is skipped."""
    return ApiError(503, "redis_unavailable", f"{what} unavailable right now.", retry_after=REDIS_RETRY_S)


def draining() -> ApiError:
    return ApiError(503, "draining", "This server is restarting; reconnect.", retry_after=1)


def too_many_streams(retry_after_s: int) -> ApiError:
    return ApiError(429, "too_many_streams", "Too many streams opened from your address; wait a little.",
                    retry_after=retry_after_s)


def too_many_open_streams() -> ApiError:
    return ApiError(429, "too_many_streams",
                    "Too many open streams from your address; close some tabs, then try again.",
                    retry_after=OPEN_STREAMS_RETRY_S)


def history_rebuilding() -> ApiError:
    return ApiError(503, "history_unavailable", "The room's history is being rebuilt; try again.",
                    retry_after=HISTORY_RETRY_S)


def history_unreadable() -> ApiError:
    return ApiError(503, "history_unavailable", "History cannot be read right now; try again.",
                    retry_after=HISTORY_RETRY_S)


def history_rate_limited(retry_after_s: int) -> ApiError:
    return ApiError(429, "history_rate_limited", "Too much history read from this address; wait a little.",
                    retry_after=retry_after_s)


def history_busy() -> ApiError:
    return ApiError(503, "history_busy", "Older history is busy being read; try again.", retry_after=1)


def invalid_room() -> ApiError:
    return ApiError(400, "invalid_room", "Room names are 1 to 64 characters of a-z, 0-9, '-' and '_'.")


def invalid_count(name: str, limit: int) -> ApiError:
    return ApiError(400, f"invalid_{name}", f"{name} is a whole number from 0 to {limit}.")


def invalid_message_id(name: str) -> ApiError:
    return ApiError(400, "invalid_last_event_id", f"{name} is a message id (a decimal number).")


def invalid_user() -> ApiError:
    return ApiError(400, "invalid_user", "A user name is 1 to 32 printable characters.")
