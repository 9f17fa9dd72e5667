"""The text classifier's cost (issue 15 "Done when"; not a test): training on 10,000 messages
(goal under 60 s) and prediction per report (goal under 5 ms).

Training texts: the shared Teddy Cup labelled messages (../shared/data or $GRIDCASE_SHARED_DATA,
formats ``teddycup_labelled`` + ``teddycup_messages``), resampled with replacement to ``--messages``
(seeded). Each copy gets its own ordinal appended, so that no two texts are identical (every
term statistic is computed over the full 10,000). One fit, without cross-validation (the figure
is the training time a tenant waits for ``gridcase model train --folds 0``). Prediction: one
report at a time, as intake does it, over ``--predict`` texts; p50, p99 and mean in ms. Wall-clock
figures depend on what else the machine runs; the CPU-time figures (``*_cpu_*``, this process
only) show the work itself.

Usage::

    python bench/classifier.py                       # 10,000 messages, 500 predictions
    python bench/classifier.py --messages 2000 --predict 100

Prints ``name=value`` lines.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from gridcase.model import read_labelled  # noqa: E402
from shared.platform import textmodel  # noqa: E402

DATA = Path(os.environ.get("GRIDCASE_SHARED_DATA", REPO.parent / "shared" / "data"))
FILES = (("teddycup_labelled", "teddycup2020c_fj2full_labelled_details_sample.csv"),
         ("teddycup_messages", "teddycup2020c_fj2_messages_sample.csv"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--predict", type=int, default=500)
    parser.add_argument("--seed", type=int, default=20261206)
    args = parser.parse_args()
    specs = [(fmt, DATA / name) for fmt, name in FILES]
    missing = [str(p) for _, p in specs if not p.exists()]
    if missing:
        sys.exit(f"shared data not found: {', '.join(missing)} (set GRIDCASE_SHARED_DATA)")
    pairs = read_labelled(specs)
    rng = random.Random(args.seed)
    sample = [rng.choice(pairs) for _ in range(args.messages)]
    texts = [f"{t}（{i}）" for i, (t, _) in enumerate(sample)]
    labels = [label for _, label in sample]
    started, cpu = time.perf_counter(), time.process_time()
    model = textmodel.train(texts, labels, folds=None)
    train_seconds, train_cpu = time.perf_counter() - started, time.process_time() - cpu
    probe = [t for t, _ in rng.sample(pairs, min(args.predict, len(pairs)))]
    model.probabilities(probe[0])  # warm up
    times = []
    cpu = time.process_time()
    for text in probe:
        t0 = time.perf_counter()
        model.probabilities(text)
        times.append((time.perf_counter() - t0) * 1000)
    predict_cpu_ms = (time.process_time() - cpu) * 1000 / len(probe)
    times.sort()
    print(f"distinct_source_messages={len(pairs)}")
    print(f"train_messages={args.messages}")
    print(f"train_seconds={train_seconds:.2f}")
    print(f"train_cpu_seconds={train_cpu:.2f}")
    print(f"predict_reports={len(times)}")
    print(f"predict_ms_p50={statistics.median(times):.2f}")
    print(f"predict_ms_p99={times[min(len(times) - 1, int(0.99 * len(times)))]:.2f}")
    print(f"predict_ms_mean={statistics.fmean(times):.2f}")
    print(f"predict_cpu_ms_mean={predict_cpu_ms:.2f}")
    print(f"mean_chars_per_report={statistics.fmean(len(t) for t in probe):.0f}")


if __name__ == "__main__":
    main()
