"""Thin Kubernetes I/O shared by the operator and the speaker: an async REST client
(aiohttp, configured by kubernetes_asyncio's kubeconfig/in-cluster loaders), a
list+watch informer, an Event recorder and JSON logging. No decisions live here."""
