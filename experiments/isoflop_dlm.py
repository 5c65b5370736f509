"""Quokka approach 1 on a GPU cluster: IsoFLOP profiles of masked diffusion LMs with the paper's
recipe (GPT-2 tokenizer, RoPE, SwiGLU, QK-norm, AdamW, cosine schedule, peak LR 2e-4), at
budgets of 3e15 to 3e16 FLOPs (6.8e17 training FLOPs in all, as `quokka plan` counts them).

    quokka plan experiments/isoflop_dlm.py
    ray job submit --address http://<head>:8265 --working-dir . -- \\
        quokka run experiments/isoflop_dlm.py \\
        --tracking-uri http://<mlflow>:5000 --storage-path s3://<bucket>/quokka_runs

Needs `pip install transformers` for the GPT-2 tokenizer and network access to the Hugging
Face Hub on the cluster. Shards are packed in memory from the first `max_corpus_bytes` of the
corpus (5 GB of text here, roughly 1.2B GPT-2 tokens), and every worker holds them in memory:
the largest trial (5M parameters at 3e16 FLOPs) reads 1B tokens, so every trial sees each
token at most once. Larger budgets need a larger corpus and more host memory per worker.
"""

from quokka_ray.sweep import (
    DataConfig,
    EvaluationConfig,
    Experiment,
    Hyperparameters,
    IsoFlopStudy,
    ObjectiveConfig,
    Resources,
)

experiment = Experiment(
    study=IsoFlopStudy(
        budgets_flops=[3e15, 1e16, 3e16],
        model_sizes=[5_000_000, 10_000_000, 20_000_000, 40_000_000, 80_000_000],
    ),
    objectives=[ObjectiveConfig(kind="dlm", kernel="masked", schedule="linear", loss="elbo")],
    hyperparameters=Hyperparameters(lr=2e-4, weight_decay=0.1, batch_sequences=64,
                                    lr_schedule="cosine"),
    data=DataConfig(source="HuggingFaceFW/fineweb-edu", tokenizer="gpt2", seq_len=2048,
                    max_corpus_bytes=5_000_000_000, validation_sequences=256),
    resources=Resources(workers_per_trial=(1, 8), use_gpu=True, micro_batch_sequences=16),
    checkpoint_every_steps=500,
    evaluation=EvaluationConfig(eval_every_steps=500),
)
