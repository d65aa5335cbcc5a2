"""Steps per second of abgym's environments under a random valid policy, raw and through ``gymnasium.make``.

Each benchmark also times gymnasium's CartPole-v1 (through ``gymnasium.make``, as users make it), interleaved with its
own runs, so that the figures can be compared across machines and loads as a ratio; RecoGym, a peer environment,
steps at about 8,000 steps/s on the project's machines (a quoted figure, not measured here). The rows issue 17 sets
a target for (``TARGETS``: ABTest-v0 >= 2x, the single PersonalizedMarketing-v0 and CustomerJourney-v0 >= 1x,
their batched user-steps at N = 4,096 >= 70x) say pass or FAIL, and the CPU line (``abgym.machine``) and the load
are printed at the start and the end. Single envs are seeded at their first reset only, as training loops reset
them; the "reset(seed) each episode" rows give every episode a new seed (CartPole-v1 too, timed alike).

    python scripts/bench_envs.py                 # every benchmark
    python scripts/bench_envs.py --only ab_test  # one of them
    python scripts/bench_envs.py --seconds 3 --repeats 5   # longer, steadier measurements
    python scripts/bench_envs.py --only sb3_ppo  # SB3 PPO env-steps/s: make_sb3_vec_env vs make_vec_env

To add an environment, write ``bench_<name>(seconds, repeats) -> list[Result]`` (usually one call of ``measure``)
and append it to ``BENCHMARKS``.
"""
from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Callable

import gymnasium as gym
import numpy as np

import abgym  # noqa: F401  (registers the environment ids)

RECOGYM_STEPS_PER_SECOND = 8_000  # quoted by the issue for the project's machines


@dataclass
class Result:
    name: str
    steps: int
    seconds: float
    reference_steps_per_second: float  # CartPole-v1, timed interleaved with this env
    target: float | None = None  # issue 17's target for the ratio to CartPole-v1, where it sets one

    @property
    def steps_per_second(self) -> float:
        return self.steps / self.seconds

    @property
    def ratio(self) -> float:
        return self.steps_per_second / self.reference_steps_per_second


# Issue 17's targets, as ratios to CartPole-v1 through gymnasium.make in the same run: the envs through
# gymnasium.make (what users pay) and the batched simulators' user-steps/s at N = 4,096.
TARGETS = {"abgym/ABTest-v0 gymnasium.make": 2.0, "abgym/PersonalizedMarketing-v0 gymnasium.make": 1.0,
           "abgym/CustomerJourney-v0 gymnasium.make": 1.0, "PM-v0 user-steps, N=4096": 70.0,
           "CJ-v0 user-steps, N=4096": 70.0}


def with_targets(results: list[Result]) -> list[Result]:
    for result in results:
        result.target = next((ratio for prefix, ratio in TARGETS.items() if result.name.startswith(prefix)), None)
    return results


def time_random_policy(env: gym.Env, seconds: float, seed: int = 0, masked: bool = True,
                       reseed: bool = False) -> tuple[int, float]:
    """Step ``env`` with uniformly random valid actions for about ``seconds``; return (steps, elapsed seconds).

    The policy draws from a seeded generator among the arms of ``info["action_mask"]`` (or the whole action space
    when the env has no mask); resets are counted in the elapsed time, as a training loop pays for them. The env is
    seeded at the first reset only, as training loops do (SB3's VecEnvs, CleanRL); ``reseed`` passes a new seed to
    every reset instead, as some evaluation loops do (a new random stream per episode: 50-60 us for
    CustomerJourney-v0, whose journeys last about 13 visits).
    """
    rng = np.random.default_rng(seed)
    steps, episode = 0, 0
    start = time.perf_counter()
    deadline = start + seconds
    while True:
        _, info = env.reset(seed=seed + episode) if reseed or episode == 0 else env.reset()
        episode += 1
        n_valid = int(np.sum(info["action_mask"])) if masked else int(env.action_space.n)
        done = False
        while not done:
            _, _, terminated, truncated, info = env.step(int(rng.integers(n_valid)))
            done = terminated or truncated
            steps += 1
        if time.perf_counter() >= deadline:
            return steps, time.perf_counter() - start


