"""The browser tests' own setup: ``make chromium`` waits for another package manager to finish.

The Makefile's real recipe runs with a stand-in ``apt-get`` first (and alone) on the PATH, so
chromium is "not installed" and nothing is installed: it records its arguments and, while the
test says another apt holds the lists lock, answers ``update`` exactly as apt 2.6 does then (it
fails at once: that lock ignores ``DPkg::Lock::Timeout``, which ``install`` honours).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from tests.e2e.conftest import ROOT

APT_GET = r"""#!/bin/sh
echo "$*" >> "$APT_LOG"
case " $* " in
  *" update "*)
    held=$(cat "$LOCK_HELD_FOR")
    if [ "$held" -gt 0 ]; then
      echo $((held - 1)) > "$LOCK_HELD_FOR"
      echo "E: Could not get lock /var/lib/apt/lists/lock. It is held by process 4242 (apt-get)" >&2
      echo "E: Unable to lock directory /var/lib/apt/lists/" >&2
      exit 100
    fi ;;
esac
"""
UPDATE = "-o DPkg::Lock::Timeout=600 update -qq"
INSTALL = "-o DPkg::Lock::Timeout=600 install -y -qq chromium"


def make_chromium(
    tmp_path: Path, held_for: int, *variables: str
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """``make chromium`` while the lock is held for the next ``held_for`` updates; (result, apt-get calls)."""
    tools = tmp_path / "bin"
    tools.mkdir()
    (tools / "apt-get").write_text(APT_GET)
    (tools / "apt-get").chmod(0o755)
    for tool in ("cat", "env", "id", "sleep"):
        (tools / tool).symlink_to(shutil.which(tool) or f"/usr/bin/{tool}")
    (tmp_path / "held").write_text(str(held_for))
    log = tmp_path / "apt.log"
    log.touch()
    make = shutil.which("make") or "/usr/bin/make"
    result = subprocess.run(
        [make, "--no-print-directory", "chromium", "SUDO=", "APT_LOCK_PAUSE=0", *variables],
        cwd=ROOT,
        env={"PATH": str(tools), "APT_LOG": str(log), "LOCK_HELD_FOR": str(tmp_path / "held")},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return result, log.read_text().splitlines()


def test_make_chromium_waits_while_another_apt_holds_the_lock(tmp_path):
    result, calls = make_chromium(tmp_path, held_for=2)
    assert result.returncode == 0, result.stderr
    assert calls == [UPDATE, UPDATE, UPDATE, INSTALL]  # install itself waits: DPkg::Lock::Timeout


def test_make_chromium_gives_up_with_apts_words_when_the_lock_stays_held(tmp_path):
    result, calls = make_chromium(tmp_path, 1000, "APT_LOCK_TRIES=3")
    assert result.returncode != 0 and "Could not get lock /var/lib/apt/lists/lock" in result.stderr
    assert calls == [UPDATE] * 3
