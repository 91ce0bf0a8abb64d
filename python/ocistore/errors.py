"""The ocistore exception tree, mirroring distribution's storage errors.

Every class carries the OCI Distribution error ``code`` and the HTTP ``status`` the registry API
answers with, so the HTTP layer maps an exception to a response without a table of its own. The
Rust core raises these same classes.
"""

from __future__ import annotations

from typing import Any, ClassVar

__all__ = [
    "ErrAccessDenied",
    "ErrBlobDigestUnsupported",
    "ErrBlobExists",
    "ErrBlobInvalidDigest",
    "ErrBlobInvalidLength",
    "ErrBlobMounted",
    "ErrBlobUnknown",
    "ErrBlobUploadInUse",
    "ErrBlobUploadInvalid",
    "ErrBlobUploadUnknown",
    "ErrCollectorBusy",
    "ErrCollectorLeaseLost",
    "ErrDescriptorInvalid",
    "ErrDigestInvalid",
    "ErrDigestInvalidFormat",
    "ErrDigestInvalidLength",
    "ErrDigestUnsupported",
    "ErrHashStateInvalid",
    "ErrManifestBlobUnknown",
    "ErrManifestInvalid",
    "ErrManifestNameInvalid",
    "ErrManifestNotModified",
    "ErrManifestUnknown",
    "ErrManifestUnknownRevision",
    "ErrManifestUnverified",
    "ErrManifestVerification",
    "ErrRepositoryNameInvalid",
    "ErrRepositoryUnknown",
    "ErrSchemaV1Unsupported",
    "ErrTagInvalid",
    "ErrTagUnknown",
    "ErrUnsupported",
    "OciStoreError",
]


class OciStoreError(Exception):
    """Base of every ocistore error. ``detail`` is the error's machine-readable detail."""

    code: ClassVar[str] = "UNKNOWN"
    status: ClassVar[int] = 500

    def __init__(self, message: str = "", *, detail: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail


class ErrDigestInvalid(OciStoreError, ValueError):
    code = "DIGEST_INVALID"
    status = 400


class ErrDigestInvalidFormat(ErrDigestInvalid):
    """Not ``algorithm:hex`` with lowercase hex."""


class ErrDigestUnsupported(ErrDigestInvalid):
    """An algorithm other than sha256, sha512 or blake3."""


class ErrDigestInvalidLength(ErrDigestInvalid):
    """The hex part has the wrong length for its algorithm."""


class ErrHashStateInvalid(OciStoreError, ValueError):
    """A saved hash state that cannot be restored."""

    code = "BLOB_UPLOAD_INVALID"
    status = 400


class ErrDescriptorInvalid(OciStoreError, ValueError):
    code = "MANIFEST_INVALID"
    status = 400


class ErrBlobUnknown(OciStoreError, KeyError):
    code = "BLOB_UNKNOWN"
    status = 404

    def __str__(self) -> str:  # KeyError would quote the message
        return self.message


class ErrBlobInvalidDigest(OciStoreError):
    """The uploaded bytes do not hash to the digest given at commit."""

    code = "DIGEST_INVALID"
    status = 400


class ErrBlobInvalidLength(OciStoreError):
    """The uploaded size differs from the size given at commit."""

    code = "SIZE_INVALID"
    status = 400


class ErrBlobMounted(OciStoreError):
    """Not a failure: a create with mount-from linked an existing blob; ``descriptor`` is it."""

    code = ""
    status = 201

    def __init__(self, message: str = "", *, detail: Any = None, descriptor: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.descriptor = descriptor


class ErrBlobExists(OciStoreError):
    """Not a failure: the blob is already stored, so there is nothing to upload; ``descriptor``
    is it when known. The API answers a push that meets a stored blob as a completed upload
    (201 Created), hence ``status``; there is no error code."""

    code = ""
    status = 201

    def __init__(self, message: str = "", *, detail: Any = None, descriptor: Any = None) -> None:
        super().__init__(message, detail=detail)
        self.descriptor = descriptor


class ErrBlobDigestUnsupported(OciStoreError):
    """A well-formed digest in an algorithm this store does not take blobs in. distribution
    answers it as an invalid upload."""

    code = "BLOB_UPLOAD_INVALID"
    status = 400


class ErrBlobUploadUnknown(OciStoreError):
    code = "BLOB_UPLOAD_UNKNOWN"
    status = 404


class ErrBlobUploadInvalid(OciStoreError):
    code = "BLOB_UPLOAD_INVALID"
    status = 400


class ErrBlobUploadInUse(ErrBlobUploadInvalid):
    """Another request holds the upload (the core's claim on it); ``detail`` has its
    ``upload_id`` and the ``size`` it has so far, for the client's ``Range``."""

    status = 416


class ErrManifestUnknown(OciStoreError):
    code = "MANIFEST_UNKNOWN"
    status = 404


class ErrManifestUnknownRevision(ErrManifestUnknown):
    pass


class ErrManifestBlobUnknown(OciStoreError):
    code = "MANIFEST_BLOB_UNKNOWN"
    status = 400


class ErrManifestVerification(OciStoreError):
    """Every problem found while verifying a manifest, in ``errors``."""

    code = "MANIFEST_INVALID"
    status = 400

    def __init__(
        self, message: str = "", *, detail: Any = None, errors: list[OciStoreError] | None = None
    ) -> None:
        super().__init__(message, detail=detail)
        self.errors = list(errors or [])


class ErrManifestUnverified(OciStoreError):
    """The registry could not verify the manifest (distribution: a failed signature check)."""

    code = "MANIFEST_UNVERIFIED"
    status = 400


class ErrManifestNotModified(OciStoreError):
    """Not a failure: a conditional get found the manifest the client already has. The API
    answers 304 Not Modified, which has no body, so there is no error code."""

    code = ""
    status = 304


class ErrManifestInvalid(OciStoreError, ValueError):
    """A manifest that cannot be parsed or does not follow its schema."""

    code = "MANIFEST_INVALID"
    status = 400


class ErrManifestNameInvalid(OciStoreError):
    code = "NAME_INVALID"
    status = 400


class ErrRepositoryUnknown(OciStoreError):
    code = "NAME_UNKNOWN"
    status = 404


class ErrRepositoryNameInvalid(OciStoreError, ValueError):
    code = "NAME_INVALID"
    status = 400


class ErrTagUnknown(OciStoreError):
    code = "MANIFEST_UNKNOWN"
    status = 404


class ErrTagInvalid(OciStoreError, ValueError):
    """A tag outside the grammar ``[\\w][\\w.-]{0,127}``."""

    code = "MANIFEST_INVALID"
    status = 400


class ErrSchemaV1Unsupported(OciStoreError):
    code = "MANIFEST_INVALID"
    status = 400


class ErrUnsupported(OciStoreError):
    code = "UNSUPPORTED"
    status = 405


class ErrAccessDenied(OciStoreError):
    code = "DENIED"
    status = 403


class ErrCollectorBusy(OciStoreError):
    """Another garbage collector holds the storage's lease."""

    code = "UNAVAILABLE"
    status = 503


class ErrCollectorLeaseLost(OciStoreError):
    """The collector's lease lapsed (it could not renew it in time) or was taken over; the
    collection stopped deleting."""

    code = "UNAVAILABLE"
    status = 503
