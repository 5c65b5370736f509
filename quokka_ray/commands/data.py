"""`quokka data prepare | train-tokenizer` and `quokka bench data`: argument parsing and the
handlers. Bad input is one line (a ConfigError naming the file, field and value), exit 2,
and nothing written."""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from quokka_ray.config import ConfigError

#: Suffixes of local sources (and of a JSON file of DataConfig fields).
SOURCE_SUFFIXES = (".txt", ".jsonl", ".parquet")


def add_data_parser(sub) -> None:
    data = sub.add_parser("data", help="prepare token shards; train a BPE tokenizer")
    commands = data.add_subparsers(required=True, metavar="WHAT")

    prepare = commands.add_parser(
        "prepare", help="tokenize a corpus into Parquet shards with Ray Data (once)",
        description="FILE_OR_CONFIG: an experiment file (.py, its DataConfig), a JSON file of "
        "DataConfig fields, or a source: 'stdlib', a .txt/.jsonl/.parquet file or folder, or a "
        "Hugging Face data set name.")
    prepare.add_argument("file_or_config")
    _data_flags(prepare)
    prepare.add_argument("--storage-path", help="shards go to STORAGE/data unless the config "
                         "names a cache_dir (default: the experiment's, else quokka_runs)")
    prepare.add_argument("--workers", type=int, default=None,
                         help="parallel Ray Data tasks (default: as many as the cluster holds; "
                         "0: in this process, without Ray)")
    prepare.add_argument("--address", help="Ray cluster address (default: RAY_ADDRESS, else "
                         "a local cluster)")
    from quokka_ray.commands.verbosity import add_verbose_argument

    add_verbose_argument(prepare)
    prepare.set_defaults(handler=prepare_command)

    train = commands.add_parser("train-tokenizer", help="train a byte-level BPE with `tokenizers`")
    train.add_argument("file_or_config", help="as for `quokka data prepare`")
    _data_flags(train)
    train.add_argument("--vocab-size", type=int, default=8192)
    train.add_argument("--out", required=True, help="where to write tokenizer.json")
    train.set_defaults(handler=train_tokenizer_command)


def add_bench_data_parser(benches) -> None:
    bench = benches.add_parser("data", help="tokenization and loader throughput (tokens/s)")
    bench.add_argument("--max-corpus-bytes", type=int, default=20_000_000)
    bench.add_argument("--seq-len", type=int, default=2048)
    bench.add_argument("--batch-sequences", type=int, default=32,
                       help="one worker's rows of a global batch, for the loader")
    bench.add_argument("--steps", type=int, default=200, help="loader steps")
    bench.add_argument("--workers", type=int, nargs="+", default=[1, 2],
                       help="Ray Data worker counts to time (0: in-process)")
    bench.set_defaults(handler=bench_data_command)


def _data_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--tokenizer", help="'byte', a tokenizer.json, or a Hugging Face name")
    parser.add_argument("--text-field")
    parser.add_argument("--seq-len", type=int)
    parser.add_argument("--max-corpus-bytes", type=int)
    parser.add_argument("--validation-sequences", type=int)
    parser.add_argument("--shard-tokens", type=int)
    parser.add_argument("--source-config")
    parser.add_argument("--source-split")
    parser.add_argument("--source-revision")


def data_config_from(args) -> tuple[object, str | None]:
    """(DataConfig, the experiment's storage path or None) from FILE_OR_CONFIG and the flags."""
    from quokka_ray.data import DataConfig

    given = args.file_or_config
    path = Path(given).expanduser()
    storage = None
    if given.endswith(".py"):
        from quokka_ray.sweep import load_experiment

        experiment = load_experiment(path)
        cfg, storage = experiment.data, experiment.storage_path
    elif given.endswith(".json"):
        cfg = _from_json(path)
    else:
        if given.endswith(SOURCE_SUFFIXES) and not path.exists():
            raise ConfigError(f"DataConfig.source: {given!r}: no such file")
        cfg = DataConfig(source=str(path.resolve()) if path.exists() else given)
    flags = {f.name: getattr(args, f.name) for f in dataclasses.fields(DataConfig)
             if getattr(args, f.name, None) is not None}
    if flags:
        cfg = dataclasses.replace(cfg, **flags)  # DataConfig checks each value
    if cfg.tokenizer.endswith(".json") and not Path(cfg.tokenizer).expanduser().is_file():
        raise ConfigError(f"DataConfig.tokenizer: {cfg.tokenizer!r}: no such file")
    return cfg, storage


def _from_json(path: Path):
    from quokka_ray.data import DataConfig

    if not path.is_file():
        raise ConfigError(f"{path}: no such file")
    try:
        fields = json.loads(path.read_text())
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: not JSON: {err}") from None
    if not isinstance(fields, dict):
        raise ConfigError(f"{path}: expected an object of DataConfig fields")
    known = {f.name for f in dataclasses.fields(DataConfig)}
    for name in fields:
        if name not in known:
            raise ConfigError(f"{path}: DataConfig.{name}: no such field "
                              f"(fields: {', '.join(sorted(known))})")
    try:
        return DataConfig(**fields)
    except ConfigError as err:
        raise ConfigError(f"{path}: {err}") from None


def prepare_command(args) -> int:
    import os

    from quokka_ray.data import prepare_shards, read_manifest, shard_dir, with_root

    cfg, experiment_storage = data_config_from(args)
    cfg = with_root(cfg, args.storage_path or experiment_storage or "quokka_runs")
    if args.workers != 0 and read_manifest(cfg) is None:
        import ray

        if not ray.is_initialized():
            ray.init(address=args.address or os.environ.get("RAY_ADDRESS") or "local",
                     log_to_driver=False)
    from quokka_ray.commands.progress import ProgressBar

    folder = prepare_shards(cfg, workers=args.workers, progress=ProgressBar())
    manifest = read_manifest(cfg)
    print(f"[quokka] {shard_dir(cfg)}: {manifest['train_tokens']:,} training tokens in "
          f"{len(manifest['shards'])} shards ({manifest['train_sequences']:,} sequences of "
          f"{manifest['seq_len']}), {manifest['validation_sequences']} validation sequences, "
          f"{manifest['token_dtype']} ids, vocabulary {manifest['vocab_size']:,}")
    print(f"[quokka] manifest: {folder}/manifest.json")
    return 0


def train_tokenizer_command(args) -> int:
    from quokka_ray.data.train_tokenizer import train_bpe

    cfg, _ = data_config_from(args)
    if args.vocab_size < 300:
        raise ConfigError(f"--vocab-size: {args.vocab_size}: at least 300 (256 bytes and merges)")
    out = Path(args.out).expanduser()
    if out.is_dir():
        out = out / "tokenizer.json"
    if not out.parent.is_dir():
        raise ConfigError(f"--out: {args.out}: no such folder {out.parent}")
    described = train_bpe(cfg, args.vocab_size, out)
    print(f"[quokka] BPE of {int(described['vocab_size']):,} tokens trained on "
          f"{described['documents']} documents ({described['bytes']} bytes): {out}")
    return 0


def bench_data_command(args) -> int:
    from quokka_ray.commands.bench_data import run_data_benchmark

    run_data_benchmark(max_corpus_bytes=args.max_corpus_bytes, seq_len=args.seq_len,
                       batch_sequences=args.batch_sequences, steps=args.steps,
                       workers=args.workers)
    return 0
