"""The MJX implementation option: "jax" everywhere, "warp" refused where it cannot run."""

import pytest

from envs import mjx_impl


def test_warp_is_refused_with_what_is_missing():
    with pytest.raises(ValueError, match=r"mujoco 3\.3\.0 .*pip install"):
        mjx_impl.check_impl("warp", mujoco_version="3.3.0", backend="gpu")
    with pytest.raises(ValueError, match="NVIDIA GPUs only; JAX's backend here is 'cpu'"):
        mjx_impl.check_impl("warp", mujoco_version="3.3.5", backend="cpu")
    assert mjx_impl.check_impl("warp", mujoco_version="3.3.5", backend="gpu") == "warp"
    assert mjx_impl.check_impl("warp", mujoco_version="3.10.0", backend="gpu") == "warp"
    with pytest.raises(ValueError, match="'cuda' is not one of"):
        mjx_impl.check_impl("cuda")


def test_envs_refuse_warp_on_this_machine_before_building_anything():
    from envs.clevr_robot import ClevrRobot
    from envs.metaworld import MetaWorldEnv

    for make in (lambda: MetaWorldEnv("reach-v3", impl="warp"), lambda: ClevrRobot(backend="mjx", impl="warp")):
        with pytest.raises(ValueError, match="impl='warp'"):
            make()


def test_jax_impl_builds_the_same_model():
    import mujoco
    import numpy as np
    from mujoco import mjx

    m = mujoco.MjModel.from_xml_string("<mujoco><worldbody><body><freejoint/><geom size='.1'/></body></worldbody></mujoco>")
    a, b = mjx_impl.put_model(m), mjx.put_model(m)
    np.testing.assert_array_equal(a.body_mass, b.body_mass)
    assert mjx_impl.make_data(m).qpos.shape == mjx.make_data(m).qpos.shape
