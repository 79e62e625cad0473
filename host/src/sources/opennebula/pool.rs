//! OpenNebula's pools as its schemas (`vm_pool.xsd`, `acct.xsd`,
//! `host_pool.xsd`) lay them out: every VM with its owner, template sizes
//! and history records (one per host it stayed on), and the hosts' names by id.

use std::collections::HashMap;

use roxmltree::Node;

use crate::sources::cloud::CloudVm;
use crate::sources::owner::Owner;

/// One `<HISTORY>`: a stay on a host, and when the VM ran there (its
/// running start and end, `RSTIME`/`RETIME`, unix seconds; 0: not yet, or
/// still). A live migration ends one stay and starts the next at the same
/// running time; a power-off ends the running time but not the stay.
#[derive(Clone, Debug, PartialEq)]
pub struct Stay {
    /// Its sequence number among the VM's stays.
    pub seq: u32,
    /// The host's name.
    pub host: String,
    /// When the VM started running there; 0 if it never did.
    pub running_from_s: i64,
    /// When it stopped running there; 0 while it runs.
    pub running_to_s: i64,
}

/// A VM's lifetime from its stays (in `seq` order), ms: launched when it
/// first ran, gone when its last stay stopped running (terminated, powered
/// off, undeployed); and the host of its last stay.
pub fn lifetime(stays: &[Stay]) -> (Option<i64>, Option<i64>, Option<String>) {
    let ran: Vec<&Stay> = stays.iter().filter(|s| s.running_from_s > 0).collect();
    let launched = ran.iter().map(|s| s.running_from_s * 1000).min();
    let stopped = ran
        .last()
        .filter(|s| s.running_to_s > 0)
        .map(|s| s.running_to_s * 1000);
    (launched, stopped, stays.last().map(|s| s.host.clone()))
}

/// The VMs of a `<VM_POOL>` as cloud VMs with their stays, by OpenNebula id.
/// `infoextended` gives only a VM's last stay; the window's history records
/// ([`accounting`]) give the others.
pub fn vms(xml: &str) -> Result<Vec<(String, CloudVm, Vec<Stay>)>, String> {
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
        .filter_map(|n| {
            let (vm, stays) = vm(n)?;
            Some((text(n, "ID")?, vm, stays))
        })
        .collect())
}

/// Per VM id: its stays in the window, and the VM as its history record has it.
pub type Accounting = HashMap<String, (Vec<Stay>, Option<CloudVm>)>;

/// The `<HISTORY_RECORDS>` of `one.vmpool.accounting`: per VM id, its stays
/// overlapping the window (in `seq` order) and the VM itself (each record
/// carries its `<VM>`), where the record does.
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
            entry.1 = child(h, "VM").and_then(vm).map(|(vm, _)| vm);
        }
    }
    for (stays, _) in by_vm.values_mut() {
        stays.sort_by_key(|s| s.seq);
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

fn vm(node: Node<'_, '_>) -> Option<(CloudVm, Vec<Stay>)> {
    let id = text(node, "ID")?;
    let template = child(node, "TEMPLATE");
    let number = |name: &str| {
        template
            .and_then(|t| text(t, name))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let mut stays: Vec<Stay> = child(node, "HISTORY_RECORDS")
        .into_iter()
        .flat_map(|h| h.children().filter(|n| n.has_tag_name("HISTORY")))
        .filter_map(stay)
        .collect();
    stays.sort_by_key(|s| s.seq);
    let disk_mb: f64 = template
        .into_iter()
        .flat_map(|t| t.children().filter(|n| n.has_tag_name("DISK")))
        .filter_map(|d| text(d, "SIZE")?.parse::<f64>().ok())
        .sum();
    let state = text(node, "STATE").unwrap_or_default();
    let (launched_ms, terminated_ms, host) = lifetime(&stays);
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
        host,
        status: state_name(&state, text(node, "LCM_STATE").as_deref()).to_owned(),
        launched_ms,
        terminated_ms,
    };
    Some((vm, stays))
}

fn stay(h: Node<'_, '_>) -> Option<Stay> {
    let seconds = |name: &str| text(h, name).and_then(|v| v.parse().ok()).unwrap_or(0);
    Some(Stay {
        seq: text(h, "SEQ")?.parse().ok()?,
        host: text(h, "HOSTNAME")?,
        running_from_s: seconds("RSTIME"),
        running_to_s: seconds("RETIME"),
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
            <STIME>1748700090</STIME><RSTIME>1748700100</RSTIME><RETIME>1748737500</RETIME>
            </HISTORY><HISTORY><SEQ>1</SEQ><HOSTNAME>cmp-02</HOSTNAME><HID>1</HID>
            <STIME>1748737492</STIME><RSTIME>1748737500</RSTIME><RETIME>0</RETIME>
            </HISTORY></HISTORY_RECORDS></VM></VM_POOL>"#;
        let vms = vms(xml).unwrap();
        let (id, vm, stays) = &vms[0];
        assert_eq!(stays.len(), 2);
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
