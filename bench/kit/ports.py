"""Loopback ports: a free one to bind a server to, and the wait until a server listens."""

import socket
import time


def free_port() -> int:
    """A port nothing listens on now (the kernel's pick; another process may take it before
    the server binds it, which the stacks' start then reports)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
        return True
    except OSError:
        return False


def wait_port(port: int, timeout: float = 30.0) -> None:
    """Until something accepts connections on ``port``, at most ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not listening(port):
        if time.monotonic() > deadline:
            raise TimeoutError(f"nothing listens on {port} after {timeout} s")
        time.sleep(0.1)
