"""Tests of the trait scorers (steerid.scoring): orientation, exact label logic, AUROC, registry."""

from __future__ import annotations

import itertools
import sys

import numpy as np
import pytest
import torch
import yaml
from snakemake_runner import REPO, TEST_CONFIG

from steerid import scoring
from steerid.prompts import TRAITS, load_trait
from steerid.scoring import (
    HF_CLASSIFIERS,
    MODEL_SCORERS,
    OFFLINE_SCORERS,
    REGISTRY,
    SCORERS,
    TRAIT_SCORERS,
    MiniLMExemplars,
    MiniLMLabels,
    ScorerRecord,
    TruthfulnessLikelihood,
    VaderSentiment,
    auroc,
    default_scorer,
    get_scorer,
    measurement_of,
    median_split_accuracy,
    own_trait_schema,
    register,
    schema_enums,
    scorer_record,
    scorer_traits,
    scorers_for,
    signed_label_score,
    unregister,
    validate_scorer,
)
from steerid.scoring.measurements import MEASUREMENTS, measured_in

SCHEMA = yaml.safe_load((REPO / "schemas" / "config.schema.yaml").read_text())

MINILM_TRAITS = ("formality", "politeness", "sentiment", "agreeableness")
MINILM_KINDS = ("minilm-labels", "minilm-exemplars")
MIN_HELDOUT_AUROC = 0.8

# Held-out sentences written for these tests, disjoint from the packaged exemplars (the anchors
# of minilm-exemplars) and from the label descriptions; ten per pole per trait.
HELDOUT: dict[str, dict[str, list[str]]] = {
    "formality": {
        "positive": [
            "We hereby acknowledge receipt of your payment and thank you for your prompt attention.",
            "The board of directors has approved the annual budget for the forthcoming fiscal year.",
            "Passengers are advised that the train to Edinburgh will depart from platform four.",
            "I should be most grateful if you would forward the signed documents at your earliest convenience.",
            "The laboratory will remain closed for maintenance until further notice.",
            "Enclosed please find the minutes of the previous meeting for your approval.",
            "Applicants must submit two letters of recommendation together with their transcripts.",
            "We wish to express our gratitude for your continued support of the foundation.",
            "The municipal council will consider the zoning amendment at its next session.",
            "It is respectfully requested that all mobile telephones be switched off during the ceremony.",
        ],
        "negative": [
            "omg the train's late again, so annoying lol",
            "Dude, that game last night was sick!",
            "Gonna grab pizza, want some?",
            "Nah, I'm good, maybe next time tho.",
            "Ugh, my laptop just died, whatever.",
            "Ya wanna hang out later or nah?",
            "Lol that's hilarious, send me the vid!",
            "Kinda tired, gonna crash early tonight.",
            "Yo, where'd you put my charger, bro?",
            "Sup guys, who's down for movies tonite?",
        ],
    },
    "politeness": {
        "positive": [
            "Could you please pass the salt when you get a chance? Thank you.",
            "I'm so sorry to trouble you, but might I borrow a pen for a moment?",
            "Thank you very much for your help this morning; it meant a lot to me.",
            "Would you mind terribly if I opened the window a little?",
            "If it isn't too much bother, could you show me the way to the station, please?",
            "I really appreciate your understanding, and I apologise for the short notice.",
            "Please forgive me for interrupting, but may I add one small thought?",
            "Thank you for being so patient with me while I sorted this out.",
            "Would you be willing to review my draft when you have some free time? I'd be grateful.",
            "Kindly let me know whether Tuesday suits you; many thanks in advance.",
        ],
        "negative": [
            "Give me the salt, now.",
            "Shut up and listen for once.",
            "Get out of my office, you're wasting my time.",
            "Nobody asked for your stupid opinion.",
            "Fix it yourself, I'm not your servant.",
            "What are you, deaf? I said move.",
            "Stop whining and do your job.",
            "Hand over the pen and quit bothering me.",
            "You're useless, just go away.",
            "Open the window, are you too lazy to do it yourself?",
        ],
    },
    "sentiment": {
        "positive": [
            "I absolutely loved the film; the acting was superb and the ending made me cry happy tears.",
            "Our new puppy is adorable and brings us so much joy every day.",
            "What a fantastic surprise party, I felt truly loved!",
            "The hotel was spotless, the bed was comfortable and the breakfast was wonderful.",
            "I passed my exam with flying colours and I'm over the moon.",
            "This phone is brilliant: great battery, gorgeous screen and lightning fast.",
            "Spending the weekend at the beach with friends was pure bliss.",
            "The nurses were kind and caring, and I'm so thankful for them.",
            "Such a delightful little bakery; the croissants are heavenly.",
            "I'm proud of my team; we did an amazing job together.",
        ],
        "negative": [
            "I hated the film; the acting was wooden and the plot made no sense.",
            "Our flight was cancelled and we were stranded at the airport all night.",
            "The hotel room was dirty, noisy and smelled awful.",
            "I failed my driving test again and I feel like a complete failure.",
            "This phone is junk: the battery dies by noon and the screen cracked.",
            "The weekend was ruined by a horrible argument and nonstop rain.",
            "The customer service was useless and left me furious.",
            "The bread was stale and the coffee tasted burnt and bitter.",
            "I'm heartbroken that my best friend is moving away.",
            "Everything about this job is stressful and exhausting.",
        ],
    },
    "agreeableness": {
        "positive": [
            "Absolutely, I'd be happy to swap seats with you.",
            "You're right, let's go with your plan; it sounds better than mine.",
            "Don't worry about the mistake, we all make them, and I'll help you fix it.",
            "I'm glad to lend you my car for the weekend.",
            "That's a lovely suggestion; I'm in.",
            "Of course you can borrow my notes, take as long as you need.",
            "Let's split the chores however suits you best.",
            "I understand your concern and I'm willing to meet you halfway.",
            "Sure thing, I'll cover your shift so you can rest.",
            "Great idea, I'll support it at the meeting.",
        ],
        "negative": [
            "No, I won't swap seats, find somewhere else.",
            "Your plan is stupid, we're doing mine.",
            "That mistake is your fault, so fix it yourself.",
            "You can't borrow my car, don't even ask.",
            "That suggestion is ridiculous; count me out.",
            "Get your own notes; I'm not sharing mine.",
            "I'm not doing any chores, that's your job.",
            "Your concern is irrelevant and I won't budge.",
            "Cover your own shift, it's not my problem.",
            "Terrible idea, I'll vote against it at the meeting.",
        ],
    },
}

