"""Neural-network layers, losses and initialisation, as ``torch.nn``."""
from . import functional, init, utils
from .containers import ModuleList, Sequential
from .layers import (AvgPool2d, Conv2d, CrossEntropyLoss, Dropout, Embedding, Flatten, GELU,
                     Identity, LayerNorm, Linear, LogSoftmax, MaxPool2d, MSELoss, NLLLoss, ReLU,
                     Sigmoid, Softmax, Tanh)
from .module import Module
from .parameter import Parameter

__all__ = ["functional", "init", "utils", "Module", "Parameter", "Sequential", "ModuleList",
           "Identity", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "ReLU", "Tanh",
           "Sigmoid", "GELU", "Softmax", "LogSoftmax", "Dropout", "Embedding", "LayerNorm",
           "MSELoss", "NLLLoss", "CrossEntropyLoss"]
