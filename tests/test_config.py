import copy

import dask.config
import pytest
import yaml

from seisgrid import config


@pytest.fixture(autouse=True)
def _restore_config():
    """Each test may refresh the configuration; put the session's back afterwards."""
    saved = copy.deepcopy(dask.config.config)
    yield
    dask.config.config.clear()
    dask.config.config.update(saved)


def _yaml_defaults() -> dict:
    with open(config.DEFAULTS_PATH) as f:
        return yaml.safe_load(f)["seisgrid"]


def test_defaults_come_from_the_package_yaml():
    config.refresh(environ={})
    defaults = _yaml_defaults()
    assert config.get("ingest.chunk_seconds") == defaults["ingest"]["chunk_seconds"] == 3600
    assert config.get("cluster.default") == "local"
    assert config.get("synth.sampling_rates") == [100.0]
    assert config.get("storage.s3.endpoint_url") is None
    assert config.get("no.such.key", default="fallback") == "fallback"


def test_every_yaml_key_is_in_effective():
    config.refresh(environ={})
    effective = config.effective()
    for section, values in _yaml_defaults().items():
        assert section in effective
        if isinstance(values, dict):
            missing = set(values) - set(effective[section])
            assert not missing, f"seisgrid.{section}: {sorted(missing)} missing from effective()"
    assert set(_yaml_defaults()["ingest"]) <= set(effective["ingest"])
    for key, value in _yaml_defaults()["ingest"].items():
        assert effective["ingest"][key] == value


def test_effective_is_a_copy():
    effective = config.effective()
    effective["ingest"]["chunk_seconds"] = -1
    assert config.get("ingest.chunk_seconds") != -1


def test_environment_override_is_typed():
    config.refresh(environ={"SEISGRID_INGEST__CHUNK_SECONDS": "1800"})
    value = config.get("ingest.chunk_seconds")
    assert value == 1800
    assert isinstance(value, int)
    # neighbours in the same section keep their defaults
    assert config.get("ingest.shard_seconds") == 86400


def test_environment_override_nested_and_strings():
    config.refresh(
        environ={
            "SEISGRID_STORAGE__S3__ENDPOINT_URL": "http://127.0.0.1:5000",
            "SEISGRID_SYNTH__SAMPLING_RATES": "[100.0, 40.0]",
            "UNRELATED": "1",
        }
    )
    assert config.get("storage.s3.endpoint_url") == "http://127.0.0.1:5000"
    assert config.get("synth.sampling_rates") == [100.0, 40.0]


def test_refresh_forgets_previous_environment():
    config.refresh(environ={"SEISGRID_INGEST__CHUNK_SECONDS": "1800"})
    assert config.get("ingest.chunk_seconds") == 1800
    config.refresh(environ={})
    assert config.get("ingest.chunk_seconds") == 3600


def test_dask_prefixed_environment_works_too():
    config.refresh(environ={"DASK_SEISGRID__INGEST__COMPRESSION_LEVEL": "5"})
    assert config.get("ingest.compression_level") == 5
    # SEISGRID_* wins over DASK_SEISGRID__*
    config.refresh(
        environ={
            "DASK_SEISGRID__INGEST__COMPRESSION_LEVEL": "5",
            "SEISGRID_INGEST__COMPRESSION_LEVEL": "7",
        }
    )
    assert config.get("ingest.compression_level") == 7


def test_explicit_override_wins():
    config.refresh(environ={"SEISGRID_INGEST__CHUNK_SECONDS": "1800"})
    assert config.get("ingest.chunk_seconds", override=600) == 600
    # None means "not given": the configured value is used
    assert config.get("ingest.chunk_seconds", override=None) == 1800
    # a falsy but given value still wins
    assert config.get("ingest.chunk_seconds", override=0) == 0


def test_dask_config_set_is_visible():
    config.refresh(environ={})
    with dask.config.set({"seisgrid.ingest.chunk_seconds": 60}):
        assert config.get("ingest.chunk_seconds") == 60
    assert config.get("ingest.chunk_seconds") == 3600


def test_defaults_survive_a_dask_refresh():
    dask.config.refresh(env={})
    assert config.get("ingest.chunk_seconds") == 3600


def test_data_dir_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("SEISGRID_DATA", str(tmp_path))
    assert config.data_dir() == tmp_path
    monkeypatch.delenv("SEISGRID_DATA")
    config.refresh(environ={"SEISGRID_DATA": str(tmp_path)})
    assert config.data_dir() == tmp_path


def test_option_specs_match_the_yaml():
    specs = config.option_specs("ingest")
    assert [name for name, _, _ in specs] == list(_yaml_defaults()["ingest"])
    assert {name: default for name, default, _ in specs} == _yaml_defaults()["ingest"]
    assert all(help_text for _, _, help_text in specs), "every ingest option needs a YAML comment"
