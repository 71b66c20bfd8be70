"""metallb-py speaker: node liveness gossip (pyzmq), leaderless owner election, and the
ARP/NDP data plane. Pure core: `membership`, `election`, `wire`."""
