"""The inference form of a (slimmed) model: what it should run as on a CPU, with every choice measured.

:func:`inference_form` returns an eval-mode copy with

* weight masks folded in (``netslim.weights.finalize``) and BatchNorm folded into the conv/linear before it
  (:func:`netslim.fuse_bn` for ``nn.Sequential`` neighbours, then torch.fx's conv-BN fusion for modules
  that call conv and BN from ``forward``, kept only when it reproduces the outputs): one memory pass per
  BN less; BNs that follow no conv (pre-activation nets) stay;
* the ``channels_last`` memory format (NHWC: weights converted, 4-D inputs converted on entry) only where it
  is measured faster than the fused NCHW model at every batch size asked for, interleaved in one process
  (:class:`netslim.measurement.latency.Timer`); oneDNN's NHWC convolutions usually win on slimmed models,
  whose odd channel counts are poorly served by the blocked NCHW kernels;
* channel counts rounded up (zero filters appended to a conv, zero input weights to the conv that reads it;
  outputs unchanged) only where that is measured faster at every batch size asked for, in the chosen memory
  format: every conv to a multiple of 8, of 16, or each conv to the width that runs it and its consumer
  fastest in isolation (:func:`fit_channel_widths`), whichever of these wins on the whole model. oneDNN's
  kernels run some odd channel counts (a slimmed layer keeping 47 of 64 channels) much slower than the
  next multiple of 8, so the extra zero FLOPs can pay, but not everywhere. Only conv pairs
  in one ``nn.Sequential`` with nothing but zero-preserving layers (ReLU, pooling, dropout, identity)
  between them are padded.

``netslim measure`` times latency in this form by default (saying so) and ``netslim export`` exports the
fused model. Example::

    form = netslim.inference_form(slimmed, torch.randn(1, 3, 32, 32))
    form.describe()          # "fused BN (16 layers), channels_last"
    form.model(x)            # same outputs as slimmed.eval()(x) up to ~1e-5
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from netslim.errors import NetslimError
from netslim.fuse import fuse_bn, rescale_border
from netslim.measurement.latency import Timer, Timing, batch_of, forward_fn, num_threads
from netslim.slimming.border import copy_border, get_border


class ChannelsLast(nn.Module):
    """Runs ``model`` (whose weights are channels_last) on inputs converted to channels_last on entry."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model.to(memory_format=torch.channels_last)

    def forward(self, *inputs: Any) -> Any:
        """``model(*inputs)`` with every 4-D tensor input in channels_last memory format."""
        return self.model(
            *(
                t.contiguous(memory_format=torch.channels_last)
                if isinstance(t, torch.Tensor) and t.dim() == 4
                else t
                for t in inputs
            )
        )


@dataclass
class InferenceForm:
    """The inference-form model and what was done to it (with the measurements behind each choice)."""

    model: nn.Module
    fused_bn: int = 0
    channels_last: bool = False
    rounded_channels: bool = False
    round_to: int = 1  # the multiple the channel counts were rounded to; 0: each conv its own width
    decisions: dict[str, Any] = field(default_factory=dict)

    @property
    def plain_model(self) -> nn.Module:
        """The model without the channels_last input wrapper (what ONNX export takes)."""
        return self.model.model if isinstance(self.model, ChannelsLast) else self.model

    def describe(self) -> str:
        """A short phrase for tables: e.g. ``"fused BN (16 layers), channels_last"``."""
        parts = [f"fused BN ({self.fused_bn} layers)" if self.fused_bn else "no BN to fuse"]
        parts.append("channels_last" if self.channels_last else "NCHW")
        if self.rounded_channels:
            parts.append(
                "channels rounded per layer"
                if self.round_to == 0
                else f"channels rounded to multiples of {self.round_to}"
            )
        return ", ".join(parts)


def _bn_count(model: nn.Module) -> int:
    return sum(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())


def _outputs(model: nn.Module, inputs: tuple[Any, ...]) -> list[torch.Tensor]:
    from torch.utils._pytree import tree_flatten

    with torch.inference_mode():
        out = model(*inputs)
    return [t for t in tree_flatten(out)[0] if isinstance(t, torch.Tensor)]


def _same_outputs(a: list[torch.Tensor], b: list[torch.Tensor], tol: float = 1e-4) -> bool:
    if len(a) != len(b):
        return False
    for x, y in zip(a, b):
        if x.shape != y.shape:
            return False
        scale = max(float(x.abs().max()) if x.numel() else 0.0, 1e-30)
        if float((x - y).abs().max()) > tol * scale:
            return False
    return True


