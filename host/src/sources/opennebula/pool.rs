//! OpenNebula's pools as its schemas (`vm_pool.xsd`, `host_pool.xsd`) lay
//! them out: every VM with its owner, template sizes and history records
//! (one per host it ran on), and the hosts' names by id.

use std::collections::HashMap;

use roxmltree::Node;

use crate::sources::cloud::CloudVm;
use crate::sources::owner::Owner;

/// VM state `DONE`: the VM is gone (its `ETIME` is when).
const DONE: &str = "6";

/// One `<HISTORY>`: a stay on a host, unix seconds (0: still there).
#[derive(Clone, Debug, PartialEq)]
pub struct Stay {
    /// The host's name.
    pub host: String,
    /// The host's id.
    pub host_id: String,
    /// When the stay began.
    pub start_s: i64,
    /// When it ended; 0 while it goes on.
    pub end_s: i64,
}

/// The VMs of a `<VM_POOL>` as cloud VMs, by OpenNebula id.
pub fn vms(xml: &str) -> Result<Vec<(String, CloudVm)>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let pool = doc.root_element();
    if !pool.has_tag_name("VM_POOL") {
        return Err(format!(
            "<{}> where <VM_POOL> was expected",
            pool.tag_name().name()
        ));
    }
    Ok(pool
        .children()
        .filter(|n| n.has_tag_name("VM"))
        .filter_map(|n| Some((text(n, "ID")?, vm(n)?)))
        .collect())
}

/// Per VM id: its stays in the window, and the VM as its history record has it.
pub type Accounting = HashMap<String, (Vec<Stay>, Option<CloudVm>)>;

/// The `<HISTORY_RECORDS>` of `one.vmpool.accounting`: per VM id, its stays
/// overlapping the window and the VM itself (each record carries its
/// `<VM>`), where the record does.
pub fn accounting(xml: &str) -> Result<Accounting, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    let records = doc.root_element();
    if !records.has_tag_name("HISTORY_RECORDS") {
        return Err(format!(
            "<{}> where <HISTORY_RECORDS> was expected",
            records.tag_name().name()
        ));
    }
    let mut by_vm = Accounting::new();
    for h in records.children().filter(|n| n.has_tag_name("HISTORY")) {
        let (Some(oid), Some(stay)) = (text(h, "OID"), stay(h)) else {
            continue;
        };
        let entry = by_vm.entry(oid).or_default();
        entry.0.push(stay);
        if entry.1.is_none() {
            entry.1 = child(h, "VM").and_then(vm);
        }
    }
    for (stays, _) in by_vm.values_mut() {
        stays.sort_by_key(|s| s.start_s);
    }
    Ok(by_vm)
}

/// Host names by id from a `<HOST_POOL>`.
pub fn host_names(xml: &str) -> Result<HashMap<String, String>, String> {
    let doc = roxmltree::Document::parse(xml).map_err(|e| format!("not XML: {e}"))?;
    Ok(doc
        .root_element()
        .children()
        .filter(|n| n.has_tag_name("HOST"))
        .filter_map(|h| Some((text(h, "ID")?, text(h, "NAME")?)))
        .collect())
}

