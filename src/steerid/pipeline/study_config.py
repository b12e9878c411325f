"""A commented study config for one model, one vector file and one trait file (``steerid init``).

Everything the three inputs let it know is checked before the file is written: the vector file is
read, the trait file is validated, the layers are ones the vector file has, and, when the model's shape
is known without loading it (an embedded model or a local folder), the vector's width and layers
are checked against the model. The config sets only what the study needs; every other key takes
its schema default, so the file stays short enough to read.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from steerid import prompts
from steerid.engine.site import Layers, parse_site_label, site_layers
from steerid.engine.specs import EMBEDDED_SHAPES, ModelShape, shape_from_config, spec_kind
from steerid.interchange import VectorFile, VectorFileError, check_against, read_vector
from steerid.io import atomic_write_text

__all__ = ["StudyChoice", "choose_study", "render_study_config", "write_study_config"]


@dataclass(frozen=True)
class StudyChoice:
    """What ``steerid init`` decided from its inputs."""

    model_name: str
    spec: str
    layer: Layers
    survey_layers: tuple[int, ...]
    trait: str
    vector_path: str
    vector_format: str
    trait_path: str
    strength: float | None
    prompt_counts: dict[str, int]


def _model_name(spec: str) -> str:
    """An output-path name for the model: the spec's last component, lower-cased, with path-safe characters."""
    name = re.sub(r"[^a-z0-9._-]+", "-", Path(spec.rstrip("/")).name.lower()).strip("-.")
    return name or "model"


def _known_shape(spec: str) -> ModelShape | None:
    """The model's depth and width when they are known without the hub (embedded names, local folders)."""
    kind = spec_kind(spec)
    if kind == "embedded":
        return EMBEDDED_SHAPES[spec]
    if kind == "local":
        config_path = Path(spec).expanduser() / "config.json"
        return shape_from_config(json.loads(config_path.read_text()), str(config_path))
    return None


# The schema's defaults of prompts.n_pairs and prompts.n_eval (the schema is not installed with the
# package; tests/test_own_vector.py checks the two agree); a smaller trait file lowers them.
DEFAULT_PROMPT_COUNTS = {"n_pairs": 64, "n_eval": 60}


def _trait_of(trait_path: str) -> tuple[str, dict[str, int]]:
    """The trait a trait file defines (its ``trait`` field), after validating the file as a study would, and
    the prompt counts below the defaults that the file's size forces."""
    try:
        name = json.loads(Path(trait_path).read_text(encoding="utf-8"))["trait"]
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ValueError(f"{trait_path}: not a trait file with a 'trait' field ({err})") from err
    trait = prompts.load_trait_file(trait_path, name)  # validated, not registered: init writes a config, no more
    available = {"n_pairs": len(trait.pairs), "n_eval": min(len(texts) for texts in trait.eval.values())}
    return name, {key: count for key, count in available.items() if count < DEFAULT_PROMPT_COUNTS[key]}


def _layer(vector_file: VectorFile, layer: str | None) -> Layers:
    """The site ``layer`` names (a layer, a site label such as ``12+15``, or ``all`` of the file's layers;
    each must be in the file), else the file's only layer, else its middle one."""
    if layer is None:
        return vector_file.layers[len(vector_file.layers) // 2]
    if layer == "all":
        return vector_file.layers[0] if len(vector_file.layers) == 1 else tuple(vector_file.layers)
    try:
        site = parse_site_label(layer)
    except ValueError as err:
        raise ValueError(f"--layer {layer!r}: expected a layer (15), layers (12+15) or 'all' ({err})") from err
    missing = [one for one in site_layers(site) if one not in vector_file.directions]
    if missing:
        raise VectorFileError(
            f"{vector_file.source_path}: --layer {layer} has no direction in the file at {missing}: "
            f"expected layers among {vector_file.layers}"
        )
    return site


def choose_study(
    spec: str, vector_path: str, trait_path: str, layer: str | None = None, strength: float | None = None
) -> StudyChoice:
    """Read and check the inputs of a study; raise ValueError (VectorFileError for the vector) naming what is wrong."""
    vector_file = read_vector(vector_path)
    steered = _layer(vector_file, layer)
    shape = _known_shape(spec)
    if shape is not None:
        check_against(
            vector_file,
            d_model=shape.d_model,
            n_layers=shape.n_layers,
            model_type=shape.model_type,
            layers=list(site_layers(steered)),
        )
    depth = shape.n_layers if shape is not None else None
    survey = tuple(sorted({depth // 4, depth // 2, 3 * depth // 4} - set(site_layers(steered)))) if depth else ()
    trait, prompt_counts = _trait_of(trait_path)
    return StudyChoice(
        model_name=_model_name(spec),
        spec=spec,
        layer=steered,
        survey_layers=survey,
        trait=trait,
        vector_path=vector_path,
        vector_format=vector_file.source_format,
        trait_path=trait_path,
        strength=strength,
        prompt_counts=prompt_counts,
    )


def _yaml(value: object) -> str:
    return json.dumps(value)  # JSON scalars and lists are YAML


def render_study_config(choice: StudyChoice) -> str:
    """The config file's text: the study's keys, each with a comment saying what it means."""
    strength = "null" if choice.strength is None else repr(choice.strength)
    return "\n".join(
        [
            f"# steerid study: is the {choice.trait} vector in {choice.vector_path} identifiable in {choice.spec}?",
            "# Written by `steerid init`. Run: snakemake --cores 8 --configfile <this file>",
            "# Keys not set here take their defaults (schemas/config.schema.yaml describes every key;",
            "# config.yaml shows them all with comments).",
            "models:",
            f"  {choice.model_name}:",
            f"    spec: {_yaml(choice.spec)}   # embedded name, local Hugging Face folder or hub id",
            f"    layer: {_yaml(choice.layer)}   # block(s) whose output is steered; v: the file's direction there",
            f"    survey_layers: {_yaml(list(choice.survey_layers))}   # E6/E8 also compare these layers' spectra",
            "    vectors:",
            f"      {choice.trait}:",
            f"        file: {_yaml(choice.vector_path)}   # {choice.vector_format}",
            f"        strength: {strength}   # ‖v‖ in mean residual norms at the layer; null = the file's length",
            "",
            f"traits: [{choice.trait}]",
            "trait_files:",
            f"  {choice.trait}: {_yaml(choice.trait_path)}   # contrast pairs, evaluation prompts, exemplars",
            "# E1's other-trait δ needs a second trait's vector; list built-in traits here for one (e.g. [sentiment]).",
            "other_traits: []",
            *_prompt_lines(choice.prompt_counts),
            "",
        ]
    )


def _prompt_lines(counts: dict[str, int]) -> list[str]:
    if not counts:
        return []
    keys = ", ".join(f"{key}: {count}" for key, count in counts.items())
    defaults = DEFAULT_PROMPT_COUNTS
    note = (
        f"# The trait file has fewer prompts than the defaults ({defaults['n_pairs']} pairs, "
        f"{defaults['n_eval']} per environment):"
    )
    return [note, f"prompts: {{{keys}}}"]


def write_study_config(output: str | os.PathLike, choice: StudyChoice, overwrite: bool = False) -> None:
    """Write the config atomically; an existing file is kept unless ``overwrite``."""
    if Path(output).exists() and not overwrite:
        raise FileExistsError(f"{output} exists: expected a new file name (or --force to replace it)")
    atomic_write_text(output, render_study_config(choice))
