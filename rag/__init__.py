"""Ask the document: cited passage retrieval over the texts in seeds/.

The library (this package) owns documents, chunking, embedding, the index and
retrieval. It never imports the web layer: `api/` turns HTTP and MCP into calls
on `rag.service.Service`; the CLI and the server bootstrap live there too
(`api.cli`, `api.server`). See ARCHITECTURE.md.
"""
