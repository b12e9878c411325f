"""How a trait is measured under a condition set: one record per kind, named by each scorer's record.

``generated-text``: the steered model writes completions of the evaluation prompts of every
environment, and the scorer judges them; validated on completions of explicit instructions.
``statement-likelihood``: nothing is generated; the steered model's preference for each true
statement over its false twin is the score, in one pseudo-environment; validated by the paired
AUROC of the unsteered model. Experiments that read generated text (E2, E3, E4) need the first.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Measurement:
    """One way of turning a condition set into scores."""

    name: str
    generates_text: bool
    """Completions are generated and scored (else the model's likelihood of fixed texts is the score)."""
    environment: str | None = None
    """The one pseudo-environment its scores are filed under; None = one score file per evaluation environment."""

    def score_files(self, condition_set: str, environments: Sequence[str]) -> list[str]:
        """The score-file patterns of one condition set (``{model}``, ``{layer}``, ``{trait}`` left open)."""
        names = [self.environment] if self.environment else list(environments)
        return [f"results/{{model}}/scores/{condition_set}/L{{layer}}/{{trait}}/{name}.h5" for name in names]

    def units(self, n_prompts: int, n_samples: int) -> str:
        """What the summary counts: prompts × samples, or statement pairs."""
        return f"{n_prompts} prompts × {n_samples} samples" if self.generates_text else f"{n_prompts} statement pairs"


GENERATED_TEXT = Measurement("generated-text", generates_text=True)
STATEMENT_LIKELIHOOD = Measurement("statement-likelihood", generates_text=False, environment="statements")
MEASUREMENTS = {measurement.name: measurement for measurement in (GENERATED_TEXT, STATEMENT_LIKELIHOOD)}


def measured_in(environments: Sequence[str]) -> Measurement:
    """The measurement whose scores a stats JSON's ``environments`` list came from."""
    for measurement in MEASUREMENTS.values():
        if measurement.environment is not None and list(environments) == [measurement.environment]:
            return measurement
    return GENERATED_TEXT
