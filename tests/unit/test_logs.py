"""The services' log lines (chat_common/logs.py): one JSON object per line on stdout, with
the fields an operator follows a message by (its id across ingest, bridge and stream)."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

PROGRAM = """
import logging
from chat_common.logs import setup_logging

setup_logging("stream")
log = logging.getLogger("stream.hub")
log.info("message fanned out", extra={"msg_id": "42", "room": "lobby", "clients": 3})
log.debug("not shown at INFO")
log.warning("odd value %s", "é", extra={"error": ValueError("boom"), "path": __import__("pathlib").Path("/x")})
try:
    1 / 0
except ZeroDivisionError:
    log.exception("failed", extra={"msg_id": "43"})
"""


def _lines():
    done = subprocess.run([sys.executable, "-c", PROGRAM], capture_output=True, text=True, timeout=60,
                          env={"PYTHONPATH": str(ROOT / "services" / "common")}, check=True)
    return done.stdout.splitlines()


def test_each_record_is_one_json_line_with_its_fields_in_order_and_the_service():
    lines = _lines()
    assert len(lines) == 3  # the debug record is below the level
    first = json.loads(lines[0])
    assert list(first) == ["time", "level", "logger", "message", "msg_id", "room", "clients", "service"]
    assert first["level"] == "INFO" and first["logger"] == "stream.hub" and first["message"] == "message fanned out"
    assert (first["msg_id"], first["room"], first["clients"], first["service"]) == ("42", "lobby", 3, "stream")
    date, clock = first["time"].split(" ")
    assert len(date) == 10 and len(clock) == 12 and clock[8] == ","  # 2026-01-02 03:04:05,006


def test_values_json_cannot_encode_are_written_as_text_and_a_traceback_rides_on_its_line():
    _, warning, error = map(json.loads, _lines())
    assert warning["message"] == "odd value é"
    assert warning["error"] == "ValueError: boom" and warning["path"] == "/x"
    assert error["level"] == "ERROR" and error["msg_id"] == "43"
    assert error["exc_info"].startswith("Traceback") and "ZeroDivisionError" in error["exc_info"]
