# Two commands do everything on a fresh machine:
#   make demo   - a real 3-node cluster, helm install, nginx, curl through the LB IP, node fails
#   (make demo-bgp: the same in BGP mode, through a BIRD router)
#   make test   - lint, types, import contracts, and every test tier
#                 (unit, cluster, netns, cluster_nodes)
SHELL := /bin/bash
PY := .venv/bin/python

.PHONY: setup demo demo-bgp test lint unit bench clean

setup:
	@e2e/tools/setup

lint: setup
	$(PY) -m ruff check api operator speaker e2e tests bench
	$(PY) -m mypy
	.venv/bin/lint-imports

test: setup lint
	$(PY) -m pytest -m "unit or cluster or netns or cluster_nodes" $(PYTEST_ARGS)

unit: setup
	$(PY) -m pytest -m unit $(PYTEST_ARGS)

demo: setup
	$(PY) -m metallb_lab.demo

demo-bgp: setup
	$(PY) -m metallb_lab.demo_bgp

bench: setup
	$(PY) -m bench.run_all

clean:
	rm -rf .venv .mypy_cache .ruff_cache .pytest_cache bench/results
