"""Reinforced Prompt Personalization as a PettingZoo ParallelEnv: four agents write one prompt, a standard loop.

    python examples/pettingzoo_rpp.py --episodes 200

Each agent (role, history, reasoning, format) picks its sentence of the prompt; all four share the reward, the
NDCG@10 of the recommender's ranking. Here every agent is an independent epsilon-greedy learner over its own
actions (a per-agent bandit), and the recommender is ``synthetic`` (a known best prompt, no language model), so the
example runs in seconds; use ``recommender="llm-score"`` and ``dataset="movielens-100k"`` for the real task.
"""
from __future__ import annotations

import argparse

import numpy as np

from abgym.envs.prompt_personalization import parallel_env


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--episodes", type=int, default=200)
    parser.add_argument("--epsilon", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    env = parallel_env(dataset="synthetic", recommender="synthetic", embedder="hashing")
    rng = np.random.default_rng(args.seed)
    value = {agent: np.zeros(env.action_space(agent).n) for agent in env.possible_agents}
    count = {agent: np.zeros(env.action_space(agent).n) for agent in env.possible_agents}
    first, last = [], []
    for episode in range(args.episodes):
        observations, infos = env.reset(seed=args.seed + episode)
        while env.agents:  # the standard PettingZoo parallel loop
            actions = {}
            for agent in env.agents:
                explore = rng.random() < args.epsilon
                actions[agent] = int(rng.integers(len(value[agent])) if explore else np.argmax(value[agent]))
            observations, rewards, terminations, truncations, infos = env.step(actions)
            for agent, action in actions.items():
                count[agent][action] += 1
                value[agent][action] += (rewards[agent] - value[agent][action]) / count[agent][action]
        ndcg = infos[env.possible_agents[0]]["ndcg@10"]
        (first if episode < args.episodes // 2 else last).append(ndcg)
    env.close()
    best = tuple(int(np.argmax(value[agent])) for agent in env.possible_agents)
    print(f"NDCG@10 of the final prompt: first half {np.mean(first):.3f}, second half {np.mean(last):.3f}; "
          f"greedy prompt {best}, the synthetic recommender's best {tuple(env.config['synthetic_best_actions'])}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
