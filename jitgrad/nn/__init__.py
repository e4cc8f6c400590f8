"""Neural-network layers, losses and initialisation, as ``torch.nn``."""
from . import functional, init, utils
from .containers import ModuleList, Sequential
from .layers import (AvgPool2d, Conv2d, CrossEntropyLoss, Dropout, Embedding, Flatten, GELU,
                     Identity, LayerNorm, Linear, LogSoftmax, MaxPool2d, MSELoss, NLLLoss, ReLU,
                     Sigmoid, Softmax, Tanh)
from .loss import BCELoss, BCEWithLogitsLoss, HuberLoss, KLDivLoss, L1Loss, SmoothL1Loss
from .module import Module
from .parameter import Parameter

__all__ = ["functional", "init", "utils", "Module", "Parameter", "Sequential", "ModuleList",
           "Identity", "Linear", "Conv2d", "MaxPool2d", "AvgPool2d", "Flatten", "ReLU", "Tanh",
           "Sigmoid", "GELU", "Softmax", "LogSoftmax", "Dropout", "Embedding", "LayerNorm",
           "MSELoss", "NLLLoss", "CrossEntropyLoss"]
__all__ += ["L1Loss", "SmoothL1Loss", "HuberLoss", "BCELoss", "BCEWithLogitsLoss",
            "KLDivLoss"]
from .containers import ModuleDict, ParameterDict, ParameterList
from .layers import ELU, Conv1d, LeakyReLU, SiLU, Unflatten
from .normalization import BatchNorm1d, BatchNorm2d
from .rnn import GRU, GRUCell, LSTM, LSTMCell, RNN, RNNBase, RNNCell, RNNCellBase

__all__ += ["ModuleDict", "ParameterList", "ParameterDict", "Conv1d", "Unflatten", "LeakyReLU",
            "ELU", "SiLU", "BatchNorm1d", "BatchNorm2d", "RNNBase", "RNN", "LSTM", "GRU",
            "RNNCellBase", "RNNCell", "LSTMCell", "GRUCell"]
