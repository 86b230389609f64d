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
	$(PY) -m pip install --quiet -e '.[full,dev]'
	touch $(STAMP)

# Main job: the shipped default checkpoint on lift, with videos, run as it says it runs best (its
# execution.json: hierarchical, planner + controller, with temporal ensembling; docs/results.md).
demo: $(STAMP)
	$(VENV)/bin/vla eval --task lift --policy default --episodes 5 --seed 100000 \
		--video out/demo_videos --json out/demo_eval.json
	@echo "videos: $(CURDIR)/out/demo_videos   report: $(CURDIR)/out/demo_eval.json"

test: $(STAMP)
	$(PY) -m pytest -q --durations=10

# The robot side installs and runs without torch or a simulator: `pip install '.[robot]'` in a fresh venv.
ROBOT_VENV := .venv-robot
.PHONY: check-robot-extra
check-robot-extra:
	rm -rf $(ROBOT_VENV) && python3 -m venv $(ROBOT_VENV)
	$(ROBOT_VENV)/bin/python -m pip install --quiet '.[robot]'
	$(ROBOT_VENV)/bin/vla robot --help > /dev/null
	$(ROBOT_VENV)/bin/python -c "from robots.spec import panda_spec; import robots.client, robots.connection, \
		robots.codec, robots.safety, robots.driver; print('robot extra:', panda_spec().name, 'spec, client and codec import')"
	! $(ROBOT_VENV)/bin/python -c "import torch" 2> /dev/null
	! $(ROBOT_VENV)/bin/python -c "import mujoco" 2> /dev/null

# Reproduces the shipped default checkpoint (policies/checkpoints/default) on CPU in three stages:
# 1. demonstrations for the four tasks; the expert keeps the fingers at their start yaw (--expert-yaw
#    fixed): its joint path then follows where the cube is, not how it is turned, which the model
#    cannot see (README, Results);
# 2. the base model (`--preset default-base`, vla/recipes.py): the tiny VLA with its planner head; CoordConv and
#    the object loss give the image encoder pixel coordinates and a training-only side task, where the goal's
#    cubes are from the gripper; the object token (teacher) feeds those offsets to the actions as one more
#    input token; goal keypoints with their loss let the instruction's words pick, in each camera, the patch
#    where the named cube is, supervised with where the simulator projects it (docs/design.md, The model).
#    6000 steps: about four passes over the 51k demo frames;
# 3. one DAgger round: the base model drives (as `vla eval --ensemble` runs it) and the corrective
#    expert labels every state it visits (vla collect --learner), then the base model is fine-tuned
#    on the demonstrations and those rollouts together (vla train --init).
# The snapshots of runs/base (runs/base/snapshots/) are for `vla select`; they change nothing shipped.
DEFAULT_DATA := data/fixed-yaw/lift.hdf5 data/fixed-yaw/pick-color.hdf5 data/fixed-yaw/stack.hdf5 \
	data/fixed-yaw/place-color.hdf5
DAGGER_DATA := $(subst fixed-yaw,dagger,$(DEFAULT_DATA))
BASE_STEPS ?= 6000
DAGGER_EPISODES ?= 60
FINETUNE_STEPS ?= 2000

EPISODES_lift := 200
EPISODES_pick-color := 240
EPISODES_stack := 160
EPISODES_place-color := 220

data/fixed-yaw/%.hdf5: | $(STAMP)
	@mkdir -p data/fixed-yaw
	$(VENV)/bin/vla collect --task $* --episodes $(EPISODES_$*) --out $@ --seed 0 --workers 2 --expert-yaw fixed

runs/base/model.safetensors: $(DEFAULT_DATA)
	$(VENV)/bin/vla train --data $(DEFAULT_DATA) --out runs/base --preset default-base --steps $(BASE_STEPS)

data/dagger/%.hdf5: runs/base/model.safetensors
	@mkdir -p data/dagger
	$(VENV)/bin/vla collect --task $* --episodes $(DAGGER_EPISODES) --out $@ --seed 400000 --workers 2 \
		--learner runs/base --ensemble --expert-yaw fixed

# What fine-tuning replays so the default keeps its four tasks while it learns a new one (README, Fine-tune
# on your data): 40 expert demos per task at the default's fixed yaw, about 5 minutes on 2 cores.
REPLAY_DATA := data/replay/lift.hdf5 data/replay/pick-color.hdf5 data/replay/stack.hdf5 data/replay/place-color.hdf5

data/replay/%.hdf5: | $(STAMP)
	@mkdir -p data/replay
	$(VENV)/bin/vla collect --task $* --episodes 40 --out $@ --seed 400000 --workers 2 --expert-yaw fixed --quiet

.PHONY: replay-data
replay-data: $(REPLAY_DATA)

# The long-horizon checkpoint (issue 27; docs/results.md, Long-horizon tasks): the default fine-tuned on 100
# stack-three and 100 crate-three expert demonstrations (fixed yaw), replaying the four tasks' data; `--preset
# long-horizon` (3000 steps, about 36 minutes of training on 2 cores; about 65 minutes with its data from a fresh
# clone). Every long-horizon sample is prompted with its step's instruction, as the step planner (on by default)
# runs it.
LONG_DATA := data/fixed-yaw/stack-three.hdf5 data/fixed-yaw/crate-three.hdf5
EPISODES_stack-three := 100
EPISODES_crate-three := 100

.PHONY: long-horizon-model
long-horizon-model: $(LONG_DATA) $(REPLAY_DATA)
	$(VENV)/bin/vla train --init default --preset long-horizon --data $(LONG_DATA) --replay $(REPLAY_DATA) \
		--out runs/long-horizon

.PHONY: default-model
default-model: $(DAGGER_DATA)
	$(VENV)/bin/vla train --data $(DEFAULT_DATA) $(DAGGER_DATA) --init runs/base --out runs/default \
		--preset default-finetune --steps $(FINETUNE_STEPS)
	@mkdir -p policies/checkpoints/default
	cp runs/default/config.json runs/default/model.safetensors runs/default/norm_stats.json \
		runs/default/tokenizer.json runs/default/metrics.csv policies/checkpoints/default/
	cp runs/base/metrics.csv policies/checkpoints/default/base_metrics.csv
	@echo "policies/checkpoints/default/execution.json (how it runs best) is kept: choose it from vla eval results"
