"""AgentAPI: drive terminal coding agents over HTTP (server: PTY + pyte; client: async httpx)."""
