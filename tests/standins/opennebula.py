#!/usr/bin/env python3
"""Stand-in for OpenNebula 6.10's XML-RPC API (/RPC2), for wattson's tests (issue 31).

    python3 opennebula.py --port PORT --data FILE [--faults FILE]

Binds 127.0.0.1:PORT (0 = any free port), prints exactly one line
``ready url=http://127.0.0.1:<port>/RPC2`` and serves until killed.

Methods: one.vmpool.infoextended, one.vmpool.info, one.vmpool.accounting,
one.vm.info, one.hostpool.info, one.system.version, system.listMethods.
Every one.* method takes the session "user:token" first. Bodies, element order,
CDATA, filters and error arrays follow OpenNebula 6.10's own code
(VirtualMachine::to_xml_extended / to_xml_short, History::to_xml, Host::to_xml,
RequestManagerPoolInfoFilter, PoolSQL::usr_filter/oid_filter,
VirtualMachinePool::dump_acct, Request::failure_response) and validate against
share/doc/xsd/{vm,vm_pool,acct,host_pool}.xsd; see README.md beside this file.

Standard library only. The data file is the cloud (see
tests/fixtures/opennebula/cloud.json); the faults file (JSON, re-read on every
request) injects failures; env STANDIN_LOG names a file that gets one JSON line
per call (never the session string).
"""

import argparse
import datetime as dt
import json
import os
import sys
import threading
import time
import xmlrpc.client
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from xml.sax.saxutils import escape
from standin_faults import Faults

# Request.h ErrorCode
SUCCESS, AUTHENTICATION, AUTHORIZATION, NO_EXISTS, ACTION, XML_RPC_API, INTERNAL = (
    0x0, 0x100, 0x200, 0x400, 0x800, 0x1000, 0x2000)
# RequestManagerPoolInfoFilter
ALL, MINE, MINE_GROUP, GROUP = -2, -3, -1, -4
ALL_VM, NOT_DONE = -2, -1
DONE = 6
CLONING_FAILURE = 11
# states whose VM is in its host's VMS collection: ACTIVE, SUSPENDED, POWEROFF
# (STOPPED and UNDEPLOYED give the host back, DONE/PENDING/HOLD never hold one)
ON_HOST_STATES = {3, 5, 8}
ONEADMIN_GROUP = 0  # members of oneadmin pass every ACL (PoolSQL::acl_filter all=true)
# xmlrpc-c's faults for calls the registry does not know or cannot type-check
FAULT_NO_METHOD = -506
FAULT_TYPE = -501

METHODS = {
    # name: (signature after the session, help) as RequestManager registers them
    "one.vmpool.infoextended": ("iiii", "Returns the virtual machine instances pool in extended format"),
    "one.vmpool.info": ("iiii", "Returns the virtual machine instances pool"),
    "one.vmpool.accounting": ("iii", "Returns the virtual machine history records"),
    "one.vm.info": ("i", "Returns virtual machine instance information"),
    "one.hostpool.info": ("", "Returns the host pool"),
    "one.system.version": ("", "Returns the OpenNebula core version"),
}


def cdata(v):
    """one_util::escape_xml: every template value, MAD name and hostname (short)."""
    return "<![CDATA[%s]]>" % v


def template_xml(root, attrs, extra=""):
    """Template::to_xml: attributes in name order (the C++ multimap), vector
    attributes with their keys in name order (std::map), values as CDATA.
    A list is several attributes of one name, in their order."""
    out = ["<%s>" % root]
    for name in sorted(attrs):
        vals = attrs[name]
        for v in (vals if isinstance(vals, list) else [vals]):
            if isinstance(v, dict):
                out.append("<%s>%s</%s>" % (name, "".join(
                    "<%s>%s</%s>" % (k, cdata(v[k]), k) for k in sorted(v) if k), name))
            else:
                out.append("<%s>%s</%s>" % (name, cdata(v), name))
    out.append(extra)
    out.append("</%s>" % root)
    return "".join(out)


