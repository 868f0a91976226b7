"""OPU random projections as a scikit-learn transformer (``projections.sklearn.OPUMap``) and
as a PyTorch module (``projections.torch.OPUMap``), as in ``lightonml.projections``.

Neither is imported here, so that this package imports without scikit-learn or PyTorch.
"""
