"""``lightonml.projections``: ``sklearn.OPUMap`` and ``torch.OPUMap`` (imported on demand)."""
