"""Cloud gateway tests (loopback HTTP, real SDK against the sandbox)."""
