"""Passphrase to key-encryption key: Argon2id, with its parameters recorded beside the wrapped key.

In passphrase mode the wrapped data key sits in the database itself, so whoever copies the file can
guess passphrases offline as fast as the KDF allows. Argon2id (RFC 9106) makes each guess cost
memory as well as time, which is what GPUs and ASICs are short of; scrypt with N = 2^15 (32 MiB,
the old default) let a guess cost a fraction of that.

The parameters are RFC 9106's second recommended option (section 4), for machines that cannot
spare 2 GiB per unlock: m = 64 MiB, t = 3 passes, p = 4 lanes, a 128-bit salt, a 256-bit tag. They are
stored as text (``v=19,m=65536,t=3,p=4``) with the salt, so they can be raised later: a database
whose recorded KDF differs from ``CURRENT`` is re-wrapped on its next unlock (``db.unlock``), and the
scrypt databases of before are read with their own recorded parameters, once, for that.
"""

from __future__ import annotations

from dataclasses import dataclass

from argon2.low_level import ARGON2_VERSION, Type, hash_secret_raw
from cryptography.hazmat.primitives.kdf.scrypt import Scrypt

from .crypto import KEY_BYTES, CryptoError

SALT_BYTES = 16


@dataclass(frozen=True)
class KdfParams:
    """One KDF and its cost, as recorded in the database's meta table (``kdf``, ``kdf_params``)."""

    name: str  # "argon2id" or "scrypt" (read only, for databases written before Argon2id)
    params: str

    def derive(self, passphrase: str, salt: bytes) -> bytes:
        """Blocking (a few hundred ms and 64 MiB by design): call it from a thread."""
        if not passphrase:
            raise CryptoError("the passphrase is empty")
        secret = passphrase.encode("utf-8")
        if self.name == "argon2id":
            fields = _fields(self.params, ("v", "m", "t", "p"))
            if fields["v"] != ARGON2_VERSION:
                raise CryptoError(f"Argon2 version {fields['v']} is recorded; this privchat knows version {ARGON2_VERSION}")
            return hash_secret_raw(secret, salt, time_cost=fields["t"], memory_cost=fields["m"], parallelism=fields["p"],
                                   hash_len=KEY_BYTES, type=Type.ID, version=fields["v"])
        if self.name == "scrypt":
            n, r, p = (int(x) for x in self.params.split(","))
            return Scrypt(salt=salt, length=KEY_BYTES, n=n, r=r, p=p).derive(secret)
        raise CryptoError(f"the database names an unknown passphrase KDF {self.name!r}; upgrade privchat")


def _fields(text: str, names: tuple[str, ...]) -> dict[str, int]:
    try:
        fields = {key: int(value) for key, value in (part.split("=", 1) for part in text.split(","))}
    except ValueError as exc:
        raise CryptoError(f"the recorded KDF parameters {text!r} cannot be read") from exc
    if set(fields) != set(names):
        raise CryptoError(f"the recorded KDF parameters {text!r} should name exactly {', '.join(names)}")
    return fields


# RFC 9106, section 4, second recommended option.
CURRENT = KdfParams("argon2id", f"v={ARGON2_VERSION},m=65536,t=3,p=4")

# What databases written before Argon2id hold when their meta table names no KDF parameters.
LEGACY_SCRYPT = KdfParams("scrypt", "32768,8,1")