# One unambiguous pair per trait, for a plain ordering check of every scorer of the trait.
PINNED = {
    "formality": (
        "We kindly request that you submit the completed form by the deadline.",
        "yo just send the form whenever lol",
    ),
    "politeness": (
        "Would you please help me carry this box? Thank you so much.",
        "Carry this box, idiot, and hurry up.",
    ),
    "sentiment": (
        "I'm overjoyed; this is the happiest day of my life!",
        "I'm miserable; this is the worst day of my life.",
    ),
    "agreeableness": (
        "Sure, I'm happy to help you with that, let's do it together.",
        "No, I refuse to help you, do it yourself.",
    ),
}


def _fake(values, name="fake"):
    """A scorer returning fixed values, whatever the texts."""

    class Fake:
        def score(self, texts):
            return np.asarray(values[: len(texts)], dtype=np.float64)

    fake = Fake()
    fake.name = name
    return fake


# --- AUROC and median-split accuracy ---------------------------------------------------------


def _brute_auroc(pos, neg):
    wins = sum(1.0 if p > n else 0.5 if p == n else 0.0 for p, n in itertools.product(pos, neg))
    return wins / (len(pos) * len(neg))


@pytest.mark.parametrize("seed", range(12))
def test_auroc_matches_pairwise_count_with_ties(seed):
    rng = np.random.default_rng(seed)
    n_pos, n_neg = rng.integers(1, 25, size=2)
    # small integer scores: many ties within and across the groups
    pos = rng.integers(0, 6, size=n_pos).astype(float) + (seed % 3 == 0)
    neg = rng.integers(0, 6, size=n_neg).astype(float)
    assert auroc(pos, neg) == pytest.approx(_brute_auroc(pos, neg), abs=1e-12)


