"""`quokka bench train`'s options and settings, apart from the benchmark itself: the `quokka`
command builds its parser on every call, and the benchmark imports torch (seconds of CPU), which
`quokka plan` and the other commands must not pay for."""

from __future__ import annotations

import argparse
import importlib.util
from dataclasses import dataclass

from quokka_ray.config import require
from quokka_ray.train.config import AttentionKernel

WARMUP_STEPS = 3  # compilation, allocator, cuDNN/cuBLAS heuristics
LOOP_STEPS = 200
"""Steps the loop trains by default when it is given an experiment file."""
LOOP_WARMUP_STEPS = 20
"""Loop steps left out of the timing: the first steps decode the data's row groups into the
reader's cache and grow the allocator's pools (one-off costs of a run's start)."""


@dataclass(frozen=True)
class TrainBenchSettings:
    non_embedding_params: int = 1_000_000
    seq_len: int = 256
    batch_sequences: int = 8
    steps: int = 10
    kind: str = "dlm"
    vocab_size: int = 50_304
    fsdp: bool = True
    """FSDP2 over a one-process group, as each worker of a run of several workers uses it: on
    GPUs its bf16 mixed-precision policy; without it, bf16 autocast over fp32 weights (what a
    one-worker run trains with)."""
    compile: bool | None = None
    """Per-block torch.compile; None: the loop's default (on for GPUs, off for CPUs)."""
    fused_adamw: bool = True
    masked_head: bool = True
    """The output layer on the masked positions only (masked kernel); off: on every position."""
    activation_checkpointing: bool = False
    attention: AttentionKernel = "auto"

    def __post_init__(self) -> None:
        for flag, value in (("--non-embedding-params", self.non_embedding_params),
                            ("--seq-len", self.seq_len), ("--steps", self.steps),
                            ("--batch-sequences", self.batch_sequences),
                            ("--vocab-size", self.vocab_size)):
            require(value >= 1, f"quokka bench train {flag}", value, "at least 1")
        require(self.attention != "flash_attn" or importlib.util.find_spec("flash_attn"),
                "quokka bench train --attention", self.attention,
                "an installed kernel (flash_attn needs pip install 'quokka-ray[gpu]')")


def add_bench_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("experiment_file", nargs="?",
                        help="time the training loop on a trial of this experiment (without "
                        "it: the model's own step, from the options below)")
    parser.add_argument("--set", action="append", metavar="NAME=VALUE",
                        help="a setting of the experiment file (repeatable)")
    parser.add_argument("--trial", help="with an experiment file: the trial (see quokka plan; "
                        "default: the first)")
    parser.add_argument("--storage-path", help="with an experiment file: where its data shards "
                        "are (default: the experiment's storage path)")
    parser.add_argument("--steps", type=int, default=None,
                        help=f"steps trained (default: {LOOP_STEPS} of the loop, of which the "
                        f"first {LOOP_WARMUP_STEPS} are not timed; {TrainBenchSettings.steps} "
                        f"timed model steps after {WARMUP_STEPS} warm-up steps)")
    # The model's own step only: an experiment file's trial sets all of these itself.
    default = TrainBenchSettings()
    parser.add_argument("--non-embedding-params", type=int, default=None,
                        help=f"(default {default.non_embedding_params:,})")
    parser.add_argument("--seq-len", type=int, default=None, help=f"(default {default.seq_len})")
    parser.add_argument("--batch-sequences", type=int, default=None,
                        help=f"(default {default.batch_sequences})")
    parser.add_argument("--kind", choices=["dlm", "ar"], default=None)
    parser.add_argument("--vocab-size", type=int, default=None,
                        help=f"(default {default.vocab_size:,})")
    parser.add_argument("--no-fsdp", dest="fsdp", action="store_const", const=False,
                        help="bf16 autocast over fp32 weights instead of FSDP2's bf16 policy")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="per-block torch.compile (default: on GPUs, off on CPUs)")
    parser.add_argument("--no-fused-adamw", dest="fused_adamw", action="store_const",
                        const=False)
    parser.add_argument("--full-head", dest="masked_head", action="store_const", const=False,
                        help="output layer on every position (default: masked ones only)")
    parser.add_argument("--activation-checkpointing", action="store_const", const=True)
    parser.add_argument("--attention", default=None,
                        choices=["auto", "cudnn", "flash", "efficient", "math", "flash_attn"])
    parser.add_argument("--json", action="store_true", help="one JSON object instead of a line")


def add_bench_train_parser(benches) -> None:
    """`quokka bench train` under `benches`, the subparsers of `quokka bench`."""
    parser = benches.add_parser("train", help="training step time, tokens/s and MFU on this "
                                "machine's device: of the training loop on a trial, or of a "
                                "model's own step")
    add_bench_train_arguments(parser)
    parser.set_defaults(handler=_run)


def _run(args: argparse.Namespace) -> int:
    from quokka_ray.commands.bench_train import bench_train_command

    return bench_train_command(args)


