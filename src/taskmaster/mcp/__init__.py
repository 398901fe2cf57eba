"""The MCP door: the task manager as tools for coding agents (`taskmaster mcp`, over stdio or streamable HTTP)."""
