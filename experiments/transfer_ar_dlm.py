"""Do AR optima transfer to DLMs? One Optuna search (TPE, seeded) per study point, for AR and
masked DLM models at two budgets, side by side in one sweep; `quokka fit` then gives each
point's optimum, fits lr_opt(C) (and B_opt(C) where the batch is searched) for each kind, and
reports how much loss the AR optimum costs a DLM at each budget. Two scales, chosen with
`--set scale=...`:

- `tiny` (the default), for 2 CPU cores: a 12.7k-parameter model at 3e9 and 1e10 FLOPs (77 and
  257 steps of 8 x 64 tokens), 2 trials per point searching the peak learning rate
  (log-uniform, 1e-3 to 1e-1): 8 short trials. `quokka bench search` measures what Optuna
  with ASHA finds against a full learning-rate grid at one of its points (docs/benchmarks.md).
- `paper`: the paper's transfer question at its scale, for AR and DLM, on FineWeb-Edu with the
  GPT-2 tokenizer and sequences of 2048 tokens: peak LR (log-uniform, 5e-5 to 2e-3), batch
  (256, 1024 or 4096 sequences) and weight decay (0.1 or 0) searched by 12 trials per point,
  at 1e19 and 1e20 FLOPs, each at the Table 6 size nearest Quokka's approach-1 optimum
  (N_opt = 0.0216 C^0.514: 126M and 411M), kept by `tokens_per_param` (127M sees 103 tokens
  per parameter at 1e19, 472M sees 75 at 1e20; the other pairings fall outside 20 to 200):
  48 trials, where the paper's grid had 72.

    quokka run  experiments/transfer_ar_dlm.py
    quokka fit  experiments/transfer_ar_dlm.py
    quokka plan experiments/transfer_ar_dlm.py --set scale=paper --gpu h100 --mfu 0.4

Each scale is its own MLflow and Tune experiment (transfer_ar_dlm-tiny, -paper).
"""

from typing import Literal

from ray import tune

from quokka_ray.sweep import (
    DataConfig,
    EvaluationConfig,
    Experiment,
    Hyperparameters,
    IsoFlopStudy,
    ObjectiveConfig,
    Resources,
    Search,
)


def make_experiment(scale: Literal["tiny", "paper"] = "tiny") -> Experiment:
    name = f"transfer_ar_dlm-{scale}"
    objectives = [ObjectiveConfig(kind="dlm"), ObjectiveConfig(kind="ar")]
    if scale == "tiny":
        return Experiment(
            name=name,
            study=IsoFlopStudy(budgets_flops=[3e9, 1e10], model_sizes=[12_000], min_steps=10),
            objectives=objectives,
            hyperparameters=Hyperparameters(lr=tune.loguniform(1e-3, 1e-1), batch_sequences=8),
            search=Search(algorithm="optuna", num_samples=2),
            data=DataConfig(seq_len=64),
            resources=Resources(workers_per_trial=1),
            evaluation=EvaluationConfig(smoothing_window_steps=21),
        )
    return Experiment(
        name=name,
        study=IsoFlopStudy(budgets_flops=[1e19, 1e20], model_sizes=[127_000_000, 472_000_000],
                           tokens_per_param=(20, 200)),
        objectives=objectives,
        hyperparameters=Hyperparameters(lr=tune.loguniform(5e-5, 2e-3),
                                        batch_sequences=tune.choice([256, 1024, 4096]),
                                        weight_decay=tune.choice([0.1, 0.0]),
                                        lr_schedule="cosine"),
        search=Search(algorithm="optuna", num_samples=12),
        # The longest trial reads 3.5e10 tokens, about 200 GB of text.
        data=DataConfig(source="HuggingFaceFW/fineweb-edu", tokenizer="gpt2", seq_len=2048,
                        max_corpus_bytes=250_000_000_000, validation_sequences=256),
        resources=Resources(workers_per_trial=(1, 8), use_gpu=True, micro_batch_sequences=16),
        checkpoint_every_steps=500,
        evaluation=EvaluationConfig(eval_every_steps=500),
    )
