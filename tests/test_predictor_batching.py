"""Sessions sharing one checkpoint: their concurrent predictions go through one batched forward pass,
and each still gets its own chunk."""

import threading

import numpy as np
import pytest

from policies.remote import RemotePolicy
from policies.server import per_session_copies, serve
from robots.spec import get_robot_spec
from sim.policy_loader import DEFAULT_CHECKPOINT, PolicyOptions, make_policy
from vla.inference import VlaPredictor

INSTRUCTIONS = ("pick up the red cube", "pick up the green cube", "pick up the blue cube")


def _observations(env_cache, count):
    env = env_cache("pick-color", 128)
    return [env.reset(seed=900 + i)[0] for i in range(count)]


def _at_once(calls):
    """Run the calls on threads released together; their results (or exceptions) in order."""
    results, barrier = [None] * len(calls), threading.Barrier(len(calls))

    def run(index):
        barrier.wait()
        try:
            results[index] = calls[index]()
        except Exception as error:  # noqa: BLE001 - returned for the test to inspect
            results[index] = error

    threads = [threading.Thread(target=run, args=(i,)) for i in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    return results


def test_concurrent_predictions_share_a_forward_pass_and_keep_their_own_answers(env_cache):
    observations = _observations(env_cache, 3)
    alone = VlaPredictor.load(DEFAULT_CHECKPOINT)
    expected = [alone.predict(obs, text, "reach") for obs, text in zip(observations, INSTRUCTIONS)]
    shared = VlaPredictor.load(DEFAULT_CHECKPOINT)
    shared.share_between_threads(max_batch=3, wait_s=0.5)
    got = _at_once([lambda o=obs, t=text: shared.predict(o, t, "reach")
                    for obs, text in zip(observations, INSTRUCTIONS)])
    assert shared.batch_sizes == [3]
    for mine, theirs in zip(got, expected):
        assert mine.shape == theirs.shape == (alone.chunk_size, 8)
        np.testing.assert_allclose(mine[:, :7], theirs[:, :7], atol=2e-2)  # a batch of 3 sums in another order
        np.testing.assert_array_equal(mine[:, 7] > 0.5, theirs[:, 7] > 0.5)


def test_concurrent_plans_share_a_planner_pass_and_keep_their_own_choices(env_cache):
    observations = _observations(env_cache, 3)
    alone = VlaPredictor.load(DEFAULT_CHECKPOINT)
    allowed = [None, None, alone.planner_phrases[-2:]]  # the third caller may only pick one of the last two
    expected = [alone.plan(obs, text, only) for obs, text, only in zip(observations, INSTRUCTIONS, allowed)]
    shared = VlaPredictor.load(DEFAULT_CHECKPOINT)
    shared.share_between_threads(max_batch=3, wait_s=0.5)
    got = _at_once([lambda o=obs, t=text, a=only: shared.plan(o, t, a)
                    for obs, text, only in zip(observations, INSTRUCTIONS, allowed)])
    assert got == expected and got[2] in allowed[2]
    assert shared.plan_batch_sizes == [3] and shared.batch_sizes == []
    with pytest.raises(ValueError, match="allowed subtasks"):
        shared.plan(observations[0], INSTRUCTIONS[0], ["dance"])


def test_a_bad_observation_fails_only_its_own_caller(env_cache):
    good = _observations(env_cache, 2)
    bad = dict(good[0], robot0_joint_pos=np.full(7, np.nan))
    predictor = VlaPredictor.load(DEFAULT_CHECKPOINT)
    predictor.share_between_threads(max_batch=3, wait_s=0.3)
    results = _at_once([lambda o=obs: predictor.predict(o, INSTRUCTIONS[0]) for obs in (good[0], bad, good[1])])
    assert isinstance(results[1], ValueError) and "NaN" in str(results[1])
    assert all(isinstance(r, np.ndarray) and r.shape[1] == 8 for r in (results[0], results[2]))
    assert predictor.batch_sizes == [2]


def test_a_shared_predictor_runs_every_forward_pass_on_its_own_thread(env_cache):
    observation = _observations(env_cache, 1)[0]
    predictor = VlaPredictor.load(DEFAULT_CHECKPOINT)
    with pytest.raises(ValueError, match="max_batch"):
        predictor.share_between_threads(0)
    predictor.share_between_threads(1)  # no batching
    threads, forward = [], predictor._normalized_actions
    predictor._normalized_actions = lambda *args: threads.append(threading.current_thread().name) or forward(*args)
    chunks = _at_once([lambda: predictor.predict(observation, INSTRUCTIONS[0])] * 3)
    assert len(threads) == 3 and set(threads) == {"vla-model_0"}
    assert predictor.batch_sizes == [] and all(np.array_equal(chunk, chunks[0]) for chunk in chunks)
    assert predictor.plan(observation, INSTRUCTIONS[0]) in predictor.planner_phrases


def test_served_checkpoint_batches_robots_that_ask_together(env_cache):
    """What `vla serve --policy default --max-concurrent 3` builds: each session its own policy state,
    one shared predictor whose forward passes take several robots' observations."""
    observations = _observations(env_cache, 3)
    options = PolicyOptions(flat=True, ensemble=False, max_batch=3, batch_wait_ms=300.0)
    spec = get_robot_spec("panda", image_size=128, cameras=("agentview", "robot0_eye_in_hand"))
    handle = serve(per_session_copies(lambda: make_policy("default", None, options)), spec, "127.0.0.1", 0,
                   max_concurrent=3)
    handle.wait_ready(60)
    robots = [RemotePolicy(f"127.0.0.1:{handle.port}") for _ in observations]
    try:
        for robot, text in zip(robots, INSTRUCTIONS):
            robot.reset(text)
        chunks = _at_once([lambda r=robot, o=obs: r.act(o) for robot, obs in zip(robots, observations)])
        predictor = handle.servicer.prototype.predictor
        assert max(predictor.batch_sizes) > 1
        assert all(chunk.actions.shape == (predictor.chunk_size // 2, 8) for chunk in chunks)
    finally:
        for robot in robots:
            robot.close()
        handle.stop(0)
