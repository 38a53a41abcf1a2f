"""JSON Web Key Sets: the public keys an identity provider or a SMART client signs JWTs with.

Keys are picked by `kid` and must fit the algorithm the JWT names (RSA for RS*, the matching
EC curve for ES*), so a token can never choose how it is checked.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from scribe.errors import BadInputError

CURVE_OF = {"ES256": "P-256", "ES384": "P-384"}
PRIVATE_MEMBERS = ("d", "p", "q", "dp", "dq", "qi", "oth", "k")
MIN_RSA_BITS = 2048


class JwksError(BadInputError):
    """A key set, or a key in it, that cannot be used to check signatures."""


@dataclass(frozen=True)
class PublicKey:
    kid: str
    kty: str  # RSA | EC
    crv: str | None
    alg: str | None  # the JWK's own `alg`, when it pins one
    key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey

    def fits(self, alg: str) -> bool:
        """May a JWT signed with `alg` be checked with this key?"""
        if self.alg is not None and self.alg != alg:
            return False
        if alg.startswith("RS"):
            return self.kty == "RSA"
        return self.kty == "EC" and CURVE_OF.get(alg) == self.crv


def public_key(jwk: Any) -> PublicKey:
    """One public signing key from its JWK; a private key, a symmetric key or anything unusable is a JwksError."""
    if not isinstance(jwk, dict):
        raise JwksError("each key must be a JSON object")
    kid = jwk.get("kid")
    if not isinstance(kid, str) or not kid:
        raise JwksError("every key needs a 'kid'")
    if any(member in jwk for member in PRIVATE_MEMBERS):
        raise JwksError(f"key {kid!r} contains private or symmetric key material; register public keys only")
    if jwk.get("kty") not in ("RSA", "EC"):
        raise JwksError(f"key {kid!r}: only RSA and EC keys are accepted")
    if jwk.get("use", "sig") != "sig":
        raise JwksError(f"key {kid!r} is not a signing key (use={jwk.get('use')!r})")
    if jwk["kty"] == "EC" and jwk.get("crv") not in CURVE_OF.values():
        raise JwksError(f"key {kid!r}: EC keys must be on P-256 or P-384")
    try:
        key = jwt.PyJWK(jwk).key
    except (jwt.PyJWTError, ValueError, TypeError, KeyError) as exc:
        raise JwksError(f"key {kid!r} is not a valid JWK: {exc}") from None
    if isinstance(key, rsa.RSAPublicKey) and key.key_size < MIN_RSA_BITS:
        raise JwksError(f"key {kid!r}: RSA keys must have at least {MIN_RSA_BITS} bits")
    if not isinstance(key, (rsa.RSAPublicKey, ec.EllipticCurvePublicKey)):
        raise JwksError(f"key {kid!r} is not a public RSA or EC key")
    alg = jwk.get("alg")
    return PublicKey(kid, jwk["kty"], jwk.get("crv"), alg if isinstance(alg, str) else None, key)


def parse_jwks(data: Any, *, strict: bool) -> dict[str, PublicKey]:
    """The keys of a JWKS by `kid`. Strict (registration): any bad key fails the set; lenient (an
    identity provider's published set, which may hold encryption or other keys): bad keys are skipped."""
    if isinstance(data, (str, bytes)):
        try:
            data = json.loads(data)
        except ValueError:
            raise JwksError("the key set is not JSON") from None
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        raise JwksError('a key set is a JSON object {"keys": [...]}')
    keys: dict[str, PublicKey] = {}
    for jwk in data["keys"]:
        try:
            key = public_key(jwk)
        except JwksError:
            if strict:
                raise
            continue
        if key.kid in keys:
            if strict:
                raise JwksError(f"two keys share the kid {key.kid!r}")
            continue
        keys[key.kid] = key
    if not keys:
        raise JwksError("the key set holds no usable public RSA or EC signing key")
    return keys


def jwks_json(keys: dict[str, PublicKey]) -> str:
    """The key set as JSON of public keys only (what is stored for a client)."""
    exported = []
    for key in keys.values():
        as_jwk = json.loads(
            jwt.algorithms.RSAAlgorithm.to_jwk(key.key)
            if isinstance(key.key, rsa.RSAPublicKey)  # kty RSA: public_key() holds an RSA key exactly then
            else jwt.algorithms.ECAlgorithm.to_jwk(key.key)
        )
        as_jwk["kid"] = key.kid
        if key.alg:
            as_jwk["alg"] = key.alg
        exported.append(as_jwk)
    return json.dumps({"keys": exported}, sort_keys=True)


def signed_header(token: str, allowed: tuple[str, ...]) -> tuple[str, str]:
    """(alg, kid) from a JWT's header, before any key is chosen; ValueError if it names no key or
    an algorithm outside `allowed` (which is how HS256 and `none` are refused)."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError:
        raise ValueError("not a signed JWT") from None
    alg, kid = header.get("alg"), header.get("kid")
    if alg not in allowed:
        raise ValueError(f"JWT algorithm {alg!r} is not accepted (use {' or '.join(allowed)})")
    if not isinstance(kid, str) or not kid:
        raise ValueError("JWT header has no 'kid'")
    return alg, kid
