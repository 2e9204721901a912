# tfaudio: `make demo` and `make test` do everything on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEB_PACKAGES := asterisk-core-sounds-en-wav asterisk-core-sounds-en espeak-ng fluidsynth timgm6mb-soundfont
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup test demo deb prepare clean

setup: $(STAMP)

$(STAMP): setup.cfg setup.py
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

test: setup
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q tests

deb:
	@missing=$$(for p in $(DEB_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages: $$missing"; \
	  ($(SUDO) apt-get update -q && $(SUDO) DEBIAN_FRONTEND=noninteractive apt-get install -y -q $$missing) \
	    || { echo "could not install: run 'sudo apt-get install $$missing' and retry"; exit 1; }; \
	fi

prepare: setup deb
	$(PY) -m tfaudio.prepare asterisk
	$(PY) -m tfaudio.prepare mixtures

demo: prepare
	$(PY) -m tfaudio.train --gin_file=gin/audio_unet.gin --model_dir=runs/demo_audio_unet \
	  --gin_param="train_steps = 1500"
	@echo "run directory: runs/demo_audio_unet (metrics.jsonl, tensorboard/, checkpoints/)"

clean:
	rm -rf runs build *.egg-info
