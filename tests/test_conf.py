"""yyai.conf: one namespace of settings, each default written once, read from YYAI_* variables, writing nothing."""

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from yyai.conf import BY_NAME, SETTINGS, YyaiSettings, from_environment
from yyai.runtime.limits import RequestLimits
from yyai.runtime.manifest import BatchingSpec

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_come_from_the_runtime():
    settings = YyaiSettings({})
    assert settings.MAX_ROWS_PER_REQUEST == RequestLimits().max_rows
    assert settings.MAX_IMAGE_PIXELS == RequestLimits().max_pixels
    assert settings.MAX_ROWS_PER_BATCH == BatchingSpec().max_batch_size
    assert settings.MAX_ENQUEUED == BatchingSpec().max_enqueued
    assert settings.MAX_QUEUED_BYTES <= BatchingSpec().max_enqueued_bytes
    assert len(BY_NAME) == len(SETTINGS)


def test_environment_variables_are_parsed_and_checked():
    values = from_environment(
        {
            "YYAI_MAX_BODY_BYTES": "4096",
            "YYAI_FAST_PREDICT": "0",
            "YYAI_IMAGE_ROOT": "/tmp",
            "YYAI_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
            "UNRELATED": "x",
        }
    )
    assert values == {
        "MAX_BODY_BYTES": 4096,
        "FAST_PREDICT": False,
        "IMAGE_ROOT": Path("/tmp").resolve(),
        "TRUSTED_PROXIES": ("10.0.0.0/8", "127.0.0.1"),
    }
    with pytest.raises(ValueError, match="YYAI_MAX_BODY_BYTES='12' must be >= 1024"):
        from_environment({"YYAI_MAX_BODY_BYTES": "12"})
    with pytest.raises(ValueError, match="YYAI_PREDICT_PERMISSION='everyone' 'everyone' is not one of"):
        from_environment({"YYAI_PREDICT_PERMISSION": "everyone"})
    with pytest.raises(ValueError, match="unknown YYAI setting"):
        YyaiSettings({"MAX_BODYBYTES": 1}).MAX_BODY_BYTES


def test_old_names_are_aliases_that_log_a_deprecation_warning(caplog):
    values = from_environment({"YYAI_MAX_BATCH": "7", "YYAI_MAX_BATCH_SIZE": "9"})
    with caplog.at_level(logging.WARNING, logger="yyai.conf"):
        settings = YyaiSettings(values)
        assert (settings.MAX_ROWS_PER_REQUEST, settings.MAX_ROWS_PER_BATCH) == (7, 9)
    assert "MAX_BATCH (YYAI_MAX_BATCH) is deprecated: it is MAX_ROWS_PER_REQUEST" in caplog.text
    assert "MAX_BATCH_SIZE (YYAI_MAX_BATCH_SIZE) is deprecated: it is MAX_ROWS_PER_BATCH" in caplog.text


def test_tests_change_settings_through_the_yyai_dict(yyai):
    from yyai.conf import yyai_settings

    default = yyai_settings.MAX_BODY_BYTES  # read once: kept as an attribute until the settings change
    yyai.MAX_BODY_BYTES = 2048
    assert yyai_settings.MAX_BODY_BYTES == 2048 != default
    yyai.MAX_BODY_BYTES = 4096
    assert yyai_settings.MAX_BODY_BYTES == 4096


def test_importing_settings_writes_nothing(tmp_path):
    data = tmp_path / "data"
    env = {
        **os.environ,
        "YYAI_DATA_DIR": str(data),
        "DJANGO_SECRET_KEY": "k" * 50,
        "DJANGO_SETTINGS_MODULE": "aiserver.settings",
    }
    done = subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; django.setup(); from yyai.conf import yyai_settings; print(yyai_settings.MODEL_STORE)",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert not data.exists(), "importing settings created the data folder"
    done = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**env, "DJANGO_SECRET_KEY": ""},
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert (data / "secret_key").stat().st_mode & 0o777 == 0o600, "manage.py prepares the data folder"


def test_the_memory_budget_reads_bytes_units_and_a_share_of_the_host():
    ram = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    for raw, size in [("2147483648", 2**31), ("512M", 512 * 2**20), ("4G", 4 * 2**30), ("1.5GiB", 3 * 2**29)]:
        assert from_environment({"YYAI_MEMORY_BUDGET": raw}) == {"MEMORY_BUDGET": size}
    assert from_environment({"YYAI_MEMORY_BUDGET": "40%"}) == {"MEMORY_BUDGET": int(ram * 0.4)}
    assert from_environment({"YYAI_MEMORY_BUDGET": "unlimited"}) == {"MEMORY_BUDGET": None}
    assert YyaiSettings({}).MEMORY_BUDGET is None, "unlimited by default, as before"
    for raw, words in [("lots", "is not a size"), ("150%", "is not a size"), ("12", "at least 1M")]:
        with pytest.raises(ValueError, match=f"YYAI_MEMORY_BUDGET='{raw}' .*{words}"):
            from_environment({"YYAI_MEMORY_BUDGET": raw})
