"""Stands for LightOn's ``examples/api-docs/autoencoder_tutorial.ipynb``:
``lightonml.encoding.models`` (``EncoderDecoder`` and ``train``; ``LinearAE`` and
``ConvAE`` too) learning binary codes that keep the structure of the data."""

import numpy as np
import torch
from sklearn.datasets import make_blobs
from torch.utils.data import DataLoader, TensorDataset


def test_encoder_decoder_learns_a_binary_code_that_keeps_clusters(lightonml, capsys):
    from lightonml.encoding.models import EncoderDecoder, train

    torch.manual_seed(0)
    X, y = make_blobs(n_samples=600, n_features=20, centers=3, random_state=0)
    X = torch.from_numpy(X).float()
    loader = DataLoader(TensorDataset(X, X), batch_size=64)
    encoder = EncoderDecoder(20, 20 * 10)
    assert encoder.training
    optimizer = torch.optim.Adam(encoder.parameters(), lr=1e-3)
    model = train(encoder, loader, optimizer, epochs=3, device="cpu")
    assert "Epoch: [3/3]" in capsys.readouterr().out
    model.eval()
    code = model(X)
    assert code.dtype == torch.uint8 and code.shape == (600, 200)
    assert set(torch.unique(code).tolist()) <= {0, 1}
    # codes of the same cluster are closer than codes of different clusters
    bits = code.numpy().astype(float)
    same = np.mean([np.abs(bits[y == k] - bits[y == k].mean(0)).sum(1).mean() for k in range(3)])
    centers = np.array([bits[y == k].mean(0) for k in range(3)])
    assert np.abs(centers[0] - centers[1]).sum() > same


def test_linear_and_convolutional_autoencoders(lightonml):
    from lightonml.encoding.models import ConvAE, LinearAE, train

    torch.manual_seed(1)
    X = torch.randn(64, 10)
    linear = LinearAE(10, 30)
    train(linear, DataLoader(TensorDataset(X, X), batch_size=16),
          torch.optim.Adam(linear.parameters()), epochs=7, beta_interval=5, device="cpu",
          verbose=False)
    assert linear.beta == 10  # raised once, after 5 epochs
    assert linear.training and linear(X).shape == X.shape
    linear.eval()
    assert linear(X).dtype == torch.uint8

    images = torch.randn(8, 1, 12, 12)
    conv = ConvAE(1, 4, 3, beta=1.0, flatten=True)
    assert conv(images).shape == images.shape  # training: a reconstruction
    conv.eval()
    code = conv(images)
    assert code.dtype == torch.uint8 and code.shape == (8, 4 * 10 * 10)
