"""Bearer tokens from the site's OpenID Connect provider (Keycloak, Entra ID, ADFS, ...).

The provider's key set is fetched once and cached; a token naming an unknown `kid` triggers a
refresh (at most one every few seconds, so a stream of made-up kids cannot hammer the provider),
which is how key rotation is picked up without a restart.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import jwt

from scribe.auth.jwks import JwksError, PublicKey, parse_jwks, signed_header
from scribe.auth.tokens import AuthError
from scribe.config import Settings
from scribe.errors import ConfigError

log = logging.getLogger("scribe.auth")

ALGORITHMS = ("RS256", "RS384", "ES256", "ES384")
JWKS_MAX_AGE_S = 3600.0
MIN_REFRESH_INTERVAL_S = 10.0
FETCH_TIMEOUT_S = 5.0
LEEWAY_S = 30


@dataclass(frozen=True)
class OidcIdentity:
    """A verified provider token: the user it names (by the configured claim) and when it expires."""

    username: str
    expires_at: int


class OidcVerifier:
    """Checks provider-issued JWTs: signature by `kid`, algorithm, `iss`, `aud`, `exp`. Thread-safe."""

    def __init__(
        self,
        issuer: str,
        audience: str,
        *,
        jwks_url: str | None = None,
        jwks_file: Path | None = None,
        username_claim: str = "preferred_username",
        min_refresh_interval_s: float = MIN_REFRESH_INTERVAL_S,
        max_age_s: float = JWKS_MAX_AGE_S,
    ) -> None:
        if (jwks_url is None) == (jwks_file is None):
            raise ConfigError("OIDC needs exactly one of SCRIBE_OIDC_JWKS_URL and SCRIBE_OIDC_JWKS_FILE")
        self.issuer, self.audience, self.username_claim = issuer, audience, username_claim
        self.jwks_url, self.jwks_file = jwks_url, jwks_file
        self.min_refresh_interval_s, self.max_age_s = min_refresh_interval_s, max_age_s
        self._keys: dict[str, PublicKey] = {}
        self._loaded_at: float | None = None
        self._tried_at: float | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> OidcVerifier | None:
        """The site's verifier, or None when SCRIBE_OIDC_ISSUER is not set; half a configuration is a ConfigError."""
        if not settings.oidc_issuer:
            return None
        if not settings.oidc_audience:
            raise ConfigError("SCRIBE_OIDC_AUDIENCE must be set when SCRIBE_OIDC_ISSUER is")
        return cls(
            settings.oidc_issuer,
            settings.oidc_audience,
            jwks_url=settings.oidc_jwks_url,
            jwks_file=settings.oidc_jwks_file,
            username_claim=settings.oidc_username_claim,
        )

    def verify(self, token: str) -> OidcIdentity:
        try:
            alg, kid = signed_header(token, ALGORITHMS)
        except ValueError as exc:
            raise AuthError(f"invalid token: {exc}") from None
        key = self._key(kid)
        if not key.fits(alg):
            raise AuthError(f"invalid token: key {kid!r} does not fit algorithm {alg}")
        try:
            claims = jwt.decode(
                token,
                key.key,
                algorithms=[alg],
                issuer=self.issuer,
                audience=self.audience,
                leeway=LEEWAY_S,
                options={"require": ["exp", "iss", "aud"]},
            )
        except jwt.ExpiredSignatureError:
            raise AuthError("token expired", subject=self._claimed_username(token)) from None
        except jwt.PyJWTError as exc:
            raise AuthError(f"invalid token: {exc}", subject=self._claimed_username(token)) from None
        username = claims.get(self.username_claim)
        if not isinstance(username, str) or not username.strip():
            raise AuthError(f"token has no {self.username_claim!r} claim")
        return OidcIdentity(username.strip(), int(claims["exp"]))

    def _claimed_username(self, token: str) -> str | None:
        try:
            claimed = jwt.decode(token, options={"verify_signature": False}).get(self.username_claim)
        except jwt.PyJWTError:
            return None
        return claimed if isinstance(claimed, str) else None

    def _key(self, kid: str) -> PublicKey:
        with self._lock:
            now = time.monotonic()
            wanted = self._loaded_at is None or now - self._loaded_at > self.max_age_s or kid not in self._keys
            allowed = self._tried_at is None or now - self._tried_at >= self.min_refresh_interval_s
            if wanted and allowed:
                self._refresh(now)
            key = self._keys.get(kid)
        if key is None:
            raise AuthError(f"invalid token: the identity provider publishes no key {kid!r}")
        return key

    def _refresh(self, now: float) -> None:
        """Reload the key set; on failure the keys already known stay in use."""
        self._tried_at = now
        try:
            self._keys = parse_jwks(self._load(), strict=False)
            self._loaded_at = now
        except (httpx.HTTPError, OSError, ValueError, JwksError) as exc:
            log.warning("cannot load the OIDC key set from %s: %s", self.jwks_url or self.jwks_file, exc)

    def _load(self) -> Any:
        if self.jwks_file is not None:
            return self.jwks_file.read_text(encoding="utf-8")
        assert self.jwks_url is not None
        response = httpx.get(self.jwks_url, timeout=FETCH_TIMEOUT_S, follow_redirects=True)
        response.raise_for_status()
        return response.json()
