"""Mutation check: apply each hand-written mutant to a temporary copy of the repository, run the tests that
should catch it, and require them to fail ("kill" the mutant).

Each mutant is one exact text replacement in one source file (the replaced text must occur exactly once, so
a refactor that moves the code makes the mutant fail loudly as "stale" instead of passing silently). The
unmutated copy is run first: its tests must pass, or every kill would be meaningless.

    python tools/mutation/run_mutants.py                      # all mutants, JSON to results/mutation-check.json
    python tools/mutation/run_mutants.py --only metrics-      # mutants whose name starts with this
    python tools/mutation/run_mutants.py --list

Exit status 0 when every mutant is killed, 1 otherwise. Needs the dev environment (pytest, torch); it
imports nothing from the project itself, so it also runs against a broken tree.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WORKER = "services/worker/semrec_worker"


@dataclass(frozen=True)
class Mutant:
    name: str
    path: str
    old: str
    new: str
    tests: tuple[str, ...]
    why: str


METRIC_TESTS = ("tests/unit/evaluation/test_metrics.py", "tests/unit/training/test_nonfinite_training.py")
LOSS_TESTS = ("tests/unit/losses/test_loss_values.py", "tests/unit/losses/test_losses.py")

MUTANTS: tuple[Mutant, ...] = (
    # ---- ranking and metrics
    Mutant("metrics-ties-optimistic", f"{WORKER}/evaluation/metrics.py",
           "ahead = (scores >= target_scores) | target_scores.isnan()",
           "ahead = (scores > target_scores) | target_scores.isnan()",
           METRIC_TESTS, ">= replaced by >: ties ranked optimistically"),
    Mutant("metrics-nan-handling-removed", f"{WORKER}/evaluation/metrics.py",
           "ahead = (scores >= target_scores) | target_scores.isnan()",
           "ahead = scores >= target_scores",
           METRIC_TESTS, "a NaN target ranked first again"),
    Mutant("metrics-nan-best", f"{WORKER}/evaluation/metrics.py",
           "ahead = (scores >= target_scores) | target_scores.isnan()",
           "ahead = (scores >= target_scores) | scores.isnan()",
           METRIC_TESTS, "NaN competitors counted ahead of a real score (NaN as the best score)"),
    Mutant("metrics-target-not-removed", f"{WORKER}/evaluation/metrics.py",
           "return ahead.sum(dim=1) - ahead.gather(1, targets.view(-1, 1)).squeeze(1).long()",
           "return ahead.sum(dim=1)",
           METRIC_TESTS, "the target counted ahead of itself (every rank off by one)"),
    Mutant("metrics-valid-mask-ignored", f"{WORKER}/evaluation/metrics.py",
           "        ahead &= valid\n", "        pass\n",
           METRIC_TESTS, "padding / masked columns compete"),
    Mutant("metrics-ndcg-discount", f"{WORKER}/evaluation/metrics.py",
           "1.0 / torch.log2(r + 2.0)", "1.0 / torch.log2(r + 3.0)",
           METRIC_TESTS, "NDCG discount log2(r + 3) instead of log2(r + 2)"),
    Mutant("metrics-recall-cutoff", f"{WORKER}/evaluation/metrics.py",
           "hit = r < k", "hit = r <= k",
           METRIC_TESTS, "Recall@k / NDCG@k count rank k (k + 1 items)"),
    Mutant("metrics-mrr", f"{WORKER}/evaluation/metrics.py",
           'out["mrr"] = float((1.0 / (r + 1.0)).mean())', 'out["mrr"] = float((1.0 / (r + 2.0)).mean())',
           METRIC_TESTS, "MRR from 1 / (r + 2)"),
    Mutant("metrics-float32-cast", f"{WORKER}/evaluation/metrics.py",
           "return torch.float64 if scores.dtype == torch.float64 else torch.float32", "return torch.float32",
           METRIC_TESTS, "float64 scores rounded to float32 before ranking (near-equal scores tie)"),
    Mutant("protocol-sampled-target-column", f"{WORKER}/evaluation/protocol.py",
           "ranks_from_scores(scores.gather(1, cand), torch.zeros_like(tgt))",
           "ranks_from_scores(scores.gather(1, cand), torch.ones_like(tgt))",
           ("tests/unit/evaluation/test_protocol.py",), "sampled-100 ranks a negative instead of the target"),
    Mutant("protocol-keep-short-users", f"{WORKER}/data/dataset.py",
           "        if len(seq) < 3:\n", "        if len(seq) < 1:\n",
           ("tests/unit/evaluation/test_protocol.py",), "users with fewer than 3 interactions kept in the split"),
    # ---- losses
    Mutant("infonce-tau-multiplied", f"{WORKER}/methods/symmetric_infonce.py",
           "logits = (x @ y.T) * self.log_inverse_temperature.exp().clamp(max=MAX_INVERSE_TEMPERATURE)",
           "logits = (x @ y.T) / self.log_inverse_temperature.exp().clamp(max=MAX_INVERSE_TEMPERATURE)",
           LOSS_TESTS, "InfoNCE multiplies by tau instead of dividing"),
    Mutant("infonce-one-direction", f"{WORKER}/methods/symmetric_infonce.py",
           "0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels))",
           "F.cross_entropy(logits, labels)",
           LOSS_TESTS, "InfoNCE only x -> y (not symmetric)"),
    Mutant("infonce-no-clip", f"{WORKER}/methods/symmetric_infonce.py",
           "logits = (x @ y.T) * self.log_inverse_temperature.exp().clamp(max=MAX_INVERSE_TEMPERATURE)",
           "logits = (x @ y.T) * self.log_inverse_temperature.exp()",
           LOSS_TESTS, "1/tau not clipped at 100"),
    Mutant("rat-alpha-ignored", f"{WORKER}/methods/llmemb/model.py",
           "return self.alpha * self.loss(items[unique], collaborative[unique])",
           "return self.loss(items[unique], collaborative[unique])",
           LOSS_TESTS, "RAT alignment not weighted by alpha"),
    Mutant("rat-duplicates-kept", f"{WORKER}/methods/llmemb/model.py",
           "unique = torch.unique(targets[targets != 0])", "unique = targets[targets != 0]",
           LOSS_TESTS, "RAT alignment over repeated target items (a positive is also its own negative)"),
    Mutant("said-caption-instruction-ignored", f"{WORKER}/methods/said/model.py",
           "first = instruction.shape[0] + prefix.shape[1] - 1", "first = prefix.shape[1] - 1",
           LOSS_TESTS, "SAID eq. 3 ignores the instruction's length (predicts from the wrong positions)"),
    Mutant("said-caption-off-by-one", f"{WORKER}/methods/said/model.py",
           "first = instruction.shape[0] + prefix.shape[1] - 1", "first = instruction.shape[0] + prefix.shape[1]",
           LOSS_TESTS, "SAID eq. 3 predicts each caption token from its own position"),
    Mutant("said-cosine-tau-multiplied", f"{WORKER}/losses/said_cosine.py",
           "logits = logits / self.temperature", "logits = logits * self.temperature",
           LOSS_TESTS, "SAID eq. 9 multiplies by tau"),
    Mutant("said-cosine-dot", f"{WORKER}/losses/said_cosine.py",
           "logits = nn.functional.normalize(hidden, dim=-1) @ nn.functional.normalize(items, dim=-1).T",
           "logits = hidden @ items.T",
           LOSS_TESTS, "SAID eq. 9 on dot products, not cosine"),
    Mutant("full-ce-padding-candidate", f"{WORKER}/losses/full_ce.py",
           '        logits[:, 0] = float("-inf")\n', "",
           LOSS_TESTS, "full CE lets the padding row compete"),
    Mutant("sampled-logq-sign", f"{WORKER}/losses/sampled_softmax.py",
           "positive = positive - log_q[targets].unsqueeze(1)\n            negative = negative - log_q[negatives].unsqueeze(0)",
           "positive = positive + log_q[targets].unsqueeze(1)\n            negative = negative + log_q[negatives].unsqueeze(0)",
           LOSS_TESTS, "log-q correction with the sign flipped"),
    Mutant("sampled-accidental-hits", f"{WORKER}/losses/sampled_softmax.py",
           'negative = negative.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))',
           "negative = negative",
           LOSS_TESTS, "sampled negatives equal to the target not masked"),
    Mutant("bce-negative-sign", f"{WORKER}/losses/bce.py",
           "nn.functional.softplus(-positive) + nn.functional.softplus(negative)",
           "nn.functional.softplus(-positive) + nn.functional.softplus(-negative)",
           LOSS_TESTS, "BCE pushes the negative up"),
    Mutant("tslrec-sft-mean", f"{WORKER}/methods/tslrec/model.py",
           "return ((predicted - target) ** 2).sum(dim=-1).mean()", "return ((predicted - target) ** 2).mean()",
           LOSS_TESTS, "TSLRec (T3) averaged over groups instead of summed"),
    # ---- training stops on non-finite values
    Mutant("trainer-nan-loss-unchecked", f"{WORKER}/training/trainer.py",
           '            _stop_unless_finite(loss, f"epoch {epoch}, step {count_steps + 1}", ctx)\n', "",
           ("tests/unit/training/test_nonfinite_training.py",), "the seqrec trainer goes on with a NaN loss"),
    Mutant("trainer-nan-scores-unchecked", f"{WORKER}/training/trainer.py",
           "        ensure_finite_scores(out, self.where)\n", "",
           ("tests/unit/training/test_nonfinite_training.py",), "the seqrec trainer ranks NaN validation scores"),
    Mutant("said-trainer-nan-loss-unchecked", f"{WORKER}/methods/said/trainer.py",
           '                ensure_finite_loss(loss, f"epoch {progress.epoch + 1}, step {index + 1} of {len(batches)}")\n',
           "", ("tests/unit/training/test_nonfinite_training.py",), "the SAID trainer goes on with a NaN loss"),
    Mutant("tslrec-sft-nan-loss-unchecked", f"{WORKER}/methods/tslrec/model.py",
           '            ensure_finite_loss(loss, f"TSLRec user SFT step {len(losses) + 1}")\n', "",
           ("tests/unit/training/test_nonfinite_training.py",), "TSLRec's user SFT goes on with a NaN loss"),
    Mutant("scft-nan-loss-unchecked", f"{WORKER}/methods/llmemb/model.py",
           '        ensure_finite_loss(loss, f"SCFT step {step + 1}")\n', "",
           ("tests/unit/training/test_nonfinite_training.py",), "LLMEmb's SCFT goes on with a NaN loss"),
)  # fmt: skip


def copy_tree(destination: Path) -> None:
    """Tracked and untracked-but-not-ignored files: what the next commit would hold."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=REPO, check=True,
                            capture_output=True).stdout.decode().split("\0")  # fmt: skip
    for name in filter(None, listed):
        source = REPO / name
        if source.is_file():
            target = destination / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)


