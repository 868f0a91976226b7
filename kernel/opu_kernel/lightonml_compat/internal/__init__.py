"""``lightonml.internal``: the few internal modules that code outside lightonml imports
(``config`` for ``opu_test``, ``simulated_device``, ``types``, ``utils``)."""
