"""``lightonml.encoding.models``: small autoencoders that learn a binary code for the OPU.

Each module reconstructs its input while training (``model.train()``) and returns the binary
code, a uint8 tensor of 0/1, in evaluation mode (``model.eval()``). Needs PyTorch.
"""

from __future__ import annotations

try:
    import torch
    from torch import nn
    from torch.nn import functional as F  # noqa: N812 - the usual alias
except ImportError as exc:  # PyTorch is an optional extra
    raise ImportError("lightonml.encoding.models needs PyTorch: "
                      "pip install opu-kernel[torch]") from exc

__all__ = ["AE", "ConvAE", "EncoderDecoder", "LinearAE", "train"]


class AE(nn.Module):
    """Base class of the autoencoders here (``train`` accepts any of them)."""


class EncoderDecoder(AE):
    """One bias-free linear layer ``proj`` whose sign is the code; the reconstruction maps
    the code back with the transposed weights (Tissier et al., arXiv:1803.09065).

    Gradients reach ``proj`` through the decoding product only: the sign has none.
    """

    def __init__(self, input_size, hidden_size):
        super().__init__()
        self.proj = nn.Linear(input_size, hidden_size, bias=False)

    def forward(self, input):
        with torch.no_grad():
            code = self.proj(input) > 0
        if self.training:
            return code.float() @ self.proj.weight
        return code.to(torch.uint8)


class _TanhCode(AE):
    """Code = tanh(beta·e)/beta while training (sharper as ``beta`` grows), e > 0 after."""

    def _code(self, encoded):
        if self.training:
            return torch.tanh(self.beta * encoded) / self.beta
        return (self.beta * encoded > 0).to(torch.uint8)


class LinearAE(_TanhCode):
    """Dense encoder and decoder; ``train`` multiplies ``beta`` by 10 every
    ``beta_interval`` epochs, so that the smooth code approaches the binary one."""

    def __init__(self, input_size, hidden_size, beta=1.0):
        super().__init__()
        self.encoder = nn.Linear(input_size, hidden_size)
        self.decoder = nn.Linear(hidden_size, input_size)
        self.beta = beta

    def forward(self, input):
        code = self._code(self.encoder(input))
        return self.decoder(code) if self.training else code


class ConvAE(_TanhCode):
    """Convolutional encoder (``nn.Conv2d``) and decoder (``nn.ConvTranspose2d``) with the
    same geometry; with ``flatten=True`` the code is (batch, -1) instead of 4D."""

    def __init__(self, in_ch, out_ch, kernel_size, beta, stride=1, padding=0, dilation=1,
                 groups=1, bias=True, padding_mode="zeros", flatten=False):
        super().__init__()
        geometry = dict(stride=stride, padding=padding, dilation=dilation, groups=groups,
                        bias=bias)
        self.encoder = nn.Conv2d(in_ch, out_ch, kernel_size, padding_mode=padding_mode,
                                 **geometry)
        # ConvTranspose2d only supports zero padding
        self.decoder = nn.ConvTranspose2d(out_ch, in_ch, kernel_size, **geometry)
        self.beta = beta
        self.flatten = flatten

    def forward(self, input):
        code = self._code(self.encoder(input))
        if self.training:
            return self.decoder(code)
        return code.reshape(code.shape[0], -1) if self.flatten else code


def train(model, dataloader, optimizer, criterion=F.mse_loss, epochs=10, beta_interval=5,
          device=None, verbose=True):
    """Train ``model`` to reconstruct the batches of ``dataloader`` (a batch may be a tensor
    or an (input, anything) pair); returns the model, in training mode, on ``device``
    (default: CUDA when available).

    ``EncoderDecoder`` gets a penalty keeping its weights near-orthogonal; the others have
    their ``beta`` multiplied by 10 every ``beta_interval`` epochs.
    """
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    if not model.training:
        if verbose:
            print("Setting model to training mode")
        model.train()
    model = model.to(device)
    for epoch in range(epochs):
        total, batches = 0.0, 0
        for batch in dataloader:
            data = batch[0] if isinstance(batch, list | tuple) else batch
            data = data.to(device)
            optimizer.zero_grad()
            loss = criterion(model(data), data)
            total += float(loss.detach())
            batches += 1
            if isinstance(model, EncoderDecoder):
                weight = model.proj.weight
                gram = weight.t() @ weight
                loss = loss + 0.5 * (gram - torch.eye(gram.shape[0], device=device)).pow(2).sum()
            loss.backward()
            optimizer.step()
        if epoch and epoch % beta_interval == 0 and hasattr(model, "beta") \
                and not isinstance(model, EncoderDecoder):
            model.beta *= 10
        if verbose:
            print(f"Epoch: [{epoch + 1}/{epochs}], Training Loss: {total / max(1, batches)}")
    return model
