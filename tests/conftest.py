import os

os.environ.setdefault("MUJOCO_GL", "egl")

import pytest  # noqa: E402

from sim.tasks import TASKS  # noqa: E402

SMALL_IMAGE = 64


@pytest.fixture(scope="session")
def env_cache():
    """One VlaEnv per (task, image size) for the whole session: building one takes seconds."""
    from sim.env import VlaEnv

    envs = {}

    def get(task: str, image_size: int = SMALL_IMAGE):
        if (task, image_size) not in envs:
            envs[(task, image_size)] = VlaEnv(task, image_size=image_size)
        return envs[(task, image_size)]

    yield get
    for env in envs.values():
        env.close()


@pytest.fixture(scope="session")
def one_demo_file(tmp_path_factory):
    """A factory: (task, seed, image size) -> path of a file holding one successful expert demo,
    collected once per session."""
    from vla.cli import main

    files = {}

    def get(task: str, seed: int, image_size: int) -> str:
        if (task, seed, image_size) not in files:
            out = tmp_path_factory.mktemp("data") / f"{task}.hdf5"
            assert main(["collect", "--task", task, "--out", str(out), "--image-size", str(image_size),
                         "--episodes", "1", "--seed", str(seed), "--quiet"]) == 0
            files[(task, seed, image_size)] = str(out)
        return files[(task, seed, image_size)]

    return get


@pytest.fixture(params=list(TASKS))
def task_name(request):
    return request.param


@pytest.fixture(params=[name for name, spec in TASKS.items() if not spec.long_horizon])
def one_step_task(request):
    """Every task of one pick (and place); the long-horizon ones have tests of their own (test_long_horizon.py)."""
    return request.param