def test_auroc_matches_sklearn():
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    for _ in range(10):
        pos = np.round(rng.normal(0.5, 1.0, size=rng.integers(2, 40)), 1)
        neg = np.round(rng.normal(0.0, 1.0, size=rng.integers(2, 40)), 1)
        labels = np.r_[np.ones(pos.size), np.zeros(neg.size)]
        expected = metrics.roc_auc_score(labels, np.r_[pos, neg])
        assert auroc(pos, neg) == pytest.approx(expected, abs=1e-12)


def test_auroc_edge_cases():
    assert auroc([2, 3], [0, 1]) == 1.0
    assert auroc([0, 1], [2, 3]) == 0.0
    assert auroc([1, 1, 1], [1, 1]) == 0.5
    with pytest.raises(ValueError, match="NaN"):
        auroc([1.0, np.nan], [0.0])
    with pytest.raises(ValueError, match="no scores"):
        auroc([], [0.0])


def test_median_split_accuracy():
    assert median_split_accuracy([3, 4], [1, 2]) == 1.0
    assert median_split_accuracy([1, 2], [3, 4]) == 0.0
    # pooled median 2: the 2s count half either way -> (1 + 0.5 + 1 + 0.5) / 4
    assert median_split_accuracy([2, 5], [2, 0]) == 0.75
    assert median_split_accuracy([1, 1], [1, 1]) == 0.5


def test_validate_scorer_reports_and_flags():
    report = validate_scorer(_fake([0.9, 0.8, 0.7, 0.1, 0.2, 0.75]), ["a", "b", "c"], ["d", "e", "f"], min_auroc=0.8)
    assert report["scorer"] == "fake"
    assert report["n"] == 6 and report["n_positive"] == 3 and report["n_negative"] == 3
    assert report["auroc"] == pytest.approx(_brute_auroc([0.9, 0.8, 0.7], [0.1, 0.2, 0.75]))
    assert report["accuracy"] == pytest.approx(median_split_accuracy([0.9, 0.8, 0.7], [0.1, 0.2, 0.75]))
    assert report["valid"] is True and report["min_auroc"] == 0.8
    # a scorer oriented the wrong way scores below 0.5 and is invalid
    flipped = validate_scorer(_fake([0.1, 0.2, 0.9, 0.8]), ["a", "b"], ["c", "d"], min_auroc=0.8)
    assert flipped["auroc"] == 0.0 and flipped["valid"] is False
    assert "valid" not in validate_scorer(_fake([1.0, 0.0]), ["a"], ["b"])


def test_validate_scorer_rejects_bad_input():
    with pytest.raises(ValueError, match="both poles"):
        validate_scorer(_fake([1.0]), ["a"], [])
    with pytest.raises(ValueError, match="3 scores for 4 texts"):
        validate_scorer(_fake([1.0, 2.0, 3.0]), ["a", "b"], ["c", "d"])
    with pytest.raises(ValueError, match="NaN"):
        validate_scorer(_fake([1.0, np.nan]), ["a"], ["b"])
    with pytest.raises(ValueError, match="min_auroc"):
        validate_scorer(_fake([1.0, 0.0]), ["a"], ["b"], min_auroc=1.5)


# --- registry ---------------------------------------------------------------------------------


def test_registry_is_consistent():
    assert set(TRAIT_SCORERS) == {"formality", "politeness", "sentiment", "truthfulness", "agreeableness"}
    for trait, names in TRAIT_SCORERS.items():
        assert names, trait
        for name in names:
            assert name in SCORERS, (trait, name)
    assert TRAIT_SCORERS["sentiment"][:3] == ("vader", "minilm-labels", "minilm-exemplars")
    assert TRAIT_SCORERS["formality"][:2] == ("minilm-probe", "minilm-labels")
    for trait in ("politeness", "agreeableness"):
        assert TRAIT_SCORERS[trait][:3] == ("ab-likelihood", "minilm-labels", "minilm-exemplars")
    assert TRAIT_SCORERS["truthfulness"] == ("likelihood",)


