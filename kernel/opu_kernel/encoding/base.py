"""Encoders that turn data into the binary 0/1 uint8 input an OPU takes, and decoders for its output.

Names and parameters follow ``lightonml.encoding.base`` so that lightonml code runs unchanged.
"""


class BaseTransformer:
    """Shared no-op ``fit`` and ``fit_transform`` for encoders and decoders that learn nothing."""

    def fit(self, X, y=None):
        return self

    def transform(self, X):
        raise NotImplementedError

    def fit_transform(self, X, y=None):
        return self.fit(X, y).transform(X)


class NoEncoding(BaseTransformer):
    """Passes the input through unchanged (the input is already binary)."""

    def transform(self, X):
        return X


class NoDecoding(BaseTransformer):
    """Passes the OPU output through unchanged."""

    def transform(self, X):
        return X
