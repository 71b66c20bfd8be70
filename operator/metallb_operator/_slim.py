"""Hide the generated Kubernetes clients from kopf in the operator process.

kopf imports every client library it finds installed (to recognise their objects);
that costs ~50 MB RSS and we use none of them at runtime (metallb_kube talks JSON).
Must be imported before kopf; harmless if a client was imported already.
"""

import sys

for _name in ("kubernetes", "kubernetes_asyncio", "pykube"):
    sys.modules.setdefault(_name, None)  # type: ignore[arg-type]
