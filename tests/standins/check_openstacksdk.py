#!/usr/bin/env python3
"""Prove the Keystone/Nova stand-in faithful with the real client library.

    target/standins-venv/bin/python tests/standins/check_openstacksdk.py URL [DATA]

URL is what the stand-in printed (``ready url=...``); DATA defaults to
tests/fixtures/openstack/cloud.json. Uses openstacksdk (installed by
tests/standins/install.sh) exactly as a site would: Keystone v3 password auth and
an application credential, the compute endpoint from the token's catalog,
servers with all_projects + changes_since (deleted ones included), flavors,
projects, os-simple-tenant-usage. Prints ``ok N servers`` and exits 0, or prints
every difference and exits 1.
"""

import datetime as dt
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
# This directory holds the stand-in, openstack.py: keep it from shadowing the sdk.
sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import openstack  # noqa: E402
import openstack.connection  # noqa: E402
from openstack import exceptions  # noqa: E402
from importlib.metadata import version as _pkg_version  # noqa: E402

SDK_VERSION = _pkg_version("openstacksdk")

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)
    return cond


def naive(s):
    """nova's OS-SRV-USG strings, and the fixture's, as naive UTC datetimes."""
    if s is None:
        return None
    v = dt.datetime.fromisoformat(s.replace("Z", "+00:00"))
    return v.astimezone(dt.timezone.utc).replace(tzinfo=None) if v.tzinfo else v


def connect(url, **auth):
    return openstack.connection.Connection(
        auth_url=url + "/identity/v3", region_name="RegionOne",
        compute_api_version="2.47", identity_api_version="3", **auth)


def check_servers(conn, exp, label):
    want = exp["changes_since_window_start"]
    got = list(conn.compute.servers(details=True, all_projects=True,
                                    changes_since=exp["window"]["start"]))
    ids = [s.id for s in got]
    check(len(ids) == len(set(ids)), "%s: duplicate servers %s" % (label, ids))
    check(set(ids) == set(want["ids"]),
          "%s: changes_since ids differ: missing %s, extra %s" % (
              label, sorted(set(want["ids"]) - set(ids)), sorted(set(ids) - set(want["ids"]))))
    check(ids == want["ids"], "%s: order differs from nova's created desc" % label)
    for s in got:
        e = exp["servers"].get(s.id)
        if not check(e is not None, "%s: unexpected server %s" % (label, s.id)):
            continue
        f = s.flavor  # embedded at microversion >= 2.47
        fields = {
            "name": (s.name, e["name"]),
            "project_id": (s.project_id, e["project_id"]),
            "user_id": (s.user_id, e["user_id"]),
            "status": (s.status, e["status"]),
            "host": (s.compute_host, e["host"]),
            "launched_at": (naive(s.launched_at), naive(e["launched_at"])),
            "terminated_at": (naive(s.terminated_at), naive(e["terminated_at"])),
            "flavor.original_name": (f.original_name if f else None, e["flavor"]["name"]),
            "flavor.vcpus": (f.vcpus if f else None, e["flavor"]["vcpus"]),
            "flavor.ram": (f.ram if f else None, e["flavor"]["ram"]),
            "flavor.disk": (f.disk if f else None, e["flavor"]["disk"]),
            "updated": (naive(s.updated_at), naive(e["updated"])),
        }
        for k, (g, w) in fields.items():
            check(g == w, "%s: %s %s: got %r, want %r" % (label, e["name"], k, g, w))
    # the deleted-in-window one is there, the deleted-the-day-before one is not
    by_name = {exp["servers"][i]["name"]: i for i in exp["servers"]}
    check(by_name["phys-gone"] in ids, "%s: deleted-in-window server missing" % label)
    check(by_name["bio-old"] not in ids, "%s: day-before deletion listed" % label)

    # pagination as a client does it: limit=10 must take three requests
    pages = list(conn.compute.servers(details=True, all_projects=True,
                                      changes_since=exp["window"]["start"], limit=10,
                                      paginated=True))
    check([p.id for p in pages] == want["ids"], "%s: paginated listing differs" % label)

    cur = list(conn.compute.servers(details=True, all_projects=True))
    check([s.id for s in cur] == exp["current_all_tenants"]["ids"],
          "%s: current servers (no changes-since) differ" % label)
    return len(ids)


