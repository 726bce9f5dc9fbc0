"""Style rules of the contracts that protoc does not enforce (see DESIGN.md section 3)."""

import re

import pytest

from bourse.marketdata.v1 import market_data_service_pb2
from bourse.matching.v1 import matching_service_pb2
from bourse.order.v1 import order_service_pb2
from bourse.persistence.v1 import persistence_service_pb2
from bourse.type.v1 import types_pb2

FILES = [
    types_pb2.DESCRIPTOR,
    order_service_pb2.DESCRIPTOR,
    market_data_service_pb2.DESCRIPTOR,
    matching_service_pb2.DESCRIPTOR,
    persistence_service_pb2.DESCRIPTOR,
]


def _snake_upper(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).upper()


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_package_mirrors_directory(file):
    assert file.name.startswith(file.package.replace(".", "/") + "/")
    assert re.fullmatch(r"bourse\.[a-z]+\.v\d+", file.package)


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_enums_are_prefixed_with_unspecified_zero(file):
    for enum in file.enum_types_by_name.values():
        prefix = _snake_upper(enum.name) + "_"
        assert enum.values_by_number[0].name == prefix + "UNSPECIFIED"
        for value in enum.values:
            assert value.name.startswith(prefix), value.name


@pytest.mark.parametrize("file", FILES, ids=lambda f: f.name)
def test_rpcs_have_their_own_request_and_response(file):
    for service in file.services_by_name.values():
        assert service.name.endswith("Service")
        for method in service.methods:
            assert method.input_type.name == method.name + "Request"
            assert method.output_type.name in {method.name + "Response", "GetOrderResponse"}


def test_prices_and_quantities_are_integers():
    integer = {
        types_pb2.Order.DESCRIPTOR.fields_by_name[n].type
        for n in ("price", "quantity", "filled_quantity", "leaves_quantity")
    }
    assert integer == {types_pb2.Order.DESCRIPTOR.fields_by_name["price"].TYPE_INT64}
