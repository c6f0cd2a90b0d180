"""The per-address cap on open streams, through the cluster's ingress, run inside the cluster's
network namespace by tests/cluster/test_node.py:

    python tests/cluster/stream_cap.py BASE_URL MAX_TRIES

Opens streams of a new room from one address, one after the other, each held open, until one is
refused or MAX_TRIES are open; prints as JSON how many were answered 200 and the refusal (status,
body, Retry-After), if any. The streams held open by earlier tests' readers from the same address
may not all be given back yet (a stream notices its reader left at its next write), so the count
may be below the cap, never above it."""

import json
import sys

import httpx
from support import new_room, stream_url


def main(base, max_tries):
    room = new_room("cap")
    client = httpx.Client(timeout=httpx.Timeout(10.0, read=60.0))
    held, refusal = [], None
    try:
        for n in range(max_tries):
            request = client.build_request("GET", stream_url(base, room, user=f"reader-{n}", history=0))
            response = client.send(request, stream=True)
            if response.status_code != 200:
                response.read()
                refusal = {"status": response.status_code, "body": response.text,
                           "retry_after": response.headers.get("Retry-After")}
                response.close()
                break
            held.append(response)
    finally:
        for response in held:
            response.close()
        client.close()
    return {"opened": len(held), "refusal": refusal}


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]))))
