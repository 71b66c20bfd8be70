"""BGP mode on the speaker: what this node announces (pure: `announce`), and the shell
that drives FRR and writes ServiceBGPStatus (`controller`)."""
