"""Storage proxy domain errors: stable string codes, no HTTP types (api/middleware maps them)."""

from __future__ import annotations

from storage_proxy.contract import ErrorCode


class StorageDomainError(Exception):
    """Base of every error reported to a caller; `code` is part of the wire contract."""

    code: ErrorCode = ErrorCode.BAD_REQUEST

    def __init__(self, message: str, *, code: ErrorCode | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code


class BadRequest(StorageDomainError):
    code = ErrorCode.BAD_REQUEST


class InvalidPath(StorageDomainError):
    code = ErrorCode.INVALID_PATH


class SymlinkRefused(StorageDomainError):
    code = ErrorCode.SYMLINK_REFUSED


class VolumeNotFound(StorageDomainError):
    code = ErrorCode.VOLUME_NOT_FOUND


class FolderNotFound(StorageDomainError):
    code = ErrorCode.FOLDER_NOT_FOUND


class FolderExists(StorageDomainError):
    code = ErrorCode.FOLDER_EXISTS


class FileNotFound(StorageDomainError):
    code = ErrorCode.FILE_NOT_FOUND


class FileExists(StorageDomainError):
    code = ErrorCode.FILE_EXISTS


class NotADirectory(StorageDomainError):
    code = ErrorCode.NOT_A_DIRECTORY


class IsADirectory(StorageDomainError):
    code = ErrorCode.IS_A_DIRECTORY


class DirectoryNotEmpty(StorageDomainError):
    code = ErrorCode.DIRECTORY_NOT_EMPTY


class QuotaExceeded(StorageDomainError):
    code = ErrorCode.QUOTA_EXCEEDED


class Unsupported(StorageDomainError):
    code = ErrorCode.UNSUPPORTED


class UploadNotFound(StorageDomainError):
    code = ErrorCode.UPLOAD_NOT_FOUND


class UploadOffsetMismatch(StorageDomainError):
    code = ErrorCode.UPLOAD_OFFSET_MISMATCH


class UploadTooLarge(StorageDomainError):
    code = ErrorCode.UPLOAD_TOO_LARGE


class RangeNotSatisfiable(StorageDomainError):
    code = ErrorCode.RANGE_NOT_SATISFIABLE


class BackendError(StorageDomainError):
    code = ErrorCode.BACKEND_ERROR
