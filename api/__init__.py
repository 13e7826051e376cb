"""The web layer: HTTP (FastAPI) and MCP over the `rag` library. It holds no retrieval logic."""
