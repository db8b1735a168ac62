"""Every header or query value, of any size or alphabet, gets a 4xx at worst, never a 500."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.api.conftest import Api

# What an HTTP header can carry (latin-1), long numbers and non-ASCII digits included.
HEADER_VALUES = st.one_of(
    st.text(st.characters(min_codepoint=0x20, max_codepoint=0xFF), max_size=300),
    st.integers(0, 6000).map(lambda n: '"' + "9" * n + '"'),
    st.sampled_from(['"²"', '"٣"', '"' + "7" * 5000 + '"', "7" * 5000, "*", 'W/"3"', '""']),
)
REPORT = {
    "type": "Contested",
    "occurred_on": "2021-06-20",
    "actor": "Taliban",
    "source": {"name": "Reuters"},
}


@pytest.fixture
def city(api: Api) -> Api:
    api.register()
    return api


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=HEADER_VALUES)
def test_if_match_of_any_size_is_a_4xx_or_accepted(city: Api, value: str) -> None:
    response = city.post(
        "/cities/testville/events",
        "reporter",
        json={**REPORT, "report_id": "same"},
        headers={"If-Match": value.encode("utf-8")},  # type: ignore[dict-item]
    )
    assert response.status_code in (200, 201, 400, 412), response.text


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(value=HEADER_VALUES)
def test_idempotency_key_of_any_size_is_a_4xx_or_accepted(city: Api, value: str) -> None:
    response = city.post(
        "/cities/testville/events",
        "reporter",
        json=REPORT,
        headers={"Idempotency-Key": value.encode("utf-8")},  # type: ignore[dict-item]
    )
    assert response.status_code in (200, 201, 400, 409, 422), response.text


@pytest.mark.parametrize(
    "header",
    ["If-Match", "Idempotency-Key", "Authorization", "Content-Length", "Accept", "X-Request-ID"],
)
@pytest.mark.parametrize("value", ['"' + "7" * 5000 + '"', "7" * 5000, "²" * 50, "x" * 20000])
def test_any_header_of_any_size_is_never_a_500(city: Api, header: str, value: str) -> None:
    headers = {**city.as_("reporter"), header: value.encode("utf-8")}
    if header == "Content-Length":
        response = city.client.post("/cities/testville/events", content=b"{}", headers=headers)
    else:
        response = city.client.post("/cities/testville/events", json=REPORT, headers=headers)
    assert response.status_code < 500, (header, response.status_code, response.text[:200])


@pytest.mark.parametrize("name", ["as_of", "known_at", "format", "from", "to"])
@pytest.mark.parametrize("value", ["9" * 5000, "²" * 100, "2021-08-08" + "x" * 10000])
def test_any_query_value_of_any_size_is_never_a_500(city: Api, name: str, value: str) -> None:
    for path in ("/cities/testville/status", "/status", "/changes", "/cities/testville/events"):
        response = city.get(path, params={name: value})
        assert response.status_code < 500, (path, name, response.status_code)