def _fold_bn(model: nn.Module, inputs: tuple[Any, ...]) -> tuple[nn.Module, int, str]:
    """Fold BN into the layer before it: Sequential neighbours first, then (for ResNet-style modules
    that call conv and BN from ``forward``) torch.fx's conv-BN fusion, kept only if it traces and
    reproduces the outputs. Returns the model, the number of BN layers folded and how."""
    before = _bn_count(model)
    model = fuse_bn(model, inplace=True)
    how = "nn.Sequential neighbours"
    if _bn_count(model):
        try:
            from torch import fx
            from torch.fx.experimental.optimization import fuse as fx_fuse

            reference = _outputs(model, inputs)
            graph = fx.symbolic_trace(copy.deepcopy(model))
            bordered = _bordered_conv_bn(graph)
            traced = fx_fuse(graph, inplace=True, no_trace=True)
            for conv, norm in bordered:
                rescale_border(traced.get_submodule(conv), model.get_submodule(norm))
            if _bn_count(traced) < _bn_count(model) and _same_outputs(reference, _outputs(traced, inputs)):
                model, how = traced, "nn.Sequential neighbours and torch.fx conv-BN fusion"
        except Exception:  # not symbolically traceable (data-dependent control flow, hooks): keep as is
            pass
    return model, before - _bn_count(model), how


def _bordered_conv_bn(graph: Any) -> list[tuple[str, str]]:
    """(conv, BN) names of the pairs torch.fx's fusion merges in ``graph`` (a traced ``fx.GraphModule``)
    whose conv carries an exact-fold border correction (:mod:`netslim.slimming.border`), which the fusion
    copies without rescaling."""
    from torch import fx

    mods = dict(graph.named_modules())
    pairs = []
    for node in graph.graph.nodes:
        norm = mods.get(node.target) if node.op == "call_module" else None
        prev = node.args[0] if node.args else None
        if not isinstance(norm, nn.modules.batchnorm._BatchNorm) or not isinstance(prev, fx.Node):
            continue
        conv = mods.get(prev.target) if prev.op == "call_module" else None
        if get_border(conv) is not None and len(prev.users) == 1 and norm.track_running_stats:
            pairs.append((str(prev.target), str(node.target)))
    return pairs


def _has_conv2d(model: nn.Module) -> bool:
    return any(isinstance(m, nn.Conv2d) for m in model.modules())


def _as_tuple(example_inputs: Any) -> tuple[Any, ...]:
    if isinstance(example_inputs, torch.Tensor):
        return (example_inputs,)
    if isinstance(example_inputs, (tuple, list)):
        return tuple(example_inputs)
    raise NetslimError(
        "example_inputs must be a tensor or a tuple of tensors, e.g. torch.randn(1, 3, 32, 32)"
    )


# layers between two convs that map a zero channel to zero, so zero-padded channels stay zero
_ZERO_KEEPING = (nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.MaxPool2d, nn.AvgPool2d, nn.Dropout, nn.Identity)


def _paddable(m: nn.Module) -> bool:
    return type(m) is nn.Conv2d and m.groups == 1 and m.padding_mode == "zeros"


def _conv_chains(model: nn.Module) -> list[tuple[nn.Sequential, str, str]]:
    """(sequential, producer conv, consumer conv) where only zero-keeping layers lie between the two."""
    pairs = []
    for seq in model.modules():
        if not isinstance(seq, nn.Sequential) or type(seq).forward is not nn.Sequential.forward:
            continue
        names = list(seq._modules)
        for i, name in enumerate(names):
            if not _paddable(seq._modules[name]):
                continue
            for nxt in names[i + 1 :]:
                m = seq._modules[nxt]
                if _paddable(m):
                    pairs.append((seq, name, nxt))
                    break
                if not isinstance(m, _ZERO_KEEPING):
                    break
    return pairs


def _resized_conv(conv: nn.Conv2d, out_ch: int, in_ch: int) -> nn.Conv2d:
    """``conv`` with zero filters / zero input weights appended up to ``out_ch`` / ``in_ch`` channels."""
    new = nn.Conv2d(in_ch, out_ch, conv.kernel_size, conv.stride, conv.padding, conv.dilation,
                    bias=conv.bias is not None)  # fmt: skip
    new = new.to(device=conv.weight.device, dtype=conv.weight.dtype)
    w = conv.weight
    if w.is_contiguous(memory_format=torch.channels_last) and not w.is_contiguous():
        new = new.to(memory_format=torch.channels_last)  # keep the layout the form chose
    with torch.no_grad():
        new.weight.zero_()
        new.weight[: conv.out_channels, : conv.in_channels] = w
        if conv.bias is not None:
            new.bias.zero_()
            new.bias[: conv.out_channels] = conv.bias
    copy_border(conv, new)
    return new.eval()


