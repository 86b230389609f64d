# The two set-up commands of the README: `make demo` (main job) and `make test`.
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
export MUJOCO_GL ?= egl

.PHONY: demo test install

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet torch==2.13.0 mujoco==3.3.7 robosuite==1.5.2
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

# Main job: until a trained default model ships, the scripted expert on pick-color, with videos.
demo: $(STAMP)
	$(VENV)/bin/vla eval --task pick-color --policy expert --episodes 3 --seed 0 \
		--video out/demo_videos --json out/demo_eval.json
	@echo "videos: $(CURDIR)/out/demo_videos   report: $(CURDIR)/out/demo_eval.json"

test: $(STAMP)
	$(PY) -m pytest -q --durations=10
