"""`make bench`: every benchmark in turn (each prints its figures and writes JSON to
bench/results/). They share 2 cores, so they run one after the other."""

from __future__ import annotations

import subprocess
import sys

BENCHES = ["bench.allocator", "bench.operator_scale", "bench.speaker_scale",
           "bench.membership", "bench.failover", "bench.failover_many",
           "bench.failover_nodes", "bench.cluster_nodes", "bench.arp", "bench.responders",
           "bench.versus", "bench.bgp"]


def main() -> int:
    failed = []
    for mod in BENCHES:
        print(f"\n##### {mod}", flush=True)
        if subprocess.run([sys.executable, "-m", mod], check=False).returncode != 0:
            failed.append(mod)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