def perms_xml(p):
    names = ("OWNER_U", "OWNER_M", "OWNER_A", "GROUP_U", "GROUP_M", "GROUP_A",
             "OTHER_U", "OTHER_M", "OTHER_A")
    return "<PERMISSIONS>%s</PERMISSIONS>" % "".join(
        "<%s>%s</%s>" % (n, c, n) for n, c in zip(names, p))


class Cloud:
    def __init__(self, path):
        with open(path) as f:
            d = json.load(f)
        self.version = d.get("version", "6.10.5")
        self.users = {u["name"]: u for u in d["users"]}
        self.users_by_id = {u["id"]: u for u in d["users"]}
        self.groups = {g["id"]: g for g in d["groups"]}
        self.hosts = sorted(d["hosts"], key=lambda h: h["id"])
        self.vms = sorted(d["vms"], key=lambda v: v["id"])
        self.by_id = {v["id"]: v for v in self.vms}

    # ------------------------------------------------------------ VM bodies

    def history_xml(self, h, vm_body=None):
        """History::to_xml(xml, database): the full record; with the VM body
        when it comes from the history table (accounting)."""
        return ("<HISTORY><OID>%d</OID><SEQ>%d</SEQ><HOSTNAME>%s</HOSTNAME><HID>%d</HID>"
                "<CID>%d</CID><STIME>%d</STIME><ETIME>%d</ETIME><VM_MAD>%s</VM_MAD>"
                "<TM_MAD>%s</TM_MAD><DS_ID>%d</DS_ID><PSTIME>%d</PSTIME><PETIME>%d</PETIME>"
                "<RSTIME>%d</RSTIME><RETIME>%d</RETIME><ESTIME>%d</ESTIME><EETIME>%d</EETIME>"
                "<ACTION>%d</ACTION><UID>%d</UID><GID>%d</GID><REQUEST_ID>%s</REQUEST_ID>%s"
                "</HISTORY>") % (
            h["_oid"], h["seq"], escape(h["hostname"]), h["hid"], h["cid"], h["stime"],
            h["etime"], cdata(h["vm_mad"]), cdata(h["tm_mad"]), h["ds_id"], h["pstime"],
            h["petime"], h["rstime"], h["retime"], h["estime"], h["eetime"], h["action"],
            h["uid"], h["gid"], escape(str(h["request_id"])), vm_body or "")

    def vm_xml(self, v, n_history):
        """VirtualMachine::to_xml_extended(xml, n_history, sa).
        n_history 0: <HISTORY_RECORDS/> (the body kept in a history record),
        1: the last record only (the vm_pool 'body' column: one.vmpool.infoextended),
        2: every record (one.vm.info)."""
        u = self.users_by_id[v["uid"]]
        g = self.groups[v["gid"]]
        hist = [dict(h, _oid=v["id"]) for h in v["history"]]
        if n_history == 0 or not hist:
            hx = "<HISTORY_RECORDS/>"
        elif n_history == 1:
            hx = "<HISTORY_RECORDS>%s</HISTORY_RECORDS>" % self.history_xml(hist[-1])
        else:
            hx = "<HISTORY_RECORDS>%s</HISTORY_RECORDS>" % "".join(
                self.history_xml(h) for h in hist)
        tmpl = dict(v["template"])
        tmpl.setdefault("VMID", str(v["id"]))
        return "".join([
            "<VM><ID>%d</ID><UID>%d</UID><GID>%d</GID>" % (v["id"], v["uid"], v["gid"]),
            "<UNAME>%s</UNAME><GNAME>%s</GNAME><NAME>%s</NAME>" % (
                escape(u["name"]), escape(g["name"]), escape(v["name"])),
            perms_xml(v.get("permissions", "110000000")),
            "<LAST_POLL>%d</LAST_POLL>" % v.get("last_poll", 0),
            "<STATE>%d</STATE><LCM_STATE>%d</LCM_STATE>" % (v["state"], v["lcm_state"]),
            "<PREV_STATE>%d</PREV_STATE><PREV_LCM_STATE>%d</PREV_LCM_STATE>" % (
                v.get("prev_state", v["state"]), v.get("prev_lcm_state", v["lcm_state"])),
            "<RESCHED>%d</RESCHED>" % v.get("resched", 0),
            "<STIME>%d</STIME><ETIME>%d</ETIME>" % (v["stime"], v["etime"]),
            "<DEPLOY_ID>%s</DEPLOY_ID>" % escape(v["deploy_id"]),
            template_xml("MONITORING", v.get("monitoring", {})),
            "<SCHED_ACTIONS></SCHED_ACTIONS>",
            template_xml("TEMPLATE", tmpl),
            template_xml("USER_TEMPLATE", v.get("user_template", {})),
            hx,
            "<BACKUPS><BACKUP_CONFIG/><BACKUP_IDS></BACKUP_IDS></BACKUPS>",
            "</VM>"])

    def vm_short_xml(self, v):
        """VirtualMachine::to_xml_short: the 'short_body' column, one.vmpool.info."""
        t = v["template"]
        disks = t.get("DISK", [])
        disks = disks if isinstance(disks, list) else [disks]
        # VirtualMachineDisk::to_xml_short keeps a few attributes only
        keep = ("DATASTORE", "DATASTORE_ID", "DISK_ID", "IMAGE", "IMAGE_ID", "SIZE",
                "TARGET", "TYPE", "CLONE", "CLONE_TARGET", "LN_TARGET", "DISK_SNAPSHOT_TOTAL_SIZE",
                "ORIGINAL_SIZE", "SOURCE", "TM_MAD", "READONLY", "PERSISTENT", "SAVE")
        dx = "".join("<DISK>%s</DISK>" % "".join(
            "<%s>%s</%s>" % (k, cdata(d[k]), k) for k in sorted(d) if k in keep) for d in disks)
        g = t.get("GRAPHICS")
        gx = ("<GRAPHICS>%s</GRAPHICS>" % "".join(
            "<%s>%s</%s>" % (k, cdata(g[k]), k) for k in sorted(g))) if g else ""
        ut = v.get("user_template", {})
        utx = template_xml("USER_TEMPLATE", {k: ut[k] for k in ut if k in (
            "LABELS", "ERROR", "SCHED_MESSAGE", "SCHED_RANK", "SCHED_DS_RANK",
            "SCHED_REQUIREMENTS", "SCHED_DS_REQUIREMENTS", "USER_PRIORITY")})
        if v["history"]:
            h = v["history"][-1]
            hx = ("<HISTORY_RECORDS><HISTORY><OID>%d</OID><SEQ>%d</SEQ><HOSTNAME>%s</HOSTNAME>"
                  "<HID>%d</HID><CID>%d</CID><DS_ID>%d</DS_ID><VM_MAD>%s</VM_MAD>"
                  "<TM_MAD>%s</TM_MAD><ACTION>%s</ACTION></HISTORY></HISTORY_RECORDS>") % (
                v["id"], h["seq"], cdata(h["hostname"]), h["hid"], h["cid"], h["ds_id"],
                cdata(h["vm_mad"]), cdata(h["tm_mad"]), cdata(h["action"]))
        else:
            hx = "<HISTORY_RECORDS/>"
        u = self.users_by_id[v["uid"]]
        return "".join([
            "<VM><ID>%d</ID><UID>%d</UID><GID>%d</GID>" % (v["id"], v["uid"], v["gid"]),
            "<UNAME>%s</UNAME><GNAME>%s</GNAME><NAME>%s</NAME>" % (
                escape(u["name"]), escape(self.groups[v["gid"]]["name"]), escape(v["name"])),
            "<LAST_POLL>%d</LAST_POLL>" % v.get("last_poll", 0),
            "<STATE>%d</STATE><LCM_STATE>%d</LCM_STATE>" % (v["state"], v["lcm_state"]),
            "<RESCHED>%d</RESCHED>" % v.get("resched", 0),
            "<STIME>%d</STIME><ETIME>%d</ETIME>" % (v["stime"], v["etime"]),
            "<DEPLOY_ID>%s</DEPLOY_ID>" % escape(v["deploy_id"]),
            "<TEMPLATE><CPU>%s</CPU><MEMORY>%s</MEMORY><VCPU>%s</VCPU>%s%s</TEMPLATE>" % (
                t.get("CPU", ""), t.get("MEMORY", ""), t.get("VCPU", ""), dx, gx),
            "<MONITORING/>", utx, hx, "</VM>"])

    # ------------------------------------------------------------ hosts

    def host_vms(self, h):
        """Host's VMS collection: VMs that hold capacity on it (their last record)."""
        return [v for v in self.vms if v["history"] and v["history"][-1]["hid"] == h["id"]
                and v["state"] in ON_HOST_STATES]

    def host_xml(self, h):
        vms = self.host_vms(h)
        running = [v for v in vms if v["state"] == 3]
        mem = sum(int(v["template"].get("MEMORY", 0)) * 1024 for v in running)
        cpu = sum(int(round(float(v["template"].get("CPU", 0)) * 100)) for v in running)
        ds = ("<DATASTORES><DISK_USAGE>0</DISK_USAGE><FREE_DISK>%d</FREE_DISK>"
              "<MAX_DISK>%d</MAX_DISK><USED_DISK>%d</USED_DISK></DATASTORES>") % (
            h.get("free_disk", 0), h.get("max_disk", 0), h.get("used_disk", 0))
        return "".join([
            "<HOST><ID>%d</ID><NAME>%s</NAME>" % (h["id"], escape(h["name"])),
            "<STATE>%d</STATE><PREV_STATE>%d</PREV_STATE>" % (h["state"], h.get("prev_state", h["state"])),
            "<IM_MAD>%s</IM_MAD><VM_MAD>%s</VM_MAD>" % (cdata(h["im_mad"]), cdata(h["vm_mad"])),
            "<CLUSTER_ID>%d</CLUSTER_ID><CLUSTER>%s</CLUSTER>" % (h["cluster_id"], escape(h["cluster"])),
            "<HOST_SHARE><MEM_USAGE>%d</MEM_USAGE><CPU_USAGE>%d</CPU_USAGE>" % (mem, cpu),
            "<TOTAL_MEM>%d</TOTAL_MEM><TOTAL_CPU>%d</TOTAL_CPU>" % (h["total_mem"], h["total_cpu"]),
            "<MAX_MEM>%d</MAX_MEM><MAX_CPU>%d</MAX_CPU>" % (h["max_mem"], h["max_cpu"]),
            "<RUNNING_VMS>%d</RUNNING_VMS><VMS_THREAD>1</VMS_THREAD>" % len(running),
            ds, "<PCI_DEVICES></PCI_DEVICES><NUMA_NODES></NUMA_NODES></HOST_SHARE>",
            "<VMS>%s</VMS>" % "".join("<ID>%d</ID>" % v["id"] for v in vms),
            template_xml("TEMPLATE", h.get("template", {})),
            "<MONITORING/>",
            "</HOST>"])


