"""The seed's rotation, both halves in Python: the gateway (an SSLProfileSet behind
httpx) calls the backend (a RotatingServerContext). The gateway's new certificate is
trusted by the backend first, then the gateway's keystore is replaced: no request is
refused at any point. The negative twin: the other order refuses."""

from __future__ import annotations

import threading
from pathlib import Path

import httpx
import pytest

import mtls
from mtls.integrations.httpx import MTLSTransport
from mtls.testing import CA, replace_atomically
from tests._helpers import PASSWORD, profile, profile_xml, wait_for
from tests.servers._servers import stdlib_server


class Seed:
    """backend.jks + backend-truststore.jks (trusting gateway.cer itself, as the seed
    imports it), gateway.jks + client-truststore.jks, and sslprofiles.xml."""

    def __init__(self, root: Path) -> None:
        self.root = root
        server_ca = CA(name="backend CA")
        server_ca.issue_cert("localhost", "127.0.0.1").write_keystore(
            root / "backend.jks", PASSWORD
        )
        server_ca.write_truststore(root / "client-truststore.jks", PASSWORD)
        self.gateways = [self._gateway() for _ in range(2)]
        (root / "gateway.jks").write_bytes(self.gateways[0].to_bytes(PASSWORD))
        self.trust(self.gateways[0])

    @staticmethod
    def _gateway() -> mtls.Keystore:
        return mtls.Keystore.generate("gateway", "CN=gateway", key_type="EC")

    @staticmethod
    def serial(keystore: mtls.Keystore) -> int:
        return keystore.certificate("gateway").serial_number

    def trust(self, *gateways: mtls.Keystore) -> None:
        store = mtls.Truststore()
        for index, gateway in enumerate(gateways):
            store.add(f"gateway-{index}", gateway.certificate("gateway"))
        replace_atomically(self.root / "backend-truststore.jks", store.to_bytes(PASSWORD))

    def rotate_gateway(self) -> None:
        replace_atomically(self.root / "gateway.jks", self.gateways[1].to_bytes(PASSWORD))

    def backend(self) -> mtls.RotatingServerContext:
        return mtls.RotatingServerContext(
            self.root / "backend.jks",
            self.root / "backend-truststore.jks",
            password=PASSWORD,
            settle_delay=0,
        )

    def profiles(self, port: int) -> mtls.SSLProfileSet:
        xml = self.root / "sslprofiles.xml"
        xml.write_text(
            profile_xml(
                profile(
                    f"localhost:{port}",
                    self.root / "gateway.jks",
                    self.root / "client-truststore.jks",
                )
            )
        )
        return mtls.SSLProfileSet.from_xml(xml, settle_delay=0)


class Caller:
    """Calls the backend through the profile set without pause, on a thread, and
    keeps every answer's client serial and every failure."""

    def __init__(self, profiles: mtls.SSLProfileSet, port: int) -> None:
        self.client = httpx.Client(transport=MTLSTransport(profiles), timeout=10)
        self.url = f"https://localhost:{port}/"
        self.serials: list[int] = []
        self.failures: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="test-caller")

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = self.client.get(self.url)
                response.raise_for_status()
                self.serials.append(response.json()["client_serial"])
            except (httpx.HTTPError, mtls.MTLSError) as exc:
                self.failures.append(exc)

    def __enter__(self) -> Caller:
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.close()

    def calls(self) -> int:
        return len(self.serials) + len(self.failures)


def test_trust_first_then_rotate_refuses_nothing(tmp_path: Path) -> None:
    seed = Seed(tmp_path)
    first, second = (Seed.serial(g) for g in seed.gateways)
    with seed.backend() as backend, stdlib_server(backend.context) as port:
        with seed.profiles(port) as profiles, Caller(profiles, port) as caller:
            wait_for(lambda: caller.calls() >= 3)
            seed.trust(seed.gateways[0], seed.gateways[1])  # 1. the backend trusts both
            assert backend.reload() is True
            mark = caller.calls()
            wait_for(lambda: caller.calls() >= mark + 3)
            seed.rotate_gateway()  # 2. then the gateway rotates
            assert profiles.reload() is True
            wait_for(lambda: second in caller.serials)
            mark = caller.calls()
            wait_for(lambda: caller.calls() >= mark + 3)
            seed.trust(seed.gateways[1])  # 3. the old certificate withdrawn
            assert backend.reload() is True
            mark = caller.calls()
            wait_for(lambda: caller.calls() >= mark + 3)
        assert caller.failures == []
        assert caller.serials[0] == first and caller.serials[-1] == second
        # Once the gateway rotated, it never went back.
        assert first not in caller.serials[caller.serials.index(second) :]


def test_rotating_the_gateway_first_is_refused(tmp_path: Path) -> None:
    seed = Seed(tmp_path)
    with (
        seed.backend() as backend,
        stdlib_server(backend.context) as port,
        seed.profiles(port) as profiles,
        httpx.Client(transport=MTLSTransport(profiles), timeout=10) as client,
    ):
        assert client.get(f"https://localhost:{port}/").json()["client_cn"] == "gateway"
        seed.rotate_gateway()  # before the backend trusts the new certificate
        assert profiles.reload() is True
        with pytest.raises(httpx.HTTPError):
            client.get(f"https://localhost:{port}/")
        seed.trust(seed.gateways[1])  # trusted now: in, with no restart of either side
        assert backend.reload() is True
        answer = client.get(f"https://localhost:{port}/").json()
        assert answer["client_serial"] == Seed.serial(seed.gateways[1])
