"""Inception-v3 (Szegedy et al. 2016), written out for the speed baseline of the seed's pipeline.

The seed post retrained Inception-v3's last layer on 299 px face crops. torchvision, which has
this network, does not import beside the PyTorch wheel these machines use, so its layers are
written here. Weights are random: the speed benchmark only needs the same arithmetic
(about 5.7 GFLOPs per 299 px image), not ImageNet accuracy.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


class Conv(nn.Sequential):
    def __init__(self, cin: int, cout: int, k, s=1, p=0):
        super().__init__(nn.Conv2d(cin, cout, k, s, p, bias=False), nn.BatchNorm2d(cout, eps=0.001), nn.ReLU(inplace=True))


class A(nn.Module):
    def __init__(self, cin: int, pool: int):
        super().__init__()
        self.b1 = Conv(cin, 64, 1)
        self.b5 = nn.Sequential(Conv(cin, 48, 1), Conv(48, 64, 5, p=2))
        self.b3 = nn.Sequential(Conv(cin, 64, 1), Conv(64, 96, 3, p=1), Conv(96, 96, 3, p=1))
        self.bp = Conv(cin, pool, 1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b5(x), self.b3(x), self.bp(F.avg_pool2d(x, 3, 1, 1))], 1)


class B(nn.Module):  # grid reduction 35 -> 17
    def __init__(self, cin: int):
        super().__init__()
        self.b3 = Conv(cin, 384, 3, s=2)
        self.bd = nn.Sequential(Conv(cin, 64, 1), Conv(64, 96, 3, p=1), Conv(96, 96, 3, s=2))

    def forward(self, x):
        return torch.cat([self.b3(x), self.bd(x), F.max_pool2d(x, 3, 2)], 1)


class C(nn.Module):
    def __init__(self, cin: int, c7: int):
        super().__init__()
        self.b1 = Conv(cin, 192, 1)
        self.b7 = nn.Sequential(Conv(cin, c7, 1), Conv(c7, c7, (1, 7), p=(0, 3)), Conv(c7, 192, (7, 1), p=(3, 0)))
        self.bd = nn.Sequential(
            Conv(cin, c7, 1),
            Conv(c7, c7, (7, 1), p=(3, 0)),
            Conv(c7, c7, (1, 7), p=(0, 3)),
            Conv(c7, c7, (7, 1), p=(3, 0)),
            Conv(c7, 192, (1, 7), p=(0, 3)),
        )
        self.bp = Conv(cin, 192, 1)

    def forward(self, x):
        return torch.cat([self.b1(x), self.b7(x), self.bd(x), self.bp(F.avg_pool2d(x, 3, 1, 1))], 1)


class D(nn.Module):  # grid reduction 17 -> 8
    def __init__(self, cin: int):
        super().__init__()
        self.b3 = nn.Sequential(Conv(cin, 192, 1), Conv(192, 320, 3, s=2))
        self.b7 = nn.Sequential(
            Conv(cin, 192, 1), Conv(192, 192, (1, 7), p=(0, 3)), Conv(192, 192, (7, 1), p=(3, 0)), Conv(192, 192, 3, s=2)
        )

    def forward(self, x):
        return torch.cat([self.b3(x), self.b7(x), F.max_pool2d(x, 3, 2)], 1)


class E(nn.Module):
    def __init__(self, cin: int):
        super().__init__()
        self.b1 = Conv(cin, 320, 1)
        self.b3 = Conv(cin, 384, 1)
        self.b3a, self.b3b = Conv(384, 384, (1, 3), p=(0, 1)), Conv(384, 384, (3, 1), p=(1, 0))
        self.bd = nn.Sequential(Conv(cin, 448, 1), Conv(448, 384, 3, p=1))
        self.bda, self.bdb = Conv(384, 384, (1, 3), p=(0, 1)), Conv(384, 384, (3, 1), p=(1, 0))
        self.bp = Conv(cin, 192, 1)

    def forward(self, x):
        a, d = self.b3(x), self.bd(x)
        return torch.cat([self.b1(x), self.b3a(a), self.b3b(a), self.bda(d), self.bdb(d), self.bp(F.avg_pool2d(x, 3, 1, 1))], 1)


class InceptionV3(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        self.stem = nn.Sequential(
            Conv(3, 32, 3, s=2),
            Conv(32, 32, 3),
            Conv(32, 64, 3, p=1),
            nn.MaxPool2d(3, 2),
            Conv(64, 80, 1),
            Conv(80, 192, 3),
            nn.MaxPool2d(3, 2),
        )
        self.mixed = nn.Sequential(
            A(192, 32),
            A(256, 64),
            A(288, 64),
            B(288),
            C(768, 128),
            C(768, 160),
            C(768, 160),
            C(768, 192),
            D(768),
            E(1280),
            E(2048),
        )
        self.fc = nn.Linear(2048, num_classes)

    def features(self, x):
        return self.mixed(self.stem(x)).mean(dim=(2, 3))

    def forward(self, x):
        return self.fc(self.features(x))
