"""Shared, pure API models of metallb-py: the CRDs (IPAddressPool, L2Advertisement,
ServiceL2Status), Service annotations and the validated configuration model.

No Kubernetes client, kopf, zmq or socket imports here (import-linter enforces it):
both the operator and the speaker, and the CLI, import this package.
"""

GROUP = "metallb.io"
VERSION = "v1beta1"
API_VERSION = f"{GROUP}/{VERSION}"
