"""Tests of steerid.engine.jacobian: the JVP/VJP operators against a full autograd Jacobian, the
matrix-free randomized SVD against LAPACK, and the pooled gain spectrum with its summary and
stability (rank summaries and principal angles themselves are tested in tests/test_linalg.py).

The exactness tests run on a tiny randomly initialised LlamaForCausalLM (a real architecture:
RoPE, GQA, RMSNorm, SwiGLU, KV cache) because its full Jacobian costs milliseconds; the
reference there is reverse-mode autograd of a plain full-prompt forward pass (SDPA attention,
no KV cache, its own hook), so it shares none of the operator's shortcuts. On the real
SmolLM2-135M the explicit (V x d) Jacobian is built once from d = 576 JVPs (one vmap call):
the only exact reference for its top singular values, and the VJPs are checked against it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from steerid.engine.jacobian import (
    GramSpectrum,
    full_jacobian,
    jacobian_operator,
    randomized_svd,
    stacked_gram_spectrum,
)
from steerid.engine.models import decoder_layers
from steerid.linalg import principal_angles

D, VOCAB, LAYER = 32, 64, 1


def rel(actual: torch.Tensor, expected: torch.Tensor) -> float:
    """Frobenius-relative error."""
    return float((actual.double() - expected.double()).norm() / expected.double().norm())


@pytest.fixture(scope="module")
def tiny():
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=D,
        intermediate_size=64,
        num_hidden_layers=3,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        initializer_range=0.2,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    generator = torch.Generator().manual_seed(1)
    prompts = [torch.randint(0, VOCAB, (n,), generator=generator) for n in (9, 6)]
    return model, prompts


def autograd_jacobian(model, ids: torch.Tensor, layer: int, position: int) -> torch.Tensor:
    """Reference: reverse-mode Jacobian of log_softmax(last logits) w.r.t. a shift of the residual at one position."""
    site = decoder_layers(model)[layer]
    t = position % ids.numel()

    def f(u):
        def hook(_module, _inputs, output):
            hidden = output[0] if isinstance(output, tuple) else output
            onehot = torch.zeros(hidden.shape[1], 1)
            onehot[t] = 1.0
            hidden = hidden + onehot * u
            return (hidden, *output[1:]) if isinstance(output, tuple) else hidden

        handle = site.register_forward_hook(hook)
        try:
            return torch.log_softmax(model(input_ids=ids[None]).logits[0, -1], dim=-1)
        finally:
            handle.remove()

    return torch.autograd.functional.jacobian(f, torch.zeros(D), vectorize=True)  # VOCAB backward passes, vmapped


# -- the operators --------------------------------------------------------------------------------


@pytest.mark.parametrize("position", [-1, -3, 0])
def test_jvp_and_vjp_match_the_autograd_jacobian(tiny, position):
    model, prompts = tiny
    J = autograd_jacobian(model, prompts[0], LAYER, position)
    matvec, rmatvec = jacobian_operator(model, None, LAYER, prompts[0], position, chunk_size=7)
    assert rel(full_jacobian(matvec, D), J) < 1e-5  # JVPs, several vmap chunks
    assert rel(rmatvec(torch.eye(VOCAB)).T, J) < 1e-5  # VJPs
    v, w = torch.randn(D), torch.randn(VOCAB)
    assert matvec(v).shape == (VOCAB,) and rmatvec(w).shape == (D,)
    assert rel(rmatvec(w), J.T @ w) < 1e-5  # second call reuses the cached pullback
    assert model.config._attn_implementation == "sdpa"  # restored after the products


def test_unvectorized_loop_matches_and_exact_ad_sees_the_rmsnorm_null_direction(tiny):
    model, prompts = tiny
    J = autograd_jacobian(model, prompts[1], LAYER, -1)
    matvec, _ = jacobian_operator(model, None, LAYER, prompts[1], -1, vectorize=False)
    assert rel(full_jacobian(matvec, D), J) < 1e-5
    # The final RMSNorm is scale-invariant, so J has exactly one null direction (pulled back from
    # h_L); exact AD resolves it to round-off, fp16 finite differences could not.
    sigma = torch.linalg.svdvals(J.double())
    assert sigma[-1] / sigma[0] < 1e-5 < sigma[-2] / sigma[0]


def test_operator_rejects_bad_input(tiny):
    model, prompts = tiny
    with pytest.raises(ValueError, match="layer 3 does not exist"):
        jacobian_operator(model, None, 3, prompts[0])
    with pytest.raises(ValueError, match="position 9 is outside the prompt of 9 tokens"):
        jacobian_operator(model, None, LAYER, prompts[0], 9)
    with pytest.raises(ValueError, match="needs a tokenizer"):
        jacobian_operator(model, None, LAYER, "text")
    matvec, rmatvec = jacobian_operator(model, None, LAYER, prompts[0])
    with pytest.raises(ValueError, match=r"expected a \(32, k\) block"):
        matvec(torch.ones(D + 1, 2))
    with pytest.raises(ValueError, match="NaN"):
        matvec(torch.full((D,), float("nan")))
    with pytest.raises(ValueError, match=r"expected a \(64, k\) block"):
        rmatvec(torch.ones(3))
    half = type(model)(model.config).to(torch.bfloat16)
    with pytest.raises(ValueError, match="float32"):
        jacobian_operator(half, None, LAYER, prompts[0])


# -- randomized SVD -------------------------------------------------------------------------------


def test_randomized_svd_matches_svdvals_of_the_full_jacobian(tiny):
    model, prompts = tiny
    J = autograd_jacobian(model, prompts[0], LAYER, -1).double()
    _, S, Vh = torch.linalg.svd(J)
    matvec, rmatvec = jacobian_operator(model, None, LAYER, prompts[0], -1)
    # This random model's spectrum is flat (sigma_4 / sigma_5 = 1.01): two more power iterations
    # than the default bring the Ritz values to 1e-5.
    values, vectors = randomized_svd(matvec, rmatvec, D, 8, oversample=10, power_iters=4, seed=3)
    assert values.shape == (8,) and vectors.shape == (D, 8)
    assert torch.all(values[:-1] >= values[1:])
    assert float(((values.double() - S[:8]) / S[:8]).abs().max()) < 1e-4
    assert torch.all(values.double() <= S[:8] * (1 + 1e-5))  # Ritz values never exceed the truth
    assert principal_angles(vectors, Vh[:8].T).max() < 1e-2
    assert torch.allclose(vectors.T @ vectors, torch.eye(8), atol=1e-5)
    # With l = d columns the range is exact whatever the spectrum.
    full, _ = randomized_svd(matvec, rmatvec, D, 8, oversample=D - 8, power_iters=0)
    assert float(((full.double() - S[:8]) / S[:8]).abs().max()) < 1e-5


def test_randomized_svd_is_deterministic_for_a_seed_and_validates():
    generator = torch.Generator().manual_seed(0)
    A = torch.randn(50, 20, generator=generator) @ torch.diag(0.7 ** torch.arange(20.0))

    def run(seed):
        return randomized_svd(lambda X: A @ X, lambda W: A.T @ W, 20, 5, seed=seed)

    (v1, u1), (v2, u2), (v3, u3) = run(7), run(7), run(8)
    assert torch.equal(v1, v2) and torch.equal(u1, u2)
    assert not torch.equal(u1, u3) and torch.allclose(v1, v3, rtol=1e-4)
    with pytest.raises(ValueError, match="k=21"):
        randomized_svd(lambda X: A @ X, lambda W: A.T @ W, 20, 21)
    with pytest.raises(ValueError, match="power_iters"):
        randomized_svd(lambda X: A @ X, lambda W: A.T @ W, 20, 5, power_iters=-1)


# -- the pooled gain matrix -----------------------------------------------------------------------


def test_stacked_gram_spectrum_exact_and_randomized(tiny):
    model, prompts = tiny
    positions = (-1, -2)
    references = [autograd_jacobian(model, ids, LAYER, p).double() for ids in prompts for p in positions]
    G = sum(J.T @ J for J in references)
    expected = torch.linalg.eigvalsh(G).flip(0).numpy()

    exact = stacked_gram_spectrum(model, None, LAYER, prompts, positions, pair_top_k=4)
    assert isinstance(exact, GramSpectrum) and exact.complete and exact.method == "exact"
    assert exact.pairs == ((0, 8), (0, 7), (1, 5), (1, 4))
    assert np.abs(exact.eigenvalues - expected).max() < 1e-5 * expected[0]
    assert np.allclose(exact.eigenvectors.T @ exact.eigenvectors, np.eye(D), atol=1e-10)
    reconstructed = (exact.eigenvectors * exact.eigenvalues) @ exact.eigenvectors.T
    assert np.abs(reconstructed - G.numpy()).max() < 1e-5 * expected[0]
    for values, J in zip(exact.pair_singular_values, references):
        sigma = torch.linalg.svdvals(J).numpy()
        assert np.abs(values - sigma).max() < 1e-5 * sigma[0]
    assert exact.pair_top_vectors.shape == (4, D, 4)
    stability = exact.stability(2)
    assert len(stability["max_angle"]) == 4 and stability["random_overlap"] == 2 / D
    assert all(0.0 <= o <= 1.0 for o in stability["overlap"])
    summary = exact.summary()
    assert summary["d"] == D and summary["n_pairs"] == 4 and summary["rank_at_0.01_of_max"] <= D

    # The memory-light path (Gram from JVP then VJP columns) gives the same G.
    light = stacked_gram_spectrum(model, None, LAYER, prompts, positions, max_jacobian_elements=0)
    assert np.abs(light.eigenvalues - expected).max() < 1e-5 * expected[0]

    randomized = stacked_gram_spectrum(
        model, None, LAYER, prompts, positions, method="randomized", k=4, oversample=10, power_iters=3, seed=1
    )
    assert not randomized.complete and randomized.pair_top_vectors is None
    assert np.abs(randomized.eigenvalues - expected[:4]).max() < 1e-4 * expected[0]
    assert principal_angles(randomized.eigenvectors, exact.eigenvectors[:, :4]).max() < 1e-2
    with pytest.raises(ValueError, match="method"):
        stacked_gram_spectrum(model, None, LAYER, prompts, method="lanczos")
    with pytest.raises(ValueError, match="outside prompt 1"):
        stacked_gram_spectrum(model, None, LAYER, prompts, positions=(-7,))


# -- the real model -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smollm2_jacobian(smollm2):
    """The explicit (V x d) Jacobian of SmolLM2 at layer 15, last position, from d JVPs."""
    model, tokenizer, manifest = smollm2
    matvec, rmatvec = jacobian_operator(
        model, tokenizer, 15, "Write a short note about the weather today, please.", -1, chunk_size=manifest.d_model
    )
    return matvec, rmatvec, full_jacobian(matvec, manifest.d_model), manifest.d_model


def test_smollm2_vjps_are_the_adjoint_of_the_jvp_jacobian(smollm2_jacobian):
    _, rmatvec, J, d = smollm2_jacobian
    assert J.shape == (49152, d) and torch.isfinite(J).all()
    W = torch.randn(J.shape[0], 4, generator=torch.Generator().manual_seed(0))
    # Forward and reverse mode agree to float32 round-off accumulated over 15 layers (1.4e-5 seen).
    assert rel(rmatvec(W), J.double().T @ W.double()) < 1e-4


def test_smollm2_randomized_top8_matches_the_explicit_jacobian(smollm2_jacobian):
    matvec, rmatvec, J, d = smollm2_jacobian
    exact = torch.linalg.svdvals(J.double())[:8]
    values, vectors = randomized_svd(matvec, rmatvec, d, 8, oversample=10, power_iters=3, seed=0)
    assert float(((values.double() - exact) / exact).abs().max()) < 1e-3
    assert torch.all(values.double() <= exact * (1 + 1e-5))  # interlacing: a one-sided exact bound
    assert vectors.shape == (d, 8)


# -- the engine's closed-form last-position path ---------------------------------------------------


@pytest.fixture(scope="module", params=["llama", "qwen2", "qwen3", "mistral", "gemma3_text"])
def family_model(request):
    """A tiny random model of each family the engine runs, with random norms and biases."""
    from test_engine import _family_configs
    from transformers import AutoModelForCausalLM

    torch.manual_seed(0)
    config = _family_configs()[request.param]
    config.vocab_size = VOCAB
    model = AutoModelForCausalLM.from_config(config).eval()
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" in name or "bias" in name:
                parameter.normal_(0.0, 0.3)
    return model


def test_last_position_gram_equals_the_autograd_gram_for_every_family(family_model):
    """J^T J from hand-propagated tangents and the closed-form vocabulary part, against J from autograd
    of the model's own forward (sliding windows of 4 are shorter than the 9-token prompt)."""
    from steerid.engine.decoder import decoder_for
    from steerid.engine.linearize import last_position_gram

    ids = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(1))
    J = autograd_jacobian(family_model, ids, LAYER, -1).double()
    gram = last_position_gram(decoder_for(family_model), ids, LAYER)
    assert rel(gram, J.T @ J) < 1e-5
    matvec, rmatvec = jacobian_operator(family_model, None, LAYER, ids, -1)
    assert rel(full_jacobian(matvec, D), J) < 1e-5
    assert rel(rmatvec(torch.eye(VOCAB)).T, J) < 1e-5


