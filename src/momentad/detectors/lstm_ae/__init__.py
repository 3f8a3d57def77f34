"""LSTM autoencoder: an LSTM encodes the window to its last hidden state, an LSTM decodes it."""

from __future__ import annotations

import torch
from torch import nn

from momentad.detectors.autoencoder import AutoencoderDetector, AutoencoderParams
from momentad.detectors.base import register


class _LSTMAE(nn.Module):
    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.encoder = nn.LSTM(channels, hidden, batch_first=True)
        self.decoder = nn.LSTM(hidden, hidden, batch_first=True)
        self.out = nn.Linear(hidden, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, (h, _) = self.encoder(x)
        z = h[-1].unsqueeze(1).expand(-1, x.shape[1], -1)
        y, _ = self.decoder(z)
        return self.out(y)


@register
class LSTMAutoencoder(AutoencoderDetector):
    name = "lstm_ae"
    Params = AutoencoderParams

    def build(self, channels: int) -> nn.Module:
        return _LSTMAE(channels, self.params.hidden)
