"""One policy for the work a store file may cause before it is known to be genuine.

Every reader charges the same :class:`WorkBudget` before it runs a key derivation
(JKS/JCEKS key entries, BKS/UBER MACs, the PKCS#12 MAC and PBE, encrypted PEM keys)
or decrypts with our pure-Python RC2 (40-bit, and PBES1's 64-bit). Work is charged
*before* it runs, for every password candidate at once, so a hostile file is refused
before the first derivation over the budget, never after seconds of work
(docs/security.md, "Limits").
"""

from __future__ import annotations

from typing import Final

#: Key-derivation iterations one file may ask for, summed over every derivation (a
#: derivation longer than one hash output counts once per output block, and each is
#: weighted by its hash's cost: :func:`hash_weight`): twice Java's
#: per-derivation ceiling (5,000,000), or 50 JCEKS keys at keytool's default (200,000).
#: keytool's PKCS#12 uses 10,000 per derivation (JDK 8: 50,000 and 100,000 for the
#: MAC), so a real store spends well under 1,000,000.
MAX_FILE_KDF_ITERATIONS: Final = 10_000_000
#: What one iteration of a derivation with each hash costs the budget. SHA-3 counts 4
#: (PBKDF2-HMAC-SHA3-512 takes 0.85 us an iteration with OpenSSL 3.0 on x86-64, SHA-256
#: 0.23 us): a file cannot buy four times the time by naming it. The SHA-512 family
#: (0.51 us) counts 1, as SHA-1 and SHA-256 do: Bouncy Castle's BCFKS defaults derive
#: with it, and a store of 190 keys at those defaults must keep loading (about 5 s).
#: Names as :mod:`hashlib` spells them.
_HASH_WEIGHTS: Final = {"sha3_224": 4, "sha3_256": 4, "sha3_384": 4, "sha3_512": 4}


def hash_weight(name: str) -> int:
    """What one iteration with hash ``name`` costs the budget (SHA-256's is 1)."""
    return _HASH_WEIGHTS.get(name, 1)


#: Bytes decrypted with our pure-Python RC2 (40-bit, PBES1's 64-bit) per file (about
#: 1 s per MiB):
#: the whole of an old Java PKCS#12 truststore holding every public CA is ~0.3 MiB.
MAX_FILE_RC2_BYTES: Final = 1024 * 1024
#: What telling a wrong JKS password from an altered file may cost: one key entry, at
#: most keytool's JCEKS default. A file whose integrity check failed is not worth more.
DIAGNOSIS_KDF_ITERATIONS: Final = 200_000


class WorkLimitError(ValueError):
    """The file asks for more key-derivation or decryption work than we allow.

    ``kind`` says which limit, for the fix a message gives: ``"budget"`` (the sum over
    the file: keytool writes such files when its iteration counts are raised),
    ``"cap"`` (one derivation beyond what Java or OpenSSL accept) or ``"legacy"``
    (more bytes under RC2 or RC4 than a real legacy store holds).
    """

    def __init__(self, message: str, kind: str = "cap") -> None:
        super().__init__(message)
        self.kind = kind


class WorkBudget:
    """What one file may still spend on key derivation and pure-Python decryption."""

    __slots__ = ("iterations", "limit", "rc2_bytes")

    def __init__(
        self,
        iterations: int = MAX_FILE_KDF_ITERATIONS,
        rc2_bytes: int = MAX_FILE_RC2_BYTES,
    ) -> None:
        self.limit = iterations
        self.iterations = iterations
        self.rc2_bytes = rc2_bytes

    def charge_kdf(self, iterations: int, what: str = "its key derivations") -> None:
        """Spend ``iterations``, or raise :class:`WorkLimitError` before any is spent.

        ``what`` names the derivation in the message (``"key entry 'gw'"``).
        """
        if iterations > self.iterations:
            raise WorkLimitError(
                f"{what} would take it past {self.limit:,} key-derivation iterations, "
                "the limit per file",
                "budget",
            )
        self.iterations -= iterations

    def charge_rc2(self, size: int) -> None:
        """Spend ``size`` bytes of RC2 or RC4 decryption, or raise :class:`WorkLimitError`."""
        if size > self.rc2_bytes:
            raise WorkLimitError(
                f"it holds more than {MAX_FILE_RC2_BYTES // 1024} KiB encrypted with RC2 "
                "(40- or 64-bit) or RC4, the limit per file for these legacy ciphers",
                "legacy",
            )
        self.rc2_bytes -= size
