"""The learning-curve report of teaching new tasks (docs/results.md, "Teaching new tasks").

Reads `vla eval --json` reports named ARM-N-TASK.json (ARM: finetuned or scratch, N: demos per task; ARM
ending in -generated: trained on the N demos and what `vla generate` made of them) from one directory and
writes a markdown table (success with 95% Wilson intervals, and where both arms ran on the same seeds, the
paired exact McNemar p) and a PNG plot of success against demos, one panel per task:

    python -m benchmarks.teach_report runs/teach/eval --png docs/teach_curve.png
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

from sim.stats import exact_mcnemar, wilson_interval

ARMS = ("finetuned", "scratch")
RECIPES = ("", "-generated")  # the demos alone; the demos and what `vla generate` made of them
REPORT_NAME = re.compile(r"(?P<arm>(finetuned|scratch)(-generated)?)-(?P<demos>\d+)-(?P<task>[a-z][\w-]*)\.json$")
LABELS = {"finetuned": "fine-tuned from the default", "scratch": "from scratch",
          "finetuned-generated": "fine-tuned, + generated demos", "scratch-generated": "from scratch, + generated demos"}


def load_reports(directory: str | Path) -> dict[tuple[str, int, str], dict]:
    """(arm, demos, task) -> the eval report, for every ARM-N-TASK.json in directory."""
    reports = {}
    for path in sorted(Path(directory).glob("*.json")):
        match = REPORT_NAME.match(path.name)
        if match:
            reports[(match["arm"], int(match["demos"]), match["task"])] = json.loads(path.read_text())
    if not reports:
        raise ValueError(f"{directory}: no ARM-N-TASK.json eval reports (e.g. finetuned-20-push-color.json, "
                         "scratch-generated-20-bin-color.json)")
    return reports


def _outcomes(report: dict) -> dict[int, bool]:
    return {d["seed"]: bool(d["success"]) for d in report["episodes_detail"]}


def table(reports: dict) -> str:
    rows = ["| task | demos | trained on | fine-tuned | 95% CI | from scratch | 95% CI | paired p |",
            "|---|---|---|---|---|---|---|---|"]
    for task in sorted({key[2] for key in reports}):
        for demos in sorted({key[1] for key in reports if key[2] == task}):
            for recipe in RECIPES:
                arms = [arm + recipe for arm in ARMS]
                if not any((arm, demos, task) in reports for arm in arms):
                    continue
                cells = [task, str(demos), "the demos + generated" if recipe else "the demos"]
                for arm in arms:
                    cells += _cells(reports.get((arm, demos, task)))
                cells.append(_paired(*(reports.get((arm, demos, task)) for arm in arms)))
                rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def _cells(report: dict | None) -> list[str]:
    if report is None:
        return ["not run", ""]
    low, high = wilson_interval(report["successes"], report["episodes"])
    return [f"{report['successes']}/{report['episodes']}", f"[{low:.0%}, {high:.0%}]"]


def _paired(a: dict | None, b: dict | None) -> str:
    if a is None or b is None:
        return ""
    first, second = _outcomes(a), _outcomes(b)
    if first.keys() != second.keys():
        return "other seeds"
    seeds = sorted(first)
    only_a, only_b, p = exact_mcnemar([first[s] for s in seeds], [second[s] for s in seeds])
    return f"{p:.2g} ({only_a} vs {only_b})"


def plot(reports: dict, png: str | Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tasks = sorted({key[2] for key in reports})
    figure, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for axis, task in zip(axes[0], tasks):
        for arm, style in zip(LABELS, ("o-", "s--", "o-", "s--")):
            points = sorted((demos, r) for (a, demos, t), r in reports.items() if a == arm and t == task)
            if not points:
                continue
            demos = [d for d, _ in points]
            rate = [r["successes"] / r["episodes"] for _, r in points]
            bounds = [wilson_interval(r["successes"], r["episodes"]) for _, r in points]
            errors = [[max(0.0, p - low) for p, (low, _) in zip(rate, bounds)],
                      [max(0.0, high - p) for p, (_, high) in zip(rate, bounds)]]
            axis.errorbar(demos, rate, yerr=errors, fmt=style, capsize=4, label=LABELS[arm])
        axis.set(title=task, xlabel="teleop demos per task", ylabel=f"success ({_seeds(reports, task)} unseen seeds)",
                 ylim=(-0.05, 1.05))
        axis.set_xscale("log")
        axis.set_xticks([5, 10, 20, 50], labels=["5", "10", "20", "50"])
        axis.minorticks_off()
        axis.grid(alpha=0.3)
        axis.legend(loc="upper left")
    figure.tight_layout()
    figure.savefig(png, dpi=100)


def _seeds(reports: dict, task: str) -> str:
    """How many seeds the task's reports ran: "30", or "30-50" where they differ."""
    counts = sorted({r["episodes"] for (_, _, t), r in reports.items() if t == task})
    return str(counts[0]) if len(counts) == 1 else f"{counts[0]}-{counts[-1]}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("directory", help="directory of ARM-N-TASK.json eval reports")
    parser.add_argument("--png", help="write the learning-curve plot here")
    args = parser.parse_args(argv)
    reports = load_reports(args.directory)
    print(table(reports))
    if args.png:
        plot(reports, args.png)
        print(f"plot: {args.png}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
