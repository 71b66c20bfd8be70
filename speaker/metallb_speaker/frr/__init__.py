"""BGP mode through FRR (zebra, bgpd, bfdd) beside the speaker: `render` turns the
validated BGP model into the whole frr.conf, purely; applying it is the shell's job."""
