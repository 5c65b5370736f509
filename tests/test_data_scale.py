"""Data at scale: a worker's memory does not grow with the corpus, and a local JSONL data set
with a BPE trained here runs end to end through `quokka run`."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from quokka_ray.cli import main
from quokka_ray.data.shards import write_shard
from tests.conftest import REPO

SEQ_LEN = 2048
SHARD_TOKENS = 4 * 2**20


def _made_up_corpus(folder, tokens: int) -> None:
    """Shards of random GPT-2-sized ids written directly (no tokenizing) and their manifest."""
    folder.mkdir()
    rng = np.random.default_rng(tokens)
    shards, left, index = [], tokens, 0
    while left >= SEQ_LEN:
        n = min(SHARD_TOKENS, left) // SEQ_LEN
        ids = rng.integers(0, 50_257, size=(n, SEQ_LEN), dtype=np.uint16)
        shards.append(write_shard(str(folder), f"train-{index:05d}.parquet", ids))
        left, index = left - n * SEQ_LEN, index + 1
    (folder / "manifest.json").write_text(json.dumps({"seq_len": SEQ_LEN, "shards": shards}))


@pytest.mark.slow
def test_worker_memory_does_not_grow_with_the_corpus(tmp_path):
    peaks = {}
    for tokens in (5_000_000, 100_000_000):
        folder = tmp_path / f"corpus-{tokens}"
        _made_up_corpus(folder, tokens)
        out = subprocess.run([sys.executable, str(REPO / "tests" / "scripts" / "loader_rss.py"),
                              str(folder), "60", "64"], cwd=REPO, check=True, timeout=300,
                             capture_output=True, text=True)
        peaks[tokens] = json.loads(out.stdout.strip().splitlines()[-1])["peak_rss_mb"]
    # Loading the larger corpus whole, as int64, would take 800 MB.
    assert abs(peaks[100_000_000] - peaks[5_000_000]) < 100, peaks


EXPERIMENT = """
from quokka_ray.sweep import DataConfig, EvaluationConfig, Experiment, FixedStudy, Hyperparameters
from quokka_ray.sweep import Resources

experiment = Experiment(
    study=FixedStudy(model_sizes=[12_000], tokens=[8 * 32 * 6]),
    hyperparameters=Hyperparameters(lr=3e-3, batch_sequences=8),
    data=DataConfig(source={source!r}, tokenizer={tokenizer!r}, seq_len=32,
                    max_corpus_bytes=400_000, validation_sequences=8, shard_tokens=10_000),
    resources=Resources(workers_per_trial=1),
    checkpoint_every_steps=1000,
    evaluation=EvaluationConfig(smoothing_window_steps=3, validation_samples_per_sequence=1),
)
"""


@pytest.mark.slow
def test_local_jsonl_with_a_bpe_trained_here_runs_end_to_end(ray_session, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    rng = np.random.default_rng(1)
    words = ["the", "quokka", "diffuses", "tokens", "scaling", "law", "of", "data", "models"]
    with (tmp_path / "corpus.jsonl").open("w") as out:
        for i in range(1500):
            sentence = " ".join(rng.choice(words, size=int(rng.integers(10, 40))))
            out.write(json.dumps({"id": i, "body": sentence.capitalize() + "."}) + "\n")
    tokenizer = tmp_path / "bpe.json"
    assert main(["data", "train-tokenizer", str(tmp_path / "corpus.jsonl"), "--text-field", "body",
                 "--vocab-size", "400", "--out", str(tokenizer)]) == 0
    experiment = tmp_path / "jsonl_bpe.py"
    experiment.write_text(EXPERIMENT.format(source=str(tmp_path / "corpus.jsonl"),
                                            tokenizer=str(tokenizer))
                          .replace("seq_len=32,", "seq_len=32, text_field='body',"))
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    storage = tmp_path / "runs"
    assert main(["run", str(experiment), "--tracking-uri", uri,
                 "--storage-path", str(storage)]) == 0

    (manifest_path,) = storage.glob("data/packed-*/manifest.json")  # under the storage path
    manifest = json.loads(manifest_path.read_text())
    assert manifest["tokenizer"]["file"] == "tokenizer.json"
    assert (manifest_path.parent / "tokenizer.json").read_bytes() == tokenizer.read_bytes()
    vocabulary = len(json.loads(tokenizer.read_text())["model"]["vocab"])
    assert manifest["vocab_size"] == vocabulary + 1 <= 401  # and a mask token
    assert manifest["token_dtype"] == "uint16"
    assert manifest["source"]["corpus"] == "local"
    client = MlflowClient(uri)
    experiment_id = client.get_experiment_by_name("jsonl_bpe").experiment_id
    (run,) = client.search_runs([experiment_id], filter_string="tags.`quokka.role` = 'trial'")
    assert run.info.status == "FINISHED"
    assert np.isfinite(run.data.metrics["val_loss"])