REFERENCE = "CartPole-v1 (reference)"


def measure(named_envs: list[tuple[str, gym.Env]], seconds: float, repeats: int, reseed: bool = False) -> list[Result]:
    """Time each env and gymnasium's CartPole-v1 ``repeats`` times, interleaved (so that a burst of load on the shared
    machine hits them all alike), and keep each one's median run; CartPole's median, timed the same way (``reseed``
    too), is the yardstick."""
    reference = REFERENCE if not reseed else f"{REFERENCE}, reset(seed) each episode"
    named = [(reference, gym.make("CartPole-v1")), *named_envs]
    for name, env in named:
        time_random_policy(env, min(0.2, seconds), masked=name != reference, reseed=reseed)  # warm-up: caches
    runs: dict[str, list[tuple[int, float]]] = {name: [] for name, _ in named}
    for _ in range(repeats):
        for name, env in named:
            runs[name].append(time_random_policy(env, seconds, masked=name != reference, reseed=reseed))
    medians = {
        name: sorted(measured, key=lambda run: run[0] / run[1])[len(measured) // 2] for name, measured in runs.items()
    }
    reference_speed = medians[reference][0] / medians[reference][1]
    return [Result(name, *medians[name], reference_speed) for name, _ in named]


def reseeded(env_id: str, made: gym.Env, seconds: float, repeats: int) -> list[Result]:
    """``env_id`` through gymnasium.make with a new seed at every reset, beside CartPole-v1 timed alike."""
    return measure([(f"{env_id} make, reset(seed) each episode", made)], seconds, repeats, reseed=True)


def measure_cpu(named_envs: list[tuple[str, gym.Env]], seconds: float, repeats: int) -> list[Result]:
    """``measure`` in CPU-seconds of this process (``time.process_time``), which the other processes on a shared
    machine inflate much less than wall time; CartPole-v1, timed the same way, is again the yardstick."""
    named = [("CartPole-v1 (reference), per CPU-s", gym.make("CartPole-v1")), *named_envs]
    runs: dict[str, list[tuple[int, float]]] = {name: [] for name, _ in named}
    for _ in range(repeats):
        for name, env in named:
            cpu = time.process_time()
            steps, _ = time_random_policy(env, seconds, masked=not name.startswith("CartPole"))
            runs[name].append((steps, time.process_time() - cpu))
    medians = {
        name: sorted(measured, key=lambda run: run[0] / run[1])[len(measured) // 2] for name, measured in runs.items()
    }
    reference = medians[named[0][0]][0] / medians[named[0][0]][1]
    return [Result(name, *medians[name], reference) for name, _ in named]


def bench_ab_test(seconds: float, repeats: int) -> list[Result]:
    """abgym/ABTest-v0 on the shipped Upworthy data, defaults (about 100 steps per episode)."""
    made = gym.make("abgym/ABTest-v0")
    return measure(
        [("abgym/ABTest-v0 raw env", made.unwrapped), ("abgym/ABTest-v0 gymnasium.make", made)], seconds, repeats
    ) + reseeded("abgym/ABTest-v0", made, seconds, repeats)


def bench_personalized_marketing(seconds: float, repeats: int) -> list[Result]:
    """abgym/PersonalizedMarketing-v0, defaults: the single env, then user-steps/s of the batched simulator
    (``make_vec(..., vectorization_mode="vector_entry_point")``) at N = 1, 64, 1024, 4096, with its peak memory
    (tracemalloc over a reset and 20 steps, in a separate untimed run)."""
    env_id = "abgym/PersonalizedMarketing-v0"
    made = gym.make(env_id)
    results = measure([(f"{env_id} raw env", made.unwrapped), (f"{env_id} gymnasium.make", made)], seconds, repeats)
    reference = results[0].reference_steps_per_second
    results += reseeded(env_id, made, seconds, repeats)
    cpu = measure_cpu([("PM-v0 raw env, per CPU-s", made.unwrapped), ("PM-v0 gymnasium.make, per CPU-s", made)],
                      seconds, repeats)
    results += cpu + batched_user_steps(env_id, "PM-v0", seconds, repeats, reference,
                                        cpu[0].reference_steps_per_second)
    return results


def batched_user_steps(env_id: str, short: str, seconds: float, repeats: int, reference: float,
                       cpu_reference: float, sizes=(1, 64, 1024, 4096)) -> list[Result]:
    """User-steps/s of ``env_id``'s batched simulator (``make_vec(..., vectorization_mode="vector_entry_point")``)
    at each N, with its peak memory (tracemalloc over a reset and 20 steps, in a separate untimed run). A world's
    autoreset step (NEXT_STEP: the step after its episode ended, whose action is ignored) is not a user-step and is
    not counted. The same runs also give user-steps per CPU-second of this process at N = 4,096, against
    CartPole-v1's steps per CPU-second (``cpu_reference``): on a shared machine the wall figure of a memory-bound
    batch moves with the other processes far more than its CPU time does."""
    import tracemalloc

    results = []
    for n in sizes:
        envs = gym.make_vec(env_id, num_envs=n, vectorization_mode="vector_entry_point")
        rng = np.random.default_rng(0)
        actions = [rng.integers(envs.single_action_space.n, size=n) for _ in range(64)]
        tracemalloc.start()
        envs.reset(seed=0)
        for step in range(20):
            envs.step(actions[step])
        peak_mb = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
        runs, cpu_runs = [], []
        for _ in range(repeats):
            envs.reset(seed=0)
            steps, user_steps, restarting = 0, 0, 0
            start, cpu = time.perf_counter(), time.process_time()
            while time.perf_counter() - start < seconds:
                _, _, terminated, truncated, _ = envs.step(actions[steps % 64])
                user_steps += n - restarting
                restarting = int(np.count_nonzero(terminated | truncated))
                steps += 1
            runs.append((user_steps, time.perf_counter() - start))
            cpu_runs.append((user_steps, time.process_time() - cpu))
        median = sorted(runs, key=lambda run: run[0] / run[1])[len(runs) // 2]
        results.append(Result(f"{short} user-steps, N={n} ({peak_mb:.0f} MiB peak)", *median, reference))
        if n == max(sizes):
            cpu_median = sorted(cpu_runs, key=lambda run: run[0] / run[1])[len(cpu_runs) // 2]
            results.append(Result(f"{short} user-steps per CPU-s, N={n}", *cpu_median, cpu_reference))
    return results


def bench_customer_journey(seconds: float, repeats: int) -> list[Result]:
    """abgym/CustomerJourney-v0, defaults: the single env (raw and through gymnasium.make), then user-steps/s of
    the batched simulator at N = 1, 64, 1024, 4096."""
    env_id = "abgym/CustomerJourney-v0"
    made = gym.make(env_id)
    results = measure([(f"{env_id} raw env", made.unwrapped), (f"{env_id} gymnasium.make", made)], seconds, repeats)
    reference = results[0].reference_steps_per_second
    cpu = measure_cpu([("CJ-v0 gymnasium.make, per CPU-s", made)], seconds, repeats)
    return (results + reseeded(env_id, made, seconds, repeats) + cpu
            + batched_user_steps(env_id, "CJ-v0", seconds, repeats, reference, cpu[0].reference_steps_per_second))


NOTES: list[str] = []  # lines a benchmark adds below the table (ratios that are not against CartPole)


def bench_sb3_ppo(seconds: float, repeats: int, n_envs: int = 16) -> list[Result]:
    """SB3 PPO env-steps/s on PersonalizedMarketing-v0 (defaults), training included: ``abgym.make_sb3_vec_env``
    (the batched simulator behind SB3's VecEnv) against SB3's ``make_vec_env`` of single envs (a DummyVecEnv), with
    the same PPO settings, interleaved; each run trains a fresh model for ``repeats`` x 4 rollouts of 2,048 steps at
    least ``seconds`` long. The "x CartPole" column is against the make_vec_env run here (printed below)."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.env_util import make_vec_env

    env_id = "abgym/PersonalizedMarketing-v0"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a small MLP: extra threads only add overhead
    makers = {
        f"SB3 PPO, abgym.make_sb3_vec_env (N={n_envs})": lambda: abgym.make_sb3_vec_env(env_id, n_envs, seed=0),
        f"SB3 PPO, make_vec_env single envs (N={n_envs})": lambda: make_vec_env(lambda: gym.make(env_id), n_envs=n_envs,
                                                                              seed=0),
    }
    steps_per_rollout = 2048
    runs: dict[str, list[tuple[int, float]]] = {name: [] for name in makers}
    try:
        for _ in range(repeats):
            for name, make in makers.items():
                venv = make()
                model = PPO("MultiInputPolicy", venv, n_steps=steps_per_rollout // n_envs, batch_size=256,
                            n_epochs=4, seed=0, verbose=0, device="cpu")
                total, start = 0, time.perf_counter()
                while total < 4 * steps_per_rollout or time.perf_counter() - start < seconds:
                    model.learn(steps_per_rollout, reset_num_timesteps=False)
                    total += steps_per_rollout
                runs[name].append((total, time.perf_counter() - start))
                venv.close()
    finally:
        torch.set_num_threads(threads)
    medians = {name: sorted(r, key=lambda run: run[0] / run[1])[len(r) // 2] for name, r in runs.items()}
    batched, single = (medians[name] for name in makers)
    reference = single[0] / single[1]
    ratio = (batched[0] / batched[1]) / reference
    NOTES.append(f"SB3 PPO on {env_id}, N={n_envs}, training included: make_sb3_vec_env "
                 f"{batched[0] / batched[1]:,.0f} env-steps/s vs make_vec_env {reference:,.0f}: {ratio:.2f}x")
    return [Result(name, *medians[name], reference) for name in makers]


BENCHMARKS: list[Callable[[float, int], list[Result]]] = [bench_ab_test, bench_personalized_marketing,
                                                          bench_customer_journey, bench_sb3_ppo]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=1.0, help="time per measurement (default: 1)")
    parser.add_argument("--repeats", type=int, default=3, help="interleaved measurements per env, median kept")
    parser.add_argument("--only", action="append", default=[], help="run only bench_<ONLY> (repeatable)")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.repeats < 1:
        parser.error("--seconds must be positive and --repeats at least 1")
    chosen = BENCHMARKS
    if args.only:
        known = {b.__name__.removeprefix("bench_"): b for b in BENCHMARKS}
        unknown = [name for name in args.only if name not in known]
        if unknown:
            parser.error(f"unknown benchmark(s) {unknown}; choose from {sorted(known)}")
        chosen = [known[name] for name in args.only]

    from abgym.machine import cpu_description, load_line

    print(f"CPU: {cpu_description()}; {load_line()} at start")
    print(f"{'environment':<48} {'steps':>9} {'steps/s':>11} {'x CartPole':>10} {'x RecoGym':>9} {'target':>7}")
    verdicts = []
    for bench in chosen:
        for row in with_targets(bench(args.seconds, args.repeats)):
            verdict = "" if row.target is None else f">={row.target:g}x {'pass' if row.ratio >= row.target else 'FAIL'}"
            if row.target is not None:
                verdicts.append(f"{row.name}: {row.ratio:.2f}x CartPole-v1, target >= {row.target:g}x: "
                                f"{'pass' if row.ratio >= row.target else 'FAIL'}")
            print(
                f"{row.name:<48} {row.steps:>9d} {row.steps_per_second:>11,.0f} {row.ratio:>10.2f} "
                f"{row.steps_per_second / RECOGYM_STEPS_PER_SECOND:>9.1f} {verdict:>7}", flush=True
            )
    print(
        f"Median of {args.repeats} interleaved runs of {args.seconds:g} s each. x CartPole: ratio to gymnasium's "
        "CartPole-v1 (random policy) timed interleaved in the same run (SB3 rows: to the make_vec_env run); "
        "x RecoGym: ratio to the quoted 8,000 steps/s."
    )
    for note in NOTES:
        print(note)
    if verdicts:
        print("Issue 17's targets (ratios to CartPole-v1 through gymnasium.make, this run):")
        for line in verdicts:
            print(f"  {line}")
    print(f"CPU: {cpu_description()}; {load_line()} at the end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
