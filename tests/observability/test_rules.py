"""The alert rules file: valid for promtool, unit-tested case by case, each alert with a
runbook in docs/ops.md."""

import re
import subprocess

import yaml
from promsupport import ROOT, RULES_FILE, RULES_TEST_FILE, alert_rules, load_rules, selectors

OPS = ROOT / "docs" / "ops.md"


def test_promtool_checks_the_rules():
    result = subprocess.run(["promtool", "check", "rules", str(RULES_FILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {sum(len(g['rules']) for g in load_rules()['groups'])} rules found" in result.stdout


def test_promtool_unit_tests_pass():
    result = subprocess.run(["promtool", "test", "rules", str(RULES_TEST_FILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_has_a_firing_and_a_quiet_case():
    cases = yaml.safe_load(RULES_TEST_FILE.read_text())["tests"]
    fired, quiet = set(), set()
    for case in cases:
        for check in case.get("alert_rule_test", []):
            (fired if check.get("exp_alerts") else quiet).add(check["alertname"])
    names = {rule["alert"] for rule in alert_rules()}
    assert names - fired == set(), "alerts never shown firing"
    assert names - quiet == set(), "alerts never shown staying quiet"


def test_every_alert_is_labelled_and_has_a_runbook():
    ops = OPS.read_text()
    headings = {h.strip().lower() for h in re.findall(r"^###\s+(\S+)\s*$", ops, flags=re.M)}
    for rule in alert_rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule["alert"]
        anchor = rule["annotations"]["runbook"]
        assert anchor == f"docs/ops.md#{rule['alert'].lower()}", rule["alert"]
        assert rule["alert"].lower() in headings, f"docs/ops.md has no section ### {rule['alert']}"


def test_rules_select_only_the_chatroom_jobs():
    """Every raw series a rule reads is pinned to a chatroom job (recorded series are
    built from such)."""
    for rule in load_rules()["groups"][0]["rules"] + load_rules()["groups"][1]["rules"]:
        for selector in selectors(rule["expr"]):
            if "{" not in selector:
                assert ":" in selector, selector
                continue
            assert re.search(r'job=~?"chatroom-', selector), (rule.get("alert") or rule.get("record"), selector)
