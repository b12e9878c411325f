"""background.shards: the dump and its covariance in independent jobs, merged exactly."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from snakemake_runner import TEST_CONFIG, copy_study, executed_rules, printed, snakemake, write_config

from steerid import store
from steerid.linalg import StreamingCovariance
from steerid.linalg.streaming import covariance_from_hdf5, merged, read_accumulator, shard_slice, write_accumulator

MODEL, LAYER = "smollm2-135m", 15


def relative_error(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.abs(a - b).max() / np.abs(b).max())


@pytest.mark.parametrize(("n", "shards"), [(24, 3), (25, 4), (7, 7), (1000, 6)])
def test_shard_slices_cover_every_item_once_in_order(n, shards):
    parts = [shard_slice(n, shard, shards) for shard in range(shards)]
    assert [i for part in parts for i in range(n)[part]] == list(range(n))
    assert max(p.stop - p.start for p in parts) - min(p.stop - p.start for p in parts) <= 1


def test_shard_slice_refuses_more_shards_than_items():
    with pytest.raises(ValueError, match="shard 0 of 5 over 4 items"):
        shard_slice(4, 0, 5)


def test_accumulators_stored_per_shard_merge_to_the_single_pass_covariance(tmp_path):
    rng = np.random.default_rng(1)
    # A large common offset and very different scales: where a naive sum of squares loses digits.
    rows = (rng.standard_normal((5000, 48)) * np.logspace(-2, 2, 48) + 300.0).astype(np.float32)
    sinks = np.arange(5000) % 50 == 0
    states = []
    for shard in range(4):
        part = shard_slice(len(rows), shard, 4)
        dump = tmp_path / f"shard-{shard}.h5"
        with store.create(dump, {}) as handle:
            writer = store.RowWriter(handle, chunk_rows=256)
            writer.append("activations", rows[part])
        with store.create(tmp_path / f"state-{shard}.h5", {}) as handle:
            write_accumulator(
                handle.create_group("view"), covariance_from_hdf5(dump, "activations", 300, where=~sinks[part])
            )
        states.append(tmp_path / f"state-{shard}.h5")
    accumulators = []
    for path in states:
        with store.open_complete(path) as handle:
            accumulators.append(read_accumulator(handle["view"]))
    whole = StreamingCovariance(48)
    whole.update(rows, where=~sinks)
    total = merged(accumulators)
    assert total.count == whole.count == int((~sinks).sum())
    assert relative_error(total.covariance(), whole.covariance()) < 1e-10
    assert relative_error(total.covariance(), np.cov(rows[~sinks].astype(np.float64), rowvar=False)) < 1e-10
    np.testing.assert_allclose(total.mean, whole.mean, rtol=1e-12)
    assert accumulators[0].count == len(range(5000)[shard_slice(5000, 0, 4)]) - 25  # inputs are not changed


@pytest.mark.workflow
def test_shards_run_as_separate_jobs_and_merge_to_the_covariance_of_their_rows(run, tmp_path):
    workdir = copy_study(run, tmp_path / "study")
    base = yaml.safe_load(TEST_CONFIG.read_text())
    config = write_config(tmp_path, background={**base["background"], "shards": 3})
    target = f"results/{MODEL}/covariance/L{LAYER}.h5"
    result = snakemake(workdir, "--configfile", str(config), "--cores", "2", target)
    assert result.returncode == 0, printed(result)[-3000:]
    executed = executed_rules(result.stdout + result.stderr)
    assert {rule: executed.count(rule) for rule in set(executed)} == {
        "dump_background_shard": 3,
        "covariance_shard": 3,
        "merge_covariance": 1,
    }

    shards = [workdir / f"results/{MODEL}/activations/L{LAYER}/background/{i}-of-3.h5" for i in range(3)]
    parts = [store.read(path, "activations", "position", "text_index") for path in shards]
    activations, position, text_index = (np.concatenate(column) for column in zip(*parts))
    whole_activations, whole_position, whole_text_index = store.read(
        run / f"results/{MODEL}/activations/L{LAYER}/background.h5", "activations", "position", "text_index"
    )
    # The shards are the unsharded dump's texts, tokens and order; only batch composition differs.
    np.testing.assert_array_equal(text_index, whole_text_index)
    np.testing.assert_array_equal(position, whole_position)
    assert [int(store.read_attrs(path)["shard"]) for path in shards] == [0, 1, 2]
    merged_file, unsharded_file = workdir / target, run / target
    for view, rows in (("all_tokens", slice(None)), ("excluding_sinks", position != 0)):
        covariance, mean = store.read(merged_file, f"{view}/covariance", f"{view}/mean")
        expected = np.cov(activations[rows].astype(np.float64), rowvar=False)
        assert relative_error(covariance, expected) < 1e-10
        np.testing.assert_allclose(mean, activations[rows].astype(np.float64).mean(axis=0), rtol=1e-10, atol=1e-9)
        (unsharded,) = store.read(unsharded_file, f"{view}/covariance")
        assert relative_error(covariance, unsharded) < 1e-3
    # Batch composition changes fp32 rounding inside attention by a few 1e-5 of a row's largest entry
    # (the residual stream reaches several hundred at sink positions), not by a fixed absolute amount.
    row_scale = np.abs(whole_activations).max(axis=1, keepdims=True)
    assert float((np.abs(activations - whole_activations) / row_scale).max()) < 1e-4
    assert store.read_attrs(merged_file)["shards"] == 3
