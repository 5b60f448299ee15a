"""Benchmarks and plots: experiment grids over data folders, pure scoring and tables.

* :mod:`hvsa.bench.grid`: sequences under data folders, and the grid of runs;
* :mod:`hvsa.bench.runner`: runs a grid in parallel processes, resumably, into ``results.csv``;
* :mod:`hvsa.bench.results`: the CSV rows and the pure scoring functions (points, Table 1,
  Table 2, timings);
* :mod:`hvsa.bench.report`: Markdown tables and the report, from ``results.csv`` alone;
* :mod:`hvsa.bench.plots`: figures (matplotlib, imported on use).

The paper's experiments, on the development data (from the project root)::

    hvsa bench ../shared/data/davis2016 ../shared/data/camvid-1hz --out bench-final \\
        --granularity frame,rec40 --selector hvsa,random --method hvsa,lp \\
        --budget-pct 1,2,3 --iterations 3

Rerun the same command to resume after an interruption; ``hvsa bench report bench-final``
regenerates ``bench-final/report.md`` and its figures from ``bench-final/results.csv``. Add
``--model model.pt`` (from ``hvsa pretrain``) to start every run from a pre-trained network.
"""
