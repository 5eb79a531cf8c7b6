# pdbridge: two commands set up a fresh machine.
#   make demo   install what is missing, render a short sound from every model through real Pd
#   make test   install what is missing, run every test
# Environments live in .cache/envs/<name> (this Makefile owns .cache/); each is rebuilt only when
# its lock file changes. See docs/architecture.md.

SHELL := /bin/bash
PYTHON ?= python3
ENVS := .cache/envs
CORE := $(ENVS)/core/bin/python
TORCH := $(ENVS)/torch/bin/python
TF := $(ENVS)/tf/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
PYTEST_FLAGS ?= -q

.PHONY: demo test test-core test-torch test-tf test-reliability bench doctor screenshots pd envs env-core env-torch env-tf clean-envs

demo: pd envs
	$(CORE) -m pdbridge demo --out demo-output

test: pd envs test-core test-torch test-tf

test-core: pd env-core
	$(CORE) -m pytest $(PYTEST_FLAGS) tests/unit tests/e2e

test-torch: pd env-core env-torch
	$(TORCH) -m pytest $(PYTEST_FLAGS) $(wildcard tests/workers/runtime tests/workers/samplernn tests/workers/rave tests/workers/caw)

test-tf: pd env-core env-tf
	$(if $(wildcard tests/workers/gansynth),$(TF) -m pytest $(PYTEST_FLAGS) tests/workers/gansynth,@echo "no tf tests yet")

# The long reliability suite (a few minutes): kill -9, hub restarts, 10 000 malformed FUDI messages
# and 1 000 malformed ZeroMQ frames, 4 Pd x 500 mixed requests; prints its figures (FIGURE lines).
test-reliability: pd env-core
	$(CORE) -m pytest -q -s tests/reliability

bench: pd envs
	$(CORE) bench/bridge.py

doctor: env-core
	$(CORE) -m pdbridge doctor

# PNGs of every help and example patch as the Pd GUI draws them (needs puredata-gui xvfb imagemagick).
screenshots:
	$(PYTHON) tools/render_patches.py

envs: env-core env-torch env-tf

env-core env-torch env-tf: env-%:
	$(PYTHON) install/build_env.py $*

# Pure Data from the distribution (Debian/Ubuntu); the project needs vanilla Pd >= 0.51.
pd:
	@command -v pd >/dev/null || { $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq --no-install-recommends puredata-core puredata-utils; }

clean-envs:
	rm -rf $(ENVS)
