"""One APIRouter module per feature: query, documents, ops, page. Each turns HTTP into `rag` calls."""
