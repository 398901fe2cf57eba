"""The Codegen API agent: an async client of Codegen's agent-run API, and the `CodingAgent` that uses it."""
