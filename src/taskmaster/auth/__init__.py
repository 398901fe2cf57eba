"""Who may call the API: API tokens (stored hashed) and JWTs, with roles viewer < developer < admin."""
