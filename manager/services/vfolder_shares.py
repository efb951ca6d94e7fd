"""Sharing a virtual folder with users and projects of its domain (ro or rw)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from manager.auth.principal import Principal
from manager.db.models import ProjectRow, ShareMode, UserRow, VFolderShareRow
from manager.errors import InvalidRequest, NotFound
from manager.services.common import require
from manager.services.vfolders import load_folder


async def share_vfolder(
    db: AsyncSession,
    principal: Principal,
    *,
    folder_id: uuid.UUID,
    user_id: uuid.UUID | None,
    username: str | None,
    project_id: uuid.UUID | None,
    mode: ShareMode,
) -> VFolderShareRow:
    """Share with a user or a project of the folder's domain; sharing again changes the mode."""
    view = await load_folder(db, principal, folder_id=folder_id, lock="update")
    require(view.access.manage, "only the folder's owner or an admin can share it")
    row = view.row
    if project_id is not None:
        project = await db.get(ProjectRow, project_id)
        if project is None or project.domain_id != row.domain_id:
            raise NotFound("project not found in the folder's domain", code="project_not_found")
        if project.id == row.owner_project_id:
            raise InvalidRequest("the project owns this folder", code="share_with_owner")
        match = VFolderShareRow.project_id == project.id
    else:
        query = select(UserRow).where(UserRow.domain_id == row.domain_id)
        query = query.where(UserRow.id == user_id if user_id else UserRow.username == username)
        user = await db.scalar(query)
        if user is None:
            raise NotFound("user not found in the folder's domain", code="user_not_found")
        if user.id == row.owner_user_id:
            raise InvalidRequest("the user owns this folder", code="share_with_owner")
        user_id = user.id
        match = VFolderShareRow.user_id == user.id
    share = await db.scalar(
        select(VFolderShareRow).where(VFolderShareRow.vfolder_id == row.id, match)
    )
    if share is None:
        share = VFolderShareRow(
            id=uuid.uuid4(),
            vfolder_id=row.id,
            user_id=None if project_id else user_id,
            project_id=project_id,
            mode=mode,
            created_at=datetime.now(UTC),
        )
        db.add(share)
    else:
        share.mode = mode
    await db.flush()
    return share


async def list_shares(
    db: AsyncSession, principal: Principal, *, folder_id: uuid.UUID
) -> list[VFolderShareRow]:
    view = await load_folder(db, principal, folder_id=folder_id)
    require(view.access.manage, "only the folder's owner or an admin can see its shares")
    rows = await db.scalars(
        select(VFolderShareRow)
        .where(VFolderShareRow.vfolder_id == folder_id)
        .order_by(VFolderShareRow.created_at, VFolderShareRow.id)
    )
    return list(rows.all())


async def unshare_vfolder(
    db: AsyncSession, principal: Principal, *, folder_id: uuid.UUID, share_id: uuid.UUID
) -> None:
    """Managers remove any share; a user may also leave a share made to them."""
    view = await load_folder(db, principal, folder_id=folder_id, lock="update")
    share = await db.get(VFolderShareRow, share_id)
    if share is None or share.vfolder_id != folder_id:
        raise NotFound("share not found", code="share_not_found")
    require(
        view.access.manage or share.user_id == principal.user_id,
        "only the folder's owner or an admin can remove its shares",
    )
    await db.delete(share)
