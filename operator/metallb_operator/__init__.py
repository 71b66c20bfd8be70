"""metallb-py operator: gives LoadBalancer Services addresses from IPAddressPools.

Pure core: `allocator` (addresses), `reconcile` (what to write for a Service),
`status` (pool/advertisement conditions). Thin shell: `controller` (work queue and
API writes), `handlers` (kopf wiring), `leader` (Lease), `__main__`.
"""
