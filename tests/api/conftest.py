"""HTTP fixtures: the app from `create_app` over a fresh store (both kinds), with a
token for every role; and a seeded store per kind, shared by read-only tests."""

from __future__ import annotations

import uuid
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

with warnings.catch_warnings():
    # Starlette 1.x prefers httpx2 for its TestClient; httpx (in the dev extras) works.
    warnings.simplefilter("ignore", UserWarning)
    from fastapi.testclient import TestClient

from dateline.api.app import create_app
from dateline.infrastructure.application import Clock, Dateline
from dateline.infrastructure.settings import Settings
from dateline.infrastructure.tokens import Role, TokenStore
from dateline.seeds.loader import load_seeds
from tests.conftest import POSTGRES_URL, STORES, drop_schema, require_postgres

ROLES = tuple(role.value for role in Role)


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


@dataclass
class Api:
    """A running app (lifespan entered), its store kind, and a token per role."""

    client: TestClient
    kind: str
    tokens: dict[str, str] = field(default_factory=dict)

    @property
    def dateline(self) -> Dateline:
        app: Dateline = self.client.app.state.dateline  # type: ignore[attr-defined]
        return app

    @property
    def token_store(self) -> TokenStore:
        store: TokenStore = self.client.app.state.tokens  # type: ignore[attr-defined]
        return store

    def as_(self, role: str) -> dict[str, str]:
        return bearer(self.tokens[role])

    def get(self, url: str, **kwargs: Any) -> httpx.Response:
        return self.client.get(url, **kwargs)

    def post(self, url: str, role: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {**(self.as_(role) if role else {}), **kwargs.pop("headers", {})}
        return self.client.post(url, headers=headers, **kwargs)

    def register(self, slug: str = "testville", **overrides: Any) -> httpx.Response:
        body = city_body(slug, **overrides)
        response = self.post("/cities", "editor", json=body)
        assert response.status_code == 201, response.text
        return response

    def report(
        self,
        slug: str,
        type_: str,
        on: str,
        actor: str,
        role: str = "reporter",
        headers: dict[str, str] | None = None,
        **extra: Any,
    ) -> httpx.Response:
        body = {
            "type": type_,
            "occurred_on": on,
            "actor": actor,
            "source": {"name": "Reuters", "url": "https://example.org/r"},
            **extra,
        }
        return self.post(f"/cities/{slug}/events", role, json=body, headers=headers or {})

    def events(self, slug: str, **params: Any) -> list[dict[str, Any]]:
        response = self.get(f"/cities/{slug}/events", params=params)
        assert response.status_code == 200, response.text
        events: list[dict[str, Any]] = response.json()
        return events


def city_body(slug: str = "testville", **overrides: Any) -> dict[str, Any]:
    return {
        "slug": slug,
        "name": slug.replace("-", " ").title(),
        "province": "Testprov",
        "country": "Afghanistan",
        "lat": 34.5,
        "lon": 69.2,
        "population": 1000,
        "initial_controller": "Afghan government",
        "tracked_since": "2015-01-01",
        **overrides,
    }


def open_api(
    settings: Settings, kind: str, clock: Clock | None = None, *, public_reads: bool = True
) -> Iterator[Api]:
    reads = settings.model_copy(update={"public_reads": public_reads})
    app = create_app(reads, clock, migrate=True)
    with TestClient(app, raise_server_exceptions=False) as client:
        api = Api(client, kind)
        for role in ROLES:
            api.tokens[role] = api.token_store.create(f"{role}-token", role).secret
        yield api


@pytest.fixture
def make_api(
    make_settings: Callable[..., Settings], store_kind: str
) -> Iterator[Callable[..., Api]]:
    """Open an app over a fresh store of the parametrized kind: make_api(clock=, public_reads=)."""
    opened: list[Iterator[Api]] = []

    def make(clock: Clock | None = None, *, public_reads: bool = True) -> Api:
        iterator = open_api(make_settings(store_kind), store_kind, clock, public_reads=public_reads)
        opened.append(iterator)
        return next(iterator)

    yield make
    for iterator in opened:
        for _ in iterator:  # leave the TestClient: lifespan shutdown closes the store
            pass


@pytest.fixture
def api(make_api: Callable[..., Api]) -> Api:
    """A fresh, empty store behind the app."""
    return make_api()


@pytest.fixture(scope="module", params=STORES)
def seeded(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Api]:
    """The 2015-2021 seeds behind the app, one store per kind per module: read only."""
    kind = str(request.param)
    schema = None
    if kind == "sqlite":
        path: Path = tmp_path_factory.mktemp("seeded") / "seeded.sqlite"
        settings = Settings(database_url=f"sqlite:///{path}")
    else:
        require_postgres()
        schema = f"t_{uuid.uuid4().hex[:12]}"
        settings = Settings(database_url=POSTGRES_URL, postgres_schema=schema)
    try:
        for api in open_api(settings, kind):
            load_seeds(api.dateline)
            yield api
    finally:
        if schema is not None:
            drop_schema(schema)
