"""Network Slimming (Liu et al., 2017): trace channel coupling, plan by BN |gamma|, cut physically.

Main entry points: :func:`slim`, :func:`plan`, :func:`apply`, :class:`PruningPlan`; lower level:
:func:`build_groups`, :func:`plan_from_keep`, :class:`ChannelSelect`, :func:`folding_error`.

How ``plan`` -> ``apply`` flows through the modules (each imports only the ones above it)::

    tracing/         run the model once, record how channels flow between layers (trace_model)
    channel_groups   couple channels that must go together into ChannelGroups (build_groups, analyze)
    scores           |gamma| per group channel (group_scores)
    threshold        which channels go: the paper's global_threshold and per-layer policies (select_channels)
    readiness        how clean a cut is (CutReadiness, CutReadinessWarning)
    plan             the PruningPlan data type and its JSON I/O
    plan_builder     keep masks per group -> PruningPlan with beta-fold records (build_plan, plan_from_keep)
    channel_select   ChannelSelect: how a pre-activation BatchNorm reads only its kept channels
    surgery          cut the layers as planned, fold removed channels' beta (cut, register_handler)
    api              plan / apply / slim / masked_model / fold_drift / folding_error
    gates, sparsity, multipass: channel gates for nets without BN, L1 sparsity training, repeated passes
"""

from netslim.slimming.api import (
    SlimResult,
    apply,
    count,
    fold_drift,
    folding_error,
    masked_model,
    plan,
    slim,
)
from netslim.slimming.channel_groups import ChannelGroup, Member, build_groups
from netslim.slimming.channel_select import ChannelSelect
from netslim.slimming.plan import PruningPlan
from netslim.slimming.plan_builder import plan_from_keep
from netslim.slimming.surgery import Handler, register_handler

__all__ = [
    "ChannelGroup",
    "ChannelSelect",
    "Handler",
    "Member",
    "PruningPlan",
    "SlimResult",
    "apply",
    "build_groups",
    "count",
    "fold_drift",
    "folding_error",
    "masked_model",
    "plan",
    "plan_from_keep",
    "register_handler",
    "slim",
]
