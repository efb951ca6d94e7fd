"""Pure pieces: tokens, path cleaning, ranges, tus metadata, configuration."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from storage_proxy.api.public import parse_upload_metadata
from storage_proxy.config import (
    PosixVolumeOptions,
    S3VolumeOptions,
    StorageProxyConfig,
    VolumeConfig,
)
from storage_proxy.contract import ErrorCode, FileOp, TokenError, mint_token, verify_token
from storage_proxy.errors import BadRequest, InvalidPath, RangeNotSatisfiable
from storage_proxy.paths import clean_relpath, is_within
from storage_proxy.service import parse_range

SECRET = "unit-test-secret-0123456789abcdef-0123"


class TestTokens:
    def test_round_trip_keeps_every_claim(self) -> None:
        token = mint_token(
            SECRET, volume="v", folder_id="f1", op=FileOp.DOWNLOAD, path="a/b", ttl_s=30, now=1000
        )
        claims = verify_token(SECRET, token, now=1029)
        assert (claims.volume, claims.folder_id, claims.op, claims.path, claims.expires_at) == (
            "v",
            "f1",
            FileOp.DOWNLOAD,
            "a/b",
            1030,
        )

    def test_expiry_is_exact(self) -> None:
        token = mint_token(SECRET, volume="v", folder_id="f", op="list", ttl_s=30, now=1000)
        with pytest.raises(TokenError) as err:
            verify_token(SECRET, token, now=1030)
        assert err.value.code == ErrorCode.TOKEN_EXPIRED

    def test_tampered_or_foreign_tokens_are_invalid(self) -> None:
        token = mint_token(SECRET, volume="v", folder_id="f", op="list")
        header, payload, sig = token.split(".")
        for bad in (f"{header}.{payload}.{sig[::-1]}", "x.y.z", ""):
            with pytest.raises(TokenError) as err:
                verify_token(SECRET, bad)
            assert err.value.code == ErrorCode.TOKEN_INVALID
        with pytest.raises(TokenError):
            verify_token("a-different-secret-0123456789abcdef", token)

    def test_unknown_operation_and_bad_arguments_are_refused(self) -> None:
        with pytest.raises(ValueError):
            mint_token(SECRET, volume="v", folder_id="f", op="format-disk")
        with pytest.raises(ValueError):
            mint_token("", volume="v", folder_id="f", op="list")
        with pytest.raises(ValueError):
            mint_token(SECRET, volume="v", folder_id="f", op="list", ttl_s=0)


class TestPaths:
    @pytest.mark.parametrize(
        ("raw", "clean"),
        [("", ""), ("a", "a"), ("./a//b/", "a/b"), ("a/./b", "a/b"), ("é/ü", "é/ü")],
    )
    def test_clean(self, raw: str, clean: str) -> None:
        assert clean_relpath(raw) == clean

    @pytest.mark.parametrize(
        "raw", ["..", "a/..", "a/../b", "/abs", "\\abs", "a\x00b", "a\nb", "x" * 256, "a/" * 2100]
    )
    def test_refused(self, raw: str) -> None:
        with pytest.raises(InvalidPath):
            clean_relpath(raw)

    def test_root_refused_where_an_entry_is_needed(self) -> None:
        with pytest.raises(InvalidPath):
            clean_relpath("./", allow_root=False)

    def test_prefix_matches_whole_components(self) -> None:
        assert is_within("a/b", "a") and is_within("a", "a") and is_within("x", None)
        assert not is_within("ab", "a") and not is_within("b/a", "a")


@given(st.text(max_size=64))
def test_any_input_either_refused_or_confined_to_the_folder(raw: str) -> None:
    try:
        clean = clean_relpath(raw)
    except InvalidPath:
        return
    parts = clean.split("/") if clean else []
    assert not clean.startswith("/")
    assert all(p not in ("", ".", "..") for p in parts)
    assert not any(ord(c) < 32 or ord(c) == 127 for c in clean)
    assert clean_relpath(clean) == clean


class TestRanges:
    @pytest.mark.parametrize(
        ("header", "span"),
        [
            (None, None),
            ("bytes=0-9", (0, 10)),
            ("bytes=5-", (5, 100)),
            ("bytes=-10", (90, 100)),
            ("bytes=90-500", (90, 100)),
            ("bytes=-500", (0, 100)),
            ("bytes=1-2,4-5", None),
            ("items=1-2", None),
            ("bytes=9-3", None),
        ],
    )
    def test_parse(self, header: str | None, span: tuple[int, int] | None) -> None:
        assert parse_range(header, 100) == span

    @pytest.mark.parametrize("header", ["bytes=100-", "bytes=150-200"])
    def test_unsatisfiable(self, header: str) -> None:
        with pytest.raises(RangeNotSatisfiable):
            parse_range(header, 100)


class TestUploadMetadata:
    def test_parse(self) -> None:
        assert parse_upload_metadata("filename d29ybGQ=, path YS9i,flag") == {
            "filename": "world",
            "path": "a/b",
            "flag": "",
        }

    def test_bad_base64_is_a_bad_request(self) -> None:
        with pytest.raises(BadRequest):
            parse_upload_metadata("path ***")


class TestConfig:
    def test_toml_then_env_precedence(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        toml = tmp_path / "storage.toml"
        toml.write_text(
            'public_port = 7000\ncluster_secret = "from-file"\n'
            '[[volumes]]\nname = "nfs"\nbackend = "posix"\n'
            '[volumes.options]\nroot = "/srv/nfs"\nquota_mode = "none"\n'
            '[[volumes]]\nname = "s3"\nbackend = "s3"\n'
            '[volumes.options]\nendpoint_url = "http://127.0.0.1:8333"\nbucket = "b"\n'
            'access_key = "k"\nsecret_key = "s"\naddressing_style = "virtual"\n'
        )
        monkeypatch.setenv("BERTH_STORAGE_PUBLIC_PORT", "7100")
        config = StorageProxyConfig.load(toml)
        assert config.public_port == 7100
        assert config.cluster_secret.get_secret_value() == "from-file"
        posix, s3 = config.volumes
        assert isinstance(posix.options, PosixVolumeOptions) and posix.options.quota_mode == "none"
        assert isinstance(s3.options, S3VolumeOptions)
        assert s3.options.addressing_style == "virtual"
        assert config.advertised_public_url == "http://127.0.0.1:7100"

    def test_volumes_from_env_json(self, monkeypatch: pytest.MonkeyPatch) -> None:
        volumes = [{"name": "local", "backend": "posix", "options": {"root": "/data"}}]
        monkeypatch.setenv("BERTH_STORAGE_VOLUMES", json.dumps(volumes))
        config = StorageProxyConfig()
        assert config.volumes[0].options == PosixVolumeOptions(root=Path("/data"))

    @pytest.mark.parametrize(
        "volumes",
        [
            [{"name": "x", "backend": "posix", "options": {"root": "relative"}}],
            [{"name": "x", "backend": "posix", "options": {"bucket": "b"}}],
            [{"name": "x", "backend": "nfs4", "options": {}}],
            [
                {"name": "x", "backend": "posix", "options": {"root": "/a"}},
                {"name": "x", "backend": "posix", "options": {"root": "/b"}},
            ],
        ],
    )
    def test_bad_volumes_fail_at_startup(self, volumes: list[dict[str, object]]) -> None:
        with pytest.raises(ValidationError):
            StorageProxyConfig(volumes=volumes)  # type: ignore[arg-type]

    def test_every_field_is_documented(self) -> None:
        for model in (StorageProxyConfig, VolumeConfig, PosixVolumeOptions, S3VolumeOptions):
            for name, field in model.model_fields.items():
                assert field.description, f"{model.__name__}.{name} has no description"
