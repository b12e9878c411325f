"""Vector files from other tools: read as their peers write them, steer as their peers apply them.

The peers (repeng, dialz, steering-vectors) are installed with --no-deps from
requirements/interchange-peers.txt: their pins (numpy<2, transformers<5) clash with steerid's.
Tests that need one skip with that command when it is missing.
"""

from __future__ import annotations

import contextlib
import json

import numpy as np
import pytest
import torch

from steerid.cli import main
from steerid.engine.hooks import add_at_layers, capture_residual
from steerid.engine.models import decoder_layers, load_model, read_manifest
from steerid.engine.teacher import TeacherBatch
from steerid.interchange import (
    FORMATS,
    VectorFile,
    VectorFileError,
    at_residual_strength,
    check_against,
    export_vector,
    format_named,
    read_vector,
    write_vector,
)

PEERS = "pip install --no-deps -r requirements/interchange-peers.txt"
LAYERS = [3, 10, 20]
PAIRS = [
    ("You are overjoyed. Tell me about your morning.", "You are miserable. Tell me about your morning."),
    ("You are overjoyed. What did you eat?", "You are miserable. What did you eat?"),
    ("You are overjoyed. Describe the weather.", "You are miserable. Describe the weather."),
    ("You are overjoyed. How was the trip?", "You are miserable. How was the trip?"),
]
PROMPTS = ["Tell me about your day.", "What do you think of rain?"]


def _repeng():
    # repeng 0.4.0, the newest on PyPI, annotates with np.float_, which NumPy 2 removed; the alias
    # only feeds those annotations.
    if not hasattr(np, "float_"):
        np.float_ = np.float64  # type: ignore[attr-defined]
    return pytest.importorskip("repeng", reason=f"needs repeng: {PEERS}")


@pytest.fixture(scope="module")
def model(smollm2_dir):
    """This module's own copy of the model: repeng's ControlModel rewrites the layer list it wraps."""
    loaded, tokenizer, _ = load_model(smollm2_dir, device="cpu", dtype="float32")
    return loaded, tokenizer


@pytest.fixture(scope="module")
def repeng_vector(model):
    repeng = _repeng()
    loaded, tokenizer = model
    dataset = [repeng.DatasetEntry(positive=p, negative=n) for p, n in PAIRS]
    return repeng.ControlVector.train(loaded, tokenizer, dataset, hidden_layers=LAYERS, batch_size=8)


@pytest.fixture(scope="module")
def repeng_gguf(repeng_vector, tmp_path_factory):
    path = tmp_path_factory.mktemp("repeng") / "happy.gguf"
    repeng_vector.export_gguf(str(path))
    return path


def _logits(loaded, tokenizer, shifts: dict[int, torch.Tensor] | None = None) -> list[torch.Tensor]:
    """Logits of each prompt alone (no padding), with ``shifts`` added at every position of those layers."""
    outputs = []
    for prompt in PROMPTS:
        ids = tokenizer(prompt, return_tensors="pt")
        with torch.no_grad(), contextlib.ExitStack() as stack:
            if shifts:
                layers = sorted(shifts)
                deltas = torch.stack([shifts[layer] for layer in layers])
                stack.enter_context(add_at_layers(decoder_layers(loaded), layers, deltas, positions="all"))
            outputs.append(loaded(**ids).logits)
    return outputs


def _repeng_logits(loaded, tokenizer, vector, coefficient: float) -> list[torch.Tensor]:
    repeng = _repeng()
    controlled = repeng.ControlModel(loaded, list(vector.directions))
    try:
        controlled.set_control(vector, coefficient)
        outputs = []
        for prompt in PROMPTS:
            with torch.no_grad():
                outputs.append(controlled(**tokenizer(prompt, return_tensors="pt")).logits)
        return outputs
    finally:
        controlled.unwrap()


def _vector_file(layers=(1, 4), width=8, seed=0, **fields) -> VectorFile:
    rng = np.random.default_rng(seed)
    defaults = {"model_hint": "llama", "coefficient": 1.25, "source_format": "steerid", "metadata": {"site": "resid"}}
    return VectorFile(directions={layer: rng.normal(size=width) for layer in layers}, **{**defaults, **fields})


def _same_directions(read: VectorFile, expected) -> None:
    assert read.layers == sorted(expected)
    for layer, values in expected.items():
        np.testing.assert_array_equal(read.directions[layer], np.asarray(values, dtype=np.float32))


# (a) repeng's own exporter


def test_repeng_gguf_reads_with_repengs_values(repeng_gguf, repeng_vector):
    read = read_vector(repeng_gguf)
    assert (read.source_format, read.model_hint, read.coefficient) == ("gguf", "llama", None)
    _same_directions(read, repeng_vector.directions)


