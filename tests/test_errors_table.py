"""The core's table of the ``ocistore.errors`` classes it raises agrees with ``ocistore.errors``.

The core resolves the classes by these names on its first error and owns the codes the native
front answers with; a class renamed, or a code or status changed on one side only, fails here.
"""

from __future__ import annotations

import pytest
from ocistore import _core, errors

TABLE = _core.error_classes()


def test_every_class_the_core_raises_is_listed_once() -> None:
    names = [name for name, _, _ in TABLE]
    assert sorted(names) == sorted(set(names))
    assert set(names) == {
        "ErrDigestInvalidFormat",
        "ErrDigestUnsupported",
        "ErrDigestInvalidLength",
        "ErrBlobUnknown",
        "ErrBlobInvalidDigest",
        "ErrBlobInvalidLength",
        "ErrBlobUploadUnknown",
        "ErrBlobUploadInvalid",
        "ErrBlobUploadInUse",
        "ErrHashStateInvalid",
        "ErrManifestInvalid",
        "ErrDescriptorInvalid",
        "ErrSchemaV1Unsupported",
    }


@pytest.mark.parametrize(("name", "code", "status"), TABLE, ids=[name for name, _, _ in TABLE])
def test_class_exists_with_the_core_code_and_status(name: str, code: str, status: int) -> None:
    assert name in errors.__all__
    cls = getattr(errors, name)
    assert isinstance(cls, type)
    assert issubclass(cls, errors.OciStoreError)
    assert (cls.code, cls.status) == (code, status)


def test_the_core_raises_the_listed_class() -> None:
    with pytest.raises(errors.ErrDigestInvalidFormat) as raised:
        _core.Digest("sha256:XYZ")
    assert raised.value.detail == {"digest": "sha256:XYZ"}
