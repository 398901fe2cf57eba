"""Executors: where a step runs (this machine in the sandbox, or a remote instance over SSH), behind one protocol."""
