"""mtls.integrations._boringssl: gRPC's own TLS library asked, by a server of its own,
whether it takes a key, a chain and each anchor (the integration tests show what
servers and channels do with its answers)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from mtls import SSLProfile, SSLProfileSet, StoreConfig, Truststore
from mtls.integrations import _boringssl
from mtls.integrations import grpc as mtls_grpc
from mtls.testing import CA
from tests._helpers import PASSWORD
from tests.integrations._grpc_backend import unreadable_to_grpc_ca


def test_grpc_is_asked_and_answers_for_each_item() -> None:
    key, chain = _boringssl._control()
    odd = unreadable_to_grpc_ca().public_bytes(Encoding.PEM)
    # A good identity, a good anchor, one gRPC cannot read, an unreadable key.
    assert _boringssl._probe(
        [(key, chain, None), (key, chain, chain), (key, chain, odd), (b"not a key", chain, None)]
    ) == [True, True, False, False]


def test_a_shortage_of_ports_changes_no_answer() -> None:
    """With the ephemeral ports all taken, a bind that needs one fails as a refusal
    does: good material was refused, and its anchors remembered as unreadable for the
    process's life (h181, h182). The probe holds a port of its own and binds every
    item to it (SO_REUSEPORT): with one ephemeral port in all, the answers are the
    same as with many."""
    if shutil.which("unshare") is None:
        pytest.skip("no unshare(1) here to give a process a port range of its own")
    odd = unreadable_to_grpc_ca().public_bytes(Encoding.PEM).decode()
    script = textwrap.dedent(
        """
        import sys
        from mtls.integrations import _boringssl
        key, chain = _boringssl._control()
        odd = sys.argv[1].encode()
        print(_boringssl._probe([(key, chain, None), (key, chain, chain), (key, chain, odd)]))
        """
    )
    # One ephemeral port in a network namespace of its own.
    done = subprocess.run(
        [
            "unshare",
            "-rn",
            "sh",
            "-c",
            "echo '40000 40000' > /proc/sys/net/ipv4/ip_local_port_range && exec "
            f'"{sys.executable}" -c "$0" "$1"',
            script,
            odd,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        # Not measured for coverage: a process in a namespace of its own.
        env={k: v for k, v in os.environ.items() if not k.startswith("COV_CORE")},
    )
    if done.returncode != 0 and "Operation not permitted" in done.stderr:
        pytest.skip(f"no user namespaces here: {done.stderr.strip()[-200:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "[True, True, False]"


def test_a_channel_never_gives_grpc_empty_roots(tmp_path: Path) -> None:
    """gRPC reads empty root certificates as none given: its default, public roots
    (h183). A truststore none of whose anchors gRPC reads gives a channel the probe's
    own certificate, which verifies no server."""
    odd = unreadable_to_grpc_ca()
    ca = CA()
    store = Truststore()
    store.add("odd", odd)
    store.save(tmp_path / "odd.jks", PASSWORD)
    ca.issue_cert("client").write_keystore(tmp_path / "client.jks", PASSWORD)
    profile = SSLProfile(
        servers=("backend:443",),
        keystore=StoreConfig(location=tmp_path / "client.jks", password=PASSWORD),
        truststore=StoreConfig(location=tmp_path / "odd.jks", password=PASSWORD),
    )
    with SSLProfileSet([profile], reload_interval=None) as profiles:
        material = profiles.material_for("backend", 443)
        assert material is not None and material.root_certificates
        assert _boringssl.judge(material).roots == b""
        assert mtls_grpc._channel_roots(material) == _boringssl.refuse_every_peer()
