"""distribution 3's ``validation.manifests`` configuration: sparse indexes and foreign layer
URLs, read from ``config.yml`` and enforced by a running server."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
import yaml
from ocistore.server.config import ConfigError, load_config
from ocistore.storage import OCI_INDEX, OCI_MANIFEST

from .images import CONFIG, LAYER, descriptor, make_image, make_index
from .servers import ocistore_server


def config_file(tmp_path: Path, section: dict[str, object]) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(yaml.safe_dump({"version": "0.1", "validation": section}))
    return path


def test_the_configuration_reads_distributions_names(tmp_path: Path) -> None:
    config = load_config(
        config_file(
            tmp_path,
            {
                "manifests": {
                    "indexes": {
                        "platforms": "List",
                        "platformlist": [{"architecture": "amd64", "os": "linux"}],
                    },
                    "urls": {"allow": ["^https://example\\.com/"], "deny": ["secret"]},
                }
            },
        )
    )
    validation = config.manifest_validation()
    assert validation.index_children == "list"
    assert validation.index_platforms == (("linux", "amd64"),)
    assert validation.url_problem("https://example.com/a") is None
    assert validation.url_problem("https://example.com/secret") is not None
    assert validation.url_problem("https://other.com/a") is not None
    # The default: every child required (distribution 3's), any http(s) foreign URL accepted
    # (the spec's suite pushes non-distributable layers; distribution 3 refuses them).
    default = load_config(None).manifest_validation()
    assert default.index_children == "all" and default.url_problem("https://x/") is None
    assert default.url_problem("ftp://x/") is not None
    nothing = load_config(config_file(tmp_path, {"manifests": {"urls": {"allow": []}}}))
    assert nothing.manifest_validation().url_problem("https://x/") is not None
    sparse = load_config(config_file(tmp_path, {"manifests": {"blobs": "none"}}))
    assert not sparse.manifest_validation().blobs_required
    assert load_config(None).manifest_validation().blobs_required
    disabled = load_config(config_file(tmp_path, {"disabled": True})).manifest_validation()
    assert disabled.index_children == "none" and disabled.url_problem("https://x/") is None


@pytest.mark.parametrize(
    "section",
    [
        {"manifests": {"indexes": {"platforms": "some"}}},
        {"manifests": {"indexes": {"platformlist": [{"os": "linux"}]}}},
        {"manifests": {"urls": {"allow": ["("]}}},
        {"manifests": {"urls": {"allow": "^https://"}}},
        {"manifests": {"unknown": {}}},
        {"manifests": {"blobs": "some"}},
    ],
)
def test_a_bad_validation_section_stops_the_start(
    tmp_path: Path, section: dict[str, object]
) -> None:
    with pytest.raises(ConfigError):
        load_config(config_file(tmp_path, section))


def push_blobs(client: httpx.Client, name: str, blobs: dict[str, bytes]) -> None:
    for digest, data in blobs.items():
        r = client.post(f"/v2/{name}/blobs/uploads/", params={"digest": digest}, content=data)
        assert r.status_code == 201


@pytest.mark.parametrize("front", [True, False], ids=["front", "app"])
def test_a_server_takes_sparse_indexes_only_when_configured(tmp_path: Path, front: bool) -> None:
    amd, arm = make_image(40, arch="amd64"), make_image(41, arch="arm64")
    index = make_index([(amd, "amd64"), (arm, "arm64")])

    def foreign(url: str) -> bytes:
        layer = descriptor(LAYER, b"far away", urls=[url])
        body = {"schemaVersion": 2, "mediaType": OCI_MANIFEST,
                "config": descriptor(CONFIG, amd.config), "layers": [layer]}  # fmt: skip
        return json.dumps(body).encode()

    extra = [] if front else ["--no-native-front"]
    with ocistore_server(tmp_path / "default", extra=extra) as server, server.client() as client:
        push_blobs(client, "a/b", amd.blobs)
        client.put(f"/v2/a/b/manifests/{amd.digest}", content=amd.manifest,
                   headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
        r = client.put("/v2/a/b/manifests/v1", content=index, headers={"Content-Type": OCI_INDEX})
        assert r.status_code == 400 and r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
        r = client.put(
            "/v2/a/b/manifests/f",
            content=foreign("https://example.com/l"),
            headers={"Content-Type": OCI_MANIFEST},
        )
        assert r.status_code == 201, r.text
    section = {
        "manifests": {
            "indexes": {"platforms": "none"},
            "urls": {"allow": ["^https://example\\.com/"]},
        }
    }
    config = config_file(tmp_path, section)
    with (
        ocistore_server(tmp_path / "sparse", extra=[*extra, "--config", str(config)]) as server,
        server.client() as client,
    ):
        push_blobs(client, "a/b", amd.blobs)
        client.put(f"/v2/a/b/manifests/{amd.digest}", content=amd.manifest,
                   headers={"Content-Type": OCI_MANIFEST})  # fmt: skip
        r = client.put("/v2/a/b/manifests/v1", content=index, headers={"Content-Type": OCI_INDEX})
        assert r.status_code == 201, r.text
        assert client.get("/v2/a/b/manifests/v1").content == index
        missing = client.get(f"/v2/a/b/manifests/{arm.digest}")
        assert (
            missing.status_code == 404 and missing.json()["errors"][0]["code"] == "MANIFEST_UNKNOWN"
        )
        for url, status in (("https://example.com/l", 201), ("https://example.org/l", 400)):
            r = client.put(
                "/v2/a/b/manifests/f", content=foreign(url), headers={"Content-Type": OCI_MANIFEST}
            )
            assert r.status_code == status, r.text
        assert r.json()["errors"][0]["code"] == "MANIFEST_BLOB_UNKNOWN"
