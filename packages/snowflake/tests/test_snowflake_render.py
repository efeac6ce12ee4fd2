import os
import subprocess
import sys

import pytest

import snowflake as sf

# MuJoCo picks its OpenGL backend when it is imported, so rendering runs in a fresh interpreter
# with MUJOCO_GL=egl (headless). Where no EGL device exists the probe fails and the test skips.
_PROBE = (
    "import mujoco; m = mujoco.MjModel.from_xml_string('<mujoco/>'); "
    "mujoco.Renderer(m, 16, 16).render()"
)
_RENDER = (
    "import sys; from snowflake.cli import main; "
    "sys.exit(main(['render', '--ckpt', sys.argv[1], '--out', sys.argv[2], '--steps', '4', "
    "'--width', '64', '--height', '48']))"
)


@pytest.mark.slow
def test_render_writes_gif(tmp_path):
    env = {**os.environ, "MUJOCO_GL": "egl", "PYOPENGL_PLATFORM": "egl"}
    probe = subprocess.run([sys.executable, "-c", _PROBE], env=env, capture_output=True, timeout=60)
    if probe.returncode != 0:
        pytest.skip("no headless EGL OpenGL on this machine")
    tr = sf.Trainer(
        sf.PPOConfig(
            env="Centipede-4",
            policy="snowflake",
            num_envs=1,
            rollout_steps=64,
            minibatch_size=32,
            total_steps=64,
            num_threads=1,
        )
    )
    tr.save(tmp_path / "init.pt")
    tr.close()
    gif = tmp_path / "roll.gif"
    run = subprocess.run(
        [sys.executable, "-c", _RENDER, str(tmp_path / "init.pt"), str(gif)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    import imageio.v2 as imageio

    frames = imageio.mimread(gif)
    assert 1 <= len(frames) <= 4
    assert frames[0].shape[:2] == (48, 64)
    assert frames[0].std() > 0  # not a blank image
