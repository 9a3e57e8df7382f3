"""``airlock channels install`` refuses a component that does not fit its capabilities file, before writing anything
(``cli.install_check``): a Slack component with the template's file, a core module, a file for another world, and
the two arguments swapped (it says which is which). Through the real command; the home is compared before and after
(issue 9, item 1)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from clirun import one_line_error, run_cli, tree
from conftest import BUILT_CHANNELS, minimal_caps
from watguest import build_component

SLACK, TEMPLATE = BUILT_CHANNELS / "slack.wasm", BUILT_CHANNELS / "template-rust.capabilities.json"


@pytest.fixture(scope="module")
def wat(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_component(tmp_path_factory.mktemp("install-check-wat"))  # airlock:channel@0.1.0


def _caps(tmp_path: Path, **fields: str) -> Path:
    path = tmp_path / f"src-{len(fields)}" / "minimal.capabilities.json"
    path.parent.mkdir(exist_ok=True)
    path.write_text(json.dumps({**minimal_caps(), **fields}))
    return path


def test_a_component_with_another_channels_file_is_refused(airlock_home: Path) -> None:
    before = tree(airlock_home)
    err = one_line_error(run_cli(airlock_home, "channels", "install", str(SLACK), str(TEMPLATE)),
                         f"{TEMPLATE}: the component ({SLACK}) asks for /webhook/slack, and this file grants none "
                         "of it", "allows /webhook/template-rust", "another channel?")
    assert "auth.test" not in err  # the dry run's guest logs are not shown
    assert tree(airlock_home) == before
    fits = run_cli(airlock_home, "channels", "install", str(SLACK), str(SLACK.with_name("slack.capabilities.json")))
    assert fits.returncode == 0, fits.stderr
    assert fits.stderr == "", fits.stderr


def test_swapped_arguments_a_core_module_and_another_world_are_refused(airlock_home: Path, wat: Path,
                                                                       tmp_path: Path) -> None:
    caps = _caps(tmp_path)
    core = tmp_path / "core.wasm"
    core.write_bytes(b"\0asm\x01\0\0\0")  # an empty core module: valid WebAssembly, not a component
    before = tree(airlock_home)
    one_line_error(run_cli(airlock_home, "channels", "install", str(caps), str(wat)),
                   f"the arguments are swapped: the first is the component ({wat}), the second its capabilities "
                   f"file ({caps})")
    one_line_error(run_cli(airlock_home, "channels", "install", str(caps), str(caps)),
                   f"{caps}: the first argument is the component (.wasm), but this is a JSON file")
    one_line_error(run_cli(airlock_home, "channels", "install", str(wat), str(wat)),
                   f"{wat}: the second argument is the capabilities file, but this is a WebAssembly binary")
    one_line_error(run_cli(airlock_home, "channels", "install", str(core), str(caps)),
                   f"{core}: a core WebAssembly module, not a component")
    near = _caps(tmp_path, wit_version="0.3.1")
    one_line_error(run_cli(airlock_home, "channels", "install", str(wat), str(near)),
                   f"{near}: $.wit_version: 0.3.1 is the near:agent world, but the component ({wat}) is built for "
                   "airlock:channel/sandboxed-channel@0.1.0")
    assert tree(airlock_home) == before


def test_a_version_both_world_families_had_is_the_component_s_own(airlock_home: Path, tmp_path: Path) -> None:
    """0.1.0 is a version of airlock:channel and an older one of near:agent: for a near:agent 0.3.1 component the
    file is taken as its own family's older version (a warning, as IronClaw's 0.3.0 files for 0.3.1 components),
    not refused as another channel's file."""
    near_component = build_component(tmp_path / "near", world="near-0.3.1")
    proc = run_cli(airlock_home, "channels", "install", str(near_component), str(_caps(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    assert "$.wit_version: 0.1.0, but the component was built against near:agent/channel@0.3.1" in proc.stderr
