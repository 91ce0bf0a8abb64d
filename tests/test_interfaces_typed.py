"""Every protocol of ``ocistore.interfaces`` has an ocistore implementation, checked twice: by
mypy (this file is in ``[tool.mypy] files``: each assignment below fails to type-check if the
class drifts from its protocol) and at run time (``isinstance`` on the runtime-checkable ones)."""

from __future__ import annotations

from pathlib import Path

import ocistore
from ocistore import interfaces
from ocistore.storage import (
    OCI_MANIFEST,
    DescriptorCacheFactory,
    IndexBuilder,
    LinkedBlobStatter,
    ManifestBuilder,
    MemoryBlobDescriptorCache,
    Registry,
)


def test_implementations_satisfy_the_protocols(tmp_path: Path) -> None:
    store = ocistore.BlobStore(tmp_path / "blobs")
    registry = Registry(tmp_path / "registry")
    repo = registry.repository("library/app")
    config = repo.blobs().put("application/vnd.oci.image.config.v1+json", b"{}")
    repo.blobs().put("application/vnd.oci.image.layer.v1.tar", b"layer")

    statter: interfaces.BlobStatter = store
    provider: interfaces.BlobProvider = store
    ingester: interfaces.BlobIngester = store
    deleter: interfaces.BlobDeleter = store
    blob_enumerator: interfaces.BlobEnumerator = store
    server: interfaces.BlobServer = store
    service: interfaces.BlobService = store
    global_blobs: interfaces.BlobStore = store
    linked_blobs: interfaces.BlobStore = repo.blobs()
    linked_server: interfaces.BlobServer = repo.blobs()
    writer: interfaces.BlobWriter = store.create()
    reader: interfaces.ReadSeekCloser = store.open(store.put("text/plain", b"x").digest)
    reader.close()
    writer.cancel()

    linked_statter: interfaces.BlobDescriptorService = LinkedBlobStatter(repo.blobs())
    cache: interfaces.BlobDescriptorService = MemoryBlobDescriptorCache(16)
    factory: interfaces.BlobDescriptorServiceFactory = DescriptorCacheFactory(16)
    cached: interfaces.BlobDescriptorService = factory.blob_access_controller(linked_statter)

    create_options: list[interfaces.BlobCreateOption] = [
        interfaces.WithMountFrom(None, config.digest),
        interfaces.WithAlgorithm("sha512"),
    ]
    manifest_options: list[interfaces.ManifestServiceOption] = [
        interfaces.WithTag("v1"),
        interfaces.WithManifestMediaTypes([OCI_MANIFEST]),
    ]

    image_builder: interfaces.ManifestBuilder = ManifestBuilder(repo.blobs()).set_config(config)
    built: interfaces.Manifest = image_builder.build()
    described: interfaces.Describable = ocistore.unmarshal_manifest(None, built.payload())[0]
    descriptor_itself: interfaces.Describable = config
    manifests: interfaces.ManifestService = repo.manifests()
    manifest_enumerator: interfaces.ManifestEnumerator = repo.manifests()
    manifests.put(built, *manifest_options)
    index_builder: interfaces.ManifestBuilder = IndexBuilder(repo.manifests())
    tags: interfaces.TagService = repo.tags()

    repository: interfaces.Repository = repo
    namespace: interfaces.Namespace = registry
    repository_enumerator: interfaces.RepositoryEnumerator = registry
    remover: interfaces.RepositoryRemover = registry
    scope: interfaces.Scope = registry.scope()
    global_scope: interfaces.Scope = interfaces.GlobalScope()

    runtime_checked: list[tuple[object, type]] = [
        (statter, interfaces.BlobStatter),
        (provider, interfaces.BlobProvider),
        (ingester, interfaces.BlobIngester),
        (deleter, interfaces.BlobDeleter),
        (blob_enumerator, interfaces.BlobEnumerator),
        (server, interfaces.BlobServer),
        (service, interfaces.BlobService),
        (global_blobs, interfaces.BlobStore),
        (linked_blobs, interfaces.BlobStore),
        (linked_server, interfaces.BlobServer),
        (writer, interfaces.BlobWriter),
        (reader, interfaces.ReadSeekCloser),
        (linked_statter, interfaces.BlobDescriptorService),
        (cache, interfaces.BlobDescriptorService),
        (cached, interfaces.BlobDescriptorService),
        (factory, interfaces.BlobDescriptorServiceFactory),
        *((option, interfaces.BlobCreateOption) for option in create_options),
        *((option, interfaces.ManifestServiceOption) for option in manifest_options),
        (image_builder, interfaces.ManifestBuilder),
        (index_builder, interfaces.ManifestBuilder),
        (built, interfaces.Manifest),
        (described, interfaces.Describable),
        (descriptor_itself, interfaces.Describable),
        (manifests, interfaces.ManifestService),
        (manifest_enumerator, interfaces.ManifestEnumerator),
        (tags, interfaces.TagService),
        (repository, interfaces.Repository),
        (namespace, interfaces.Namespace),
        (repository_enumerator, interfaces.RepositoryEnumerator),
        (remover, interfaces.RepositoryRemover),
        (scope, interfaces.Scope),
        (global_scope, interfaces.Scope),
    ]
    for value, protocol in runtime_checked:
        assert isinstance(value, protocol), (value, protocol)
    # A runtime check only looks for the names: make sure it can fail, or the loop proves nothing.
    assert not isinstance(store, interfaces.ManifestService)
    assert not isinstance(tags, interfaces.BlobStore)
    assert tags.get("v1").digest == manifests.put(built)