def run_tests(tree: Path, tests: tuple[str, ...], timeout: int) -> tuple[int, float, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        str(tree / p) for p in ("shared", "services/worker", "services/ranker")
    )
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    command = [
        sys.executable,
        "-m",
        "pytest",
        "-q",
        "-x",
        "-p",
        "no:cacheprovider",
        "-p",
        "no:randomly",
        *tests,
    ]
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1, time.perf_counter() - start, "timed out"
    lines = [line for line in done.stdout.splitlines() if line.strip()]
    return done.returncode, time.perf_counter() - start, lines[-1] if lines else done.stderr[-300:]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", default="", help="run the mutants whose name starts with this")
    parser.add_argument("--out", type=Path, default=REPO / "results" / "mutation-check.json")
    parser.add_argument("--timeout", type=int, default=600, help="seconds per test run")
    parser.add_argument("--list", action="store_true", help="list the mutants and exit")
    args = parser.parse_args()
    mutants = [m for m in MUTANTS if m.name.startswith(args.only)]
    if args.list:
        for m in mutants:
            print(f"{m.name:34} {m.path}: {m.why}")
        return 0
    results, baseline = [], {}
    with tempfile.TemporaryDirectory(prefix="semrec-mutants-") as tmp:
        tree = Path(tmp) / "repo"
        copy_tree(tree)
        test_sets = sorted({m.tests for m in mutants})
        for tests in test_sets:  # the unmutated tree must pass what is used to kill mutants
            code, seconds, tail = run_tests(tree, tests, args.timeout)
            baseline[" ".join(tests)] = {"passed": code == 0, "seconds": round(seconds, 1), "summary": tail}
            print(f"baseline {' '.join(tests)}: {'pass' if code == 0 else 'FAIL'} ({tail})", flush=True)
        if not all(b["passed"] for b in baseline.values()):
            print("the unmutated tree fails its tests: fix that first", file=sys.stderr)
            return 1
        for mutant in mutants:
            path = tree / mutant.path
            original = path.read_text()
            count = original.count(mutant.old)
            if count != 1:
                results.append({"name": mutant.name, "status": "stale", "why": mutant.why,
                                "detail": f"the text to replace occurs {count} times in {mutant.path}"})  # fmt: skip
                print(f"{mutant.name}: STALE ({count} matches)", flush=True)
                continue
            path.write_text(original.replace(mutant.old, mutant.new))
            try:
                code, seconds, tail = run_tests(tree, mutant.tests, args.timeout)
            finally:
                path.write_text(original)
            status = "killed" if code != 0 else "survived"
            results.append({"name": mutant.name, "file": mutant.path, "why": mutant.why, "status": status,
                            "tests": list(mutant.tests), "seconds": round(seconds, 1), "summary": tail})  # fmt: skip
            print(f"{mutant.name}: {status.upper()} in {seconds:.1f} s ({tail})", flush=True)
    killed = sum(r["status"] == "killed" for r in results)
    commit = subprocess.run(
        ["git", "rev-parse", "HEAD"], cwd=REPO, capture_output=True, text=True
    ).stdout.strip()
    dirty = bool(subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                                capture_output=True, text=True).stdout.strip())  # fmt: skip
    report = {"command": "python tools/mutation/run_mutants.py" + (f" --only {args.only}" if args.only else ""),
              "commit": commit + ("+uncommitted changes" if dirty else ""),
              "mutants": len(results), "killed": killed, "all_killed": killed == len(results),
              "baseline": baseline, "results": results}  # fmt: skip
    if not args.only:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=2) + "\n")
        print(f"written {args.out}")
    print(f"{killed}/{len(results)} mutants killed")
    return 0 if killed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