def _round_up(n: int, multiple: int) -> int:
    return -(-n // multiple) * multiple


def round_channels(
    model: nn.Module, multiple: int, widths: dict[str, int] | None = None
) -> tuple[nn.Module, int]:
    """Pad conv outputs feeding another conv (see :func:`_conv_chains`) up to ``multiple``, in place.

    ``widths`` (qualified conv name -> channels) pads only the convs it names, each to its own width
    (``multiple`` is then ignored). Returns the model and the number of convs whose output was padded;
    outputs are unchanged.
    """
    pairs = _conv_chains(model)
    names = {id(m): name for name, m in model.named_modules()}
    out_pad: dict[int, int] = {}
    in_pad: dict[int, int] = {}
    for seq, prod, cons in pairs:
        producer, consumer = seq._modules[prod], seq._modules[cons]
        if widths is None:
            rounded = _round_up(producer.out_channels, multiple)
        else:
            rounded = max(widths.get(names[id(producer)], producer.out_channels), producer.out_channels)
        if rounded != producer.out_channels:
            out_pad[id(producer)] = rounded
            in_pad[id(consumer)] = rounded
    for seq in {id(s): s for s, _, _ in pairs}.values():
        for name, m in list(seq._modules.items()):
            if m is not None and (id(m) in out_pad or id(m) in in_pad):
                out_ch = out_pad.get(id(m), m.out_channels)  # type: ignore[union-attr]
                in_ch = in_pad.get(id(m), m.in_channels)  # type: ignore[union-attr]
                seq._modules[name] = _resized_conv(m, out_ch, in_ch)  # type: ignore[arg-type]
    return model, len(out_pad)


ROUND_CANDIDATES = (8, 16)


def _conv_input_shapes(model: nn.Module, inputs: tuple[Any, ...]) -> dict[int, torch.Size]:
    """``id(conv) -> input shape`` of every Conv2d in one forward pass (convs called twice: the first)."""
    shapes: dict[int, torch.Size] = {}

    def record(module: nn.Module, args: tuple[Any, ...], _out: Any) -> None:
        if args and isinstance(args[0], torch.Tensor):
            shapes.setdefault(id(module), args[0].shape)

    hooks = [m.register_forward_hook(record) for m in model.modules() if isinstance(m, nn.Conv2d)]
    try:
        _outputs(model, inputs)
    finally:
        for h in hooks:
            h.remove()
    return shapes


def _pair_fn(
    producer: nn.Conv2d, consumer: nn.Conv2d, cin: int, width: int, shapes: tuple[Any, Any], batch: int,
    channels_last: bool,
) -> Any:  # fmt: skip
    """A call running a ``cin -> width`` copy of ``producer`` and a ``width ->`` copy of ``consumer`` on
    random inputs of their real spatial sizes (weights random: only the time matters)."""
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    p = _resized_conv(producer, width, cin).to(memory_format=fmt)
    c = _resized_conv(consumer, consumer.out_channels, width).to(memory_format=fmt)
    dtype, device = producer.weight.dtype, producer.weight.device
    xp = torch.randn(batch, cin, *shapes[0][2:], dtype=dtype, device=device).contiguous(memory_format=fmt)
    xc = torch.randn(batch, width, *shapes[1][2:], dtype=dtype, device=device).contiguous(memory_format=fmt)

    def run() -> None:
        with torch.inference_mode():
            p(xp)
            c(xc)

    return run


def fit_channel_widths(
    model: nn.Module,
    example_inputs: Any,
    batch_sizes: Sequence[int] = (1, 64),
    *,
    threads: int | None = None,
    timer: Any = None,
    channels_last: bool = False,
    margin: float = 0.03,
) -> dict[str, int]:
    """Per conv feeding another conv, the output width (kept, or rounded up to 8 or 16) that runs the pair
    fastest, timed in isolation at every batch size; a rounding is kept only if it wins by ``margin`` at
    each. Pairs are decided in order, each with the input width its producer was given.

    oneDNN's convolutions run some channel counts much slower per FLOP than the next multiple of 8 (measured,
    NHWC, batch 64, 32x32: 51 -> 47 channels 32.8 ms, 51 -> 48 channels 26.1 ms) while a padded *input* costs
    its FLOPs, so the best width depends on the layer. Returns ``qualified conv name -> width`` for the
    convs to pad (:func:`round_channels`' ``widths``).
    """
    inputs = _as_tuple(example_inputs)
    shapes = _conv_input_shapes(model, inputs)
    names = {id(m): name for name, m in model.named_modules()}
    timer = timer or Timer(repeats=15, warmup=2, retries=1)
    widths: dict[str, int] = {}
    in_width: dict[int, int] = {}
    with num_threads(threads):
        for seq, prod, cons in _conv_chains(model):
            producer, consumer = seq._modules[prod], seq._modules[cons]
            if id(producer) not in shapes or id(consumer) not in shapes:
                continue
            cin = in_width.get(id(producer), producer.in_channels)
            kept = producer.out_channels
            options = [kept, *dict.fromkeys(w for m in ROUND_CANDIDATES if (w := _round_up(kept, m)) != kept)]
            if len(options) == 1:
                continue
            worst = dict.fromkeys(options[1:], 0.0)
            for b in dict.fromkeys(int(b) for b in batch_sizes):
                pair = (shapes[id(producer)], shapes[id(consumer)])
                fns = [_pair_fn(producer, consumer, cin, w, pair, b, channels_last) for w in options]  # type: ignore[arg-type]
                base, *rest = timer.measure(fns)
                for w, t in zip(options[1:], rest):
                    worst[w] = max(worst[w], t.median_ms / base.median_ms)
            winners = [w for w, r in worst.items() if r < 1 - margin]
            if winners:
                best = min(winners, key=lambda w: worst[w])
                widths[names[id(producer)]] = best
                in_width[id(consumer)] = best
    return widths


def _decide_rounding(
    form: InferenceForm,
    inputs: tuple[Any, ...],
    batch_sizes: Sequence[int],
    threads: int | None,
    timer: Any,
    margin: float = 0.03,
) -> None:
    """Keep the fastest channel rounding of ``form.model`` if it beats the unrounded one at every batch."""
    candidates: dict[int, nn.Module] = {}
    for m in ROUND_CANDIDATES:
        padded, count = round_channels(copy.deepcopy(form.model), m)
        if count:
            candidates[m] = padded
    # per layer: each conv's width chosen by timing it with its consumer (0 = "fitted per layer")
    fitted = fit_channel_widths(
        form.model, inputs, batch_sizes, threads=threads, timer=timer, channels_last=form.channels_last
    )
    if fitted:
        padded, _ = round_channels(copy.deepcopy(form.model), 1, widths=fitted)
        if not any(_same_widths(padded, other) for other in candidates.values()):
            candidates[0] = padded
    if not candidates:
        form.decisions["round_channels"] = "every conv feeding a conv has a multiple of 8/16 channels: kept"
        return
    keys = list(candidates)
    ratios: dict[int, dict[int, float]] = {m: {} for m in keys}
    timings: dict[int, dict[str, Any]] = {}
    with num_threads(threads):
        for b in dict.fromkeys(int(b) for b in batch_sizes):
            batch = batch_of(inputs, b)
            fns = [forward_fn(form.model, batch)] + [forward_fn(candidates[m], batch) for m in keys]
            base, *rest = timer.measure(fns)
            timings[b] = {"kept": base.to_dict()}
            timings[b].update(
                {f"round_to_{m}" if m else "per_layer": t.to_dict() for m, t in zip(keys, rest)}
            )
            for m, t in zip(keys, rest):
                ratios[m][b] = t.median_ms / base.median_ms
    form.decisions["round_timings"] = timings
    winners = [m for m in keys if len(ratios[m]) == len(timings) and max(ratios[m].values()) < 1 - margin]
    if not winners:
        form.decisions["round_channels"] = "rounding not faster at every batch size: " + "; ".join(
            f"{_rounding_name(m)}: " + ", ".join(f"b{b} {r:.2f}x" for b, r in ratios[m].items()) for m in keys
        )
        return
    best = min(winners, key=lambda m: max(ratios[m].values()))
    form.model, form.rounded_channels, form.round_to = candidates[best], True, best
    form.decisions["round_channels"] = (
        f"{_rounding_name(best)}: "
        + ", ".join(f"b{b} {r:.2f}x" for b, r in ratios[best].items())
        + " of the unrounded model"
    )


def _rounding_name(multiple: int) -> str:
    return "rounded per layer where timed faster" if multiple == 0 else f"rounded to multiples of {multiple}"


def _same_widths(a: nn.Module, b: nn.Module) -> bool:
    widths = [
        [(m.in_channels, m.out_channels) for m in x.modules() if isinstance(m, nn.Conv2d)] for x in (a, b)
    ]
    return widths[0] == widths[1]


def channels_last_wins(timings: dict[int, tuple[Timing, Timing]], margin: float = 0.0) -> tuple[bool, str]:
    """Whether channels_last (second Timing) beats NCHW (first) by more than ``margin`` at each batch size."""
    for b, (nchw, nhwc) in timings.items():
        if nhwc.median_ms >= (1 - margin) * nchw.median_ms:
            return False, f"b{b}: channels_last {nhwc.median_ms / nchw.median_ms:.2f}x NCHW"
    ratios = ", ".join(f"b{b} {nhwc.median_ms / nchw.median_ms:.2f}x" for b, (nchw, nhwc) in timings.items())
    return True, f"channels_last faster at every batch size ({ratios} of NCHW)"


def inference_form(
    model: nn.Module,
    example_inputs: Any,
    *,
    fuse: bool = True,
    channels_last: bool | None = None,
    batch_sizes: Sequence[int] = (1, 64),
    threads: int | None = None,
    timer: Any = None,
    round_to: int | None = None,
) -> InferenceForm:
    """An eval-mode copy of ``model`` in its fastest measured CPU form; ``model`` is not changed.

    Args:
        fuse: fold masks and BatchNorm (True by default).
        channels_last: True/False to force the memory format; None (default) measures both at every
            ``batch_sizes`` (interleaved, with ``threads``) and keeps channels_last only if it wins at each.
        timer: anything with ``measure(fns) -> list[Timing]`` (default: a 15-repeat
            :class:`~netslim.measurement.latency.Timer`).
        round_to: pad channel counts to this multiple (1: never); None (default) measures 8 and 16 in the
            chosen memory format when the layout is measured too (``channels_last=None``), else keeps them.

    Returns an :class:`InferenceForm` (``model``, ``fused_bn``, ``channels_last``, ``decisions``).
    """
    from netslim.weights.masks import finalize

    if not isinstance(model, nn.Module):
        raise NetslimError(f"inference_form needs an nn.Module, got {type(model).__name__}")
    inputs = _as_tuple(example_inputs)
    work = finalize(copy.deepcopy(model)).eval()
    fused, how = 0, "not asked"
    if fuse:
        work, fused, how = _fold_bn(work, inputs)
    form = InferenceForm(model=work, fused_bn=fused)
    form.decisions["fuse_bn"] = how
    four_d = any(isinstance(t, torch.Tensor) and t.dim() == 4 for t in inputs)
    if channels_last is None and not (four_d and _has_conv2d(work)):
        form.decisions["channels_last"] = "no 4-D input or Conv2d: NCHW kept"
        return form
    measured = channels_last is None
    if round_to is not None and round_to < 1:
        raise NetslimError(f"round_to must be >= 1 (1: keep channel counts), got {round_to}")
    if channels_last is None:
        candidate = ChannelsLast(copy.deepcopy(work))
        timer = timer or Timer(repeats=15, warmup=2, retries=1)
        timings: dict[int, tuple[Timing, Timing]] = {}
        with num_threads(threads):
            for b in dict.fromkeys(int(b) for b in batch_sizes):
                batch = batch_of(inputs, b)
                nchw, nhwc = timer.measure([forward_fn(work, batch), forward_fn(candidate, batch)])
                timings[b] = (nchw, nhwc)
        channels_last, why = channels_last_wins(timings)
        form.decisions["channels_last"] = why
        form.decisions["timings"] = {
            b: {"nchw": a.to_dict(), "channels_last": c.to_dict()} for b, (a, c) in timings.items()
        }
        if channels_last:
            form.model = candidate
    elif channels_last:
        form.model = ChannelsLast(work)
        form.decisions["channels_last"] = "forced"
    form.channels_last = isinstance(form.model, ChannelsLast)
    if round_to is None and measured:
        _decide_rounding(form, inputs, batch_sizes, threads, timer)
    elif round_to is not None and round_to > 1:
        form.model, count = round_channels(form.model, round_to)
        form.rounded_channels, form.round_to = count > 0, round_to if count else 1
        form.decisions["round_channels"] = f"forced: {count} conv(s) padded to multiples of {round_to}"
    return form
