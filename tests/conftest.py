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


@pytest.fixture(params=list(TASKS))
def task_name(request):
    return request.param
