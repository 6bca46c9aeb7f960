"""mtls.integrations._boringssl: gRPC's own TLS library asked, by a server of its own,
whether it takes a key, a chain and each anchor (the integration tests show what
servers and channels do with its answers)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import textwrap

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from mtls.integrations import _boringssl
from tests.integrations._grpc_backend import unreadable_to_grpc_ca


def test_grpc_is_asked_and_answers_for_each_item() -> None:
    key, chain = _boringssl._control()
    odd = unreadable_to_grpc_ca().public_bytes(Encoding.PEM)
    # A good identity, a good anchor, one gRPC cannot read, an unreadable key.
    assert _boringssl._probe(
        [(key, chain, None), (key, chain, chain), (key, chain, odd), (b"not a key", chain, None)]
    ) == [True, True, False, False]


def test_a_port_short_of_binding_is_not_a_refusal() -> None:
    """With the ephemeral ports all taken, a bind fails as a refusal does: good
    material was refused for good, and its anchors cached as unreadable (h181). The
    control item is bound again after each refusal; when it fails too, the answer is
    "not asked" (None), and the verdict lapses, to be asked again."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) here to give a process a port range of its own")
    script = textwrap.dedent(
        """
        from mtls.integrations import _boringssl
        key, chain = _boringssl._control()
        print(_boringssl._probe([(key, chain, None), (key, chain, chain)]))
        """
    )
    # One ephemeral port in a network namespace of its own: the first bind takes it.
    done = subprocess.run(
        [
            "unshare",
            "-rn",
            "sh",
            "-c",
            "echo '40000 40000' > /proc/sys/net/ipv4/ip_local_port_range && exec "
            f'"{sys.executable}" -c "$0"',
            script,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip(f"no user namespaces here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[True, None]"
