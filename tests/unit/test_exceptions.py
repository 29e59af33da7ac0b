"""Client-facing errors: ValidationFailed takes DRF-style detail
(tests/integration/test_consumer_errors.py: what the client receives)."""

import pytest
from rest_framework import serializers

from realtime.exceptions import ValidationFailed


@pytest.mark.parametrize(
    ("args", "kw", "message", "errors"),
    [
        (("Order is closed.",), {}, "Order is closed.", None),
        ((), {}, "Invalid data.", None),
        (
            ({"id": ["No such order."]},),
            {},
            "Invalid data.",
            {"id": ["No such order."]},
        ),
        # DRF accepts a lone message per field, and any key.
        (
            ({"id": "No such order.", 3: ["x"]},),
            {},
            "Invalid data.",
            {"id": ["No such order."], "3": ["x"]},
        ),
        ((["Closed."],), {}, "Closed.", {"non_field_errors": ["Closed."]}),
        (
            ("Bad order.",),
            {"errors": {"id": ["Too big."]}},
            "Bad order.",
            {"id": ["Too big."]},
        ),
    ],
)
def test_validation_failed_takes_drf_style_detail(args, kw, message, errors):
    error = ValidationFailed(*args, **kw)
    assert (error.detail, error.code, error.errors) == (message, "invalid", errors)
    assert str(error) == message


def test_validation_failed_keeps_drf_error_details_plain():
    drf = serializers.ValidationError({"id": ["No such order."]})
    error = ValidationFailed(drf.detail)
    assert error.errors == {"id": ["No such order."]}
    assert type(error.errors["id"][0]) is str
