"""Transformer autoencoder: a small Transformer encoder over time steps, KPIs projected in/out."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from momentad.config import rng
from momentad.detectors.autoencoder import AutoencoderDetector, AutoencoderParams
from momentad.detectors.base import register
from momentad.errors import InputError


@dataclass(frozen=True)
class TransformerParams(AutoencoderParams):
    heads: int = rng(ge=1)
    layers: int = rng(ge=1)
    bottleneck: int = rng(ge=1)

    def check(self) -> None:
        if self.hidden % self.heads:
            raise InputError(
                f"params.yaml: transformer_ae.hidden={self.hidden} must be a multiple of heads={self.heads}"
            )


class _TransformerAE(nn.Module):
    def __init__(self, channels: int, d_model: int, heads: int, layers: int, window: int, bottleneck: int):
        super().__init__()
        self.inp = nn.Linear(channels, d_model)
        self.pos = nn.Parameter(torch.zeros(1, window, d_model))
        nn.init.normal_(self.pos, std=0.02)
        layer = nn.TransformerEncoderLayer(d_model, heads, 2 * d_model, dropout=0.1, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)
        # a narrow bottleneck stops the encoder from copying its input through
        self.squeeze = nn.Sequential(nn.Linear(d_model, bottleneck), nn.GELU(), nn.Linear(bottleneck, d_model))
        self.out = nn.Linear(d_model, channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(self.inp(x) + self.pos[:, : x.shape[1]])
        return self.out(self.squeeze(h))


@register
class TransformerAutoencoder(AutoencoderDetector):
    name = "transformer_ae"
    Params = TransformerParams

    def build(self, channels: int) -> nn.Module:
        p = self.params
        return _TransformerAE(channels, p.hidden, p.heads, p.layers, p.window, p.bottleneck)
