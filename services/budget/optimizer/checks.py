"""The rules a problem must meet before it is solved, in the problem's own terms.

Each issue names its field by its path in the dataclasses (`channels[2].min`,
`reserve.amount`), which is also its path in the API's request shapes: the HTTP edge reports
them as they are, and a stored channel reports `check_channel`'s paths relative to itself.
"""
from dataclasses import dataclass
from decimal import Decimal

from services.budget.optimizer.problem import Channel, Deal, Hill, Linear, Problem
from shared.money import MAX_AMOUNT, quantum


@dataclass(frozen=True)
class Issue:
    field: str      # "" is the checked object as a whole
    detail: str     # what is wrong and how to fix it


def _money(field: str, amount: Decimal | None, decimals: int) -> list[Issue]:
    if amount is None or amount == amount.quantize(quantum(decimals)):
        return []
    return [Issue(field, f"{amount} has more decimals than the currency allows ({decimals}); "
                         f"round it to {amount.quantize(quantum(decimals))}")]


def _within(prefix: str, issues: list[Issue]) -> list[Issue]:
    return [Issue(f"{prefix}.{i.field}" if i.field else prefix, i.detail) for i in issues]


def check_channel(channel: Channel, decimals: int) -> list[Issue]:
    """Return every problem of one channel's money, bounds and response (paths relative to it).

    >>> check_channel(Channel("kol", Deal(Decimal(5), Decimal(9)), max=Decimal(1)), 2)[0].field
    'response'
    """
    issues = _money("min", channel.min, decimals) + _money("max", channel.max, decimals)
    if channel.min is not None and channel.max is not None and channel.min > channel.max:
        issues.append(Issue("min", f"min {channel.min} is above max {channel.max}"))
    if isinstance(channel.response, Deal):
        issues += _money("response.cost", channel.response.cost, decimals)
        if channel.min is not None or channel.max is not None:
            issues.append(Issue("response", "a deal is bought whole or not at all; drop min and max"))
    if channel.min_if_used and channel.min is None:
        issues.append(Issue("min_if_used", "min_if_used needs a min"))
    return issues


def check_problem(problem: Problem) -> list[Issue]:
    """Return every cross-field problem of `problem` at once (an empty list: it can be solved)."""
    decimals = problem.decimals
    issues = _money("total", problem.total, decimals)
    reserve = problem.reserve.amount
    issues += _money("reserve.amount", reserve, decimals)
    if reserve is not None and reserve > problem.total:
        issues.append(Issue("reserve.amount", "the reserve cannot exceed the total"))
    ids = [c.id for c in problem.channels]
    seen: set[str] = set()
    for i, channel in enumerate(problem.channels):
        if channel.id in seen:
            issues.append(Issue(f"channels[{i}].id", f"channel id {channel.id!r} is used twice"))
        seen.add(channel.id)
        issues += _within(f"channels[{i}]", check_channel(channel, decimals))
    for i, group in enumerate(problem.groups):
        issues += [Issue(f"groups[{i}].channels", f"unknown channel {name!r}; known: "
                                                  f"{', '.join(ids[:20])}")
                   for name in group.channels if name not in seen]
        # Listed twice, a channel would count twice towards its group's share.
        issues += [Issue(f"groups[{i}].channels", f"group {group.id!r} lists channel {name!r} "
                                                  "twice; list each channel once")
                   for name in _repeated(group.channels)]
        if group.min_share is not None and group.max_share is not None \
                and group.min_share > group.max_share:
            issues.append(Issue(f"groups[{i}].min_share", "min_share is above max_share"))
    if len({g.id for g in problem.groups}) != len(problem.groups):
        issues.append(Issue("groups", "group ids must be unique"))
    if len({p.id for p in problem.periods}) != len(problem.periods):
        issues.append(Issue("periods", "period ids must be unique"))
    for i, period in enumerate(problem.periods):
        issues += _money(f"periods[{i}].cap", period.cap, decimals)
        if period.share is not None and period.share <= 0:
            issues.append(Issue(f"periods[{i}].share", "a period's share must be above 0"))
    if problem.periods and all(p.weight == 0 for p in problem.periods):
        issues.append(Issue("periods", "every period has weight 0, so no spend can return "
                                       "anything; give the periods that earn a weight above 0"))
    given = [p.share is not None for p in problem.periods]
    if any(given) and not all(given):
        issues.append(Issue("periods", "give every period a share, or none (equal shares)"))
    if problem.incremental:
        for name, amount in problem.incremental.previous.items():
            if name not in seen:
                issues.append(Issue(f"incremental.previous.{name}", f"unknown channel {name!r}"))
            issues += _money(f"incremental.previous.{name}", amount, decimals)
    if problem.objective == "min_spend" and problem.target_return is None:
        issues.append(Issue("target_return", "the min_spend objective needs a target_return"))
    if problem.objective == "target_roi" and problem.target_roi is None:
        issues.append(Issue("target_roi", "the target_roi objective needs a target_roi"))
    ceiling = _return_ceiling(problem)
    if ceiling > MAX_AMOUNT:
        issues.append(Issue("channels", f"a plan could return up to {ceiling.normalize():f}, "
                                        f"past the largest amount stated ({MAX_AMOUNT}); state the "
                                        "money and the curves' returns in a larger unit "
                                        "(thousands or millions)"))
    return issues


def _return_ceiling(problem: Problem) -> Decimal:
    """No plan returns more: each channel's curve at its most, at the heaviest period's weight
    (a period's return is weight · share · R(spend / share), and the shares sum to 1)."""
    most = Decimal(0)
    for channel in problem.channels:
        response = channel.response
        if isinstance(response, Linear):
            spend = problem.total if channel.max is None else min(channel.max, problem.total)
            most += response.roi * spend
        elif isinstance(response, Hill):
            most += response.beta
        elif isinstance(response, Deal):
            most += response.value
        else:
            most += max((value for _, value in response.points), default=Decimal(0))
    return most * max((p.weight for p in problem.periods), default=Decimal(1))


def _repeated(names: tuple[str, ...]) -> list[str]:
    """The names listed more than once, each once, in the order of their second mention."""
    seen: set[str] = set()
    repeated: list[str] = []
    for name in names:
        if name in seen and name not in repeated:
            repeated.append(name)
        seen.add(name)
    return repeated
