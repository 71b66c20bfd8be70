"""Test infrastructure shared by tests/, e2e/ and bench/: the real control plane and
the network-namespace lab. Not shipped in the container image."""
