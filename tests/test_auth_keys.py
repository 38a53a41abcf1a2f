"""JSON Web Key Sets (scribe/auth/jwks.py), and the key helpers the other auth tests import."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from scribe.auth.jwks import JwksError, jwks_json, parse_jwks, signed_header


@dataclass
class SigningKey:
    """A private key the test signs with, and its public JWK under `kid`."""

    kid: str
    private: Any
    alg: str

    @property
    def public_jwk(self) -> dict[str, Any]:
        algorithm = jwt.algorithms.RSAAlgorithm if self.alg.startswith("RS") else jwt.algorithms.ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(self.private.public_key()))
        jwk["kid"] = self.kid
        return jwk

    @property
    def private_jwk(self) -> dict[str, Any]:
        algorithm = jwt.algorithms.RSAAlgorithm if self.alg.startswith("RS") else jwt.algorithms.ECAlgorithm
        jwk = json.loads(algorithm.to_jwk(self.private))
        jwk["kid"] = self.kid
        return jwk

    def sign(self, claims: dict[str, Any], *, alg: str | None = None, kid: str | None = None) -> str:
        return jwt.encode(claims, self.private, algorithm=alg or self.alg, headers={"kid": kid or self.kid})


def rsa_key(kid: str = "rsa-1", alg: str = "RS384") -> SigningKey:
    return SigningKey(kid, rsa.generate_private_key(public_exponent=65537, key_size=2048), alg)


def ec_key(kid: str = "ec-1", alg: str = "ES384") -> SigningKey:
    return SigningKey(kid, ec.generate_private_key(ec.SECP384R1() if alg == "ES384" else ec.SECP256R1()), alg)


def jwks(*keys: SigningKey) -> dict[str, Any]:
    return {"keys": [key.public_jwk for key in keys]}


def unsigned_token(claims: dict[str, Any], kid: str = "rsa-1") -> str:
    """An `alg: none` JWT, as an attacker would send it."""
    return jwt.encode(claims, None, algorithm="none", headers={"kid": kid})


def claims(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    return {"iat": now, "exp": now + 120, "jti": uuid.uuid4().hex, **overrides}


# ------------------------------------------------------------------------------------------ the module itself

RSA, EC = rsa_key(), ec_key()


def test_parse_keeps_public_keys_by_kid_and_round_trips():
    keys = parse_jwks(json.dumps(jwks(RSA, EC)), strict=True)
    assert set(keys) == {"rsa-1", "ec-1"}
    assert keys["rsa-1"].kty == "RSA" and keys["ec-1"].crv == "P-384"
    again = parse_jwks(jwks_json(keys), strict=True)
    assert {k: v.kty for k, v in again.items()} == {"rsa-1": "RSA", "ec-1": "EC"}
    assert all("d" not in jwk for jwk in json.loads(jwks_json(keys))["keys"])


@pytest.mark.parametrize(
    ("alg", "key", "fits"),
    [
        ("RS384", RSA, True),
        ("RS256", RSA, True),
        ("ES384", RSA, False),
        ("ES384", EC, True),
        ("ES256", EC, False),
        ("RS384", EC, False),
    ],
)
def test_a_key_fits_only_its_algorithm_family_and_curve(alg, key, fits):
    assert parse_jwks(jwks(key), strict=True)[key.kid].fits(alg) is fits


def test_a_jwk_that_pins_alg_fits_only_that_alg():
    pinned = {**RSA.public_jwk, "alg": "RS384"}
    key = parse_jwks({"keys": [pinned]}, strict=True)["rsa-1"]
    assert key.fits("RS384") and not key.fits("RS256")


@pytest.mark.parametrize(
    ("key_set", "message"),
    [
        ({"keys": [RSA.private_jwk]}, "private"),
        ({"keys": [EC.private_jwk]}, "private"),
        ({"keys": [{"kty": "oct", "k": "c2VjcmV0", "kid": "h"}]}, "private or symmetric"),
        ({"keys": [{**RSA.public_jwk, "kid": ""}]}, "kid"),
        ({"keys": [{k: v for k, v in RSA.public_jwk.items() if k != "kid"}]}, "kid"),
        ({"keys": [{**RSA.public_jwk, "use": "enc"}]}, "not a signing key"),
        (
            {
                "keys": [
                    SigningKey(
                        "weak", rsa.generate_private_key(public_exponent=65537, key_size=1024), "RS384"
                    ).public_jwk
                ]
            },
            "at least 2048 bits",
        ),
        ({"keys": [{**EC.public_jwk, "crv": "P-521"}]}, "P-256 or P-384"),
        ({"keys": [{**RSA.public_jwk, "n": "!!"}]}, "not a valid JWK"),
        ({"keys": [{"kty": "OKP", "crv": "Ed25519", "x": "abc", "kid": "o"}]}, "only RSA and EC"),
        ({"keys": [RSA.public_jwk, RSA.public_jwk]}, "share the kid"),
        ({"keys": []}, "no usable"),
        ({"nokeys": 1}, "a key set is"),
        ([], "a key set is"),
        ("{not json", "not JSON"),
        ({"keys": ["x"]}, "JSON object"),
    ],
)
def test_strict_parse_refuses_anything_but_public_signing_keys(key_set, message):
    with pytest.raises(JwksError, match=message):
        parse_jwks(key_set if not isinstance(key_set, str) else key_set, strict=True)


def test_lenient_parse_skips_what_it_cannot_use():
    keys = parse_jwks(
        {
            "keys": [
                {**RSA.public_jwk, "use": "enc", "kid": "enc"},
                RSA.private_jwk | {"kid": "p"},
                {"kty": "OKP", "kid": "o"},
                EC.public_jwk,
            ]
        },
        strict=False,
    )
    assert set(keys) == {"ec-1"}
    with pytest.raises(JwksError):
        parse_jwks({"keys": [{"kty": "OKP", "kid": "o"}]}, strict=False)


@pytest.mark.parametrize(
    ("token", "message"),
    [
        ("garbage", "not a signed JWT"),
        (jwt.encode({"a": 1}, b"k" * 32, algorithm="HS256", headers={"kid": "rsa-1"}), "'HS256' is not accepted"),
        (unsigned_token({"a": 1}), "'none' is not accepted"),
        (jwt.encode({"a": 1}, RSA.private, algorithm="RS384"), "no 'kid'"),
    ],
)
def test_signed_header_refuses_other_algorithms_and_missing_kid(token, message):
    with pytest.raises(ValueError, match=message):
        signed_header(token, ("RS384", "ES384"))


def test_signed_header_names_alg_and_kid():
    assert signed_header(EC.sign({"a": 1}), ("RS384", "ES384")) == ("ES384", "ec-1")
