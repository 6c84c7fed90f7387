"""bakery's benchmarks: bakery side by side with what users do today (`python -m bench`).

Each benchmark module has NAME, TITLE and `run(ctx) -> harness.BenchResult`; `harness` holds
the sample model, medians, ratios (always baseline / bakery: above 1 means bakery is better) and
result files; `report` renders docs/benchmarks.md and its chart from a result file.
"""
