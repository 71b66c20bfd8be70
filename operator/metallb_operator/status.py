"""Status of IPAddressPools and L2Advertisements: counters and standard conditions,
computed purely from the config model and the allocator's usage."""

from __future__ import annotations

from typing import Any

from metallb_api.addresses import Family
from metallb_api.conditions import ConditionSpec
from metallb_api.config import Config
from metallb_operator.allocator import PoolUsage

INT64_MAX = 2**63 - 1


def pool_conditions(config: Config, name: str, moved: str | None = None) -> list[ConditionSpec]:
    problems = config.problems_for("IPAddressPool", name)
    if problems:
        ready = ConditionSpec("Ready", False, problems[0].reason,
                              "; ".join(p.message for p in problems))
    else:
        pool = config.pools[name]
        ready = ConditionSpec("Ready", True, "Accepted",
                              f"{len(pool.ranges)} address range(s) accepted")
    if name in config.advertised_pools():
        advs = sorted(a.name for a in config.l2advertisements.values() if name in a.pools)
        advertised = ConditionSpec("Advertised", True, "L2AdvertisementSelectsPool",
                                   "announced by L2Advertisement " + ", ".join(advs))
    else:
        advertised = ConditionSpec(
            "Advertised", False, "NoL2Advertisement",
            "no L2Advertisement selects this pool: its addresses are assigned but not "
            "announced, so they are unreachable")
    stable = ConditionSpec("AssignmentsStable", moved is None,
                           "ServicesMoved" if moved else "NoServicesMoved",
                           moved or "no assigned Service had to move")
    return [ready, advertised, stable]


def pool_status(usage: PoolUsage) -> dict[str, Any]:
    v4, v6 = Family.V4, Family.V6
    avail = usage.available(v4) + usage.available(v6)
    return {
        "assignedIPv4": usage.assigned.get(v4, 0),
        "assignedIPv6": usage.assigned.get(v6, 0),
        # int64 fields (MetalLB's schema) saturate instead of overflowing; the exact
        # count is in availableTotal.
        "availableIPv4": min(usage.available(v4), INT64_MAX),
        "availableIPv6": min(usage.available(v6), INT64_MAX),
        "assignedTotal": usage.assigned.get(v4, 0) + usage.assigned.get(v6, 0),
        "availableTotal": str(avail),
    }


def l2adv_conditions(config: Config, name: str) -> list[ConditionSpec]:
    problems = config.problems_for("L2Advertisement", name)
    if problems:
        return [ConditionSpec("Ready", False, problems[0].reason,
                              "; ".join(p.message for p in problems))]
    adv = config.l2advertisements[name]
    pools = ", ".join(sorted(adv.pools)) or "none"
    # Notes (selectors matching nothing yet) inform; they never make it not Ready.
    notes = "".join(f"; {n.message}" for n in config.notes_for("L2Advertisement", name))
    return [ConditionSpec("Ready", True, "Accepted", f"announces pools: {pools}{notes}")]
