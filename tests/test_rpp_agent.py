"""RPP learns the known best prompt of a synthetic problem; checkpoints; the evaluation pipeline end to end."""
import numpy as np
import pytest

from abgym.agents.rpp import RPPAgent, RPPConfig
from abgym.envs import prompt_actions as pa
from abgym.envs.prompt_personalization import parallel_env

FAST = dict(dataset="synthetic", recommender="synthetic", embedder="hashing", rounds=2)
BEST = (3, 2, 7, 1)  # the synthetic recommender's default best prompt


def envs():
    train = parallel_env(FAST)
    validation = parallel_env({**FAST, "split": "validation"}, task=train.task)
    test = parallel_env({**FAST, "split": "test"}, task=train.task)
    return train, validation, test


def random_prompt_ndcg(test, seed=0):
    rng = np.random.default_rng(seed)
    return np.mean([
        test.task.evaluate(case, [rng.integers(n) for n in pa.ACTION_SIZES]).metrics["ndcg@10"]
        for case in test.users for _ in range(5)
    ])


def test_training_beats_random_prompts_and_finds_the_best_prompt():
    train, validation, test = envs()
    agent = RPPAgent(train.task.dim, RPPConfig(learning_rate=3e-3), seed=0)
    log = agent.train(train, episodes=320, validation_env=validation)
    results = agent.evaluate(test)
    trained = np.mean([r["ndcg@10"] for r in results])
    assert trained > random_prompt_ndcg(test) + 0.3
    assert np.mean([r["prompt_actions"] == BEST for r in results]) > 0.8
    assert log.best_validation_ndcg >= 0.9 and log.rankings == 640


def test_same_seed_same_training(tmp_path):
    train, validation, _ = envs()
    logs = []
    for _ in range(2):
        agent = RPPAgent(train.task.dim, RPPConfig(episodes_per_update=8), seed=3)
        logs.append([h["train_ndcg"] for h in agent.train(train, episodes=24).history])
    assert logs[0] == logs[1]
    agent.save(tmp_path / "rpp.pt")
    loaded = RPPAgent.load(tmp_path / "rpp.pt")
    obs, _ = train.reset(seed=1)
    assert loaded.act(obs["role"]) == agent.act(obs["role"])
    with pytest.raises(FileNotFoundError, match="abgym rpp train"):
        RPPAgent.load(tmp_path / "missing.pt")


def test_evaluation_writes_every_output(tmp_path):
    from abgym.studies.rpp_evaluation import EvaluationSettings, run_evaluation

    settings = EvaluationSettings(
        dataset="synthetic", recommender="synthetic", embedder="hashing", seeds=(0, 1), n_train=20,
        n_validation=5, n_test=6, rounds=2, episodes=16, n_search_users=4, n_enumeration_users=1,
    )
    result = run_evaluation(settings, tmp_path, quiet=True)
    methods = {e["method"] for e in result["summary"]}
    assert {"popularity", "random-ranking", "hand-written", "random-prompt", "best-fixed", "rpp",
            "rpp-fix-role", "rpp-fix-format", "enumeration-bound"} <= methods
    bound = next(e for e in result["summary"] if e["method"] == "enumeration-bound")
    assert bound["ndcg@10"] == 1.0  # the synthetic best prompt puts the target first
    hand = next(e for e in result["summary"] if e["method"] == "hand-written")
    assert hand["ndcg@10_vs_hand_written"] == 0.0
    # Paired on the bound's users only: their own hand-written scores, not the mean over all test users.
    hand_on_bound_user = next(r["ndcg@10"] for r in result["rows"]
                              if r["method"] == "hand-written" and r["user_id"] == result["rows"][-1]["user_id"])
    assert bound["ndcg@10_vs_hand_written"] == pytest.approx(1.0 - hand_on_bound_user)
    assert "| hand-written | 6 | " in (tmp_path / "summary.md").read_text()
    for name in ("per_user.csv", "summary.csv", "summary.md", "ndcg.png", "training.png", "run.json"):
        assert (tmp_path / name).stat().st_size > 0
    from abgym.tensorboard import read_scalars

    tags = set(read_scalars(tmp_path / "tensorboard" / "seed0"))
    assert {"episode/ndcg@10", "eval/ndcg@10"} <= tags and not any(tag.startswith("rpp/") for tag in tags)


