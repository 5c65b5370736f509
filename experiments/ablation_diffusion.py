"""The modelling choices Quokka ablates, at one model size and token count: noise schedules
(linear, poly2, cosine), the uniform kernel (a surrogate loss with a time embedding), MaskGIT
weighting, the clean-to-noisy curriculum and antithetic timesteps, against an AR baseline.
Validation always uses the fixed uniform-t ELBO estimate, so the runs compare directly. Two
scales, chosen with `--set scale=...`:

- `tiny` (the default): ~8 trials of a 100k-parameter model on the Python standard library's
  source (byte tokens), for 2 CPU cores.
- `paper`: the paper's recipe (FineWeb-Edu, GPT-2 tokenizer, sequences of 2048 tokens, batches
  of 256, peak LR 2e-4) at 127M non-embedding parameters (a size of the paper's Table 6) and
  1.3e10 tokens, C = 6ND of about 1e19 FLOPs, where Quokka's approach-1 law
  (N_opt = 0.0216 C^0.514) puts the compute-optimal size at about 126M: the ablations then
  compare objectives at a compute-optimal point, not at a starved or overtrained one.

    quokka run experiments/ablation_diffusion.py      # the tiny scale
    mlflow ui --backend-store-uri sqlite:///mlflow.db  # compare val_loss across runs
    quokka plan experiments/ablation_diffusion.py --set scale=paper --gpu h100 --mfu 0.4

Each scale is its own MLflow and Tune experiment (ablation_diffusion-tiny, -paper).
"""

from typing import Literal

from quokka_ray.sweep import (
    DataConfig,
    EvaluationConfig,
    Experiment,
    FixedStudy,
    Hyperparameters,
    ObjectiveConfig,
    Resources,
)

OBJECTIVES = [
    ObjectiveConfig(kind="dlm", schedule="linear"),
    ObjectiveConfig(kind="dlm", schedule="poly2"),
    ObjectiveConfig(kind="dlm", schedule="cosine"),
    ObjectiveConfig(kind="dlm", kernel="uniform"),
    ObjectiveConfig(kind="dlm", loss="maskgit"),
    ObjectiveConfig(kind="dlm", timesteps="curriculum", curriculum_width=0.2),
    ObjectiveConfig(kind="dlm", timesteps="antithetic"),
    ObjectiveConfig(kind="ar"),
]


def make_experiment(scale: Literal["tiny", "paper"] = "tiny") -> Experiment:
    name = f"ablation_diffusion-{scale}"
    if scale == "tiny":
        return Experiment(
            name=name,
            study=FixedStudy(model_sizes=[100_000], tokens=[400_000]),
            objectives=OBJECTIVES,
            hyperparameters=Hyperparameters(lr=3e-3, batch_sequences=16),
            data=DataConfig(seq_len=64),
            resources=Resources(workers_per_trial=1),
            evaluation=EvaluationConfig(smoothing_window_steps=51),
        )
    return Experiment(
        name=name,
        study=FixedStudy(model_sizes=[127_000_000], tokens=[13_000_000_000]),
        objectives=OBJECTIVES,
        hyperparameters=Hyperparameters(lr=2e-4, weight_decay=0.1, batch_sequences=256,
                                        lr_schedule="cosine"),
        # 1.3e10 tokens of about 6 bytes of text each, with room to spare.
        data=DataConfig(source="HuggingFaceFW/fineweb-edu", tokenizer="gpt2", seq_len=2048,
                        max_corpus_bytes=100_000_000_000, validation_sequences=256),
        resources=Resources(workers_per_trial=(1, 8), use_gpu=True, micro_batch_sequences=16),
        checkpoint_every_steps=500,
        evaluation=EvaluationConfig(eval_every_steps=500),
    )
