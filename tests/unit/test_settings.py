"""Settings from flags and CONTROLPLANE_* environment variables."""

from __future__ import annotations

import os

import pytest
from pydantic import ValidationError

from controlplane.settings import Settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("CONTROLPLANE_"):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = Settings()
    assert settings.clusters == ["default"]
    assert (settings.xds_address, settings.xds_port, settings.label_prefix) == ("0.0.0.0", 18000, "xds.")


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
