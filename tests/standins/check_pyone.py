#!/usr/bin/env python3
"""Prove the OpenNebula stand-in faithful with the real client library.

    target/standins-venv/bin/python tests/standins/check_pyone.py URL [DATA] [--xsd DIR]

URL is what the stand-in printed (``ready url=.../RPC2``); DATA defaults to
tests/fixtures/opennebula/cloud.json. Uses pyone (installed by
tests/standins/install.sh), whose bindings are generated from OpenNebula's XSDs,
exactly as a site's script would: one.vmpool.infoextended (all, not DONE, paged,
by id range, alice's own), one.vm.info for every VM, one.vmpool.accounting for
the window, one.hostpool.info, and a wrong token. With --xsd DIR (a copy of
OpenNebula's share/doc/xsd/) it also validates the raw XML against vm.xsd,
vm_pool.xsd, acct.xsd and host_pool.xsd. Prints ``ok N vms`` and exits 0, or
prints every difference and exits 1.
"""

import json
import os
import sys
import xmlrpc.client

HERE = os.path.dirname(os.path.abspath(__file__))
# Keep this directory (opennebula.py, openstack.py) from shadowing any import.
sys.path = [p for p in sys.path if os.path.abspath(p or os.curdir) != HERE]

import pyone  # noqa: E402
from importlib.metadata import version as _pkg_version  # noqa: E402

PYONE_VERSION = _pkg_version("pyone")
ADMIN = "oneadmin:opennebula-test-token"

problems = []


def check(cond, what):
    if not cond:
        problems.append(what)
    return cond


def nz(x):
    return x or None


def as_list(x):
    if x is None:
        return []
    return x if isinstance(x, list) else [x]


def raw_history(vm):
    """The HISTORY elements as the server sent them. pyone 6.10 binds
    one.vmpool.infoextended with vm_pool.xsd's short VM type, whose HISTORY has no
    STIME/ETIME: read those from the element tree pyone keeps."""
    node = vm.gds_elementtree_node_
    return [{c.tag: c.text for c in h} for h in node.iter("HISTORY")]


def check_placement(h, p, label):
    got = {"seq": int(h["SEQ"]), "host": h["HOSTNAME"], "hid": int(h["HID"]),
           "from": int(h["STIME"]), "to": nz(int(h["ETIME"])),
           "running_from": nz(int(h["RSTIME"])),
           "running_to": nz(int(h["RETIME"])) or (nz(int(h["ETIME"])) if int(h["RSTIME"]) else None),
           "action": int(h["ACTION"])}
    for k, g in got.items():
        check(g == p[k], "%s: %s got %r, want %r" % (label, k, g, p[k]))


def history_dict(h):
    """A bound HISTORY (vm.xsd / acct.xsd) as the raw element names."""
    return {k: getattr(h, k) for k in ("SEQ", "HOSTNAME", "HID", "STIME", "ETIME", "RSTIME",
                                       "RETIME", "ACTION")}


def check_vm_fields(v, e, label):
    t = v.TEMPLATE
    disk = as_list(t.get("DISK"))
    fields = {
        "name": (v.NAME, e["name"]), "deploy_id": (v.DEPLOY_ID or "", e["deploy_id"]),
        "uid": (v.UID, e["uid"]), "gid": (v.GID, e["gid"]),
        "uname": (v.UNAME, e["uname"]), "gname": (v.GNAME, e["gname"]),
        "state": (v.STATE, e["state"]), "lcm_state": (v.LCM_STATE, e["lcm_state"]),
        "stime": (v.STIME, e["stime"]), "etime": (nz(v.ETIME), e["etime"]),
        "cpu": (float(t.get("CPU")), e["cpu"]), "vcpu": (int(t.get("VCPU")), e["vcpu"]),
        "memory_mb": (int(t.get("MEMORY")), e["memory_mb"]),
        "disk_size_mb": (int(disk[0]["SIZE"]) if disk else None, e["disk_size_mb"]),
    }
    for k, (g, w) in fields.items():
        check(g == w, "%s %s: %s got %r, want %r" % (label, v.ID, k, g, w))
    if v.DEPLOY_ID:
        check(v.DEPLOY_ID == "one-%d" % v.ID, "%s %s: deploy id %r" % (label, v.ID, v.DEPLOY_ID))


def lived(records, w0, w1):
    """Running seconds per (vm, host) from history records: [RSTIME, RETIME or
    ETIME or open), clipped to the window."""
    out = {}
    for h in records:
        rs = h["RSTIME"]
        if not rs:
            continue
        a, b = max(rs, w0), min(h["RETIME"] or h["ETIME"] or w1, w1)
        if b > a:
            key = (h["OID"], h["HOSTNAME"])
            out[key] = out.get(key, 0) + (b - a)
    return out


