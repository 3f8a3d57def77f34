"""TCN autoencoder: dilated temporal convolutions down to a narrow bottleneck and back."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from momentad.config import rng
from momentad.detectors.autoencoder import AutoencoderDetector, AutoencoderParams
from momentad.detectors.base import register


@dataclass(frozen=True)
class TCNParams(AutoencoderParams):
    dilations: list[int] = rng(ge=1)
    bottleneck: int = rng(ge=1)


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, dilation: int, kernel: int = 3):
        super().__init__()
        self.conv = nn.Conv1d(cin, cout, kernel, padding=dilation * (kernel - 1) // 2, dilation=dilation)
        self.act = nn.GELU()
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.act(self.conv(x)) + self.skip(x)


class _TCNAE(nn.Module):
    def __init__(self, channels: int, hidden: int, dilations: list[int], bottleneck: int):
        super().__init__()
        enc, dec, c = [], [], channels
        for d in dilations:
            enc.append(_Block(c, hidden, d))
            c = hidden
        self.encoder = nn.Sequential(*enc, nn.Conv1d(hidden, bottleneck, 1))
        c = bottleneck
        for d in reversed(dilations):
            dec.append(_Block(c, hidden, d))
            c = hidden
        self.decoder = nn.Sequential(*dec, nn.Conv1d(hidden, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (b, L, C)
        return self.decoder(self.encoder(x.transpose(1, 2))).transpose(1, 2)


@register
class TCNAutoencoder(AutoencoderDetector):
    name = "tcn_ae"
    Params = TCNParams

    def build(self, channels: int) -> nn.Module:
        return _TCNAE(channels, self.params.hidden, self.params.dilations, self.params.bottleneck)
