"""Channel tracing: record how channels flow through a model by running it once.

Technique: concrete execution. The model runs on ``example_inputs`` under a
:class:`torch.overrides.TorchFunctionMode` that sees every torch function and tensor method call with its
real arguments (the ``dim`` of a ``cat``, the shape of a ``view``, the sizes of a ``split``) and the identity
of every tensor, while forward hooks turn each leaf Conv/Linear/BatchNorm call into a single node. Python
control flow on non-tensor values simply runs, which ``torch.fx`` symbolic tracing cannot do, and unlike
autograd ``grad_fn`` walking the arguments of each op are available. Inside leaf conv/linear/BatchNorm layers
only the output shape is computed (zeros of that shape) unless ``shapes_only=False``, so a trace costs little
more than the Python of one forward pass.

Every channel (dim 1 of a tensor, or feature of a 2-D tensor) is a *variable*; each tensor carries a
``desc``: the variable id of each of its channel positions. Convolutions and linear layers create fresh
variables for their outputs; element-wise ops between tensors record *edges* that tie variables together
(residual adds, squeeze-excitation multiplies); ``cat`` concatenates descs, ``split`` slices them,
``flatten`` repeats each channel's variable over its block of features. Variables that must not change
(model inputs and outputs, ignored layers, anything an unknown op touches) are *pinned*.

Each tensor also carries segments ``(start, end, dead, expr)``: ``dead`` says the positions are exactly zero
when their BatchNorm's gamma and beta are zero; ``expr`` (or None) says how the positions' value follows
from BatchNorm betas when gamma is zero (used to fold the removed channels' constant into the next layer).

Modules: ``records`` (the data a trace holds), ``model_trace`` (:func:`trace_model`: the forward pass and
the leaf-layer hooks), ``recorder`` (the TorchFunctionMode, op by op), ``op_kinds`` (op names by what they
do to channels), ``segments`` (segment algebra), ``shapes`` (shape-only results of heavy layers).
"""

from netslim.slimming.tracing.model_trace import output_tensors, trace_model
from netslim.slimming.tracing.records import Info, ModRec, Seg, Trace

__all__ = ["Info", "ModRec", "Seg", "Trace", "output_tensors", "trace_model"]