def validate(url, xsd_dir):
    """Validate the raw answers against OpenNebula's own XSDs (lxml comes with pyone)."""
    from lxml import etree
    xs = "{http://www.w3.org/2001/XMLSchema}"
    ns = "http://opennebula.org/XMLSchema"

    def loosen(doc):
        # libxml2 rejects the "any, VCENTER_*, any" sequences of vm.xsd/host.xsd as
        # not deterministic (UPA); they are open content: make each one xs:any.
        for seq in list(doc.iter(xs + "sequence")):
            kids = [k for k in seq if isinstance(k.tag, str)]
            if len(kids) > 1 and any(k.tag == xs + "any" for k in kids):
                for k in kids:
                    seq.remove(k)
                etree.SubElement(seq, xs + "any", minOccurs="0", maxOccurs="unbounded",
                                 processContents="skip")
        return doc

    def schema(name):
        doc = loosen(etree.parse(os.path.join(xsd_dir, name + ".xsd")))
        for inc in list(doc.getroot().iter(xs + "include")):
            sub = loosen(etree.parse(os.path.join(xsd_dir, inc.get("schemaLocation"))))
            parent = inc.getparent()
            i = parent.index(inc)
            parent.remove(inc)
            for j, k in enumerate(sub.getroot()):
                parent.insert(i + j, k)
        return etree.XMLSchema(doc)

    def qualified(text):
        el = etree.fromstring(text.encode() if isinstance(text, str) else text)
        for e in el.iter():
            if isinstance(e.tag, str) and not e.tag.startswith("{"):
                e.tag = "{%s}%s" % (ns, e.tag)
        return el

    def valid(sch, el, what):
        ok = sch.validate(el)
        check(ok, "xsd: %s invalid: %s" % (what, [str(x) for x in sch.error_log][:3]))

    rpc = xmlrpc.client.ServerProxy(url)
    vm_s, pool_s, acct_s, host_s = (schema("vm"), schema("vm_pool"), schema("acct"),
                                    schema("host_pool"))
    n = 0
    ext = etree.fromstring(rpc.one.vmpool.infoextended(ADMIN, -2, -1, -1, -2)[1].encode())
    check(ext.tag == "VM_POOL", "infoextended root %r" % ext.tag)
    for vm in ext:  # full bodies: vm.xsd per VM (6.10 has no vm_pool_extended.xsd)
        valid(vm_s, qualified(etree.tostring(vm)), "infoextended VM %s" % vm.findtext("ID"))
        valid(vm_s, qualified(rpc.one.vm.info(ADMIN, int(vm.findtext("ID")))[1]),
              "vm.info %s" % vm.findtext("ID"))
        n += 2
    valid(pool_s, qualified(rpc.one.vmpool.info(ADMIN, -2, -1, -1, -2)[1]), "vmpool.info")
    valid(acct_s, qualified(rpc.one.vmpool.accounting(ADMIN, -2, -1, -1)[1]), "accounting")
    valid(host_s, qualified(rpc.one.hostpool.info(ADMIN)[1]), "hostpool.info")
    return n + 3


