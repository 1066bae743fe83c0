"""Issue 14.12: the Python client installs offline.  The install command
documented in clients/python/README.md (the block after `<!-- install
-->`) is run as written, on Debian's python3 with nothing but Debian's
packages and no package index (no PyPI, no pip configuration): it makes a
fresh venv and installs the client into it, leaves nothing behind in the
source tree (no build/, no *.egg-info), and the installed copy talks to
the real convd."""

import os
import re
import subprocess
import uuid

import convdtest

PYDIR = convdtest.PYCLIENT
README = os.path.join(PYDIR, "README.md")


def documented_install():
    with open(README) as f:
        text = f.read()
    m = re.search(r"<!-- install -->\s*```sh\n(.*?)```", text, re.S)
    assert m, "no install block (<!-- install --> ```sh ...```) in README"
    return m.group(1)


def tree(path):
    found = set()
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            found.add(os.path.relpath(os.path.join(root, name), path))
    return found


def test_offline_install_into_fresh_venv(convd, tmp_path):
    script = documented_install()
    assert "--no-index" in script and "./clients/python" in script
    before = tree(PYDIR)
    venv = tmp_path / "venv"
    # Debian's python3 first in PATH; no pip configuration, no index
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("PIP_") and
           k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env.update(VENV=str(venv), PATH="/usr/bin:/bin:" + env.get("PATH", ""),
               PIP_CONFIG_FILE=os.devnull, HOME=str(tmp_path))
    r = subprocess.run(["sh", "-ec", script], cwd=convdtest.SRCDIR, env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=300)
    assert r.returncode == 0, r.stdout
    after = tree(PYDIR)
    assert after == before, f"left in the tree: {sorted(after - before)}"

    # the installed copy, imported from elsewhere, against convd
    user = f"inst-{uuid.uuid4().hex[:12]}"
    code = (
        "import asyncio, sys, convd_client\n"
        "from convd_client import AsyncConversationManager\n"
        "m = convd_client.ConversationManager(sys.argv[1])\n"
        "assert m.add_message(sys.argv[2], 'anthropic', 'user', 'hi')\n"
        "async def main():\n"
        "    async with AsyncConversationManager(sys.argv[1]) as a:\n"
        "        return await a.get_conversation_count(sys.argv[2])\n"
        "print(convd_client.__file__, asyncio.run(main()))\n")
    r = subprocess.run([str(venv / "bin" / "python"), "-c", code,
                        convd.socket, user], cwd=str(tmp_path), env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       text=True, timeout=60)
    assert r.returncode == 0, r.stdout
    path, count = r.stdout.split()
    assert path.startswith(str(venv) + "/"), path
    assert count == "1"
    r = subprocess.run([str(venv / "bin" / "pip"), "show", "convd-client"],
                       env=env, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    assert r.returncode == 0 and "Name: convd-client" in r.stdout, r.stdout
    # one version: the package's is the module's __version__
    with open(os.path.join(PYDIR, "convd_client", "__init__.py")) as f:
        version = re.search(r'^__version__ = "([^"]+)"', f.read(), re.M)[1]
    assert f"Version: {version}\n" in r.stdout, r.stdout