def test_views_follow_the_records():
    """Every derived table is what the records say, scorer by scorer."""
    assert list(SCORERS) == list(REGISTRY)
    assert list(TRAIT_SCORERS) == list(scorer_traits())
    for name, record in REGISTRY.items():
        assert record.name == name and SCORERS[name] is record.build
        assert (name in MODEL_SCORERS) == record.needs_model
        assert (name in OFFLINE_SCORERS) == (record.hub_model is None)
        assert (name in HF_CLASSIFIERS) == (record.classifier is not None)
        for trait in scorer_traits():
            assert (name in TRAIT_SCORERS[trait]) == (trait in record.traits)
        for trait in record.default_for:
            assert default_scorer(trait) == name
    assert set(MODEL_SCORERS) == {"likelihood", "ab-likelihood"}
    assert set(OFFLINE_SCORERS) == {
        "vader",
        "minilm-labels",
        "minilm-exemplars",
        "minilm-probe",
        "likelihood",
        "ab-likelihood",
    }
    assert HF_CLASSIFIERS["hf-formality"].model_id == "s-nlp/roberta-base-formality-ranker"
    assert scorer_record("hf-zeroshot").hub_model == scoring.ZERO_SHOT_MODEL
    assert scoring.hub_models() == {
        "hf-sentiment": "cardiffnlp/twitter-roberta-base-sentiment-latest",
        "hf-formality": "s-nlp/roberta-base-formality-ranker",
        "hf-zeroshot": scoring.ZERO_SHOT_MODEL,
    }
    # the per-trait data tables are the traits of the scorers built from them
    assert scorer_record("minilm-labels").traits == tuple(scoring.LABEL_DESCRIPTIONS)
    assert scorer_record("minilm-exemplars").traits == scoring.MINILM_TRAITS
    assert scorer_record("hf-zeroshot").traits == tuple(scoring.ZERO_SHOT_LABELS)
    # the model's own likelihood of statements is measured (and validated) without generating text
    likelihood = {n for n, r in REGISTRY.items() if r.measurement == "statement-likelihood"}
    assert likelihood == {"likelihood", "ab-likelihood"}
    assert not measurement_of("likelihood").generates_text and measurement_of("vader").generates_text
    # ... and each says what it scores in a prompt set (the stages dispatch through it)
    assert {n for n, r in REGISTRY.items() if r.paired is not None} == likelihood
    assert scorer_record("ab-likelihood").paired.unit == "A/B items"
    # an own trait's scorers name what they read of its file (checked at parse time)
    assert {n: REGISTRY[n].trait_data for n in scoring.own_trait_scorers()} == {
        "minilm-exemplars": ("exemplars", "pairs"),
        "minilm-probe": ("pairs",),  # fitted to completions of the pairs' instructions
        "ab-likelihood": ("ab_items",),
    }
    # the built-in traits whose packaged files carry A/B items (a request, a reply at each pole)
    assert scorer_record("ab-likelihood").traits == tuple(t for t in scorer_traits() if load_trait(t).ab_items)


def _schema_scorer_properties() -> dict[str, dict]:
    properties = SCHEMA["properties"]["scoring"]["properties"]
    return {key: value for key, value in properties.items() if "enum" in value}


def test_schema_scorer_enums_equal_the_registry():
    """schemas/config.schema.yaml is static (check_config and Snakemake read the file): its
    scoring.<trait> enums (in order) and defaults, and its trait names, must be the registry's."""
    from_schema = {
        trait: {"enum": list(node["enum"]), "default": node["default"]}
        for trait, node in _schema_scorer_properties().items()
    }
    assert from_schema == schema_enums()
    # the schema's scoring properties are the built-in traits; an own trait (config trait_files) gets
    # its scorer through additionalProperties, whose enum and default are the own-trait scorers'
    assert set(from_schema) == set(TRAITS)
    own = SCHEMA["properties"]["scoring"]["additionalProperties"]
    assert {"enum": own["enum"], "default": own["default"]} == own_trait_schema()
    assert own_trait_schema() == {
        "enum": ["minilm-exemplars", "minilm-probe", "ab-likelihood"],
        "default": "minilm-exemplars",
    }
    # the schema says hf-* scorers are the ones that need the network
    assert {n for n in REGISTRY if n.startswith("hf-")} == set(REGISTRY) - set(OFFLINE_SCORERS)