def test_read_repeng_direction_steers_exactly_as_repengs_control_model(model, repeng_gguf, repeng_vector):
    loaded, tokenizer = model
    coefficient = 4.0
    read = read_vector(repeng_gguf)
    steered_by_steerid = _logits(
        loaded, tokenizer, {layer: torch.from_numpy(coefficient * v) for layer, v in read.directions.items()}
    )
    steered_by_repeng = _repeng_logits(loaded, tokenizer, repeng_vector, coefficient)
    one_block_later = _logits(
        loaded, tokenizer, {layer + 1: torch.from_numpy(coefficient * v) for layer, v in read.directions.items()}
    )
    unsteered = _logits(loaded, tokenizer)
    for ours, theirs, shifted, base in zip(steered_by_steerid, steered_by_repeng, one_block_later, unsteered):
        assert torch.equal(ours, theirs)
        assert (ours - base).abs().max() > 1e-2  # the vector does steer ...
        assert (shifted - theirs).abs().max() > 1e-3  # ... and one block off is told apart


def test_the_engine_steers_a_repeng_file_at_all_its_layers_as_repeng_does(model, repeng_gguf, repeng_vector):
    """The whole multi-layer file as one steering site, on the engine's teacher forcing: the next-token
    logits of every prompt position match repeng's ControlModel at every layer of the vector."""
    loaded, tokenizer = model
    coefficient = 4.0
    layers, directions = read_vector(repeng_gguf).stacked()
    assert layers == tuple(LAYERS)
    prompts = [tokenizer(prompt)["input_ids"] for prompt in PROMPTS]
    # Teacher forcing predicts the continuation from the last prompt token on: give it each prompt's
    # first token as the prompt and the rest as the continuation, to compare every position.
    batch = TeacherBatch(loaded, [ids[:1] for ids in prompts], [ids[1:] for ids in prompts], engine=True)
    ours = batch.logits(torch.from_numpy(coefficient * directions), layers, positions="all")
    theirs = _repeng_logits(loaded, tokenizer, repeng_vector, coefficient)
    for row, (ids, logits) in enumerate(zip(prompts, theirs)):
        torch.testing.assert_close(ours[row, : len(ids) - 1], logits[0, : len(ids) - 1], rtol=1e-4, atol=2e-3)
    assert (ours - batch.logits()).abs().max() > 1e-2


def test_repeng_file_passes_the_checks_against_its_model(smollm2_dir, repeng_gguf):
    manifest = read_manifest(smollm2_dir)
    check_against(
        read_vector(repeng_gguf),
        d_model=manifest.d_model,
        n_layers=manifest.n_layers,
        model_type=manifest.architecture,
        layers=LAYERS,
    )


# (b) steerid's export, read by repeng and checked as llama.cpp loads it


def _llama_cpp_load_checks(path, n_embd: int, n_layer: int) -> list[int]:
    """The checks llama.cpp makes loading a control vector; returns the layers it would apply.

    From common_control_vector_load_one (common/common.cpp): every tensor is named direction.N
    with N an integer > 0, is F32 and 1-D, and all have the same number of elements; from
    llama_adapter_cvec::apply (src/llama-adapter.cpp): that number equals the model's n_embd, and
    only N in 1 .. n_layer - 1 is copied into a layer (larger N is silently unused).
    """
    import gguf

    reader = gguf.GGUFReader(path)
    sizes, layers = set(), []
    for tensor in reader.tensors:
        prefix, _, index = tensor.name.partition(".")
        assert prefix == "direction" and index.isdigit(), tensor.name
        assert int(index) > 0, "llama.cpp rejects direction.0"
        assert tensor.tensor_type == gguf.GGMLQuantizationType.F32
        assert len(tensor.shape) == 1
        sizes.add(int(tensor.n_elements))
        layers.append(int(index))
    assert sizes == {n_embd}
    assert all(layer < n_layer for layer in layers)
    return sorted(layers)


def test_exported_gguf_reads_back_through_repengs_importer(tmp_path, repeng_vector):
    repeng = _repeng()
    vectors = {layer: 2.5 * v for layer, v in repeng_vector.directions.items()}
    path = tmp_path / "exported.gguf"
    export_vector(vectors, path, model_hint="llama", coefficient=2.5)
    imported = repeng.ControlVector.import_gguf(str(path))
    assert imported.model_type == "llama"
    assert sorted(imported.directions) == LAYERS
    for layer, values in vectors.items():
        np.testing.assert_array_equal(imported.directions[layer], values.astype(np.float32))


