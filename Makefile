# The two commands: `make run` and `make test`. Everything they need is installed by
# scripts/install.sh: the virtualenv into .venv/, what is fetched or built once per machine into
# the per-user cache ~/.cache/chatroom (linked from .cache/); both folders are ignored by git.
PYTHON := .venv/bin/python

.PHONY: run test install install-test requirements dashboards unit integration e2e charts cluster-tests chaos prometheus logs clean

run: install
	$(PYTHON) -m local.stack

test: install-test
	$(PYTHON) -m pytest

install:
	@scripts/install.sh

install-test:
	@scripts/install.sh test

# Recompile requirements/*.txt (pinned, hashed) from requirements/*.in after changing one.
requirements:
	@scripts/compile-requirements.sh

# Write the Grafana dashboards the chart ships (helm/chatroom/files/dashboards/) from dashboards/.
dashboards: install-test
	$(PYTHON) -m dashboards

unit: install-test
	$(PYTHON) -m pytest tests/unit

integration: install-test
	$(PYTHON) -m pytest tests/integration

charts: install-test
	$(PYTHON) -m pytest tests/charts

e2e: install-test
	$(PYTHON) -m pytest tests/e2e

# docs/screenshots/ taken again from a real stack and the page as it is now (desktop and mobile,
# light and dark, and the lobby): tests/e2e/test_screenshots.py saves them, this copies them over.
.PHONY: screenshots
screenshots: install-test
	rm -rf test-artifacts/screenshots
	$(PYTHON) -m pytest -p no:cacheprovider tests/e2e/test_screenshots.py
	cp test-artifacts/screenshots/*.png docs/screenshots/

# The charts against a one-node Kubernetes built from source (cluster/, docs/kubernetes.md).
cluster-tests: install-test
	$(PYTHON) -m pytest tests/cluster

# The longer run of the hostile-input properties and the faults: make test runs each once
# with fewer cases, this runs 10,000 cases and the faults under load three times over.
chaos: install-test
	FUZZ_EXAMPLES=10000 CHAOS_ROUNDS=3 $(PYTHON) -m pytest --timeout 7200 \
		tests/integration/test_api_properties.py tests/integration/test_faults.py tests/chaos

# Prometheus for a running `make run` stack, with the chart's alert rules, on :9090.
prometheus: install-test
	$(PYTHON) -m local.prometheus

# A one-node Kubernetes in a network namespace of its own (needs root): the control plane, and a node
# running the project's images; the first run builds it (Go module proxy, Debian packages) into the
# per-user cache. `make cluster-down` removes it.
.PHONY: cluster cluster-down
cluster: install-test
	$(PYTHON) -m cluster.cluster start

cluster-down:
	$(PYTHON) -m cluster.cluster stop

logs:
	tail -F .run/local/logs/*.log

clean:
	rm -rf .run

# The benchmark against the seed design and Centrifugo (bench/README.md); not part of make test.
.PHONY: bench bench-quick
bench: install-test
	$(PYTHON) -m bench

bench-quick: install-test
	$(PYTHON) -m bench --profile quick
