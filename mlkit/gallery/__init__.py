"""Data and helpers that only the industry gallery (notebooks/usecases) needs.

The seven use cases of :mod:`mlkit.usecases` come from :mod:`mlkit.datasets`; a gallery notebook
whose story needs other data (a price series, a set of assets, customer subscriptions) gets it from
a small, seeded generator here, one module per story, so the notebook stays about the technique.
"""
