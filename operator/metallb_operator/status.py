"""Status of IPAddressPools and L2Advertisements: counters and standard conditions,
computed purely from the config models (layer 2's and BGP mode's) and the allocator's
usage."""

from __future__ import annotations

from typing import Any

from metallb_api.addresses import Family
from metallb_api.bgp import BGPConfig
from metallb_api.conditions import ConditionSpec
from metallb_api.config import Config
from metallb_operator.allocator import PoolUsage

INT64_MAX = 2**63 - 1


def pool_conditions(config: Config, name: str, moved: str | None = None,
                    bgp: BGPConfig | None = None) -> list[ConditionSpec]:
    """`bgp`: BGP mode's model built on `config` (None: no BGP objects). A pool is
    advertised when an accepted L2Advertisement or BGPAdvertisement selects it: which
    mode the speakers run is a deployment choice the objects do not show."""
    problems = config.problems_for("IPAddressPool", name)
    if problems:
        ready = ConditionSpec("Ready", False, problems[0].reason,
                              "; ".join(p.message for p in problems))
    else:
        pool = config.pools[name]
        ready = ConditionSpec("Ready", True, "Accepted",
                              f"{len(pool.ranges)} address range(s) accepted")
    l2 = sorted(a.name for a in config.l2advertisements.values() if name in a.pools)
    bgp_advs = sorted(a.name for a in (bgp.advertisements.values() if bgp else ())
                      if name in a.pools)
    by = [f"{kind} {', '.join(names)}" for kind, names in
          (("L2Advertisement", l2), ("BGPAdvertisement", bgp_advs)) if names]
    if by:
        # The layer-2 reason stays whenever layer 2 selects the pool (it did before BGP).
        reason = "L2AdvertisementSelectsPool" if l2 else "BGPAdvertisementSelectsPool"
        advertised = ConditionSpec("Advertised", True, reason, "announced by " + "; ".join(by))
    else:
        advertised = ConditionSpec(
            "Advertised", False, "NoL2Advertisement",
            "no L2Advertisement or BGPAdvertisement selects this pool: its addresses are "
            "assigned but not announced, so they are unreachable")
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
