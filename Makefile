# The two commands a newcomer types (as root on a fresh Debian 12 machine):
#   make demo   set up everything, then start the TUI on the bundled demo channels
#   make test   set up the real test cluster, then run every test
VENV ?= /opt/nixmod/venv
PYTEST_ARGS ?=

.PHONY: demo test up down bench install

up:
	bash tests/cluster/up.sh

install: up

demo: up
	$(VENV)/bin/nixmod --demo

test: up
	bash tests/run-tests.sh $(PYTEST_ARGS)

bench: up
	$(VENV)/bin/python tests/bench/run_all.py

down:
	bash tests/cluster/down.sh