@pytest.mark.parametrize("path", [REPO / "config.yaml", TEST_CONFIG], ids=lambda p: p.name)
def test_configs_name_registered_scorers(path):
    config = yaml.safe_load(path.read_text())
    scoring_ = config.get("scoring", {})
    for trait in config["traits"]:
        assert scoring_.get(trait, default_scorer(trait)) in scorers_for(trait), (path.name, trait)
    for trait, name in scoring_.items():
        if trait in _schema_scorer_properties():
            assert name in scorers_for(trait), (path.name, trait, name)


class WordCount:
    """A toy scorer defined only here: the number of words."""

    name = "word-count"

    def score(self, texts):
        return np.array([len(t.split()) for t in texts], dtype=np.float64)


@pytest.fixture
def toy_record():
    def build(trait, **_):
        return WordCount()

    record = register(ScorerRecord("word-count", ("sentiment", "verbosity"), build, "Number of words."))
    yield record
    unregister("word-count")


def test_a_registered_scorer_is_available_everywhere(toy_record):
    """One register() call, no other edit: every lookup sees the new scorer."""
    assert REGISTRY["word-count"] is toy_record and scorer_record("word-count") is toy_record
    assert "word-count" in SCORERS and "word-count" in OFFLINE_SCORERS and "word-count" not in MODEL_SCORERS
    assert "word-count" not in HF_CLASSIFIERS
    assert "verbosity" in scorer_traits() and TRAIT_SCORERS["verbosity"] == ("word-count",)
    assert default_scorer("verbosity") == "word-count"
    # offered after the existing scorers of a trait, whose default stays
    assert scorers_for("sentiment")[-1] == "word-count" and default_scorer("sentiment") == "vader"
    assert schema_enums()["verbosity"] == {"enum": ["word-count"], "default": "word-count"}
    scorer = get_scorer("verbosity", "word-count")
    np.testing.assert_array_equal(scorer.score(["one two three", "four"]), [3.0, 1.0])
    report = validate_scorer(scorer, ["a long long text", "another long text"], ["short", "tiny"])
    assert report["scorer"] == "word-count" and report["auroc"] == 1.0
    with pytest.raises(ValueError, match="'word-count'.*'formality'"):
        get_scorer("formality", "word-count")


def test_toy_scorer_is_gone_after_unregister(toy_record):
    unregister("word-count")
    try:
        assert "word-count" not in SCORERS and "verbosity" not in TRAIT_SCORERS
        with pytest.raises(ValueError, match="'verbosity'"):
            get_scorer("verbosity", "word-count")
    finally:
        register(toy_record)  # the fixture unregisters it


def test_a_model_scorer_gets_the_model_through_the_registry():
    seen = {}

    def build(trait, model=None, tokenizer=None, **options):
        seen.update(model=model, tokenizer=tokenizer, options=options)
        return WordCount()

    register(
        ScorerRecord("toy-model", ("verbosity",), build, "Toy.", needs_model=True, measurement="statement-likelihood")
    )
    try:
        assert "toy-model" in MODEL_SCORERS
        with pytest.raises(ValueError, match="'toy-model'.*model=.*tokenizer="):
            get_scorer("verbosity", "toy-model")
        get_scorer("verbosity", "toy-model", model="M", tokenizer="T", prefix="p")
        assert seen == {"model": "M", "tokenizer": "T", "options": {"prefix": "p"}}
    finally:
        unregister("toy-model")
    assert "toy-model" not in MODEL_SCORERS


