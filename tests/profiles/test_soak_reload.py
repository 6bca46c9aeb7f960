"""Soak: real handshakes in threads while stores rotate four ways and the profile file is rewritten.

The review's soak (issue 11), kept. For about 20 seconds (``MTLS_SOAK_SECONDS``):

* four profiles, each on its own mutual-TLS backend that trusts only the root CA;
  client certificates come from an intermediate, so a keystore that lost its
  intermediate is refused by the backend (``unknown ca``), as in production;
* each profile's store rotates its own way, at its own pace, never waiting for the
  profile set: an atomic rename (JKS), an in-place rewrite (PEM, truncated then
  written in two parts, the first of which parses on its own), a Kubernetes ``..data``
  swap (PKCS#12 keystore and JKS truststore together), and delete-then-recreate (PEM,
  missing for a moment, then written in two parts);
* the profile file is rewritten in place, gaining and losing a fifth profile;
* one thread per profile handshakes through ``context_for`` all the while.

Asserted (correctness, never throughput): no handshake fails; every handshake presents
its own profile's identity, and each thread sees generations only move forward; after
a quiet period every profile serves its last generation and the set is healthy; file
descriptors and threads are back where they started.

Every partial state a writer leaves lasts a few milliseconds plus scheduling, far less
than the settle delay used here: a correct engine cannot be caught out by timing.
"""

from __future__ import annotations

import os
import random
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from mtls import SSLProfileSet
from mtls.testing import CA, MTLSServer, replace_atomically, swap_symlinked_dir
from tests._helpers import PASSWORD, profile, profile_xml, wait_for, whoami

SECONDS = float(os.environ.get("MTLS_SOAK_SECONDS", "20"))
# Its length is the caller's: pyproject's 10-minute timeout, plus that.
pytestmark = [pytest.mark.soak, pytest.mark.timeout(600 + SECONDS)]
SETTLE = 0.25  # far above any partial state the writers leave (a few ms)
STYLES = ("atomic", "inplace", "k8s", "recreate")


def _fds() -> int:
    return len(os.listdir("/proc/self/fd"))


class Rotator:
    """Rotates one profile's store in one style, generation after generation."""

    def __init__(self, style: str, inter: CA, root: CA, tmp: Path, stop: threading.Event) -> None:
        self.style = style
        self.inter = inter
        self.root = root
        self.stop = stop
        self.generation = 1
        self.rng = random.Random(style)  # reproducible pacing per style
        self.error: BaseException | None = None
        if style == "atomic":
            self.keystore = tmp / "atomic.jks"
        elif style == "inplace":
            self.keystore = tmp / "inplace.pem"
        elif style == "k8s":
            self.keystore = tmp / "secret" / "tls.p12"
        else:
            self.keystore = tmp / "recreate.pem"
        self.write(self.generation, initial=True)

    def cn(self, generation: int) -> str:
        return f"{self.style}-{generation}"

    def _pem_parts(self, generation: int) -> tuple[bytes, bytes]:
        identity = self.inter.issue_cert(self.cn(generation), common_name=self.cn(generation))
        # The first part (key and leaf) parses on its own: only settling keeps it out.
        return identity.private_key_pem + identity.cert_pem, self.inter.cert_pem

    def _pause(self) -> None:
        # The writer's own pace (the workload, not a wait for a condition).
        self.stop.wait(self.rng.uniform(0.0, 0.01))

    def write(self, generation: int, *, initial: bool = False) -> None:
        cn = self.cn(generation)
        if self.style == "atomic":
            data = self.inter.issue_cert(cn, common_name=cn).keystore().to_bytes(PASSWORD)
            replace_atomically(self.keystore, data)
        elif self.style == "k8s":
            ks = self.inter.issue_cert(cn, common_name=cn).keystore()
            swap_symlinked_dir(
                self.keystore.parent,
                {
                    "tls.p12": ks.to_bytes(PASSWORD, store_type="PKCS12"),
                    "trust.jks": self.root.truststore().to_bytes(PASSWORD),
                },
            )
        else:
            first, rest = self._pem_parts(generation)
            if initial:
                self.keystore.write_bytes(first + rest)
                return
            if self.style == "recreate":
                self.keystore.unlink()
                self._pause()
            fd = os.open(self.keystore, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, first)
                self._pause()
                os.write(fd, rest)
            finally:
                os.close(fd)

    def run(self) -> None:
        try:
            while not self.stop.wait(self.rng.uniform(0.3, 0.8)):
                self.write(self.generation + 1)
                self.generation += 1
        except BaseException as exc:  # reported by the test
            self.error = exc


def _profile_file(xml: Path, rotators: dict[str, Rotator], trust: Path, ports: dict[str, int]):
    def render(spare: bool) -> bytes:
        entries = []
        for style in STYLES:
            rot = rotators[style]
            store_trust = rot.keystore.parent / "trust.jks" if style == "k8s" else trust
            kind = (
                "PKCS12"
                if style == "k8s"
                else ("PEM" if style in ("inplace", "recreate") else "JKS")
            )
            entries.append(
                profile(f"localhost:{ports[style]}", rot.keystore, store_trust).replace(
                    "<Type>JKS</Type>", f"<Type>{kind}</Type>", 1
                )
            )
        if spare:
            entries.append(profile("spare.test:443", None, trust))
        return profile_xml(*entries).encode()

    return render


