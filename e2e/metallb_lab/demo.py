"""`make demo`: the seed's user journey on one machine.

Starts the real control plane, applies the CRDs, and prints what a user sees. Later
stages (simulated nodes, speakers, nginx, curl through the external IP) are added by
the network lab.
"""

from __future__ import annotations

import sys

from metallb_lab.controlplane import ControlPlane
from metallb_lab.kube import apply_crds


def step(title: str) -> None:
    print(f"\n=== {title}", flush=True)


def main() -> int:
    with ControlPlane() as cp:
        step(f"control plane up at {cp.server}")
        apply_crds(cp)
        cp.kubectl("create", "service", "loadbalancer", "demo", "--tcp=80:80")
        step("kubectl get crds,svc")
        print(cp.kubectl("get", "crds,svc").stdout, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