fn vm(node: Node<'_, '_>) -> Option<CloudVm> {
    let id = text(node, "ID")?;
    let template = child(node, "TEMPLATE");
    let number = |name: &str| {
        template
            .and_then(|t| text(t, name))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let stays: Vec<Stay> = child(node, "HISTORY_RECORDS")
        .into_iter()
        .flat_map(|h| h.children().filter(|n| n.has_tag_name("HISTORY")))
        .filter_map(stay)
        .collect();
    let disk_mb: f64 = template
        .into_iter()
        .flat_map(|t| t.children().filter(|n| n.has_tag_name("DISK")))
        .filter_map(|d| text(d, "SIZE")?.parse::<f64>().ok())
        .sum();
    let state = text(node, "STATE").unwrap_or_default();
    let ended_s = text(node, "ETIME")
        .and_then(|v| v.parse::<i64>().ok())
        .filter(|t| *t > 0);
    let vm = CloudVm {
        uuid: uuid(node, &id),
        domain_name: Some(text(node, "DEPLOY_ID").unwrap_or_else(|| format!("one-{id}"))),
        owner: Owner {
            name: text(node, "NAME"),
            project_id: text(node, "GID"),
            project_name: text(node, "GNAME"),
            user_id: text(node, "UID"),
            user_name: text(node, "UNAME"),
            flavor: template
                .and_then(|t| text(t, "TEMPLATE_ID"))
                .map(|t| format!("template-{t}")),
        },
        vcpus: number("VCPU")
            .or_else(|| number("CPU").map(f64::ceil))
            .map(|v| v as u32),
        memory_mb: number("MEMORY").map(|v| v as u64),
        disk_gb: (disk_mb > 0.0).then(|| (disk_mb / 1024.0).ceil() as u64),
        host: stays.last().map(|s| s.host.clone()),
        status: state_name(&state, text(node, "LCM_STATE").as_deref()).to_owned(),
        // Running from its first deployment; gone at its end time once DONE.
        launched_ms: stays.first().map(|s| s.start_s * 1000),
        terminated_ms: (state == DONE)
            .then_some(ended_s)
            .flatten()
            .map(|t| t * 1000),
    };
    Some(vm)
}

fn stay(h: Node<'_, '_>) -> Option<Stay> {
    Some(Stay {
        host: text(h, "HOSTNAME")?,
        host_id: text(h, "HID").unwrap_or_default(),
        start_s: text(h, "STIME")?.parse().ok()?,
        end_s: text(h, "ETIME").and_then(|v| v.parse().ok()).unwrap_or(0),
    })
}

/// The VM's id as records carry it: the libvirt UUID OpenNebula gave the
/// domain (`TEMPLATE/OS/UUID`, where set), else `one-<id>`, its domain name.
fn uuid(node: Node<'_, '_>, id: &str) -> String {
    child(node, "TEMPLATE")
        .and_then(|t| child(t, "OS"))
        .and_then(|os| text(os, "UUID"))
        .unwrap_or_else(|| format!("one-{id}"))
}

/// OpenNebula's state words (`vm_pool.xsd`'s STATE, with ACTIVE's LCM_STATE).
fn state_name(state: &str, lcm: Option<&str>) -> &'static str {
    match (state, lcm) {
        ("3", Some("3")) => "RUNNING",
        ("3", _) => "ACTIVE",
        ("0", _) => "INIT",
        ("1", _) => "PENDING",
        ("2", _) => "HOLD",
        ("4", _) => "STOPPED",
        ("5", _) => "SUSPENDED",
        ("6", _) => "DONE",
        ("8", _) => "POWEROFF",
        ("9", _) => "UNDEPLOYED",
        ("10", _) => "CLONING",
        ("11", _) => "CLONING_FAILURE",
        _ => "UNKNOWN",
    }
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children().find(|n| n.has_tag_name(name))
}

fn text(node: Node<'_, '_>, name: &str) -> Option<String> {
    child(node, name)
        .and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_migrated_vm_has_a_stay_on_each_host() {
        let xml = r#"<VM_POOL><VM><ID>42</ID><UID>2</UID><GID>100</GID><UNAME>alice</UNAME>
            <GNAME>physics</GNAME><NAME>mover</NAME><STATE>3</STATE><LCM_STATE>3</LCM_STATE>
            <STIME>1748700000</STIME><ETIME>0</ETIME><DEPLOY_ID>one-42</DEPLOY_ID>
            <TEMPLATE><CPU><![CDATA[0.5]]></CPU><MEMORY><![CDATA[2048]]></MEMORY>
            <VCPU><![CDATA[2]]></VCPU><DISK><SIZE><![CDATA[10240]]></SIZE></DISK></TEMPLATE>
            <HISTORY_RECORDS><HISTORY><SEQ>0</SEQ><HOSTNAME>cmp-01</HOSTNAME><HID>0</HID>
            <STIME>1748700100</STIME><ETIME>1748737500</ETIME></HISTORY><HISTORY><SEQ>1</SEQ>
            <HOSTNAME>cmp-02</HOSTNAME><HID>1</HID><STIME>1748737500</STIME><ETIME>0</ETIME>
            </HISTORY></HISTORY_RECORDS></VM></VM_POOL>"#;
        let vms = vms(xml).unwrap();
        let (id, vm) = &vms[0];
        assert_eq!(id, "42");
        assert_eq!(vm.uuid, "one-42");
        assert_eq!(vm.domain_name.as_deref(), Some("one-42"));
        assert_eq!(vm.owner.project_name.as_deref(), Some("physics"));
        assert_eq!(
            (vm.vcpus, vm.memory_mb, vm.disk_gb),
            (Some(2), Some(2048), Some(10))
        );
        assert_eq!(vm.host.as_deref(), Some("cmp-02"));
        assert_eq!(vm.launched_ms, Some(1_748_700_100_000));
        assert_eq!(vm.terminated_ms, None);
        assert!(super::vms("<HOST_POOL/>").is_err());
        let hosts = host_names("<HOST_POOL><HOST><ID>1</ID><NAME>cmp-02</NAME></HOST></HOST_POOL>");
        assert_eq!(hosts.unwrap()["1"], "cmp-02");
    }
}
