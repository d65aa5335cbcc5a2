"""RPP and RPP+: multi-agent actor-critic prompt personalization (arXiv 2407.17115), readable top to bottom.

Four actors, one per prompt pattern (role, history, reasoning, format), choose their sentences together; a
centralized critic (one shared value head, or one per agent) judges the state. The state encoder is the paper's:
the sentence embeddings of the user and of the current prompt, plus a GRU over the embeddings of the candidates in
the order the LLM last ranked them. Training is PPO-style (clipped policy gradient, GAE) on episodes of train users;
the checkpoint kept is the one with the best NDCG@10 on validation users (greedy policy, last round's ranking).

RPP+ then asks the language model to rewrite each sentence the policy picked (cached per sentence) and ranks with
the rewritten prompt: the paper's refinement step, measured separately.
"""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch import nn

from abgym.envs import prompt_actions as pa
from abgym.envs.prompt_personalization import AGENTS, PromptPersonalizationParallelEnv, PromptTask
from abgym.paths import atomic_write


REWARD_BASELINES = ("initial-prompt", "none")


TRAINING_TAGS = {"train_ndcg": "episode/ndcg@10", "validation_ndcg": "eval/ndcg@10"}


@dataclass
class RPPConfig:
    hidden: int = 128
    shared_critic: bool = True  # one centralized value head; False: one value head per agent
    learning_rate: float = 3e-4
    gamma: float = 0.9
    gae_lambda: float = 0.95
    clip: float = 0.2
    epochs: int = 4  # optimisation passes over each batch of episodes
    episodes_per_update: int = 16
    entropy_coef: float = 0.01
    value_coef: float = 0.5
    max_grad_norm: float = 0.5
    # Subtract each user's NDCG under the episode's starting prompt from the reward. Which user an episode draws
    # explains about 80% of the NDCG's variance on ML-100K, the prompt a few percent (docs/rpp.md); the critic sees
    # the user's embedding but must learn its difficulty from a few hundred episodes. This baseline removes that part
    # at once, without biasing the policy gradient (it is fixed before any action). It changes the scale of the
    # value loss, so `rpp/value_loss` is not comparable across settings. "none": the raw NDCG.
    reward_baseline: str = "initial-prompt"


class few_threads:
    """Run the small networks on one thread: on shared 2-core machines, more threads only add contention
    (measured: 5x slower training with 2 threads under load). The language model keeps its own setting."""

    def __init__(self, n: int = 1):
        self.n = n

    def __enter__(self):
        self.previous = torch.get_num_threads()
        if self.previous != self.n:
            torch.set_num_threads(self.n)

    def __exit__(self, *exc):
        if self.previous != self.n:
            torch.set_num_threads(self.previous)


def obs_to_tensors(observations: Sequence[dict]) -> dict[str, torch.Tensor]:
    return {k: torch.as_tensor(np.stack([o[k] for o in observations]), dtype=torch.float32) for k in observations[0]}


class StateEncoder(nn.Module):
    """Sentence embeddings of user and prompt (plus the action one-hots and the round) and a GRU over the ranking."""

    def __init__(self, dim: int, hidden: int):
        super().__init__()
        self.context = nn.Sequential(nn.Linear(2 * dim + sum(pa.ACTION_SIZES) + 1, hidden), nn.Tanh())
        self.gru = nn.GRU(dim, hidden, batch_first=True)
        self.merge = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh())

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        context = self.context(torch.cat([obs["user"], obs["prompt"], obs["actions"], obs["round"]], dim=-1))
        _, last = self.gru(obs["ranking"])  # best-ranked candidate first
        return self.merge(torch.cat([context, last[0]], dim=-1))


class RPPNetwork(nn.Module):
    def __init__(self, dim: int, config: RPPConfig):
        super().__init__()
        self.encoder = StateEncoder(dim, config.hidden)
        self.actors = nn.ModuleList(nn.Linear(config.hidden, n) for n in pa.ACTION_SIZES)
        self.critic = nn.Linear(config.hidden, 1 if config.shared_critic else len(AGENTS))
        for actor in self.actors:  # start near uniform, as a fair comparison with random prompts
            nn.init.zeros_(actor.bias)
            actor.weight.data.mul_(0.01)

    def forward(self, obs):
        hidden = self.encoder(obs)
        dists = [torch.distributions.Categorical(logits=actor(hidden)) for actor in self.actors]
        return dists, self.critic(hidden)


@dataclass
class TrainingLog:
    episodes: int = 0
    rankings: int = 0  # the policy's prompts ranked (one per round)
    baseline_rankings: int = 0  # the reward baseline's, one per episode (from the cache after a user's first)
    seconds: float = 0.0
    best_validation_ndcg: float = float("nan")
    history: list[dict] = field(default_factory=list)


