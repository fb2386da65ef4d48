"""Settings from flags and CONTROLPLANE_* environment variables."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from pydantic import ValidationError

from controlplane.errors import SettingsError
from controlplane.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CONTROLPLANE_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings()
    assert settings.clusters == ["default"]
    # Loopback by default: serving xDS to the network is a choice (TLS and authentication, or --xds-insecure).
    assert (settings.xds_address, settings.xds_port, settings.label_prefix) == ("127.0.0.1", 18000, "xds.")
    assert (settings.xds_insecure, settings.metrics_insecure) == (False, False)


def test_clusters_from_the_environment_are_comma_separated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_CLUSTERS", "a, b")
    assert Settings().clusters == ["a", "b"]


def test_environment_values_are_typed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CONTROLPLANE_XDS_PORT", "18001")
    monkeypatch.setenv("CONTROLPLANE_POLL_INTERVAL_SECONDS", "0.5")
    monkeypatch.setenv("CONTROLPLANE_LABEL_PREFIX", "mesh/")
    monkeypatch.setenv("CONTROLPLANE_REGION", "eu-west-1")
    settings = Settings()
    assert (settings.xds_port, settings.poll_interval_seconds, settings.label_prefix, settings.region) == (
        18001,
        0.5,
        "mesh/",
        "eu-west-1",
    )


def test_flags_take_a_list_or_a_string() -> None:
    assert Settings(clusters=["x"]).clusters == ["x"]
    assert Settings(clusters="x,,y ").clusters == ["x", "y"]


@pytest.mark.parametrize(
    "name,value,field",
    [
        ("CONTROLPLANE_CLUSTERS", " , ", "clusters"),
        ("CONTROLPLANE_XDS_PORT", "70000", "xds_port"),
        ("CONTROLPLANE_XDS_PORT", "http", "xds_port"),
        ("CONTROLPLANE_POLL_INTERVAL_SECONDS", "0", "poll_interval_seconds"),
        ("CONTROLPLANE_LOG_LEVEL", "trace", "log_level"),
        ("CONTROLPLANE_LOG_FORMAT", "xml", "log_format"),
    ],
)
def test_invalid_environment_values_name_the_setting(monkeypatch: pytest.MonkeyPatch, name: str, value: str, field: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as caught:
        Settings()
    assert [error["loc"] for error in caught.value.errors()] == [(field,)]


@pytest.mark.parametrize("prefix", ["", "x y", "xds.\t"])
def test_a_label_prefix_with_spaces_is_refused_with_an_example(monkeypatch: pytest.MonkeyPatch, prefix: str) -> None:
    monkeypatch.setenv("CONTROLPLANE_LABEL_PREFIX", prefix)
    with pytest.raises(ValidationError) as caught:
        Settings()
    (error,) = caught.value.errors()
    assert error["loc"] == ("label_prefix",)
    assert "expected a non-empty label prefix without spaces, e.g. 'xds.'" in error["msg"]


def test_unknown_settings_are_refused() -> None:
    with pytest.raises(ValidationError):
        Settings(cluster=["typo"])  # type: ignore[call-arg]


def test_readiness_window_follows_the_full_read_interval() -> None:
    assert Settings(poll_interval_seconds=5).readiness_window_seconds == 70
    assert Settings(events_queue_url="https://sqs/q", resync_interval_seconds=300).readiness_window_seconds == 660
    assert Settings(readiness_stale_after_seconds=12).readiness_window_seconds == 12


@pytest.mark.parametrize("template", ["spiffe://x/{role}", "spiffe://x/{role}/{service}/{node}", "{role}{role}/{service}"])
def test_a_san_template_needs_role_and_service_once(template: str) -> None:
    with pytest.raises(ValidationError) as caught:
        Settings(xds_san_template=template)
    (error,) = caught.value.errors()
    assert error["loc"] == ("xds_san_template",) and "{role} and {service}" in error["msg"]


def test_admin_token_from_a_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "token").write_text("s3cret-from-file\n")
    monkeypatch.setenv("CONTROLPLANE_ADMIN_TOKEN_FILE", str(tmp_path / "token"))
    assert Settings().resolved_admin_token() == "s3cret-from-file"
    (tmp_path / "token").write_text("  \n")
    with pytest.raises(SettingsError, match="is empty"):
        Settings().resolved_admin_token()
    with pytest.raises(SettingsError, match="No such file"):
        Settings(admin_token_file=tmp_path / "missing").resolved_admin_token()


def test_admin_token_is_set_once() -> None:
    with pytest.raises(ValidationError, match="admin_token or admin_token_file"):
        Settings(admin_token="a", admin_token_file=Path("/dev/null"))