def test_hand_propagated_tangents_equal_torch_func(family_model):
    from steerid.engine.decoder import decoder_for
    from steerid.engine.linearize import last_position_path

    ids = torch.randint(0, VOCAB, (7,), generator=torch.Generator().manual_seed(2))
    path = last_position_path(decoder_for(family_model), ids, 0)
    directions = torch.randn(D, 5, generator=torch.Generator().manual_seed(3))
    zero = torch.zeros(D)
    reference = torch.stack([torch.func.jvp(path, (zero,), (x,))[1] for x in directions.T], dim=1)
    assert rel(path.tangents(directions), reference) < 1e-6


def test_the_engine_and_the_hugging_face_path_give_the_same_pooled_spectrum(tiny):
    model, prompts = tiny
    fast = stacked_gram_spectrum(model, None, LAYER, prompts, (-1,))
    slow = stacked_gram_spectrum(model, None, LAYER, prompts, (-1,), engine=False)
    assert np.abs(fast.eigenvalues - slow.eigenvalues).max() < 1e-5 * slow.eigenvalues[0]


def test_a_sites_gram_holds_each_layers_jacobian_and_their_cross_terms(family_model):
    """At a site of two layers, J^T J of the stacked shifts against the autograd Jacobians of each layer's
    own shift side by side; one prompt leaves at least d + 1 of the 2 d stacked directions inert."""
    from steerid.engine.decoder import decoder_for
    from steerid.engine.linearize import last_position_gram

    ids = torch.randint(0, VOCAB, (9,), generator=torch.Generator().manual_seed(1))
    J = torch.cat([autograd_jacobian(family_model, ids, layer, -1) for layer in (0, LAYER)], dim=1).double()
    gram = last_position_gram(decoder_for(family_model), ids, (0, LAYER))
    assert gram.shape == (2 * D, 2 * D) and rel(gram, J.T @ J) < 1e-5
    values = torch.linalg.eigvalsh(gram)
    assert float(values[D]) < 1e-6 * float(values[-1])  # the float32 floor of J, far below any gain


def test_a_sites_pooled_spectrum_is_the_joint_grams_and_needs_the_engine(tiny):
    from steerid.engine.decoder import decoder_for
    from steerid.engine.linearize import last_position_gram

    model, prompts = tiny
    site = (0, LAYER)
    spectrum = stacked_gram_spectrum(model, None, site, prompts)
    pooled = sum(last_position_gram(decoder_for(model), ids, site) for ids in prompts)
    np.testing.assert_allclose(spectrum.eigenvalues, np.linalg.eigvalsh(pooled.numpy())[::-1], atol=1e-9)
    assert spectrum.eigenvectors.shape == (2 * D, 2 * D) and spectrum.pair_top_vectors.shape[1] == 2 * D
    for options in ({"method": "randomized"}, {"engine": False}, {"positions": (-2,)}):
        with pytest.raises(ValueError, match=r"joint Jacobian of the site at layers \[0, 1\]"):
            stacked_gram_spectrum(model, None, site, prompts, **options)
