"""Monitoring: the prediction log, drift statistics with window-calibrated thresholds,
performance over time, alerts and reports.

Submodules (imported on use, so ``import mlkit.monitoring`` stays light):

- :mod:`mlkit.monitoring.drift`: PSI, Kolmogorov-Smirnov, Wasserstein, Jensen-Shannon and
  chi-square per column, dataset drift, multiple-testing corrections, and thresholds
  calibrated by bootstrap to the window size.
- :mod:`mlkit.monitoring.store`: the prediction log (SQLAlchemy; SQLite in WAL mode by
  default, PostgreSQL by URL), with a batching background writer and delayed labels.
- :mod:`mlkit.monitoring.performance`: metrics per window as labels arrive (with a label
  delay), and a label-free estimate from calibrated confidence (isotonic regression).
- :mod:`mlkit.monitoring.alerts`: rules (metric, threshold, consecutive windows, cool-down)
  producing alert records, and a webhook on loopback.
- :mod:`mlkit.monitoring.monitor`: a report from the prediction log, window by window (drift
  heatmap, performance over time, alerts), behind ``mlkit monitor``.
- :mod:`mlkit.monitoring.commands` and :mod:`mlkit.monitoring.html`: ``mlkit drift``, ``mlkit monitor`` and their
  self-contained HTML report.

``monitoring`` never imports ``serving``: the server writes to the log through the public
API of :mod:`mlkit.monitoring.store`.
"""
