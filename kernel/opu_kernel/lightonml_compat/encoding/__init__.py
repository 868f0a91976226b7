"""``lightonml.encoding``: encoders and decoders (``base``) and autoencoders (``models``)."""
