"""Thin Kubernetes I/O shared by the operator and the speaker: an async REST client
(aiohttp, with its own kubeconfig/in-cluster loader), a
list+watch informer, an Event recorder and JSON logging. No decisions live here."""
