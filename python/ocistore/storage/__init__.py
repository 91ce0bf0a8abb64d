"""Registry services on distribution's layout: repositories, linked blobs, manifests, tags,
referrers, catalog, garbage collection and upload purging."""

from .blob_descriptors import (
    CachedBlobDescriptorService,
    DescriptorCacheFactory,
    LinkedBlobStatter,
    MemoryBlobDescriptorCache,
)
from .builder import IndexBuilder, ManifestBuilder
from .gc import DEFAULT_MIN_AGE, GarbageCollector, GCResult, collect_garbage, purge_uploads
from .linked_blobs import LinkedBlobStore
from .manifest_service import ManifestService
from .manifests import (
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    OCI_INDEX,
    OCI_MANIFEST,
    ImageIndex,
    ImageManifest,
    Manifest,
    manifest_media_types,
    register_manifest_schema,
    unmarshal_manifest,
)
from .names import check_repository_name, check_tag, parse_reference
from .registry import GLOBAL_SCOPE, Registry
from .repository import Repository
from .tags import TagService
from .validation import ManifestValidation

__all__ = [
    "DEFAULT_MIN_AGE",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "GLOBAL_SCOPE",
    "OCI_INDEX",
    "OCI_MANIFEST",
    "CachedBlobDescriptorService",
    "DescriptorCacheFactory",
    "GCResult",
    "GarbageCollector",
    "ImageIndex",
    "ImageManifest",
    "IndexBuilder",
    "LinkedBlobStatter",
    "LinkedBlobStore",
    "Manifest",
    "ManifestBuilder",
    "ManifestService",
    "ManifestValidation",
    "MemoryBlobDescriptorCache",
    "Registry",
    "Repository",
    "TagService",
    "check_repository_name",
    "check_tag",
    "collect_garbage",
    "manifest_media_types",
    "parse_reference",
    "purge_uploads",
    "register_manifest_schema",
    "unmarshal_manifest",
]