def test_exported_gguf_passes_llama_cpps_load_checks(tmp_path, smollm2_dir):
    manifest = read_manifest(smollm2_dir)
    path = tmp_path / "exported.gguf"
    export_vector(_vector_file(layers=LAYERS, width=manifest.d_model).directions, path, model_hint="llama")
    assert _llama_cpp_load_checks(path, manifest.d_model, manifest.n_layers) == LAYERS


def test_gguf_export_refuses_layer_0_which_llama_cpp_rejects(tmp_path):
    with pytest.raises(VectorFileError, match=r"layer 0 cannot be written .* direction\.0"):
        export_vector(_vector_file(layers=(0, 2)).directions, tmp_path / "v.gguf", model_hint="llama")
    assert not (tmp_path / "v.gguf").exists()


def test_gguf_export_needs_a_model_hint_for_repengs_importer(tmp_path):
    with pytest.raises(VectorFileError, match="needs a model hint"):
        export_vector(_vector_file().directions, tmp_path / "v.gguf", model_hint=None)


# (c) round trips, and files made the way each source tool makes them


@pytest.mark.parametrize("name", [name for name, entry in FORMATS.items() if entry.write is not None])
def test_every_writable_format_round_trips(tmp_path, name):
    original = _vector_file()
    path = tmp_path / f"vector{FORMATS[name].suffixes[0]}"
    with (
        pytest.warns(UserWarning, match="holds only tensors")
        if name == "steering-vectors"
        else contextlib.nullcontext()
    ):
        write_vector(original, path)
    read = read_vector(path)
    assert read.source_format == name
    _same_directions(read, original.directions)
    if name != "steering-vectors":
        assert (read.model_hint, read.coefficient, read.metadata) == ("llama", 1.25, {"site": "resid"})


def test_dialz_steeringvector_gguf_is_read_though_repeng_rejects_it(tmp_path, repeng_vector):
    dialz = pytest.importorskip("dialz", reason=f"needs dialz: {PEERS}")
    path = tmp_path / "dialz.gguf"
    dialz.SteeringVector(model_type="llama", directions=repeng_vector.directions).export_gguf(str(path))
    read = read_vector(path)
    _same_directions(read, repeng_vector.directions)
    assert read.model_hint == "llama"
    assert read.metadata["gguf.dialect"].startswith("steeringvector")
    repeng = _repeng()
    with (
        pytest.warns(UserWarning, match="'steeringvector'"),
        pytest.raises(ValueError, match="controlvector.model_hint"),
    ):
        repeng.ControlVector.import_gguf(str(path))


def _mean_hidden_states(loaded, tokenizer, texts) -> torch.Tensor:
    """persona_vectors' extraction: every hidden_states entry, averaged over the prompt's tokens: [n_layers + 1, d]."""
    rows = []
    for text in texts:
        with torch.no_grad():
            states = loaded(**tokenizer(text, return_tensors="pt"), output_hidden_states=True).hidden_states
        rows.append(torch.stack([state[0].mean(dim=0) for state in states]))
    return torch.stack(rows).mean(dim=0)


def _mean_block_outputs(loaded, tokenizer, texts, layer: int) -> np.ndarray:
    means = []
    for text in texts:
        with torch.no_grad(), capture_residual(decoder_layers(loaded)[layer]) as captured:
            loaded(**tokenizer(text, return_tensors="pt"))
        means.append(captured[0][0].mean(dim=0))
    return torch.stack(means).mean(dim=0).numpy()


def test_persona_vectors_tensor_row_l_is_the_output_of_block_l_minus_1(tmp_path, model):
    loaded, tokenizer = model
    positive, negative = [p for p, _ in PAIRS[:2]], [n for _, n in PAIRS[:2]]
    diff = _mean_hidden_states(loaded, tokenizer, positive) - _mean_hidden_states(loaded, tokenizer, negative)
    path = tmp_path / "happy_response_avg_diff.pt"
    torch.save(diff, path)
    read = read_vector(path)
    assert read.source_format == "persona-vectors"
    assert read.layers == list(range(loaded.config.num_hidden_layers))
    assert "row 0" in read.metadata["dropped"] and "final norm" in read.metadata["last_row"]
    for layer in (0, 7):
        measured = _mean_block_outputs(loaded, tokenizer, positive, layer) - _mean_block_outputs(
            loaded, tokenizer, negative, layer
        )
        np.testing.assert_allclose(read.directions[layer], measured, rtol=1e-5, atol=1e-5)


