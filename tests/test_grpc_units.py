"""Pieces of the gRPC layer without a server: codec, sessions and leases, the batcher."""

import threading
import time

import numpy as np
import pytest

from policies.hold import HoldPolicy
from policies.server import per_session_copies
from robots import sessions
from robots.batching import Batcher
from robots.codec import (JPEG, PNG, RAW, ValidationError, decode_actions, decode_observation, encode_actions,
                          encode_image, encode_observation, finger_qpos_to_gripper, gripper_to_finger_qpos)
from robots.proto.vla.v1 import policy_pb2 as pb
from robots.spec import panda_spec

SPEC = panda_spec(image_size=24)
JOINTS = np.linspace(-1.0, 1.0, 7)


def images(seed=0):
    rng = np.random.default_rng(seed)
    return {c.name: rng.integers(0, 255, (c.height, c.width, 3), dtype=np.uint8) for c in SPEC.cameras}


@pytest.mark.parametrize("encoding", [RAW, PNG])
def test_lossless_round_trip(encoding):
    sent = images()
    obs = decode_observation(encode_observation(sent, JOINTS, 0.25, encoding=encoding), SPEC, "lift it")
    for name, image in sent.items():
        np.testing.assert_array_equal(obs[f"{name}_image"], image)
    np.testing.assert_allclose(obs["robot0_joint_pos"], JOINTS)
    np.testing.assert_allclose(obs["robot0_gripper_qpos"], [0.03, -0.03])
    assert obs["instruction"] == "lift it"


def test_jpeg_round_trip_is_close():
    flat = {name: np.full_like(image, 120) for name, image in images().items()}
    obs = decode_observation(encode_observation(flat, JOINTS, 0.0, encoding=JPEG), SPEC)
    assert np.abs(obs["agentview_image"].astype(int) - 120).max() <= 3


def test_gripper_conversions_are_inverse():
    for gripper in (0.0, 0.3, 1.0):
        qpos = gripper_to_finger_qpos(gripper, 0.04)
        assert finger_qpos_to_gripper(qpos, 0.04) == pytest.approx(gripper)
    assert finger_qpos_to_gripper([0.0208, -0.0208], 0.04) == pytest.approx(0.48)


def test_compressed_header_size_is_checked_before_decoding_pixels():
    big = encode_image("agentview", np.zeros((400, 300, 3), np.uint8), PNG)
    big.height, big.width = 24, 24  # lies about its size
    obs = encode_observation(images(), JOINTS, 0.0)
    obs.images[0].CopyFrom(big)
    with pytest.raises(ValidationError) as error:
        decode_observation(obs, SPEC)
    assert error.value.field == "observation.images[0].data" and "300x400" in error.value.message


def test_actions_round_trip_and_validation():
    actions = np.random.default_rng(0).normal(size=(5, 8)).astype(np.float32)
    np.testing.assert_allclose(decode_actions(encode_actions(actions), SPEC), actions, atol=1e-6)
    with pytest.raises(ValidationError, match="empty"):
        decode_actions([], SPEC)
    with pytest.raises(ValidationError, match=r"actions\[0\].joint_positions"):
        decode_actions([pb.JointCommand(joint_positions=[0.0] * 3)], SPEC)
    with pytest.raises(ValidationError, match="NaN"):
        decode_actions([pb.JointCommand(joint_positions=[0.0] * 7, gripper=float("nan"))], SPEC)


class Clock:
    t = 0.0

    def __call__(self):
        return self.t


def test_leases_one_writer_expiry_and_sequences():
    clock = Clock()
    registry = sessions.SessionRegistry(lease_ms=1000, clock=clock)
    first = registry.start("panda/", "lift", HoldPolicy)
    with pytest.raises(sessions.LeaseHeld):
        registry.start("panda/", "lift", HoldPolicy)
    first.check_sequence(1)
    with pytest.raises(sessions.SequenceError):
        first.check_sequence(1)
    clock.t = 0.9
    registry.renew(registry.get(first.session_id))
    clock.t = 1.8
    assert registry.get(first.session_id) is first  # renewed at 0.9: alive until 1.9
    clock.t = 2.0
    second = registry.start("panda/", "lift", HoldPolicy)  # lapsed: the robot is free
    with pytest.raises(sessions.UnknownSession):
        registry.get(first.session_id)
    registry.end(second.session_id)
    assert len(registry) == 0


def test_a_failing_policy_factory_frees_the_robot():
    registry = sessions.SessionRegistry()

    def broken():
        raise RuntimeError("no weights")

    with pytest.raises(RuntimeError):
        registry.start("panda/", "lift", broken)
    registry.start("panda/", "lift", HoldPolicy)


def test_per_session_copies_share_the_predictor_not_the_state():
    class Predicted:
        def __init__(self):
            self.predictor = object()
            self.history = []

        def reset(self, instruction):
            self.history.clear()

    built = []
    factory = per_session_copies(lambda: built.append(1) or Predicted())
    a, b = factory(), factory()
    assert len(built) == 1 and a is not b
    assert a.predictor is b.predictor and a.history is not b.history


def test_batcher_splits_overflow_and_keeps_results_in_order():
    calls = []

    def run_batch(items):
        calls.append(len(items))
        return [item * 10 for item in items]

    batcher = Batcher(run_batch, max_batch=2, wait_s=0.2)
    results, barrier = {}, threading.Barrier(5)

    def submit(i):
        barrier.wait()
        results[i] = batcher.submit(i)

    threads = [threading.Thread(target=submit, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(5)
    assert results == {i: i * 10 for i in range(5)}
    assert sum(calls) == 5 and max(calls) <= 2


def test_batcher_callers_arriving_during_a_batch_form_the_next_one():
    started, release, calls = threading.Event(), threading.Event(), []

    def run_batch(items):
        calls.append(list(items))
        started.set()
        release.wait(5)
        return items

    batcher = Batcher(run_batch, max_batch=8, wait_s=0.0)
    first = threading.Thread(target=batcher.submit, args=(0,))
    first.start()
    assert started.wait(5)
    later = [threading.Thread(target=batcher.submit, args=(i,)) for i in (1, 2, 3)]
    for t in later:
        t.start()
    deadline = time.monotonic() + 5.0
    while len(batcher._pending) < 3 and time.monotonic() < deadline:  # all three queue behind the running batch
        time.sleep(0.001)
    release.set()
    for t in [first, *later]:
        t.join(5)
    assert calls[0] == [0] and sorted(calls[1]) == [1, 2, 3] and len(calls) == 2


def test_batcher_hands_the_error_to_every_caller():
    def fail(items):
        raise ValueError("bad batch")

    with pytest.raises(ValueError, match="bad batch"):
        Batcher(fail, wait_s=0.0).submit(1)
