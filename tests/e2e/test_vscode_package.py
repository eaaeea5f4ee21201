"""The VS Code extension's .vsix: built offline by ``npm run package``, and holding what VS Code needs.

The package is a zip: the manifest with its contributions, one bundled script (vscode-languageclient
inside, ``vscode`` left to the editor), the webview's files and the config schema for ``jsonValidation``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import pytest

from e2e.conftest import ROOT

EXTENSION = ROOT / "vscode-extension"
NODE = shutil.which("node")
NPM = shutil.which("npm")

pytestmark = [
    pytest.mark.skipif(NODE is None or NPM is None, reason="node and npm are not installed"),
    pytest.mark.timeout(300),
]

FILES = {
    "[Content_Types].xml",
    "extension.vsixmanifest",
    "extension/package.json",
    "extension/readme.md",
    "extension/LICENSE.txt",
    "extension/dist/extension.js",
    "extension/media/filter-editor.html",
    "extension/media/filter-editor.js",
    "extension/media/filter-editor.css",
    "extension/schema/mirrord.schema.json",
}
COMMANDS = {
    "pymirrord.selectTarget",
    "pymirrord.showSessions",
    "pymirrord.stopSession",
    "pymirrord.testFilter",
    "pymirrord.editFilter",
}
# Loads the bundle with a stand-in `vscode` module (any name is an empty class) and lists its exports.
LOAD_BUNDLE = """
const Module = require('node:module');
const stub = new Proxy({}, {
  get: (target, key) => (key in target ? target[key] : (target[key] = class {})),
});
const load = Module._load;
Module._load = function (request, ...rest) {
  return request === 'vscode' ? stub : load.call(this, request, ...rest);
};
console.log(JSON.stringify(Object.keys(require(process.argv[1]))));
"""


@pytest.fixture(scope="module")
def vsix(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for tool in ("@vscode/vsce", "esbuild"):
        if not (ROOT / "node_modules" / tool / "package.json").exists():
            pytest.fail(f"{tool} is not installed: run `npm ci` at the repository root (setup.sh --dev does)")
    output = tmp_path_factory.mktemp("vsix") / "pymirrord.vsix"
    assert NPM is not None
    # No registry: everything the package needs is installed already.
    env = {**os.environ, "npm_config_offline": "true"}
    result = subprocess.run(
        [NPM, "run", "package", "--", str(output)],
        cwd=EXTENSION,
        capture_output=True,
        text=True,
        timeout=240,
        env=env,
        check=False,
    )
    assert result.returncode == 0, (result.stdout + result.stderr)[-8000:]
    assert output.exists(), result.stdout[-4000:]
    return output


def _manifest(vsix: Path) -> dict[str, Any]:
    with zipfile.ZipFile(vsix) as archive:
        data: dict[str, Any] = json.loads(archive.read("extension/package.json"))
    return data


def test_the_package_holds_exactly_what_the_extension_needs(vsix: Path) -> None:
    with zipfile.ZipFile(vsix) as archive:
        names = set(archive.namelist())
        assert names == FILES
        for name in ("filter-editor.html", "filter-editor.js", "filter-editor.css"):
            assert archive.read(f"extension/media/{name}") == (EXTENSION / "media" / name).read_bytes()
        assert (
            archive.read("extension/schema/mirrord.schema.json")
            == (ROOT / "schema" / "mirrord.schema.json").read_bytes()
        )
        bundle = archive.read("extension/dist/extension.js").decode()
    required = set(re.findall(r'require\("([^"]+)"\)', bundle))
    assert "vscode" in required
    assert not {name for name in required if not name.startswith("node:")} - {
        "vscode",
        "child_process",
        "crypto",
        "fs",
        "net",
        "os",
        "path",
        "util",
    }, "everything but vscode and node's own modules is bundled"


def test_the_bundle_loads_and_exports_activate(vsix: Path, tmp_path: Path) -> None:
    with zipfile.ZipFile(vsix) as archive:
        archive.extract("extension/dist/extension.js", tmp_path)
    assert NODE is not None
    result = subprocess.run(
        [NODE, "-e", LOAD_BUNDLE, str(tmp_path / "extension" / "dist" / "extension.js")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert json.loads(result.stdout) == ["activate", "deactivate"]


def test_the_packaged_manifest_contributes_commands_views_and_settings(vsix: Path) -> None:
    manifest = _manifest(vsix)
    assert manifest["main"] == "./dist/extension.js"
    assert "dependencies" not in manifest and "scripts" not in manifest
    contributes = manifest["contributes"]
    assert {command["command"] for command in contributes["commands"]} == COMMANDS
    assert [view["id"] for view in contributes["views"]["debug"]] == ["pymirrord.sessions"]
    assert contributes["viewsWelcome"][0]["view"] == "pymirrord.sessions"
    [stop] = contributes["menus"]["view/item/context"]
    assert stop["command"] == "pymirrord.stopSession" and "viewItem == pymirrordSession" in stop["when"]
    assert set(contributes["configuration"]["properties"]) == {"pymirrord.path", "pymirrord.enabled"}
    assert set(manifest["activationEvents"]) >= {
        "workspaceContains:.mirrord/**",
        "onDebugResolve:debugpy",
        "onDebugResolve:python",
        "onView:pymirrord.sessions",
        "onCommand:pymirrord.editFilter",
    }
    [validation] = contributes["jsonValidation"]
    assert validation["url"] == "./schema/mirrord.schema.json"
    # The manifest in the package is the repository's, apart from what packaging changes.
    source = json.loads((EXTENSION / "package.json").read_text(encoding="utf-8"))
    assert contributes == source["contributes"]
    assert manifest["activationEvents"] == source["activationEvents"]
