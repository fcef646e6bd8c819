import ipaddress
import json

import pytest

from etbert.lab.classes import ALL_CLASSES
from etbert.lab.plan import make_plan, plan_addresses, split_into_shares

SAMPLERS = {name: lab_class.sample for name, lab_class in ALL_CLASSES.items()}


def test_same_seed_gives_the_same_plan():
    assert make_plan(SAMPLERS, 10, seed=7) == make_plan(SAMPLERS, 10, seed=7)
    assert [f.params for f in make_plan(SAMPLERS, 10, seed=7).flows["ssh"]] == [f.params for f in make_plan(SAMPLERS, 10, seed=7).flows["ssh"]]


def test_different_seeds_give_different_workloads_and_addresses():
    first, second = make_plan(SAMPLERS, 10, seed=1), make_plan(SAMPLERS, 10, seed=2)
    for name in SAMPLERS:
        assert [f.params for f in first.flows[name]] != [f.params for f in second.flows[name]], name
    assert first.addresses != second.addresses


def test_a_class_plan_does_not_depend_on_which_other_classes_run():
    alone = make_plan({"tls-api": SAMPLERS["tls-api"]}, 5, seed=3)
    together = make_plan(SAMPLERS, 5, seed=3)
    assert [f.params for f in alone.flows["tls-api"]] == [f.params for f in together.flows["tls-api"]]


def test_plan_has_the_requested_flows_and_json_parameters():
    plan = make_plan(SAMPLERS, 4, seed=0)
    assert set(plan.flows) == set(SAMPLERS)
    for name, flows in plan.flows.items():
        assert [f.index for f in flows] == [0, 1, 2, 3]
        assert all(f.label == name for f in flows)
        json.dumps([f.params for f in flows])  # parameters go to the manifest as they are


def test_size_scale_shrinks_transfers():
    full = make_plan({"tls-download": SAMPLERS["tls-download"]}, 20, seed=5, size_scale=1.0)
    small = make_plan({"tls-download": SAMPLERS["tls-download"]}, 20, seed=5, size_scale=0.01)
    total = lambda plan: sum(sum(f.params["files"]) for f in plan.flows["tls-download"])  # noqa: E731
    assert total(small) < total(full) / 50


def test_classes_plan_distinct_behaviour():
    plan = make_plan(SAMPLERS, 40, seed=0)
    api_requests = sum(len(f.params["responses"]) for f in plan.flows["tls-api"]) / 40
    download_requests = sum(len(f.params["files"]) for f in plan.flows["tls-download"]) / 40
    assert api_requests > 3 * download_requests
    assert {f.params["kind"] for f in plan.flows["ssh"]} == {"command", "interactive", "scp-get", "scp-put", "sftp"}
    assert {f.params["tls_version"] for f in plan.flows["tls-page"]} == {"1.2", "1.3"}


@pytest.mark.parametrize("seed", range(20))
def test_address_plan_is_private_and_consistent(seed):
    addresses = plan_addresses(seed)
    client, server = ipaddress.ip_address(addresses.client), ipaddress.ip_address(addresses.server)
    network = ipaddress.ip_network(f"{addresses.client}/{addresses.prefix_len}", strict=False)
    assert client.is_private and server in network and client != server
    tunnel = ipaddress.ip_network(f"{addresses.tunnel_server}/24", strict=False)
    assert tunnel != network and ipaddress.ip_address(addresses.tunnel_client(3)) in tunnel


@pytest.mark.parametrize("flows, shares", [(40, 5), (41, 5), (7, 3), (5, 5), (3, 5), (1, 1), (10, 1)])
def test_flows_are_cut_into_contiguous_nearly_equal_shares_one_per_capture(flows, shares):
    plan = make_plan({"ssh": SAMPLERS["ssh"]}, flows, seed=4, captures_per_class=shares)
    cut = plan.capture_shares("ssh")
    assert [flow for share in cut for flow in share] == plan.flows["ssh"]  # in order, every flow once
    assert len(cut) == min(flows, shares)  # never a capture without a planned flow
    sizes = [len(share) for share in cut]
    assert min(sizes) >= 1 and max(sizes) - min(sizes) <= 1 and sizes == sorted(sizes, reverse=True)


def test_capture_shares_are_part_of_the_deterministic_plan():
    first, again = (make_plan(SAMPLERS, 40, seed=9, captures_per_class=5) for _ in range(2))
    for name in SAMPLERS:
        assert first.capture_shares(name) == again.capture_shares(name)
        assert [share[0].index for share in first.capture_shares(name)] == [0, 8, 16, 24, 32]
    assert split_into_shares([], 5) == []


def test_bad_plan_requests_are_refused():
    with pytest.raises(ValueError, match="at least 1"):
        make_plan(SAMPLERS, 0, seed=0)
    with pytest.raises(ValueError, match="positive"):
        make_plan(SAMPLERS, 1, seed=0, size_scale=0)
    with pytest.raises(ValueError, match="captures per class must be at least 1"):
        make_plan(SAMPLERS, 1, seed=0, captures_per_class=0)
