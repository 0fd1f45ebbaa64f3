"""Network Slimming (Liu et al., 2017): trace channel coupling, plan by BN |gamma|, cut physically.

Main entry points: :func:`slim`, :func:`plan`, :func:`apply`, :class:`PruningPlan`; lower level:
:func:`build_groups`, :func:`plan_from_keep`, :class:`ChannelSelect`, :func:`folding_error`.
"""

from netslim.slimming.api import SlimResult, apply, count, folding_error, masked_model, plan, slim
from netslim.slimming.graph import ChannelGroup, Member, build_groups, plan_from_keep
from netslim.slimming.plan import PruningPlan
from netslim.slimming.select import ChannelSelect
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
    "folding_error",
    "masked_model",
    "plan",
    "plan_from_keep",
    "register_handler",
    "slim",
]
