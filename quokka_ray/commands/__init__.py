"""The command side of `quokka`: argument parsing and benchmarks, kept out of the science
packages so that `laws/`, `train/` and the rest take explicit parameters and never parse argv.

- fit_args.py     `quokka fit` flags (--csv, --law, column names, --propose, --suggest) and
                  the CSV fit they start
- propose.py      `quokka fit --propose`: the experiment file of a predicted compute-optimal run
- render.py       configuration dataclasses and Tune search spaces written back as Python
- bench_laws.py   `quokka bench laws`: timings of the law fits on the reference data
- bench_train.py  `quokka bench train`: training tokens/s and MFU on this machine's device
- bench_train_args.py  its options and settings, without torch (the parser is built on every call)
- data.py         `quokka data prepare | train-tokenizer` and `quokka bench data` flags, handlers
- bench_data.py   `quokka bench data`: tokens/s of shard preparation and of the loader
- verbosity.py    -v: which library notices the driver log leaves out by default, and why
- progress.py     the progress bar of a long step (shard preparation, a law's bootstrap)
- bench_search.py `quokka bench search`: Optuna + ASHA against the full learning-rate grid
"""