def test_soak_rotations_under_handshakes(tmp_path: Path) -> None:
    root = CA(name="soak root")
    inter = root.create_child_ca(name="soak intermediate")
    trust = tmp_path / "trust.jks"
    root.write_truststore(trust, PASSWORD)
    servers = {
        style: MTLSServer(root.issue_cert("localhost", "127.0.0.1"), client_ca=root).start()
        for style in STYLES
    }
    stop = threading.Event()
    try:
        ports = {style: server.port for style, server in servers.items()}
        rotators = {style: Rotator(style, inter, root, tmp_path, stop) for style in STYLES}
        xml = tmp_path / "sslprofiles.xml"
        render = _profile_file(xml, rotators, trust, ports)
        xml.write_bytes(render(False))

        threads_before = threading.active_count()
        fds_before = _fds()
        failures: list[str] = []
        seen: dict[str, list[int]] = {style: [] for style in STYLES}
        checks = {"profile_file_rewrites": 0}

        profiles = SSLProfileSet.from_xml(xml, reload_interval=0.02, settle_delay=SETTLE)

        def handshakes(style: str) -> Callable[[], None]:
            def loop() -> None:
                last = 0
                while not stop.is_set():
                    ctx = profiles.context_for("localhost", ports[style])
                    try:
                        assert ctx is not None, "no context"
                        cn = str(whoami(ctx, ports[style])["client_cn"])
                    except BaseException as exc:
                        failures.append(f"{style}: handshake failed: {exc!r}")
                        continue
                    name, _, number = cn.rpartition("-")
                    if name != style:
                        failures.append(f"{style}: presented another profile's identity {cn}")
                        continue
                    generation = int(number)
                    if generation < last:
                        failures.append(f"{style}: went back from generation {last} to {cn}")
                    last = generation
                    seen[style].append(generation)

            return loop

        def rewrite_profile_file() -> None:
            rng = random.Random("xml")
            spare = False
            while not stop.wait(rng.uniform(0.3, 0.8)):
                spare = not spare
                data = render(spare)
                cut = rng.randrange(1, len(data))
                fd = os.open(xml, os.O_WRONLY | os.O_TRUNC)
                try:
                    os.write(fd, data[:cut])
                    stop.wait(rng.uniform(0.0, 0.01))
                    os.write(fd, data[cut:])
                finally:
                    os.close(fd)
                checks["profile_file_rewrites"] += 1

        workers = [
            threading.Thread(target=handshakes(style), name=f"soak-{style}") for style in STYLES
        ]
        writers = [
            threading.Thread(target=rot.run, name=f"rotate-{s}") for s, rot in rotators.items()
        ]
        writers.append(threading.Thread(target=rewrite_profile_file, name="rotate-xml"))
        for thread in [*workers, *writers]:
            thread.start()
        try:
            stop.wait(SECONDS)  # the soak's length, not a wait for a condition
        finally:
            stop.set()
            for thread in [*workers, *writers]:
                thread.join(30)
        assert not any(t.is_alive() for t in [*workers, *writers])
        for rot in rotators.values():
            assert rot.error is None, rot.error

        try:
            # Quiet period: every profile must come to serve its last generation.
            final = {style: rot.cn(rot.generation) for style, rot in rotators.items()}

            def stale() -> dict[str, object]:
                """Each profile not yet serving its last generation, with what it serves."""
                status = profiles.status().to_dict()
                subjects = {
                    style: next(
                        (
                            p["subject"]
                            for p in status["profiles"]
                            if f"localhost:{ports[style]}" in p["servers"]
                        ),
                        None,
                    )
                    for style in STYLES
                }
                behind: dict[str, object] = {
                    s: subjects[s] for s in STYLES if f"CN={final[s]}," not in f"{subjects[s]},"
                }
                if not status["healthy"]:
                    behind["errors"] = status["last_error"]
                return behind

            try:
                wait_for(lambda: not stale(), timeout=20)
            except AssertionError:
                raise AssertionError(
                    f"stale after the quiet period: {stale()}; final: {final}; "
                    f"handshake failures: {len(failures)}, first: {failures[:3]}"
                ) from None
            for style in STYLES:
                ctx = profiles.context_for("localhost", ports[style])
                assert ctx is not None
                assert whoami(ctx, ports[style])["client_cn"] == final[style]
            # Flat: nothing grew with the number of reloads.
            wait_for(lambda: _fds() <= fds_before + 4, timeout=20)
            # + the reload thread; backend connection threads end as their sockets close
            wait_for(lambda: threading.active_count() <= threads_before + 1, timeout=20)
        finally:
            profiles.close()
        wait_for(lambda: threading.active_count() <= threads_before, timeout=20)

        assert not failures, f"{len(failures)} failures, first: {failures[:5]}"
        # The soak did exercise rotations (a sanity floor, not a throughput target).
        for style in STYLES:
            assert len(set(seen[style])) >= 2, (style, sorted(set(seen[style])))
        assert checks["profile_file_rewrites"] >= 2
        # (a shorter MTLS_SOAK_SECONDS asks for fewer: about three a second are seen)
        assert profiles.generation >= min(8, max(2, int(SECONDS))), profiles.generation
    finally:
        stop.set()
        for server in servers.values():
            server.close()