def test_register_rejects_conflicts_and_bad_records():
    def build(trait, **_):
        return WordCount()

    with pytest.raises(ValueError, match="'vader' is already registered"):
        register(ScorerRecord("vader", ("sentiment",), build, "Toy."))
    with pytest.raises(ValueError, match=r"claims the default for \['sentiment'\], already 'vader'"):
        register(ScorerRecord("toy", ("sentiment",), build, "Toy.", default_for=("sentiment",)))
    assert "toy" not in REGISTRY
    with pytest.raises(ValueError, match="default for"):
        ScorerRecord("toy", ("sentiment",), build, "Toy.", default_for=("formality",))
    with pytest.raises(ValueError, match="no traits"):
        ScorerRecord("toy", (), build, "Toy.")
    with pytest.raises(ValueError, match="measurement 'vibes' is not one of"):
        ScorerRecord("toy", ("sentiment",), build, "Toy.", measurement="vibes")
    with pytest.raises(ValueError, match="hub_model"):
        ScorerRecord("toy", ("sentiment",), build, "Toy.", classifier=scoring.ClassifierSpec("a/b", ("x",), ("y",)))
    with pytest.raises(TypeError):
        register({"name": "toy"})
    with pytest.raises(ValueError, match="unknown scorer 'toy'"):
        scorer_record("toy")
    # replacing a record keeps its place in the order
    original = scorer_record("minilm-labels")
    try:
        register(ScorerRecord("minilm-labels", original.traits, build, "Toy."), replace=True)
        assert list(REGISTRY) == list(SCORERS) and list(REGISTRY).index("minilm-labels") == 1
        assert isinstance(get_scorer("politeness", "minilm-labels"), WordCount)
    finally:
        register(original, replace=True)
    assert scorer_record("minilm-labels") is original


def test_unknown_trait_and_scorer_are_named():
    with pytest.raises(ValueError, match="'honesty'"):
        get_scorer("honesty", "vader")
    with pytest.raises(ValueError, match="'roberta'.*'formality'"):
        get_scorer("formality", "roberta")
    with pytest.raises(ValueError, match="'vader'.*'formality'"):
        get_scorer("formality", "vader")
    # embeddings are at chance for truthfulness: not offered
    with pytest.raises(ValueError, match="'minilm-labels'.*'truthfulness'"):
        get_scorer("truthfulness", "minilm-labels")
    with pytest.raises(ValueError, match="'minilm-exemplars'.*'truthfulness'"):
        MiniLMExemplars("truthfulness")


def test_likelihood_needs_the_model():
    with pytest.raises(ValueError, match="'likelihood'.*model=.*tokenizer="):
        get_scorer("truthfulness", "likelihood")


# --- VADER (unchanged) ------------------------------------------------------------------------


def test_vader_unchanged():
    from vaderSentiment.vaderSentiment import SentimentIntensityAnalyzer

    scorer = get_scorer("sentiment", "vader")
    assert isinstance(scorer, VaderSentiment) and scorer.name == "vader"
    texts = [*HELDOUT["sentiment"]["positive"][:3], *HELDOUT["sentiment"]["negative"][:3]]
    reference = [SentimentIntensityAnalyzer().polarity_scores(t)["compound"] for t in texts]
    np.testing.assert_array_equal(scorer.score(texts), np.array(reference))
    values = scorer.score(list(PINNED["sentiment"]))
    assert values[0] > 0 > values[1]


# --- exact label logic (HF classifiers) --------------------------------------------------------


def test_label_matching_is_exact():
    outputs = [{"label": "informal", "score": 0.9}, {"label": "formal", "score": 0.1}]
    assert signed_label_score(outputs, ["formal"], ["informal"]) == pytest.approx(-0.8)
    # a substring never counts: "formal" is not found in a model that only knows "informal"
    with pytest.raises(ValueError, match="'formal'"):
        signed_label_score([{"label": "informal", "score": 1.0}], ["formal"], [])
    # case and surrounding whitespace are not part of a label; a third label counts for neither pole
    outputs = [
        {"label": "Positive", "score": 0.6},
        {"label": " negative", "score": 0.1},
        {"label": "neutral", "score": 0.3},
    ]
    assert signed_label_score(outputs, ["positive"], ["negative"]) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="both poles"):
        signed_label_score(outputs, ["positive"], ["POSITIVE"])