def test_steering_vectors_library_dict_reads_and_steers_as_the_library_applies_it(tmp_path, model):
    library = pytest.importorskip("steering_vectors", reason=f"needs steering-vectors: {PEERS}")
    loaded, tokenizer = model
    trained = library.train_steering_vector(loaded, tokenizer, PAIRS, layers=LAYERS[:2])
    path = tmp_path / "happy.pt"
    torch.save(trained.layer_activations, path)
    read = read_vector(path)
    _same_directions(read, {layer: t.numpy() for layer, t in trained.layer_activations.items()})
    ours = _logits(loaded, tokenizer, {layer: torch.from_numpy(v) for layer, v in read.directions.items()})
    with trained.apply(loaded):
        theirs = _logits(loaded, tokenizer)
    for mine, library_logits in zip(ours, theirs):
        assert torch.equal(mine, library_logits)


def _svec(tmp_path, directions, **extra):
    # As IBM activation-steering's SteeringVector.save writes it: json.dump of str-keyed lists.
    path = tmp_path / "vector.svec"
    path.write_text(json.dumps({"model_type": "llama", "directions": directions, **extra}))
    return path


def test_svec_index_means_output_keeps_indices_and_input_shifts_them_down(tmp_path):
    rng = np.random.default_rng(1)
    rows = {str(index): rng.normal(size=6).tolist() for index in (0, 4)}
    path = _svec(tmp_path, rows, explained_variances={"0": 0.4, "4": 0.3})
    as_output = read_vector(path, index_means="output")
    _same_directions(as_output, {0: rows["0"], 4: rows["4"]})
    assert as_output.model_hint == "llama"
    assert json.loads(as_output.metadata["explained_variances"]) == {"0": 0.4, "4": 0.3}
    as_input = read_vector(path, index_means="input")
    _same_directions(as_input, {3: rows["4"]})
    assert "embeddings" in as_input.metadata["dropped"]


def test_aisteer360_svec_with_k_by_d_directions(tmp_path):
    rows = {"5": [[0.5, -0.5, 0.0, 1.0]]}
    read = read_vector(_svec(tmp_path, rows, num_heads=2, head_dim=2), index_means="output")
    _same_directions(read, {5: rows["5"][0]})
    with pytest.raises(VectorFileError, match=r"direction '5' has shape \(2, 4\)"):
        read_vector(_svec(tmp_path, {"5": [[0.0] * 4, [1.0] * 4]}), index_means="output")


def test_strength_in_mean_residual_norms_records_the_source_coefficient():
    scaled = at_residual_strength(np.array([3.0, 4.0]), mean_residual_norm=50.0, strength=0.5, source_coefficient=-1.5)
    np.testing.assert_allclose(scaled.vector, [15.0, 20.0])
    assert (scaled.strength, scaled.mean_residual_norm, scaled.source_coefficient) == (0.5, 50.0, -1.5)
    with pytest.raises(VectorFileError, match="finite non-zero"):
        at_residual_strength(np.zeros(2), 50.0, 0.5)


# (d) one error per bad file


def test_wrong_width_names_both_widths():
    with pytest.raises(VectorFileError, match=r"width 8 but the model's hidden size is 576"):
        check_against(_vector_file(width=8), d_model=576, n_layers=30)


def test_model_hint_mismatch_is_an_error_unless_allowed(repeng_gguf):
    vector_file = read_vector(repeng_gguf)
    with pytest.raises(VectorFileError, match=r"happy\.gguf: the file's model hint is 'llama' but the model is"):
        check_against(vector_file, d_model=576, n_layers=30, model_type="qwen2")
    with pytest.warns(UserWarning, match="model hint is 'llama'"):
        check_against(vector_file, d_model=576, n_layers=30, model_type="qwen2", allow_hint_mismatch=True)


def test_a_layer_the_model_or_the_file_lacks():
    with pytest.raises(VectorFileError, match=r"layers \[40\] do not exist in the model: expected 0 <= layer < 30"):
        check_against(_vector_file(layers=(1, 40)), d_model=8, n_layers=30)
    with pytest.raises(VectorFileError, match=r"no direction for layers \[5\]: it has layers \[1, 4\]"):
        check_against(_vector_file(), d_model=8, n_layers=30, layers=[4, 5])


def test_nan_names_its_layer_and_index(tmp_path):
    directions = _vector_file().directions
    directions[4][2] = np.nan
    path = tmp_path / "nan.safetensors"
    export_vector(directions, path, model_hint="llama")
    with pytest.raises(VectorFileError, match=r"nan\.safetensors: direction for layer 4 has nan at index 2"):
        check_against(read_vector(path), d_model=8, n_layers=30)


