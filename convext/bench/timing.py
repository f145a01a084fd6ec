"""Interleaved timing of competing implementations of the same work.

Each side is a torch.utils.benchmark.Timer (CUDA-synchronizing, with its own
thread setting). After warm-up, every side's block size is calibrated so one
block lasts about `block_s`; then rounds alternate the sides (A,B then B,A so
neither always goes first) until `min_run_time` has passed for each side and
`min_rounds` are done. Machine drift (turbo, other tenants) hits both sides in
the same rounds, so medians of the per-round times compare fairly.
"""
import math
import statistics
import time

from torch.utils.benchmark import Timer


def summarize(samples):
    """Median, quartiles and IQR of per-call times (seconds)."""
    samples = sorted(samples)
    if len(samples) >= 2:
        q1, _, q3 = statistics.quantiles(samples, n=4, method="inclusive")
    else:
        q1 = q3 = samples[0]
    return {"median": statistics.median(samples), "q1": q1, "q3": q3, "iqr": q3 - q1,
            "n": len(samples)}


def _calibrate(timer, block_s, warmup_s):
    """Warm up (caches, allocator, cuDNN autotune) and return calls per block."""
    deadline = time.perf_counter() + warmup_s
    timer.timeit(1)
    while time.perf_counter() < deadline:
        timer.timeit(1)
    one = min(timer.timeit(1).times[0] for _ in range(2))
    return max(1, math.ceil(block_s / max(one, 1e-9)))


def interleaved(fns, threads, min_run_time=0.3, min_rounds=5, max_rounds=200, block_s=0.02,
                warmup_s=0.05):
    """Time each callable in `fns` (name -> fn()) in alternating rounds.

    Returns name -> {"median","q1","q3","iqr","n" (rounds), "number" (calls per
    round), "samples" (per-call seconds of each round)}, plus
    "paired_ratio_median" for exactly two sides: the median over rounds of
    first/second, which cancels drift between rounds too.
    """
    names = list(fns)
    timers = {n: Timer("fn()", globals={"fn": fns[n]}, num_threads=threads) for n in names}
    number = {n: _calibrate(timers[n], block_s, warmup_s) for n in names}
    samples = {n: [] for n in names}
    spent = {n: 0.0 for n in names}
    rounds = 0
    while rounds < max_rounds and (rounds < min_rounds
                                   or min(spent.values()) < min_run_time):
        order = names if rounds % 2 == 0 else names[::-1]
        for n in order:
            m = timers[n].timeit(number[n])
            samples[n].append(m.times[0])
            spent[n] += m.times[0] * number[n]
        rounds += 1
    out = {n: {**summarize(samples[n]), "number": number[n], "samples": samples[n]}
           for n in names}
    if len(names) == 2:
        a, b = (samples[n] for n in names)
        out["paired_ratio_median"] = statistics.median(x / y for x, y in zip(a, b))
    return out
