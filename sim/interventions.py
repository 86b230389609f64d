"""Scripted interventions for `vla eval --intervene SPEC`, so their effect can be measured.

    --intervene 40:grasp            at control step 40, intervene with "grasp" (kind auto)
    --intervene 40:sub:TEXT         ... forcing a subtask;  40:ins:TEXT  ... forcing an instruction
    --intervene oracle[:N]          a privileged operator: once per episode, when the policy's subtask has
                                    disagreed with the scene's for N control steps in a row (default 16),
                                    it intervenes with the scene's subtask (kind subtask)

The scene's subtask is what the state-feedback expert (sim.experts.corrective) would do now. It has an
instance of its own that is stepped like a DAgger labeller (act() every control step, its actions
thrown away): its labels depend on what it decided before (a grasp settling, a release under way), so
decide() alone would label without that memory. The policy gets an intervention at a control step
before that step's action runs and pursues it from its next chunk (as a robot's server would).
"""

from __future__ import annotations

from dataclasses import dataclass

from policies.base import Policy, takes_interventions

ORACLE = "oracle"
DEFAULT_PATIENCE = 16
KIND_PREFIXES = {"sub": "subtask", "ins": "instruction"}


@dataclass(frozen=True)
class Scheduled:
    step: int
    text: str
    kind: str = "auto"


@dataclass(frozen=True)
class InterventionPlan:
    """What `--intervene` asked for (picklable, for worker processes): scheduled interventions, or the
    oracle with its patience (control steps of disagreement before it intervenes)."""

    specs: tuple[str, ...]
    scheduled: tuple[Scheduled, ...] = ()
    oracle_patience: int | None = None


def parse_plan(specs: list[str] | tuple[str, ...]) -> InterventionPlan:
    """The plan of the --intervene values; ValueError (one line) for a malformed one."""
    specs = tuple(specs)
    oracles = [s for s in specs if s.split(":")[0] == ORACLE]
    if oracles and len(specs) > 1:
        raise ValueError("--intervene oracle decides itself when to intervene: give it alone, without STEP:TEXT "
                         "interventions or a second oracle")
    if oracles:
        return InterventionPlan(specs, oracle_patience=_patience(oracles[0]))
    return InterventionPlan(specs, scheduled=tuple(sorted((_scheduled(s) for s in specs), key=lambda s: s.step)))


def _patience(spec: str) -> int:
    _, _, count = spec.partition(":")
    if not count:
        return DEFAULT_PATIENCE
    if not count.isdigit() or int(count) < 1:
        raise ValueError(f"--intervene {spec!r}: oracle:N takes N >= 1 control steps of disagreement")
    return int(count)


def _scheduled(spec: str) -> Scheduled:
    step, _, rest = spec.partition(":")
    if not step.isdigit():
        raise ValueError(f"--intervene {spec!r}: expected STEP:TEXT (STEP a control step >= 0), STEP:sub:TEXT, "
                         "STEP:ins:TEXT or oracle[:N]")
    prefix, _, text = rest.partition(":")
    kind = KIND_PREFIXES.get(prefix.strip())
    text = (text if kind else rest).strip()
    if not text:
        raise ValueError(f"--intervene {spec!r}: the text after the step is empty")
    return Scheduled(int(step), text, kind or "auto")


class Operator:
    """Intervenes on one policy during episodes; `log` holds this episode's interventions."""

    def __init__(self, plan: InterventionPlan, env=None):
        self.plan = plan
        self.labeller = None
        if plan.oracle_patience is not None:
            from sim.experts.corrective import CorrectiveExpert

            self.labeller = CorrectiveExpert(env)
        self.policy: Policy | None = None
        self.log: list[dict] = []

    def check(self, policy: Policy) -> None:
        """ValueError (one line) before an episode runs when the policy cannot be intervened on."""
        if not takes_interventions(policy):
            raise ValueError(f"--intervene needs a policy that takes interventions (a checkpoint, or grpc:// to a "
                             f"served one); {type(policy).__name__} does not")

    def start(self, policy: Policy, instruction: str) -> None:
        """After env.reset() and policy.reset()."""
        self.policy, self.log = policy, []
        self.pending = list(self.plan.scheduled)
        self.disagreeing = 0
        if self.labeller is not None:
            try:
                self.labeller.reset(instruction)
            except ValueError as error:
                raise ValueError(f"--intervene oracle: {error}") from None

    def poll(self, step: int, subtask: str | None) -> None:
        """Called before control step `step` runs (subtask: what the policy pursues for it; None before
        the policy's act() of a chunk, when it has said nothing for this step yet)."""
        while self.pending and self.pending[0].step <= step:
            due = self.pending.pop(0)
            self._intervene(step, due.text, due.kind)
        if self.labeller is None or subtask is None:
            return
        label = self.labeller.act().subtask
        self.disagreeing = self.disagreeing + 1 if subtask != label else 0
        if self.disagreeing >= self.plan.oracle_patience and not self.log:
            self._intervene(step, label, "subtask")

    def _intervene(self, step: int, text: str, kind: str) -> None:
        try:
            applied = self.policy.intervene(text, kind)
        except ValueError as error:
            raise ValueError(f"--intervene {text!r} ({kind}) at step {step}: {error}") from None
        self.log.append({"step": step, "text": text, "kind": applied.kind})


def summarize(details: list[dict]) -> dict:
    """How many episodes got an intervention, and how many of those succeeded."""
    intervened = [d for d in details if d.get("interventions")]
    return {"episodes": len(intervened), "successes": sum(bool(d["success"]) for d in intervened)}
