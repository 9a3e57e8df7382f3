"""Which world the host runs a component as: by the ``channel-host`` version it imports, with world 0.2.0's optional
interfaces found by their exports. Components are wasm-tools "dummies" of each world in ``wit/channel.wit`` (their
functions trap, which loading does not notice)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from watguest import REPO, _wasm_tools

from airlock.channels.activation import wit_version_note
from airlock.errors import ComponentError
from airlock.runtime.engine import Runtime

WIT = REPO / "wit"


def dummy(tmp: Path, world: str, wit: Path = WIT) -> Path:
    core, out = tmp / f"{world}.core.wasm", tmp / f"{world}.wasm"
    tool = _wasm_tools()
    subprocess.run([tool, "component", "embed", str(wit), "--world", f"airlock:channel/{world}", "--dummy",
                    "-o", str(core)], check=True, capture_output=True)
    subprocess.run([tool, "component", "new", str(core), "-o", str(out)], check=True, capture_output=True)
    return out


@pytest.mark.parametrize(("world", "optional"), [
    ("sandboxed-channel", ()),
    ("delivering-channel", ("delivery",)),
    ("editing-channel", ("delivery", "edits")),
    ("reacting-channel", ("delivery", "reactions")),
    ("interactive-channel", ("delivery", "edits", "reactions")),
])
def test_each_0_2_0_world_loads_with_its_optional_exports(runtime: Runtime, tmp_path: Path, world: str,
                                                          optional: tuple[str, ...]) -> None:
    loaded = runtime.load(dummy(tmp_path, world))
    assert loaded.world.name == "airlock:channel/sandboxed-channel@0.2.0"
    assert loaded.world.host_interface == "airlock:channel/channel-host@0.2.0"
    assert loaded.optional_exports == optional
    extra = {name for name in loaded.exports if "." in name}
    expected = {"delivery.on-respond", "delivery.on-broadcast"} if "delivery" in optional else set()
    expected |= {"edits.on-edit"} if "edits" in optional else set()
    expected |= {"reactions.on-react"} if "reactions" in optional else set()
    assert extra == expected


def test_the_frozen_0_1_0_world_is_still_run_as_0_1_0(runtime: Runtime, tmp_path: Path) -> None:
    loaded = runtime.load(dummy(tmp_path, "sandboxed-channel", WIT / "versions" / "0.1.0"))
    assert loaded.world.name == "airlock:channel/sandboxed-channel@0.1.0"
    assert loaded.optional_exports == () and "on-respond" in loaded.exports


def test_an_optional_interface_missing_a_function_is_refused(runtime: Runtime, tmp_path: Path) -> None:
    wit = tmp_path / "wit"
    wit.mkdir()
    text = (WIT / "channel.wit").read_text()
    # a hand-made world whose `delivery` lacks on-broadcast: not built against Airlock's WIT
    text = text.replace("    on-broadcast: func(user-id: string, response: agent-response) -> result<option<string>, "
                        "send-error>;\n", "")
    (wit / "channel.wit").write_text(text)
    with pytest.raises(ComponentError, match=r"delivery@0\.2\.0 lacks the export on-broadcast"):
        runtime.load(dummy(tmp_path, "delivering-channel", wit))


def test_a_0_1_0_capabilities_file_fits_a_0_2_0_component_of_airlocks_world() -> None:
    assert wit_version_note("0.1.0", "0.2.0", additive=True) is None  # Airlock's package only adds
    assert wit_version_note("0.3.0", "0.2.0", additive=True) is not None  # a file newer than the component
    assert wit_version_note("0.1.0", "0.2.0") is not None  # other 0.x packages: the minor is the family
