"""Train a repeng control vector for the example refusal trait on the embedded SmolLM2 and export it as GGUF.

The file this writes, examples/vectors/refusal-smollm2-135m.gguf, is what the "Test your own vector"
example of the README and tests/test_own_vector.py study: a vector made by another tool (repeng's own
PCA training and its own GGUF exporter), not by steerid. Rerun it to regenerate the file:

    pip install --no-deps -r requirements/interchange-peers.txt
    python examples/make_refusal_vector.py
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np

from steerid.engine.models import format_prompt, load_model, prepare_model

HERE = Path(__file__).parent
TRAIT_FILE = HERE / "traits" / "refusal.json"
OUTPUT = HERE / "vectors" / "refusal-smollm2-135m.gguf"
# repeng's hidden_layers index i adds to the output of decoder block i, which is steerid's layer i.
LAYERS = [12, 15, 18]


def main() -> None:
    # repeng 0.4.0 annotates with np.float_, which NumPy 2 removed; the alias only feeds annotations.
    np.float_ = np.float64  # type: ignore[attr-defined]
    import repeng

    pairs = json.loads(TRAIT_FILE.read_text())["pairs"]
    with tempfile.TemporaryDirectory() as folder:
        prepare_model("smollm2-135m", Path(folder))
        model, tokenizer, _ = load_model(Path(folder), device="cpu", dtype="float32")
        # repeng reads the last token of each string: format them as steerid's prompts are (chat turns).
        dataset = [
            repeng.DatasetEntry(
                positive=format_prompt(tokenizer, p["positive"]), negative=format_prompt(tokenizer, p["negative"])
            )
            for p in pairs
        ]
        vector = repeng.ControlVector.train(model, tokenizer, dataset, hidden_layers=LAYERS, batch_size=16)
    OUTPUT.parent.mkdir(parents=True, exist_ok=True)
    vector.export_gguf(str(OUTPUT))
    print(f"wrote {OUTPUT}: layers {sorted(vector.directions)}, trained on {len(dataset)} pairs")


if __name__ == "__main__":
    main()
