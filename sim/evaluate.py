"""`vla eval`: success rate of a policy on a task over seeded episodes."""

from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

from policies.execution import ExecutionSettings
from sim.approach import AT_CUBE_CM, summarize_failures
from sim.env import EnvConfig
from sim.interventions import InterventionPlan, summarize as summarize_interventions
from sim.parallel import WorkerSpec, run_seeds
from sim.policy_loader import PolicyOptions, checkpoint_execution
from sim.stats import wilson_interval


def evaluate(task: str, policy: str, episodes: int, *, seed: int = 0, workers: int = 1,
             video_dir: str | None = None, env_config: EnvConfig = EnvConfig(), progress: bool = True,
             policy_options: PolicyOptions = PolicyOptions(), interventions: InterventionPlan | None = None) -> dict:
    """Run episodes with seeds seed, seed+1, ...; returns the eval report (DESIGN.md schema). With
    `interventions` (sim.interventions), each episode's detail lists them and the report has "intervene"."""
    if episodes < 1:
        raise ValueError(f"--episodes must be at least 1, got {episodes}")
    if video_dir is not None:
        Path(video_dir).mkdir(parents=True, exist_ok=True)
    spec = WorkerSpec(task=task, policy=policy, env_config=env_config, video_dir=video_dir,
                      policy_options=policy_options, interventions=interventions)
    started = time.perf_counter()
    details = []
    for result in _progress(run_seeds(spec, range(seed, seed + episodes), workers), episodes, progress):
        details.append({"seed": result.seed, "success": bool(result.success), "steps": result.steps,
                        "instruction": result.instruction, **result.approach,
                        **({"interventions": result.interventions} if interventions else {})})
    report = build_report(task, policy, seed, details, time.perf_counter() - started, video_dir)
    if interventions:
        report["intervene"] = list(interventions.specs)
        report["intervened"] = summarize_interventions(details)
    if policy not in ("expert", "hold"):
        report["policy_options"] = asdict(policy_options)
    settings = checkpoint_execution(policy, policy_options)
    if settings is not None:
        report["execution"] = asdict(settings)
    return report


def build_report(task: str, policy: str, seed: int, details: list[dict], wall_s: float,
                 video_dir: str | None = None) -> dict:
    successes = sum(d["success"] for d in details)
    low, high = wilson_interval(successes, len(details))
    report = {
        "task": task, "policy": policy, "episodes": len(details), "successes": successes,
        "success_rate": successes / len(details), "ci95": [round(low, 4), round(high, 4)], "seed": seed,
        "mean_steps": sum(d["steps"] for d in details) / len(details), "wall_s": round(wall_s, 2),
        "failures": summarize_failures(details), "episodes_detail": details,
    }
    if video_dir is not None:
        report["video_dir"] = str(video_dir)
    return report


def format_summary(report: dict) -> str:
    rows = [("task", report["task"]), ("policy", report["policy"]), ("episodes", report["episodes"]),
            ("successes", report["successes"]), ("success rate", f"{report['success_rate']:.1%}"),
            ("95% CI (Wilson)", f"[{report['ci95'][0]:.1%}, {report['ci95'][1]:.1%}]"),
            ("mean steps", f"{report['mean_steps']:.1f}"), ("wall time", f"{report['wall_s']:.1f} s")]
    if "execution" in report:
        rows.insert(2, ("execution", ExecutionSettings(**report["execution"]).describe()))
    failures = report.get("failures") or {}
    if failures.get("failed"):
        offset = failures["median_approach_offset_cm"]
        rows.append(("failures", f"{failures['never_closed_gripper']} of {failures['failed']} never closed the gripper"
                     + _closed_at_cube(failures)
                     + ("" if offset is None else f"; median approach offset {offset:.1f} cm")))
    if failures.get("steps_done"):
        done = ", ".join(f"{count} after {steps}" for steps, count in failures["steps_done"].items())
        rows.append(("failed after steps", done))
    if "intervene" in report:
        got = report.get("intervened") or summarize_interventions(report["episodes_detail"])
        rows.append(("interventions", f"{got['episodes']} of {report['episodes']} episodes got one "
                     f"({got['successes']} of them succeeded): {', '.join(report['intervene'])}"))
    if "video_dir" in report:
        rows.append(("videos", report["video_dir"]))
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value}" for name, value in rows)


def _closed_at_cube(failures: dict) -> str:
    if "closed_at_cube" not in failures:  # a report written before this count
        return ""
    return f", {failures['closed_at_cube']} closed it within {AT_CUBE_CM:.0f} cm of the cube"


def write_report(report: dict, path: str | Path) -> None:
    Path(path).write_text(json.dumps(report, indent=2) + "\n")


def _progress(results, total: int, enabled: bool):
    from tqdm import tqdm

    bar = tqdm(results, total=total, desc="eval", unit="ep", disable=not enabled)
    successes = 0
    for count, result in enumerate(bar, start=1):
        successes += result.success
        bar.set_postfix(success=f"{successes}/{count}")
        yield result