def main():
    url = sys.argv[1].rstrip("/")
    data = sys.argv[2] if len(sys.argv) > 2 else os.path.join(
        HERE, "..", "fixtures", "openstack", "cloud.json")
    with open(data) as f:
        cloud = json.load(f)
    exp = cloud["expected"]
    users = {u["name"]: u for u in cloud["users"]}

    # --- password, project-scoped
    conn = connect(url, username="alice", password=users["alice"]["password"],
                   project_name="physics", user_domain_name="Default",
                   project_domain_name="Default")
    ep = conn.session.get_endpoint(service_type="compute", interface="public")
    check(ep == url + "/compute/v2.1", "catalog compute endpoint %r" % ep)
    n = check_servers(conn, exp, "password")

    flavors = {f.name: f for f in conn.compute.flavors(details=True)}
    for fx in cloud["flavors"]:
        f = flavors.get(fx["name"])
        if check(f is not None, "flavor %s missing" % fx["name"]):
            check((f.id, f.vcpus, f.ram, f.disk) == (fx["id"], fx["vcpus"], fx["ram"], fx["disk"]),
                  "flavor %s: got %r" % (fx["name"], (f.id, f.vcpus, f.ram, f.disk)))
    one = conn.compute.get_flavor("4")
    check(one.name == "m1.large", "get_flavor(4) -> %r" % one.name)

    projects = {p.id: p.name for p in conn.identity.projects()}
    want_p = {p["id"]: p["name"] for p in cloud["projects"]}
    check(projects == want_p, "projects: got %r want %r" % (projects, want_p))
    users_got = {u.id: u.name for u in conn.identity.users()}
    check(users_got == {u["id"]: u["name"] for u in cloud["users"]}, "users: %r" % users_got)

    # os-simple-tenant-usage via the sdk (naive datetimes: nova rejects a zone suffix)
    u_exp = exp["os_simple_tenant_usage"]
    start = naive(exp["window"]["start"])
    end = naive(exp["window"]["end"])
    usages = {u.project_id: u for u in conn.compute.usages(start=start, end=end, detailed=1)}
    check(set(usages) == set(u_exp["tenants"]),
          "usage tenants: got %s want %s" % (sorted(usages), sorted(u_exp["tenants"])))
    for pid, t in u_exp["tenants"].items():
        u = usages.get(pid)
        if not check(u is not None, "usage for %s missing" % pid):
            continue
        for k in ("total_hours", "total_vcpus_usage", "total_memory_mb_usage",
                  "total_local_gb_usage"):
            check(abs(getattr(u, k) - t[k]) < 1e-9, "usage %s %s: got %r want %r" % (
                pid, k, getattr(u, k), t[k]))
        check(len(u.server_usages) == t["servers"], "usage %s: %d server_usages" % (
            pid, len(u.server_usages)))
        for su in u.server_usages:
            check(abs(su.hours - u_exp["server_hours"][su.instance_id]) < 1e-9,
                  "usage hours %s: %r" % (su.instance_id, su.hours))
    one = conn.compute.get_usage("p-bio", start=start, end=end)
    check(abs(one.total_hours - u_exp["tenants"]["p-bio"]["total_hours"]) < 1e-9,
          "get_usage(p-bio) total_hours %r" % one.total_hours)
    # a zone suffix is a 400 from nova, and from the stand-in
    r = conn.compute.get("/os-simple-tenant-usage?start=2025-06-01T00:00:00Z"
                         "&end=2025-06-01T01:00:00Z")
    check(r.status_code == 400, "usage with 'Z' answered %d, nova says 400" % r.status_code)

    # microversion 2.1: flavor is a reference, not embedded
    r = conn.compute.get("/servers/detail?all_tenants=1&limit=1",
                         microversion="2.1")
    s21 = r.json()["servers"][0]
    check(set(s21["flavor"]) == {"id", "links"}, "2.1 flavor shape %r" % s21["flavor"])
    check(r.headers.get("OpenStack-API-Version") == "compute 2.1",
          "2.1 version header %r" % r.headers.get("OpenStack-API-Version"))
    conn.close()

    # --- application credential
    ac = cloud["application_credentials"][0]
    conn = openstack.connection.Connection(
        auth_url=url + "/identity/v3", auth_type="v3applicationcredential",
        application_credential_id=ac["id"], application_credential_secret=ac["secret"],
        region_name="RegionOne", compute_api_version="2.47", identity_api_version="3")
    check_servers(conn, exp, "application_credential")
    conn.close()

    # --- a user without admin: all_projects is a 403 as nova's policy says
    conn = connect(url, username="carol", password=users["carol"]["password"],
                   project_name="biology", user_domain_name="Default",
                   project_domain_name="Default")
    try:
        list(conn.compute.servers(details=True, all_projects=True))
        check(False, "carol listed all_projects without a 403")
    except exceptions.ForbiddenException as e:
        check("get_all_tenants" in str(e), "carol's 403 says %s" % e)
    own = [s.project_id for s in conn.compute.servers(details=True)]
    check(own and set(own) == {"p-bio"}, "carol's own listing: %r" % own)
    conn.close()

    if problems:
        for p in problems:
            print("MISMATCH", p)
        print("openstacksdk %s: %d problems" % (SDK_VERSION, len(problems)))
        return 1
    print("openstacksdk %s" % SDK_VERSION, file=sys.stderr)
    print("ok %d servers" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
