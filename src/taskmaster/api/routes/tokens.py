"""/api/tokens: API tokens (admin only). A token's value is shown once, in the creation response."""

from __future__ import annotations

import uuid

from fastapi import APIRouter, status

from taskmaster.api.deps import Admin, ServicesDep, SessionDep
from taskmaster.auth import service
from taskmaster.auth.schemas import TokenCreated, TokenInfo, TokenSpec

router = APIRouter(prefix="/api/tokens", tags=["tokens"])


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_token(spec: TokenSpec, session: SessionDep, principal: Admin) -> TokenCreated:
    created = await service.create_token(session, spec=spec, created_by=principal.subject)
    await session.commit()
    return created


@router.get("")
async def list_tokens(session: SessionDep, _: Admin, include_revoked: bool = False) -> list[TokenInfo]:
    return await service.list_tokens(session, include_revoked=include_revoked)


@router.delete("/{token_id}", status_code=status.HTTP_200_OK)
async def revoke_token(token_id: uuid.UUID, session: SessionDep, services: ServicesDep, principal: Admin) -> TokenInfo:
    revoked = await service.revoke_token(session, token_id=token_id, actor=principal.subject)
    if services.principals is not None:
        services.principals.forget(token_id)
    await session.commit()
    return revoked
