# pdbridge, for developers: two commands set up a fresh machine (students use install/install.sh).
#   make demo   install what is missing, render a short sound from every model through real Pd
#   make test   install what is missing, run every test
#   make test-install   the installer in a clean Debian 12 root (root, 8-16 min; see docs/install.md)
#   make dist   the deken packages in dist/
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

.PHONY: demo test test-core test-torch test-tf test-reliability test-install dist bench bench-ddsp doctor screenshots pd envs env-core env-torch env-tf clean-envs

demo: pd envs
	$(CORE) -m pdbridge demo --out demo-output

test: pd envs test-core test-torch test-tf

test-core: pd env-core
	$(CORE) -m pytest $(PYTEST_FLAGS) tests/unit tests/e2e

test-torch: pd env-core env-torch
	$(TORCH) -m pytest $(PYTEST_FLAGS) $(wildcard tests/workers/runtime tests/workers/samplernn tests/workers/rave tests/workers/caw)

# One pytest process per model: importing magenta's GANSynth switches TensorFlow to graph mode for the
# whole process, which ddsp's eager code cannot run in.
test-tf: pd env-core env-tf
	$(TF) -m pytest $(PYTEST_FLAGS) tests/workers/gansynth
	$(TF) -m pytest $(PYTEST_FLAGS) tests/workers/ddsp
	$(TF) -m pytest $(PYTEST_FLAGS) tests/workers/melody_rnn

# The long reliability suite (a few minutes): kill -9, hub restarts, 10 000 malformed FUDI messages
# and 1 000 malformed ZeroMQ frames, 4 Pd x 500 mixed requests; prints its figures (FIGURE lines).
test-reliability: pd env-core
	$(CORE) -m pytest -q -s tests/reliability

# install/install.sh in a clean Debian 12 root made with debootstrap (needs root): a student without
# Pd, the admin's --system, doctor all ok, a fast no-op re-run, headless demo, Pd's GUI under Xvfb
# (screenshot in .cache/test-install/), models fetch resume/refusal, doctor's FAIL lines, uninstall.
# Prints a FIGURE line per step. The root and a pip cache are kept in /var/tmp/pdbridge-test-install.
test-install: env-core
	@command -v debootstrap >/dev/null && command -v patchelf >/dev/null || { $(SUDO) apt-get update -qq && \
	  $(SUDO) apt-get install -y -qq --no-install-recommends debootstrap patchelf; }
	$(CORE) -m pytest -q -s tests/install

# Deken packages of the abstractions (pdbridge[vX.Y.Z].dek, .dek.txt, Sources, .sha256) in dist/.
dist:
	$(PYTHON) install/make_dist.py --out dist

bench: pd envs
	$(CORE) bench/bridge.py

bench-ddsp: pd envs
	$(TF) bench/ddsp.py

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