def test_command_line_train_and_bad_option(tmp_path, capsys):
    from abgym.cli import main

    args = ["rpp", "train", "--dataset", "synthetic", "--recommender", "synthetic", "--embedder", "hashing",
            "--episodes", "8", "--episodes-per-update", "4", "--out", str(tmp_path)]
    assert main(args) == 0
    assert (tmp_path / "rpp_seed0.pt").is_file() and "best validation NDCG@10" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="--episodes must be at least 1"):
        main(args[:-6] + ["--episodes", "0"])


@pytest.mark.parametrize("baseline", ["initial-prompt", "none"])
def test_reward_baseline_subtracts_the_users_starting_prompt_score(baseline):
    # A starting prompt with one best sentence: its score varies by user, so the wrong user's baseline would show.
    start_prompt = (3, 0, 0, 0)
    train = parallel_env({**FAST, "initial_actions": start_prompt})
    agent = RPPAgent(train.task.dim, RPPConfig(episodes_per_update=8, reward_baseline=baseline), seed=0)
    seen = []

    def capture(batch):
        seen.extend(batch)
        return {}

    agent._update = capture
    log = agent.train(train, episodes=8)
    assert len(seen) == 8 and log.baseline_rankings == (8 if baseline == "initial-prompt" else 0)
    starts = set()
    for episode in seen:
        for observation, actions, reward, _ in episode:
            # The observation names the user only through its embedding: find the case by it.
            case = next(c for c in train.users if np.array_equal(train.task.user_vector(c), observation["user"]))
            raw = train.task.evaluate(case, actions).metrics["ndcg@10"]
            start = train.task.evaluate(case, start_prompt).metrics["ndcg@10"]
            starts.add(start)
            assert reward == pytest.approx(raw - start if baseline == "initial-prompt" else raw)
    assert len(starts) > 1


def test_summary_pairs_each_method_with_the_hand_written_prompt_by_user():
    from abgym.studies.rpp_evaluation import markdown_table, summarize

    hand = {"7": 0.2, "8": 0.9, "9": 0.5}
    other = {"9": 0.6, "7": 0.5, "8": 0.9}  # listed in another order: pairing goes by user id
    rows = [{"method": "hand-written", "seed": 0, "user_id": u, "ndcg@10": v, "hr@1": 0, "hr@3": 0}
            for u, v in hand.items()]
    rows += [{"method": "other", "seed": s, "user_id": u, "ndcg@10": v + 0.1 * s, "hr@1": 0, "hr@3": 0}
             for s in (0, 1) for u, v in other.items()]
    rows += [{"method": "bound", "seed": 0, "user_id": 8, "ndcg@10": 1.0, "hr@1": 1, "hr@3": 1}]  # an int id, as
    summary = {e["method"]: e for e in summarize(rows, [8])}  # read back from a CSV
    # other, seed-averaged: 7 -> 0.55, 8 -> 0.95, 9 -> 0.65; differences 0.35, 0.05, 0.15
    assert summary["other"]["ndcg@10_vs_hand_written"] == pytest.approx(0.55 / 3)
    assert summary["other"]["ndcg@10_vs_hand_written_low"] < 0.55 / 3 < summary["other"]["ndcg@10_vs_hand_written_high"]
    assert summary["bound"]["ndcg@10_vs_hand_written"] == pytest.approx(0.1)  # user 8 only
    assert summary["bound"]["ndcg@10_vs_hand_written_n"] == 1
    assert summary["other"]["ndcg@10_on_enumeration_users"] == pytest.approx(0.95)
    table = markdown_table(list(summary.values()))
    assert "| hand-written | 3 | 0.533 [" in table and "(reference)" in table and "+0.183 [" in table


def test_unknown_reward_baseline_is_refused():
    train, _, _ = envs()
    with pytest.raises(ValueError, match="reward_baseline 'per-batch' is not one of"):
        RPPAgent(train.task.dim, RPPConfig(reward_baseline="per-batch")).train(train, episodes=1)
