"""Documents and passages: GET /documents, /documents/{id}, /passages/{id}, each read from one snapshot."""

from __future__ import annotations

from fastapi import APIRouter, Depends

from api import render, schemas
from api.deps import get_service
from rag.service import Service

NOT_FOUND = {404: {"model": schemas.ErrorResponse, "description": "Unknown id"}}


def router() -> APIRouter:
    routes = APIRouter(tags=["documents"])

    @routes.get("/documents", response_model=list[schemas.DocumentSummary])
    async def list_documents(service: Service = Depends(get_service)) -> list[schemas.DocumentSummary]:
        return [render.document_summary(d) for d in service.snapshot.documents.values()]

    @routes.get("/documents/{document_id}", response_model=schemas.DocumentOut, responses=NOT_FOUND)
    async def get_document(document_id: str, service: Service = Depends(get_service)) -> schemas.DocumentOut:
        """Metadata, sections and the full text that citation offsets index into."""
        return render.document_out(service.snapshot.document(document_id))

    @routes.get("/passages/{passage_id}", response_model=schemas.PassageDetail, responses=NOT_FOUND)
    async def get_passage(passage_id: str, service: Service = Depends(get_service)) -> schemas.PassageDetail:
        """One passage with its citation and the ids of its neighbours in the document."""
        return render.passage_detail(service.snapshot.passage(passage_id))

    return routes
