import gymnasium as gym
import mujoco
import numpy as np
import pytest

import snowflake as sf


def _check(g, nu):
    assert g.num_nodes == 1 + nu
    assert len(g.act_node) == nu
    assert (g.act_node > 0).all()
    assert len(set(g.act_node.tolist())) == nu  # one node per actuator
    used = set(g.obs_index[g.obs_index >= 0].tolist())
    assert used == set(range(g.obs_dim))  # every observation index belongs to >= 1 node
    e = {tuple(x) for x in g.edges.tolist()}
    assert all((b, a) in e for a, b in e)
    assert all(a != b for a, b in e)
    assert g.is_connected()


@pytest.mark.parametrize("n", [3, 6, 7, 20, 50])
def test_centipede_graph(n):
    env = gym.make(f"Centipede-{n}-v0")
    g = sf.morphology_from_env(env)
    _check(g, env.action_space.shape[0])
    env.close()


def test_node_types_identical_across_sizes():
    types = {
        n: sf.build_morphology(mujoco.MjModel.from_xml_string(sf.centipede_xml(n))).type_names
        for n in (3, 6, 20, 100)
    }
    assert len(set(types.values())) == 1
    assert len(types[6]) == 5  # root, hip, ankle and the two body joints


def test_parse_from_file_equals_string(tmp_path):
    xml = sf.centipede_xml(8)
    path = tmp_path / "c8.xml"
    path.write_text(xml)
    a = sf.build_morphology(mujoco.MjModel.from_xml_string(xml))
    b = sf.build_morphology(mujoco.MjModel.from_xml_path(str(path)))
    assert a.node_names == b.node_names
    assert a.type_names == b.type_names
    np.testing.assert_array_equal(a.edges, b.edges)
    np.testing.assert_array_equal(a.obs_index, b.obs_index)


@pytest.mark.parametrize("name", ["Ant-v5", "Walker2d-v5"])
def test_gymnasium_mujoco_envs(name):
    env = gym.make(name)
    g = sf.morphology_from_env(env)
    _check(g, env.action_space.shape[0])
    env.close()


def test_node_obs_view_and_adjacency():
    env = gym.make("Centipede-6-v0")
    g = sf.morphology_from_env(env)
    obs, _ = env.reset(seed=0)
    view = g.node_obs(obs)
    assert view.shape == (17, g.feat_dim)
    v, f = 3, 1
    assert view[v, f] == obs[g.obs_index[v, f]]
    a = g.adjacency()
    np.testing.assert_allclose(a.sum(1), 1.0, rtol=1e-6)  # mean aggregation: rows sum to one
    with pytest.raises(ValueError, match="features"):
        g.node_obs(obs[:-1])
    env.close()


def test_non_mujoco_env_is_rejected():
    env = gym.make("CartPole-v1")
    with pytest.raises(TypeError, match="MuJoCo"):
        sf.morphology_from_env(env)
