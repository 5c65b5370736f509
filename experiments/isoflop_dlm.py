"""Quokka approach 1: IsoFLOP profiles of masked diffusion LMs with the paper's recipe (RoPE,
SwiGLU, QK-norm, AdamW, cosine schedule, weight decay 0.1), at three scales chosen on the
command line with `--set scale=...`:

- `tiny` (the default): 3 budgets of 3e10 to 1e11 FLOPs x 4 sizes of 3k to 98k non-embedding
  parameters on the Python standard library's source (byte tokens), for 2 CPU cores: about
  half the quickstart's training compute (`quokka plan` counts 1.47e12 exact FLOPs here, 2.71e12
  for experiments/quickstart.py).
- `small`: a first sweep on a GPU cluster, the paper's data and model recipe at budgets of 3e15
  to 3e16 FLOPs and 5M to 80M parameters (6.8e17 exact FLOPs, about half a GPU-hour at
  `--gpu h100 --mfu 0.4`). Its longest trial reads 1B tokens; the first 5 GB of text hold
  roughly 1.2B GPT-2 tokens.
- `paper`: the paper's nine budgets, 3e18 to 1e21 FLOPs, on FineWeb-Edu with the GPT-2
  tokenizer, sequences of 2048 tokens and batches of 256 sequences, peak LR 2e-4. The sizes are
  every other model size of the paper's Table 6; each budget trains those that see 1 to 1000
  tokens per parameter: 9 to 12 sizes around its optimum (24M to 8.4B in all, 98 trials), as
  the paper's Figure 2 has 7 to 10. Its longest trial reads 3.5e11 tokens, so the corpus is the
  first 2 TB of text.

    quokka plan experiments/isoflop_dlm.py
    quokka run  experiments/isoflop_dlm.py
    quokka fit  experiments/isoflop_dlm.py
    quokka plan experiments/isoflop_dlm.py --set scale=paper --gpu h100 --mfu 0.4
    ray job submit --address http://<head>:8265 --working-dir . -- \\
        quokka run experiments/isoflop_dlm.py --set scale=small --gpu h100 --max-gpu-hours 2 \\
        --tracking-uri http://<mlflow>:5000 --storage-path s3://<bucket>/quokka_runs

The GPU scales need `pip install 'quokka-ray[hf]'` for the GPT-2 tokenizer and the Hugging
Face Hub on the cluster; shards are prepared once under the storage path. Each scale is its
own MLflow and Tune experiment (isoflop_dlm-tiny, -small, -paper), so all three fit in one
store, and `quokka fit ... --set scale=...` fits the runs of that scale.
"""

from typing import Literal

from quokka_ray.sweep import (
    DataConfig,
    EvaluationConfig,
    Experiment,
    Hyperparameters,
    IsoFlopStudy,
    ObjectiveConfig,
    Resources,
)

#: The paper's Table 6 model sizes (non-embedding parameters), every other one.
PAPER_SIZES = [7_000_000, 25_000_000, 49_000_000, 79_000_000, 127_000_000, 173_000_000,
               226_000_000, 354_000_000, 472_000_000, 538_000_000, 708_000_000, 886_000_000,
               1_107_000_000, 1_529_000_000, 2_045_000_000, 2_674_000_000, 4_077_000_000,
               8_456_000_000]


def make_experiment(scale: Literal["tiny", "small", "paper"] = "tiny") -> Experiment:
    objective = ObjectiveConfig(kind="dlm", kernel="masked", schedule="linear", loss="elbo")
    name = f"isoflop_dlm-{scale}"
    if scale == "tiny":
        return Experiment(
            name=name,
            study=IsoFlopStudy(budgets_flops=[3e10, 6e10, 1e11],
                               # The shape rule gives 1x16, 1x32, 2x48 and 2x64 (layers x width).
                               model_sizes=[3_000, 12_700, 55_600, 97_700], min_steps=20),
            objectives=[objective],
            # Toy models want a far larger learning rate than the paper's 2e-4.
            hyperparameters=Hyperparameters(lr=1e-2, weight_decay=0.1, batch_sequences=32,
                                            lr_schedule="cosine"),
            data=DataConfig(seq_len=64, max_corpus_bytes=6_500_000, validation_sequences=64),
            resources=Resources(workers_per_trial=1, cpus_per_worker=1, micro_batch_sequences=32),
            checkpoint_every_steps=5000,  # one at the end: a resume costs less than saves here
            evaluation=EvaluationConfig(smoothing_window_steps=201),
        )
    if scale == "small":
        return Experiment(
            name=name,
            study=IsoFlopStudy(
                budgets_flops=[3e15, 1e16, 3e16],
                model_sizes=[5_000_000, 10_000_000, 20_000_000, 40_000_000, 80_000_000]),
            objectives=[objective],
            hyperparameters=Hyperparameters(lr=2e-4, weight_decay=0.1, batch_sequences=64,
                                            lr_schedule="cosine"),
            data=DataConfig(source="HuggingFaceFW/fineweb-edu", tokenizer="gpt2", seq_len=2048,
                            max_corpus_bytes=5_000_000_000, validation_sequences=256),
            resources=Resources(workers_per_trial=(1, 8), use_gpu=True, micro_batch_sequences=16),
            checkpoint_every_steps=500,
            evaluation=EvaluationConfig(eval_every_steps=500),
        )
    return Experiment(
        name=name,
        study=IsoFlopStudy(budgets_flops=[3e18, 6e18, 1e19, 3e19, 6e19, 1e20, 3e20, 6e20, 1e21],
                           model_sizes=PAPER_SIZES, tokens_per_param=(1, 1000)),
        objectives=[objective],
        hyperparameters=Hyperparameters(lr=2e-4, weight_decay=0.1, batch_sequences=256,
                                        lr_schedule="cosine"),
        data=DataConfig(source="HuggingFaceFW/fineweb-edu", tokenizer="gpt2", seq_len=2048,
                        max_corpus_bytes=2_000_000_000_000, validation_sequences=256),
        resources=Resources(workers_per_trial=(1, 8), use_gpu=True, micro_batch_sequences=16),
        checkpoint_every_steps=500,
        evaluation=EvaluationConfig(eval_every_steps=500),
    )
