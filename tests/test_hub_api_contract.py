"""The shared hub<->gateway contract stays self-consistent."""

from protocol import hub_api


def test_final_states_are_order_states() -> None:
    assert hub_api.FINAL_ORDER_STATES <= set(hub_api.OrderState)
    assert hub_api.OrderState.PAID not in hub_api.FINAL_ORDER_STATES


def test_every_path_is_absolute_and_unique() -> None:
    paths = [v for k, v in vars(hub_api).items() if k.isupper() and isinstance(v, str)
             and v.startswith("/")]
    assert len(paths) == len(set(paths)) >= 15
    assert all(" " not in p for p in paths)


def test_all_names_exist() -> None:
    for name in hub_api.__all__:
        assert hasattr(hub_api, name), name
