"""ChannelSelect: the module a pre-activation BatchNorm reads its kept channels through.

In pre-activation networks (pre-act ResNet, DenseNet) a BatchNorm reads a tensor that other layers also read
(the residual trunk, a dense concatenation). Narrowing that shared tensor would change the other readers, so
instead the BatchNorm reads only the channels it keeps: a :class:`ChannelSelect` (an ``index_select`` over
dim 1 with the indices in a registered buffer: no numpy, no trainable parameter, ONNX-exportable) is attached
to the BatchNorm as the child ``netslim_select`` and run by a forward pre-hook, so the BN itself is narrow and
its module class and name are unchanged (its state dict gains ``<bn>.netslim_select.index``).
"""

from __future__ import annotations

import torch
from torch import nn

SELECT_ATTR = "netslim_select"


class ChannelSelect(nn.Module):
    """Keep the channels ``index`` (a LongTensor buffer) of dim 1 of the input, in that order."""

    def __init__(self, index: torch.Tensor | list[int]) -> None:
        super().__init__()
        self.register_buffer("index", torch.as_tensor(index, dtype=torch.long).clone())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x.index_select(1, index)``."""
        return x.index_select(1, self.index)

    def extra_repr(self) -> str:
        return f"channels={self.index.numel()}"


def _select_pre_hook(module: nn.Module, args: tuple) -> tuple:
    select = getattr(module, SELECT_ATTR)
    return (select(args[0]), *args[1:])


def get_select(module: nn.Module) -> ChannelSelect | None:
    """Return the :class:`ChannelSelect` attached to ``module``, or None."""
    sel = getattr(module, SELECT_ATTR, None)
    return sel if isinstance(sel, ChannelSelect) else None


def attach_select(module: nn.Module, index: torch.Tensor) -> ChannelSelect:
    """Make ``module`` read only input channels ``index``; composes with an existing selection.

    ``index`` indexes the module's current input (after any existing selection). Returns the selection.
    """
    index = torch.as_tensor(index, dtype=torch.long)
    existing = get_select(module)
    if existing is not None:
        existing.index = existing.index[index.to(existing.index.device)].clone()
        return existing
    device = next((t.device for t in module.parameters()), torch.device("cpu"))
    select = ChannelSelect(index.to(device))
    setattr(module, SELECT_ATTR, select)
    module.register_forward_pre_hook(_select_pre_hook)
    return select
