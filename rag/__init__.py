"""Ask the document: cited passage retrieval over the texts in seeds/.

The library (this package) owns documents, chunking, embedding, the index and
retrieval. It never imports the web layer: `api/` turns HTTP and MCP into calls
on `rag.service.Service`, and the CLI (`rag.cli`) does the same for a terminal.
"""
