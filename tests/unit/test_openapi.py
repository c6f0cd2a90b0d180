"""docs/openapi.yaml describes exactly the public routes the services serve."""

import re
from pathlib import Path

import yaml

from ingest.app import create_app as create_ingest
from ingest.config import Config as IngestConfig
from stream.app import create_app as create_stream
from stream.config import Config as StreamConfig

SPEC = yaml.safe_load((Path(__file__).parents[2] / "docs" / "openapi.yaml").read_text())
OPERATIONAL = {"/healthz", "/readyz", "/metrics", "/static/<path:filename>"}  # per service, not through the gateway


def public_routes(app):
    routes = set()
    for rule in app.url_map.iter_rules():
        if rule.rule in OPERATIONAL:
            continue
        path = re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule)
        routes |= {(path, method.lower()) for method in rule.methods - {"HEAD", "OPTIONS"}}
    return routes


def test_the_spec_documents_every_public_route_and_nothing_else():
    served = (public_routes(create_ingest(IngestConfig.from_env()))
              | public_routes(create_stream(StreamConfig.from_env())))
    documented = {(path, method) for path, operations in SPEC["paths"].items() for method in operations}
    assert documented == served


def test_every_error_status_of_the_contract_has_the_json_error_shape():
    post = SPEC["paths"]["/api/rooms/{room}/messages"]["post"]["responses"]
    assert set(post) == {"201", "400", "403", "404", "409", "413", "415", "422", "429", "503"}
    for status in ("429", "503"):
        assert post[status]["$ref"] == "#/components/responses/Retry"
    assert SPEC["components"]["responses"]["Retry"]["headers"]["Retry-After"]["required"] is True