class Fault(Exception):
    def __init__(self, code, message):
        super().__init__(message)
        self.code = code
        self.message = message


def is_int(x):
    return isinstance(x, int) and not isinstance(x, bool)


class Handler(BaseHTTPRequestHandler):
    server_version = "Abyss/2.3"  # xmlrpc-c's HTTP server, as oned answers
    sys_version = ""
    protocol_version = "HTTP/1.1"
    cloud = None
    faults = None

    def log_message(self, fmt, *args):
        pass

    def do_GET(self):
        self.send_plain(405, "Method Not Allowed")

    def send_plain(self, status, text):
        body = text.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self):
        n = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(n)
        faults = self.faults.current()
        if faults.get("slow_ms"):
            time.sleep(float(faults["slow_ms"]) / 1000.0)
        if self.path.rstrip("/") != "/RPC2":
            self.send_plain(404, "Not Found")
            return
        try:
            params, method = xmlrpc.client.loads(raw, use_builtin_types=True)
        except Exception:
            self.reply(xmlrpc.client.dumps(xmlrpc.client.Fault(
                -503, "Call XML not a proper XML-RPC call. XML-RPC is not valid"),
                methodresponse=True), None, params=(), ok=False, fault="parse")
            return
        fail = self.faults.take_failure(faults)
        if fail is not None:
            self.write_log(method, params, user=None, ok=False, fault="http %d" % fail)
            self.send_plain(int(fail), "Internal Server Error" if int(fail) == 500 else "Error")
            return
        user = None
        try:
            result, user = self.call(method, params)
            if result[0]:
                body = xmlrpc.client.dumps((result,), methodresponse=True)
            else:
                # Request::failure_response: [false, msg, code, resp_id, <i8>replication_idx]
                body = xmlrpc.client.dumps((result[:4],), methodresponse=True)
                body = body.replace("</data></array>", "<value><i8>%d</i8></value>\n</data></array>" % result[4], 1)
            self.reply(body, method, params, user=user, ok=bool(result[0]),
                       fault=None if result[0] else "code %d" % result[2])
        except Fault as f:
            self.reply(xmlrpc.client.dumps(xmlrpc.client.Fault(f.code, f.message),
                                           methodresponse=True),
                       method, params, user=user, ok=False, fault="xmlrpc %d" % f.code)

    def reply(self, body, method, params, user=None, ok=True, fault=None):
        data = body.encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/xml")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        if method is not None:
            self.write_log(method, params, user=user, ok=ok, fault=fault)

    def write_log(self, method, params, user, ok, fault):
        path = os.environ.get("STANDIN_LOG")
        if not path:
            return
        rec = {"method": method,
               "params": list(params[1:]) if method.startswith("one.") else list(params),
               "user": user, "ok": ok,
               "ts": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")}
        if fault:
            rec["fault"] = fault
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")

    # ------------------------------------------------------------ dispatch

    def call(self, method, params):
        if method == "system.listMethods":
            return list(METHODS) + ["system.listMethods", "system.methodHelp",
                                    "system.methodSignature"], None
        if method == "system.methodHelp" and params and params[0] in METHODS:
            return METHODS[params[0]][1], None
        if method == "system.methodSignature" and params and params[0] in METHODS:
            return [["array", "string"] + ["int"] * len(METHODS[params[0]][0])], None
        if method not in METHODS:
            raise Fault(FAULT_NO_METHOD, "Method '%s' not defined" % method)
        sig = METHODS[method][0]
        # oned's extra arguments are optional in a few methods (vm.info decrypt,
        # vmpool.info json query): accept more, never fewer
        if len(params) < 1 + len(sig) or not isinstance(params[0], str) or not all(
                is_int(p) for p in params[1:1 + len(sig)]):
            raise Fault(FAULT_TYPE, "Type mismatch: the parameters of %s are 'A:s%s'"
                        % (method, sig))
        ctx = self.authenticate(params[0])
        if ctx is None:
            return self.failure(method, AUTHENTICATION,
                                "User couldn't be authenticated, aborting call."), None
        args = params[1:]
        c = self.cloud
        if method == "one.system.version":
            return [True, c.version, SUCCESS], ctx["name"]
        if method == "one.hostpool.info":
            return [True, "<HOST_POOL>%s</HOST_POOL>" % "".join(
                c.host_xml(h) for h in c.hosts), SUCCESS], ctx["name"]
        if method == "one.vm.info":
            return self.vm_info(ctx, args[0]), ctx["name"]
        if method in ("one.vmpool.infoextended", "one.vmpool.info"):
            return self.vmpool(ctx, method, *args[:4]), ctx["name"]
        if method == "one.vmpool.accounting":
            return self.accounting(ctx, *args[:3]), ctx["name"]
        raise Fault(FAULT_NO_METHOD, "Method '%s' not defined" % method)

    def failure(self, method, code, msg, resp_id=-1):
        return [False, "[%s] %s" % (method, msg), code, resp_id, -1]

    def authenticate(self, session):
        """UserPool::authenticate for core auth: 'user:secret'."""
        name, sep, secret = session.partition(":")
        u = self.cloud.users.get(name)
        if not sep or u is None or u.get("disabled") or secret != u["token"]:
            return None
        return u

    # ------------------------------------------------------------ filters

    def visible(self, ctx, v, filter_flag):
        """PoolSQL::usr_filter with acl_filter's all = member of oneadmin."""
        groups = set(ctx.get("groups", [ctx["gid"]]))
        admin = ONEADMIN_GROUP in groups or ctx["id"] == 0
        p = v.get("permissions", "110000000")
        group_u, other_u = p[3] == "1", p[6] == "1"
        shared = other_u or (v["gid"] in groups and group_u)
        if filter_flag == MINE:
            return v["uid"] == ctx["id"]
        if filter_flag == GROUP:
            return v["gid"] == ctx["gid"] and (admin or other_u or v["uid"] == ctx["id"]
                                               or (v["gid"] == ctx["gid"] and group_u))
        if filter_flag == MINE_GROUP:
            return v["uid"] == ctx["id"] or (v["gid"] in groups and (admin or shared))
        if filter_flag == ALL:
            return admin or v["uid"] == ctx["id"] or shared
        # filter_flag >= 0: that user's resources
        return v["uid"] == filter_flag and (admin or filter_flag == ctx["id"] or shared)

    def vmpool(self, ctx, method, filter_flag, start_id, end_id, state):
        if filter_flag < GROUP:
            return self.failure(method, XML_RPC_API, "Incorrect filter_flag")
        if state < ALL_VM or state > CLONING_FAILURE:
            return self.failure(method, XML_RPC_API, "Incorrect filter_flag, state")
        vms = [v for v in self.cloud.vms if self.visible(ctx, v, filter_flag)]
        if state == NOT_DONE:
            vms = [v for v in vms if v["state"] != DONE]
        elif state >= 0:
            vms = [v for v in vms if v["state"] == state]
        # PoolSQL::oid_filter, then 'LIMIT start_id, -end_id' when end_id < -1
        if end_id >= -1 and start_id != -1:
            vms = [v for v in vms if v["id"] >= start_id and (end_id == -1 or v["id"] <= end_id)]
        if end_id < -1:
            vms = vms[max(start_id, 0):max(start_id, 0) + (-end_id)]
        if method == "one.vmpool.infoextended":
            body = "".join(self.cloud.vm_xml(v, 1) for v in vms)
        else:
            body = "".join(self.cloud.vm_short_xml(v) for v in vms)
        return [True, "<VM_POOL>%s</VM_POOL>" % body, SUCCESS]

    def vm_info(self, ctx, oid):
        method = "one.vm.info"
        v = self.cloud.by_id.get(oid)
        if v is None:
            return self.failure(method, NO_EXISTS, "Error getting virtual machine [%d]." % oid, oid)
        if not self.visible(ctx, v, ALL):
            return self.failure(method, AUTHORIZATION,
                                "User [%d] : Not authorized to perform USE VM/%d." % (ctx["id"], oid),
                                oid)
        return [True, self.cloud.vm_xml(v, 2), SUCCESS]

    def accounting(self, ctx, filter_flag, time_start, time_end):
        method = "one.vmpool.accounting"
        if filter_flag < GROUP:
            return self.failure(method, XML_RPC_API, "Incorrect filter_flag")
        out = []
        for v in self.cloud.vms:  # ORDER BY vid, seq
            if not self.visible(ctx, v, filter_flag):
                continue
            for h in v["history"]:
                if time_start != -1 and not (h["etime"] > time_start or h["etime"] == 0):
                    continue
                if time_end != -1 and not h["stime"] < time_end:
                    continue
                out.append(self.cloud.history_xml(dict(h, _oid=v["id"]),
                                                  self.cloud.vm_xml(v, 0)))
        return [True, "<HISTORY_RECORDS>%s</HISTORY_RECORDS>" % "".join(out), SUCCESS]


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--data", required=True)
    ap.add_argument("--faults")
    a = ap.parse_args()
    Handler.cloud = Cloud(a.data)
    Handler.faults = Faults(a.faults)
    srv = ThreadingHTTPServer(("127.0.0.1", a.port), Handler)
    srv.daemon_threads = True
    sys.stdout.write("ready url=http://127.0.0.1:%d/RPC2\n" % srv.server_address[1])
    sys.stdout.flush()
    try:
        srv.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