@pytest.mark.parametrize("suffix", [".gguf", ".safetensors", ".pt", ".svec"])
def test_an_empty_file_is_unreadable(tmp_path, suffix):
    path = tmp_path / f"empty{suffix}"
    path.touch()
    with pytest.raises(VectorFileError, match=r"empty\.\w+: not a readable"):
        read_vector(path, index_means="output" if suffix == ".svec" else None)


def test_a_file_with_no_directions(tmp_path):
    import gguf

    path = tmp_path / "hollow.gguf"
    writer = gguf.GGUFWriter(str(path), "controlvector")
    writer.add_string("controlvector.model_hint", "llama")
    for write in (writer.write_header_to_file, writer.write_kv_data_to_file, writer.write_tensors_to_file):
        write()
    writer.close()
    with pytest.raises(VectorFileError, match=r"hollow\.gguf: the file holds no steering directions"):
        read_vector(path)


def test_a_model_gguf_is_not_a_control_vector(tmp_path):
    import gguf

    path = tmp_path / "model.gguf"
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    for write in (writer.write_header_to_file, writer.write_kv_data_to_file, writer.write_tensors_to_file):
        write()
    writer.close()
    with pytest.raises(VectorFileError, match=r"general\.architecture is 'llama'"):
        read_vector(path)


def test_unknown_format_lists_the_registry(tmp_path):
    path = tmp_path / "vector.npz"
    path.write_bytes(b"")
    with pytest.raises(VectorFileError, match=r"cannot tell the vector format .* gguf \(\.gguf\), safetensors"):
        read_vector(path)
    with pytest.raises(VectorFileError, match=r"unknown vector format 'npz': expected one of gguf"):
        format_named("npz")


def test_an_option_the_format_does_not_take(tmp_path):
    path = tmp_path / "v.safetensors"
    export_vector({1: np.ones(2)}, path, model_hint="llama")
    with pytest.raises(VectorFileError, match=r"the safetensors format takes no option index_means; it takes: none"):
        read_vector(path, index_means="output")


def test_svec_without_index_means_says_how_to_give_it(tmp_path):
    path = _svec(tmp_path, {"3": [1.0, 0.0]})
    with pytest.raises(VectorFileError, match=r"index_means is None.*one of \('output', 'input'\).*--index-means"):
        read_vector(path)


def test_a_pickled_object_is_refused_not_unpickled(tmp_path):
    path = tmp_path / "object.pt"
    torch.save({"vector": VectorFile}, path)  # a class, unpickled only by running code
    with pytest.raises(VectorFileError, match="holds more than tensors"):
        read_vector(path)


# (e) the command line


def test_cli_inspect_prints_format_layers_width_norms_and_hint(capsys, repeng_gguf):
    assert main(["vector", "inspect", str(repeng_gguf)]) == 0
    printed = capsys.readouterr().out
    for line in ("format: gguf - GGUF control vector", "model hint: llama", "coefficient: none recorded"):
        assert line in printed
    assert "width: 576" in printed and "layers: 3 (3, 10, 20)" in printed
    for layer in LAYERS:
        assert f"  {layer:>4}  1\n" in printed  # repeng's directions are unit PCA components


def test_cli_convert_writes_the_target_format(capsys, tmp_path, repeng_gguf):
    target = tmp_path / "happy.safetensors"
    assert main(["vector", "convert", str(repeng_gguf), str(target)]) == 0
    assert f"wrote {target} (safetensors, layers 3, 10, 20)" in capsys.readouterr().out
    _same_directions(read_vector(target), read_vector(repeng_gguf).directions)


def test_cli_convert_svec_with_index_means_to_gguf(capsys, tmp_path):
    source = _svec(tmp_path, {"3": [1.0, 0.0], "4": [0.0, 1.0]})
    target = tmp_path / "from-svec.gguf"
    assert main(["vector", "convert", str(source), str(target), "--index-means", "input"]) == 0
    _same_directions(read_vector(target), {2: [1.0, 0.0], 3: [0.0, 1.0]})


def test_cli_errors_go_to_stderr_with_status_1(capsys, tmp_path):
    assert main(["vector", "inspect", str(_svec(tmp_path, {"3": [1.0]}))]) == 1
    assert "--index-means" in capsys.readouterr().err
    source = tmp_path / "vector.safetensors"
    export_vector({1: np.ones(2)}, source, model_hint="llama")
    assert main(["vector", "convert", str(source), str(tmp_path / "out.bin")]) == 1
    assert "as one of: gguf (.gguf), safetensors (.safetensors), steering-vectors" in capsys.readouterr().err
