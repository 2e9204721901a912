# tfaudio: `make demo` and `make test` do everything on a fresh machine.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
DEB_PACKAGES := asterisk-core-sounds-en-wav asterisk-core-sounds-en espeak-ng fluidsynth timgm6mb-soundfont \
  asterisk-core-sounds-es-wav asterisk-core-sounds-fr-wav asterisk-core-sounds-it-wav asterisk-core-sounds-ru-wav
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup test lint demo deb prepare clean

setup: $(STAMP)

$(STAMP): setup.cfg setup.py
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[cpu,dev]'
	touch $(STAMP)

test: setup
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -n 3 --dist loadfile --no-loadscope-reorder tests

lint: setup
	$(VENV)/bin/ruff check .

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

# The main job: Tacotron at 8 kHz on the real asterisk recordings (progress with an ETA in
# the terminal and every 30 s in $(DEMO_DIR)/progress.log), synthesis of a few sentences
# from the restored checkpoint, then the listening benchmark on held-out prompts.
DEMO_DIR := runs/demo_tacotron_8khz
DEMO_STEPS := 2500
demo: export TF_CPP_MIN_LOG_LEVEL := 2
demo: setup deb
	$(PY) -m pip install -q -e '.[cpu,dev,bench]'
	$(PY) -m tfaudio.prepare asterisk
	@echo "training: follow $(DEMO_DIR)/progress.log"
	$(PY) -m tfaudio.train --gin_file=gin/tacotron_8khz.gin --model_dir=$(DEMO_DIR) \
	  --gin_param="train_steps = $(DEMO_STEPS)"
	printf '%s\n' "Please hold while I transfer your call." "Your call is important to us." \
	  "Press one to leave a message." "The number you have dialed is not in service." > $(DEMO_DIR)/sentences.txt
	$(PY) -m tfaudio.synthesize --model_dir=$(DEMO_DIR) --text_file=$(DEMO_DIR)/sentences.txt \
	  --output=$(DEMO_DIR)/samples/demo.wav
	$(PY) benchmarks/tts_intelligibility.py --model_dir=$(DEMO_DIR) --prompts 20 > $(DEMO_DIR)/listening.txt
	tail -n 5 $(DEMO_DIR)/listening.txt
	@echo "WAVs and alignment PNGs: $(DEMO_DIR)/samples/; held-out prompts beside their recordings:" \
	  "$(DEMO_DIR)/listening/; curves: $(DEMO_DIR)/metrics.jsonl and" \
	  "tensorboard --logdir $(DEMO_DIR)/tensorboard (alignment, mel images, audio)"

clean:
	rm -rf runs build *.egg-info