class RPPAgent:
    """The four actors and the critic, with training, acting and checkpointing."""

    def __init__(self, dim: int, config: RPPConfig | None = None, seed: int = 0):
        self.config = config or RPPConfig()
        self.seed = seed
        with torch.random.fork_rng(devices=[]):  # seeded weights without reseeding the caller's global RNG
            torch.manual_seed(seed)
            self.net = RPPNetwork(dim, self.config)
        self.dim = dim
        self.generator = torch.Generator().manual_seed(seed)

    # --- acting ---
    @torch.no_grad()
    def act(self, observation: dict, deterministic: bool = True) -> dict[str, int]:
        with few_threads():
            dists, _ = self.net(obs_to_tensors([observation]))
        actions = []
        for dist in dists:
            if deterministic:
                actions.append(int(dist.probs.argmax(-1)))
            else:
                actions.append(int(torch.multinomial(dist.probs, 1, generator=self.generator)))
        return dict(zip(AGENTS, actions))

    def run_episode(self, env: PromptPersonalizationParallelEnv, *, deterministic: bool, seed=None, options=None):
        """One episode; returns the transitions and the last step's info (the final prompt's metrics)."""
        obs, _ = env.reset(seed=seed, options=options)
        transitions, info = [], {}
        while env.agents:
            observation = obs[AGENTS[0]]
            actions = self.act(observation, deterministic)
            obs, rewards, terms, _, infos = env.step(actions)
            info = infos[AGENTS[0]]
            transitions.append((observation, [actions[a] for a in AGENTS], rewards[AGENTS[0]], terms[AGENTS[0]]))
        return transitions, info

    def evaluate(self, env: PromptPersonalizationParallelEnv, users: Sequence | None = None) -> list[dict]:
        """Greedy episodes on each user of ``env`` (or ``users``, indices into env.users); last round's metrics."""
        indices = range(len(env.users)) if users is None else users
        results = []
        for index in indices:
            _, info = self.run_episode(env, deterministic=True, options={"user_index": index})
            results.append(info)
        return results

    # --- learning ---
    def _update(self, batch: list[list[tuple]]) -> dict[str, float]:
        cfg = self.config
        observations, actions, advantages, returns = [], [], [], []
        with torch.no_grad():
            for episode in batch:
                obs_t = obs_to_tensors([t[0] for t in episode])
                _, values = self.net(obs_t)
                values = values.numpy()  # (T, 1 or n_agents)
                rewards = np.array([t[2] for t in episode], dtype=np.float32)
                gae = np.zeros(values.shape[1], dtype=np.float32)
                adv = np.zeros_like(values)
                for t in reversed(range(len(episode))):
                    next_value = values[t + 1] if t + 1 < len(episode) and not episode[t][3] else 0.0
                    delta = rewards[t] + cfg.gamma * next_value - values[t]
                    gae = delta + cfg.gamma * cfg.gae_lambda * gae
                    adv[t] = gae
                observations.extend(t[0] for t in episode)
                actions.extend(t[1] for t in episode)
                advantages.append(adv)
                returns.append(adv + values)
        obs_t = obs_to_tensors(observations)
        actions_t = torch.as_tensor(actions, dtype=torch.long)
        adv_t = torch.as_tensor(np.concatenate(advantages))
        ret_t = torch.as_tensor(np.concatenate(returns))
        with torch.no_grad():
            dists, _ = self.net(obs_t)
            old_logp = torch.stack([d.log_prob(actions_t[:, i]) for i, d in enumerate(dists)], dim=1)
        norm_adv = (adv_t - adv_t.mean()) / (adv_t.std() + 1e-8) if len(adv_t) > 1 else adv_t
        if norm_adv.shape[1] == 1:
            norm_adv = norm_adv.expand(-1, len(AGENTS))
        stats = {}
        for _ in range(cfg.epochs):
            dists, values = self.net(obs_t)
            logp = torch.stack([d.log_prob(actions_t[:, i]) for i, d in enumerate(dists)], dim=1)
            ratio = torch.exp(logp - old_logp)
            policy_loss = -torch.min(ratio * norm_adv, ratio.clamp(1 - cfg.clip, 1 + cfg.clip) * norm_adv).mean()
            value_loss = ((values - ret_t) ** 2).mean()
            entropy = torch.stack([d.entropy() for d in dists], dim=1).mean()
            loss = policy_loss + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
            self.optimizer.zero_grad()
            loss.backward()
            nn.utils.clip_grad_norm_(self.net.parameters(), cfg.max_grad_norm)
            self.optimizer.step()
            stats = {"policy_loss": policy_loss.item(), "value_loss": value_loss.item(), "entropy": entropy.item()}
        return stats

    def train(
        self,
        env: PromptPersonalizationParallelEnv,
        *,
        episodes: int,
        validation_env: PromptPersonalizationParallelEnv | None = None,
        eval_every: int = 4,
        writer=None,
        progress: bool = False,
    ) -> TrainingLog:
        """Train on ``episodes`` episodes of ``env``'s users; keep the best checkpoint on ``validation_env``.

        ``writer`` is a TensorBoard ``SummaryWriter`` (optional). Episodes draw users from ``env`` seeded by the
        agent's seed, so the same seed gives the same run."""
        cfg = self.config
        if cfg.reward_baseline not in REWARD_BASELINES:
            raise ValueError(f"reward_baseline {cfg.reward_baseline!r} is not one of {REWARD_BASELINES}")
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=cfg.learning_rate, eps=1e-5)
        log = TrainingLog()
        start = time.perf_counter()
        rng = np.random.default_rng(self.seed)
        best_state, best_score, updates = None, -np.inf, 0
        recommender = env.task.recommender
        while log.episodes < episodes:
            batch, ndcgs = [], []
            for _ in range(min(cfg.episodes_per_update, episodes - log.episodes)):
                transitions, _ = self.run_episode(env, deterministic=False, seed=int(rng.integers(2**31)))
                ndcgs.extend(t[2] for t in transitions)
                if cfg.reward_baseline == "initial-prompt":
                    # The episode's user is env.case; training passes no reset options, so it started from the
                    # configured initial prompt.
                    baseline = env.task.evaluate(env.case, env.config["initial_actions"]).metrics["ndcg@10"]
                    transitions = [(o, a, r - baseline, d) for o, a, r, d in transitions]
                    log.baseline_rankings += 1
                batch.append(transitions)
                log.episodes += 1
                log.rankings += len(transitions)
            with few_threads():
                stats = self._update(batch)
            updates += 1
            record = {"episodes": log.episodes, "train_ndcg": float(np.mean(ndcgs)), **stats}
            if validation_env is not None and (updates % eval_every == 0 or log.episodes >= episodes):
                score = float(np.mean([r["ndcg@10"] for r in self.evaluate(validation_env)]))
                record["validation_ndcg"] = score
                if score > best_score:
                    best_score = score
                    best_state = {k: v.clone() for k, v in self.net.state_dict().items()}
            record["seconds"] = time.perf_counter() - start
            if hasattr(recommender, "stats"):
                record["cache_hits"] = recommender.stats.cache_hits
                record["llm_calls"] = recommender.stats.calls
            log.history.append(record)
            if writer is not None:
                # The project's tag scheme (docs/CONTRACTS.md): the training episodes' NDCG@10 is episode/ndcg@10,
                # the validation users' eval/ndcg@10, the update's own statistics train/* (as SB3 names them).
                for key, value in record.items():
                    if key != "episodes":
                        tag = TRAINING_TAGS.get(key, f"train/{key}")
                        writer.add_scalar(tag, value, log.episodes)
            if progress:
                shown = ", ".join(f"{k} {v:.3f}" if isinstance(v, float) else f"{k} {v}" for k, v in record.items())
                print(f"  [rpp seed {self.seed}] {shown}", flush=True)
        if best_state is not None:
            self.net.load_state_dict(best_state)
            log.best_validation_ndcg = best_score
        log.seconds = time.perf_counter() - start
        return log

    # --- checkpoints ---
    def save(self, path: str | Path) -> None:
        with atomic_write(path) as handle:
            torch.save({"state_dict": self.net.state_dict(), "config": asdict(self.config), "dim": self.dim,
                        "seed": self.seed}, handle)

    @classmethod
    def load(cls, path: str | Path) -> "RPPAgent":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no RPP checkpoint at {path}; train one with `abgym rpp train`")
        payload = torch.load(path, weights_only=True)
        agent = cls(payload["dim"], RPPConfig(**payload["config"]), seed=payload["seed"])
        agent.net.load_state_dict(payload["state_dict"])
        return agent


def rpp_plus(
    agent: RPPAgent, env: PromptPersonalizationParallelEnv, rewriter, users: Sequence[int] | None = None
) -> list[dict]:
    """RPP+: the greedy policy's final prompt per user, with each of its sentences rewritten by the language model."""
    task: PromptTask = env.task
    results = []
    for index in range(len(env.users)) if users is None else users:
        _, info = agent.run_episode(env, deterministic=True, options={"user_index": index})
        actions = info["prompt_actions"]
        chosen = [rewriter.rewrite(s) for s in pa.sentences(actions, task.domain)]
        outcome = task.evaluate(env.users[index], actions, chosen)
        results.append({**outcome.metrics, "user_id": env.users[index].user_id, "prompt_actions": actions})
    return results