def main():
    args = [a for a in sys.argv[1:]]
    xsd_dir = None
    if "--xsd" in args:
        i = args.index("--xsd")
        xsd_dir = args[i + 1]
        del args[i:i + 2]
    url = args[0]
    data = args[1] if len(args) > 1 else os.path.join(
        HERE, "..", "fixtures", "opennebula", "cloud.json")
    with open(data) as f:
        cloud = json.load(f)
    exp = cloud["expected"]
    w0, w1 = exp["window"]["start_unix"], exp["window"]["end_unix"]
    evms = exp["vms"]

    one = pyone.OneServer(url, session=ADMIN)

    # --- every VM, DONE included: one.vmpool.infoextended(-2, -1, -1, -2)
    pool = one.vmpool.infoextended(-2, -1, -1, -2)
    ids = [v.ID for v in pool.VM]
    check(ids == exp["infoextended_all"]["ids"],
          "infoextended(-2,-1,-1,-2) ids %s, want %s" % (ids, exp["infoextended_all"]["ids"]))
    for v in pool.VM:
        e = evms.get(str(v.ID))
        if not check(e is not None, "unexpected VM %s" % v.ID):
            continue
        check_vm_fields(v, e, "infoextended")
        # the pool body carries the last history record only, as oned's DB body does
        raw = raw_history(v)
        seqs = [int(h["SEQ"]) for h in raw]
        want = [e["placements"][-1]["seq"]] if e["placements"] else []
        check(seqs == want, "infoextended %s: history seqs %s, want %s" % (v.ID, seqs, want))
        bound = as_list(v.HISTORY_RECORDS.HISTORY if v.HISTORY_RECORDS else None)
        check([(h.SEQ, h.HOSTNAME, h.HID) for h in bound] ==
              [(h["seq"], h["host"], h["hid"]) for h in e["placements"][-1:]],
              "infoextended %s: bound history %r" % (v.ID, [(h.SEQ, h.HOSTNAME) for h in bound]))
        for h in raw:
            check_placement(h, e["placements"][-1], "infoextended %s history" % v.ID)
    n = len(ids)

    nd = [v.ID for v in one.vmpool.infoextended(-2, -1, -1, -1).VM]
    check(nd == exp["infoextended_not_done"]["ids"], "state -1 ids %s" % nd)

    # paging as oned does it: end_id < -1 is a page size, start_id its offset
    paged, off = [], 0
    while True:
        page = [v.ID for v in one.vmpool.infoextended(-2, off, -5, -2).VM]
        paged += page
        off += 5
        if len(page) < 5:
            break
    check(paged == exp["infoextended_all"]["ids"], "paged (offset, -5) ids %s" % paged)
    rng = [v.ID for v in one.vmpool.infoextended(-2, 43, 45, -2).VM]
    check(rng == [i for i in exp["infoextended_all"]["ids"] if 43 <= i <= 45],
          "id range 43..45: %s" % rng)

    # --- every history record: one.vm.info
    for sid, e in evms.items():
        v = one.vm.info(int(sid))
        check_vm_fields(v, e, "vm.info")
        hs = as_list(v.HISTORY_RECORDS.HISTORY if v.HISTORY_RECORDS else None)
        check(len(hs) == len(e["placements"]),
              "vm.info %s: %d history records, want %d" % (sid, len(hs), len(e["placements"])))
        for h, p in zip(hs, e["placements"]):
            check_placement(history_dict(h), p, "vm.info %s seq %s" % (sid, h.SEQ))
    try:
        one.vm.info(9999)
        check(False, "vm.info(9999) did not fail")
    except pyone.OneNoExistsException:
        pass

    # --- the window's history records: one.vmpool.accounting(-2, start, end)
    acct = one.vmpool.accounting(-2, w0, w1)
    recs = as_list(acct.HISTORY)
    got = [[h.OID, h.SEQ] for h in recs]
    check(got == exp["accounting_window"]["records"],
          "accounting records %s, want %s" % (got, exp["accounting_window"]["records"]))
    flat = []
    for h in recs:
        e = evms[str(h.OID)]
        p = [x for x in e["placements"] if x["seq"] == h.SEQ]
        if check(p, "accounting: VM %s has no seq %s" % (h.OID, h.SEQ)):
            check_placement(history_dict(h), p[0], "accounting %s seq %s" % (h.OID, h.SEQ))
        check(h.VM is not None and h.VM.ID == h.OID and h.VM.NAME == e["name"]
              and h.VM.UNAME == e["uname"] and h.VM.GNAME == e["gname"],
              "accounting %s: embedded VM %r" % (h.OID, h.VM and h.VM.NAME))
        check(h.VM is not None and int(h.VM.TEMPLATE["VCPU"]) == e["vcpu"]
              and int(h.VM.TEMPLATE["MEMORY"]) == e["memory_mb"],
              "accounting %s: embedded TEMPLATE" % h.OID)
        flat.append(dict(history_dict(h), OID=h.OID))
    secs = lived(flat, w0, w1)
    check(sorted({k[0] for k in secs}) == exp["lived_in_window"]["ids"],
          "lived in window %s, want %s" % (sorted({k[0] for k in secs}),
                                           exp["lived_in_window"]["ids"]))
    for sid, e in evms.items():
        mine = {host: s for (oid, host), s in secs.items() if oid == int(sid)}
        check(mine == e["running_seconds_in_window"],
              "VM %s running seconds %r, want %r" % (sid, mine, e["running_seconds_in_window"]))
    every = [[h.OID, h.SEQ] for h in as_list(one.vmpool.accounting(-2, -1, -1).HISTORY)]
    check(every == [[int(s), p["seq"]] for s in sorted(evms, key=int)
                    for p in evms[s]["placements"]], "accounting(-1, -1) %s" % every)

    # --- hosts
    hosts = {h.ID: h.NAME for h in one.hostpool.info().HOST}
    check(hosts == {int(k): v for k, v in exp["hosts"].items()}, "hosts %r" % hosts)

    # --- a wrong token, and a user who sees her own VMs only
    try:
        pyone.OneServer(url, session="oneadmin:not-the-token").vmpool.infoextended(-2, -1, -1, -2)
        check(False, "a wrong token was accepted")
    except pyone.OneAuthenticationException as e:
        check(str(e) == "[one.vmpool.infoextended] User couldn't be authenticated, aborting call.",
              "auth message %r" % str(e))
    alice = pyone.OneServer(url, session="alice:alice-token")
    mine = [v.ID for v in alice.vmpool.infoextended(-1, -1, -1, -1).VM]
    check(mine == exp["alice_mine"]["ids"], "alice's VMs %s, want %s" % (mine, exp["alice_mine"]["ids"]))

    if xsd_dir:
        k = validate(url, xsd_dir)
        print("xsd: %d documents checked against %s" % (k, xsd_dir), file=sys.stderr)

    if problems:
        for p in problems:
            print("MISMATCH", p)
        print("pyone %s: %d problems" % (PYONE_VERSION, len(problems)))
        return 1
    print("pyone %s" % PYONE_VERSION, file=sys.stderr)
    print("ok %d vms" % n)
    return 0


if __name__ == "__main__":
    sys.exit(main())
