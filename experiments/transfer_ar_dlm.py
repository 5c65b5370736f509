"""Do AR optima transfer to DLMs? The paper's grid (peak LR x batch size) for AR and masked DLM
models on two budgets; `quokka fit` then fits lr_opt(C) and B_opt(C) for each kind and reports
how much loss the AR optimum costs a DLM. Two scales, chosen with `--set scale=...`:

- `tiny` (the default), sized for a laptop: 2 kinds x 2 budgets x 2 sizes x 3 LRs x 2 batches
  = 48 short trials.
- `paper`: the paper's grid, batch 256/1024/4096 sequences x peak LR 1e-4/2e-4/4e-4 x weight
  decay 0.1/0 (on/off), for AR and DLM, on FineWeb-Edu with the GPT-2 tokenizer and sequences
  of 2048 tokens: 72 trials at two budgets, 1e19 and 1e20 FLOPs, each at the Table 6 size
  nearest Quokka's approach-1 optimum (N_opt = 0.0216 C^0.514: 126M and 411M), kept by
  `tokens_per_param` (127M sees 103 tokens per parameter at 1e19, 472M sees 75 at 1e20; the
  other pairings fall outside 20 to 200).

    quokka run  experiments/transfer_ar_dlm.py
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
)


def make_experiment(scale: Literal["tiny", "paper"] = "tiny") -> Experiment:
    name = f"transfer_ar_dlm-{scale}"
    objectives = [ObjectiveConfig(kind="dlm"), ObjectiveConfig(kind="ar")]
    if scale == "tiny":
        return Experiment(
            name=name,
            study=IsoFlopStudy(budgets_flops=[3e10, 1e11], model_sizes=[12_000, 55_000],
                               min_steps=10),
            objectives=objectives,
            hyperparameters=Hyperparameters(lr=tune.grid_search([1e-3, 3e-3, 1e-2]),
                                            batch_sequences=tune.grid_search([8, 32])),
            data=DataConfig(seq_len=64),
            resources=Resources(workers_per_trial=1),
            evaluation=EvaluationConfig(smoothing_window_steps=21),
        )
    return Experiment(
        name=name,
        study=IsoFlopStudy(budgets_flops=[1e19, 1e20], model_sizes=[127_000_000, 472_000_000],
                           tokens_per_param=(20, 200)),
        objectives=objectives,
        hyperparameters=Hyperparameters(lr=tune.grid_search([1e-4, 2e-4, 4e-4]),
                                        batch_sequences=tune.grid_search([256, 1024, 4096]),
                                        weight_decay=tune.grid_search([0.1, 0.0]),
                                        lr_schedule="cosine"),
        # The longest trial reads 3.5e10 tokens, about 200 GB of text.
        data=DataConfig(source="HuggingFaceFW/fineweb-edu", tokenizer="gpt2", seq_len=2048,
                        max_corpus_bytes=250_000_000_000, validation_sequences=256),
        resources=Resources(workers_per_trial=(1, 8), use_gpu=True, micro_batch_sequences=16),
        checkpoint_every_steps=500,
        evaluation=EvaluationConfig(eval_every_steps=500),
    )