def test_hf_classifier_uses_exact_labels(tmp_path):
    """A tiny random BERT classifier whose labels are 'informal' (0) and 'formal' (1)."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(scoring.minilm_model_dir()))
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=2,
        id2label={0: "informal", 1: "formal"},
        label2id={"informal": 0, "formal": 1},
    )
    torch.manual_seed(0)
    model = BertForSequenceClassification(config).eval()
    model.save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    spec = scoring.ClassifierSpec(str(tmp_path), ("formal",), ("informal",))
    scorer = scoring.HFTextClassifier(spec, name="tiny")
    texts = list(PINNED["formality"])
    with torch.inference_mode():
        probs = model(**tokenizer(texts, return_tensors="pt", padding=True)).logits.softmax(-1).numpy()
    np.testing.assert_allclose(scorer.score(texts), probs[:, 1] - probs[:, 0], atol=1e-5)
    with pytest.raises(ValueError, match="'polite'"):
        scoring.HFTextClassifier(scoring.ClassifierSpec(str(tmp_path), ("polite",), ("informal",)))


# --- MiniLM embedding scorers -------------------------------------------------------------------


def test_minilm_encoder_is_normalised_and_batch_invariant():
    encoder = scoring.get_encoder()
    assert scoring.get_encoder() is encoder  # loaded once per process
    texts = [*HELDOUT["formality"]["positive"][:4], *HELDOUT["formality"]["negative"][:4], "ok"]
    together = encoder.encode(texts, batch_size=64)
    one_by_one = encoder.encode(texts, batch_size=1)
    assert together.shape == (len(texts), 384) and together.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(together, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    assert "sentence_transformers" not in sys.modules


def test_minilm_anchor_score_is_mean_cosine_difference():
    scorer = MiniLMLabels("politeness")
    texts = list(PINNED["politeness"])
    encoder = scoring.get_encoder()
    e = encoder.encode(texts).astype(np.float64)
    p = encoder.encode(list(scoring.LABEL_DESCRIPTIONS["politeness"]["positive"])).astype(np.float64)
    n = encoder.encode(list(scoring.LABEL_DESCRIPTIONS["politeness"]["negative"])).astype(np.float64)
    expected = (e @ p.T).mean(1) - (e @ n.T).mean(1)
    np.testing.assert_allclose(scorer.score(texts), expected, atol=1e-6)
    assert scorer.score([]).shape == (0,)


def test_heldout_sentences_are_not_exemplars():
    for trait in MINILM_TRAITS:
        exemplars = {t for pole in ("positive", "negative") for t in load_trait(trait).exemplars[pole]}
        for pole in ("positive", "negative"):
            assert len(HELDOUT[trait][pole]) >= 8
            assert not exemplars & set(HELDOUT[trait][pole])


@pytest.mark.parametrize("kind", MINILM_KINDS)
@pytest.mark.parametrize("trait", MINILM_TRAITS)
def test_minilm_orientation_and_heldout_auroc(trait, kind):
    scorer = get_scorer(trait, kind)
    assert scorer.name == kind
    positive, negative = scorer.score(list(PINNED[trait]))
    assert positive > negative, (trait, kind, positive, negative)
    report = validate_scorer(
        scorer, HELDOUT[trait]["positive"], HELDOUT[trait]["negative"], min_auroc=MIN_HELDOUT_AUROC
    )
    print(f"{trait} {kind}: AUROC {report['auroc']:.3f}, accuracy {report['accuracy']:.2f}, n {report['n']}")
    assert report["mean_positive"] > report["mean_negative"]
    assert report["valid"], report


def test_vader_orientation_on_heldout_sentiment():
    report = validate_scorer(
        get_scorer("sentiment", "vader"), HELDOUT["sentiment"]["positive"], HELDOUT["sentiment"]["negative"]
    )
    assert report["auroc"] >= MIN_HELDOUT_AUROC


# --- truthfulness: the model's own likelihood ----------------------------------------------------


@pytest.fixture(scope="module")
def likelihood(smollm2):
    model, tokenizer, _ = smollm2
    return get_scorer("truthfulness", "likelihood", model=model, tokenizer=tokenizer)


def test_likelihood_matches_an_unpadded_forward(smollm2, likelihood):
    model, tokenizer, _ = smollm2
    assert isinstance(likelihood, TruthfulnessLikelihood)
    texts = ["Paris is the capital of France.", "A spider has eight legs.", "Yes."]
    context = scoring.document_start_ids(tokenizer)
    assert context == [tokenizer.convert_tokens_to_ids("<|endoftext|>")]
    expected = []
    with torch.inference_mode():
        for text in texts:
            ids = torch.tensor([context + tokenizer(text, add_special_tokens=False)["input_ids"]])
            logp = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
            expected.append(logp.gather(-1, ids[0, 1:, None])[len(context) - 1 :].mean().item())
    # one left-padded batch of different lengths equals each text alone
    np.testing.assert_allclose(likelihood.score(texts), expected, atol=1e-4)


def test_likelihood_pairs_prefer_true_statements(likelihood):
    statements = load_trait("truthfulness").statements[:16]
    diffs = likelihood.score_pairs([t for t, _ in statements], [f for _, f in statements])
    assert diffs.shape == (len(statements),) and np.all(np.isfinite(diffs))
    accuracy = float((diffs > 0).mean())
    print(f"truthfulness likelihood paired accuracy on {len(statements)} pairs: {accuracy:.2f}")
    assert accuracy >= 0.7  # 0.875 here; 0.85 on all 68 pairs
    with pytest.raises(ValueError, match="2 true statements but 1"):
        likelihood.score_pairs(["a", "b"], ["c"])


def test_likelihood_sees_steering_hooks(smollm2, likelihood):
    from steerid.engine.hooks import add_to_residual
    from steerid.engine.models import decoder_layers

    model, _, _manifest = smollm2
    site = decoder_layers(model)[len(decoder_layers(model)) // 2]
    text = ["The Earth orbits the Sun."]
    before = likelihood.score(text)
    delta = torch.randn(model.config.hidden_size, generator=torch.Generator().manual_seed(0)) * 20.0
    with add_to_residual(site, delta, positions="all"):
        steered = likelihood.score(text)
    assert not np.allclose(before, steered)
    np.testing.assert_allclose(likelihood.score(text), before, atol=1e-6)


def test_hf_zero_shot_runs_with_exact_pole_labels(tmp_path):
    """A tiny random NLI head: the score is P(positive label) − P(negative label) in [-1, 1]."""
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(str(scoring.minilm_model_dir()))
    labels = {0: "contradiction", 1: "neutral", 2: "entailment"}
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
        num_labels=3,
        id2label=labels,
        label2id={v: k for k, v in labels.items()},
    )
    torch.manual_seed(0)
    BertForSequenceClassification(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    scorer = scoring.HFZeroShot("formality", model_id=str(tmp_path))
    assert (scorer.positive, scorer.negative) == ("formal", "informal")
    values = scorer.score(list(PINNED["formality"]))
    assert values.shape == (2,) and np.all(np.abs(values) <= 1.0)
    with pytest.raises(ValueError, match="'truthfulness'"):
        scoring.HFZeroShot("truthfulness", model_id=str(tmp_path))


def test_each_measurement_names_its_score_files():
    generated = MEASUREMENTS["generated-text"].score_files("e1", ["in_distribution", "held_out"])
    assert generated == [
        "results/{model}/scores/e1/L{layer}/{trait}/in_distribution.h5",
        "results/{model}/scores/e1/L{layer}/{trait}/held_out.h5",
    ]
    likelihood = MEASUREMENTS["statement-likelihood"]
    assert likelihood.score_files("e7", ["in_distribution"]) == [
        "results/{model}/scores/e7/L{layer}/{trait}/statements.h5"
    ]
    assert measured_in(["statements"]) is likelihood and measured_in(["in_distribution"]).generates_text
    assert likelihood.units(40, 1) == "40 statement pairs"


def test_paired_concordance_counts_ties_as_half_and_brackets_itself():
    from steerid.scoring import paired_concordance

    preferences = np.r_[np.full(30, 0.4), np.full(8, -0.2), np.zeros(2)]
    value, (low, high) = paired_concordance(preferences, n_boot=1000, seed=0)
    assert value == pytest.approx((30 + 0.5 * 2) / 40)
    assert low < value < high and low >= 0.0 and high <= 1.0
    assert paired_concordance(preferences, n_boot=1000, seed=0) == (value, [low, high])
