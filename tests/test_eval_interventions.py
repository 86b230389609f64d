"""`vla eval --intervene`: scripted and oracle interventions on a real sim env, recorded in the eval JSON.
The policy is a HierarchicalPolicy of fakes (a planner that says one phrase, a controller that holds)."""

import json
import pickle
import re
import sys

import numpy as np
import pytest

from policies.chunking import ChunkExecutor
from policies.hierarchical import HierarchicalPolicy
from sim.env import EnvConfig
from sim.interventions import DEFAULT_PATIENCE, InterventionPlan, Operator, Scheduled, parse_plan
from sim.parallel import WorkerSpec
from sim.rollout import run_episode
from vla.cli import main

IMAGE = 32
REACH = "reach the red cube"  # what the scene calls for while the arm stays home (lift)


class SayingPlanner:
    def __init__(self, phrase):
        self.phrase, self.instructions = phrase, []

    def __call__(self, observation, instruction):
        self.instructions.append(instruction)
        return self.phrase


def holding(observation, instruction, subtask):
    """(8, 8): stay at the measured joints, fingers open."""
    return np.tile(np.append(observation["robot0_joint_pos"], 0.0), (8, 1)).astype(np.float32)


def fake_hierarchical(phrase):
    return HierarchicalPolicy(SayingPlanner(phrase), holding, plan_every=8, executor=ChunkExecutor(4))


def test_parse_plan():
    plan = parse_plan(["30:ins:put the red cube in the bin", "8:grasp", "12:sub: lift "])
    assert plan.scheduled == (Scheduled(8, "grasp", "auto"), Scheduled(12, "lift", "subtask"),
                              Scheduled(30, "put the red cube in the bin", "instruction"))
    assert plan.oracle_patience is None and plan.specs[0] == "30:ins:put the red cube in the bin"
    assert parse_plan(["oracle"]).oracle_patience == DEFAULT_PATIENCE and parse_plan(["oracle:5"]).oracle_patience == 5
    assert parse_plan(["5:a: b"]).scheduled == (Scheduled(5, "a: b", "auto"),)  # not a kind prefix: all text
    for bad, message in ((["x:grasp"], "expected STEP:TEXT"), (["4:"], "empty"), (["4:sub:"], "empty"),
                         (["oracle:0"], "N >= 1"), (["oracle", "4:grasp"], "alone")):
        with pytest.raises(ValueError, match=message):
            parse_plan(bad)
    spec = WorkerSpec(task="lift", policy="default", interventions=parse_plan(["oracle:3"]))  # crosses to workers
    assert pickle.loads(pickle.dumps(spec)).interventions.oracle_patience == 3


def test_scheduled_interventions_steer_the_next_chunks_on_a_real_env(env_cache, monkeypatch):
    env = env_cache("lift", IMAGE)
    monkeypatch.setattr(env, "max_steps", 32)
    policy = fake_hierarchical(REACH)
    operator = Operator(parse_plan(["8:sub:lift", "18:ins:grab the red cube now", "99:grasp"]), env)
    result = run_episode(env, policy, seed=1, operator=operator)
    assert result.interventions == [{"step": 8, "text": "lift", "kind": "subtask"},
                                    {"step": 18, "text": "grab the red cube now", "kind": "instruction"}]
    # "lift" from step 8 (the planner's earlier "reach" may not replace it); the instruction at 18 drops it
    # and the planner replans at the next chunk (step 20) with the new instruction; step 99 never comes
    assert result.subtasks == [REACH] * 8 + ["lift"] * 12 + [REACH] * 12
    assert policy.planner.instructions[-1] == "grab the red cube now" != env.instruction


def test_the_oracle_intervenes_once_after_patience_steps_of_disagreement(env_cache, monkeypatch):
    env = env_cache("lift", IMAGE)
    monkeypatch.setattr(env, "max_steps", 24)
    operator = Operator(parse_plan(["oracle:6"]), env)
    wrong = run_episode(env, fake_hierarchical("wave"), seed=2, operator=operator)
    assert wrong.interventions == [{"step": 5, "text": REACH, "kind": "subtask"}]  # steps 0..5 disagreed
    assert wrong.subtasks == ["wave"] * 8 + [REACH] * 16  # pursued from the next chunk, held after
    right = run_episode(env, fake_hierarchical(REACH), seed=2, operator=operator)
    assert right.interventions == [] and right.subtasks == [REACH] * 24


def _eval(monkeypatch, tmp_path, phrase, *extra):
    monkeypatch.setattr("sim.policy_loader.make_policy", lambda spec, env, options=None: fake_hierarchical(phrase))
    cli = sys.modules["vla.cli.main"]  # (the package's `main` attribute is the function)
    monkeypatch.setattr(cli, "env_config", lambda args: EnvConfig(image_size=IMAGE, max_steps=24))
    path = tmp_path / "eval.json"
    code = main(["eval", "--task", "lift", "--policy", "fake", "--episodes", "1", "--seed", "3", "--quiet",
                 "--json", str(path), *extra])
    return code, (json.loads(path.read_text()) if path.exists() else None)


def test_vla_eval_intervene_records_interventions_in_the_json(monkeypatch, tmp_path, capsys):
    code, report = _eval(monkeypatch, tmp_path, REACH, "--intervene", "4:sub:grasp", "--intervene", "40:lift")
    assert code == 0
    assert report["intervene"] == ["4:sub:grasp", "40:lift"]
    assert report["episodes_detail"][0]["interventions"] == [{"step": 4, "text": "grasp", "kind": "subtask"}]
    summary = r"\ninterventions +1 of 1 episodes got one \(0 of them succeeded\): 4:sub:grasp, 40:lift\n"
    assert re.search(summary, capsys.readouterr().out)


def test_vla_eval_intervene_oracle(monkeypatch, tmp_path, capsys):
    code, report = _eval(monkeypatch, tmp_path, "wave", "--intervene", "oracle:4")
    assert code == 0 and report["intervene"] == ["oracle:4"]
    assert report["episodes_detail"][0]["interventions"] == [{"step": 3, "text": REACH, "kind": "subtask"}]
    assert report["intervened"] == {"episodes": 1, "successes": 0}


def test_vla_eval_intervene_refuses_a_policy_without_interventions_in_one_line(capsys):
    code = main(["eval", "--task", "lift", "--policy", "hold", "--episodes", "2", "--image-size", str(IMAGE),
                 "--quiet", "--intervene", "oracle"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith("vla eval: error: --intervene needs a policy that takes interventions")
    assert "HoldPolicy does not" in err
    assert main(["eval", "--task", "lift", "--policy", "hold", "--intervene", "x:y", "--quiet"]) == 2
    assert "expected STEP:TEXT" in capsys.readouterr().err


def test_a_flat_policy_refuses_a_subtask_intervention_with_the_step(env_cache):
    from policies.vla_policy import FlatVlaPolicy

    class Predictor:
        def predict(self, observation, instruction):
            return holding(observation, instruction, "")

    operator = Operator(InterventionPlan(("0:sub:grasp",), scheduled=(Scheduled(0, "grasp", "subtask"),)))
    with pytest.raises(ValueError, match=r"'grasp' \(subtask\) at step 0: this policy runs flat"):
        run_episode(env_cache("lift", IMAGE), FlatVlaPolicy(Predictor()), seed=0, operator=operator)
