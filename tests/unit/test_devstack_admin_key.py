"""``make status`` shows the local admin key ``make up`` saved, and says when there is none."""

from __future__ import annotations

from pathlib import Path

from tributary_devstack.admin_key import read_admin_key
from tributary_devstack.cli import format_status
from tributary_devstack.config import StackConfig

KEY = "trb_0123456789ab_" + "K" * 40


def test_status_prints_the_saved_key_and_where_it_is(tmp_path: Path) -> None:
    config = StackConfig(run_dir=tmp_path)
    config.admin_key_file.write_text(KEY + "\n")
    assert read_admin_key(config) == KEY
    shown = format_status([], config)
    assert f"in {config.admin_key_file}): {KEY}" in shown
    assert f"Authorization: Bearer {KEY}" in shown
    # The web inspector, signed in from the URL fragment (never sent to the server).
    assert f"inspector: {config.gateway_url}/ui/#key={KEY}" in shown


def test_status_without_a_key_says_how_to_get_one(tmp_path: Path) -> None:
    config = StackConfig(run_dir=tmp_path)
    assert read_admin_key(config) is None
    assert "API key: none yet ('make up' issues one)" in format_status([], config)
