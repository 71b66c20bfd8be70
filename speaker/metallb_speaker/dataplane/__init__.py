"""The speaker's only socket code: packet sockets with cBPF filters and multicast
memberships, around the pure formats in `metallb_speaker.wire`."""
