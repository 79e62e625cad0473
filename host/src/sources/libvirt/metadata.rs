//! What the cloud wrote into a domain's `<metadata>`: nova's instance element
//! (namespace `…/nova/1.1`, before Wallaby `…/nova/1.0`) or OpenNebula's
//! `<one:vm>`. `virDomainGetMetadata` returns the element without its prefix
//! or namespace declaration, so elements are matched by local name.

use roxmltree::{Document, Node};
use serde::Serialize;

/// nova's metadata namespace since Wallaby (23.0.0).
pub const NOVA_1_1: &str = "http://openstack.org/xmlns/libvirt/nova/1.1";
/// nova's metadata namespace before Wallaby.
pub const NOVA_1_0: &str = "http://openstack.org/xmlns/libvirt/nova/1.0";
/// OpenNebula's metadata namespace.
pub const OPENNEBULA: &str = "http://opennebula.org/xmlns/libvirt/1.0";

/// The cloud's description of a domain, if it left one.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "kind", rename_all = "kebab-case")]
pub enum CloudMetadata {
    /// An OpenStack instance.
    Nova(NovaInstance),
    /// An OpenNebula VM.
    #[serde(rename = "opennebula")]
    OpenNebula(OpenNebulaVm),
    /// No metadata wattson knows (a domain started by hand, another cloud).
    None,
}

/// nova's `<instance>` element.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct NovaInstance {
    /// `1.1` or `1.0`.
    pub version: String,
    /// The instance's display name.
    pub display_name: Option<String>,
    /// `creationTime` (UTC, `YYYY-MM-DD HH:MM:SS`): when nova wrote the XML
    /// (spawn, rebuild, migration), not always the instance's creation.
    pub creation_time: Option<String>,
    /// The flavor.
    pub flavor: Option<Flavor>,
    /// Owner user uuid.
    pub user_id: Option<String>,
    /// Owner user name.
    pub user_name: Option<String>,
    /// Owner project uuid.
    pub project_id: Option<String>,
    /// Owner project name.
    pub project_name: Option<String>,
    /// Root disk type: `image` or `volume`.
    pub root_type: Option<String>,
}

/// A nova flavor as the instance metadata records it.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Flavor {
    /// Flavor name.
    pub name: Option<String>,
    /// Memory, MiB.
    pub memory_mb: Option<u64>,
    /// Root disk, GB.
    pub disk_gb: Option<u64>,
    /// Swap, MiB.
    pub swap_mb: Option<u64>,
    /// Ephemeral disk, GB.
    pub ephemeral_gb: Option<u64>,
    /// vCPUs.
    pub vcpus: Option<u32>,
}

/// OpenNebula's `<vm>` element.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct OpenNebulaVm {
    /// The VM id (from the domain name `one-<id>`, else the system datastore path).
    pub vm_id: Option<u64>,
    /// VM name.
    pub name: Option<String>,
    /// Owner user name and id.
    pub user_name: Option<String>,
    /// Owner user id.
    pub user_id: Option<String>,
    /// Owner group name (OpenNebula's closest thing to a project).
    pub group_name: Option<String>,
    /// Owner group id.
    pub group_id: Option<String>,
    /// Start time, Unix seconds.
    pub start_time: Option<i64>,
}

/// Why a metadata element could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{namespace} metadata is not valid XML: {reason}")]
pub struct MetadataError {
    /// The namespace asked for.
    pub namespace: &'static str,
    /// The parser's message.
    pub reason: String,
}

fn child<'a, 'i>(node: Node<'a, 'i>, name: &str) -> Option<Node<'a, 'i>> {
    node.children()
        .find(|c| c.is_element() && c.tag_name().name() == name)
}

fn text(node: Option<Node<'_, '_>>) -> Option<String> {
    node.and_then(|n| n.text())
        .map(str::trim)
        .filter(|t| !t.is_empty() && *t != "N/A")
        .map(str::to_owned)
}

fn attr(node: Option<Node<'_, '_>>, name: &str) -> Option<String> {
    node.and_then(|n| n.attribute(name))
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
}

fn parse<'x>(namespace: &'static str, xml: &'x str) -> Result<Document<'x>, MetadataError> {
    Document::parse(xml).map_err(|e| MetadataError {
        namespace,
        reason: e.to_string(),
    })
}

/// Parses nova's `<instance>` element as libvirt returns it.
pub fn nova(namespace: &'static str, xml: &str) -> Result<NovaInstance, MetadataError> {
    let doc = parse(namespace, xml)?;
    let root = doc.root_element();
    let flavor = child(root, "flavor").map(|f| {
        let number = |name| text(child(f, name)).and_then(|v| v.parse::<u64>().ok());
        Flavor {
            name: attr(Some(f), "name"),
            memory_mb: number("memory"),
            disk_gb: number("disk"),
            swap_mb: number("swap"),
            ephemeral_gb: number("ephemeral"),
            vcpus: number("vcpus").and_then(|v| u32::try_from(v).ok()),
        }
    });
    let owner = child(root, "owner");
    let user = owner.and_then(|o| child(o, "user"));
    let project = owner.and_then(|o| child(o, "project"));
    Ok(NovaInstance {
        version: if namespace == NOVA_1_0 { "1.0" } else { "1.1" }.to_owned(),
        display_name: text(child(root, "name")),
        creation_time: text(child(root, "creationTime")),
        flavor,
        user_id: attr(user, "uuid"),
        user_name: text(user),
        project_id: attr(project, "uuid"),
        project_name: text(project),
        root_type: attr(child(root, "root"), "type"),
    })
}

/// Parses OpenNebula's `<vm>` element; the id comes from `domain_name` (`one-42`)
/// or the last part of `system_datastore`.
pub fn opennebula(xml: &str, domain_name: &str) -> Result<OpenNebulaVm, MetadataError> {
    let doc = parse(OPENNEBULA, xml)?;
    let root = doc.root_element();
    let get = |name| text(child(root, name));
    let vm_id = domain_name
        .strip_prefix("one-")
        .and_then(|id| id.parse().ok())
        .or_else(|| {
            get("system_datastore")?
                .trim_end_matches('/')
                .rsplit('/')
                .next()?
                .parse()
                .ok()
        });
    Ok(OpenNebulaVm {
        vm_id,
        name: get("name"),
        user_name: get("uname"),
        user_id: get("uid"),
        group_name: get("gname"),
        group_id: get("gid"),
        start_time: get("stime").and_then(|v| v.parse().ok()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nova_fields_by_local_name() {
        let xml = r#"<instance>
  <package version="27.1.0"/>
  <name>web-1</name>
  <creationTime>2024-03-01 12:34:56</creationTime>
  <flavor name="m1.small"><memory>2048</memory><disk>20</disk><swap>0</swap><ephemeral>0</ephemeral><vcpus>2</vcpus></flavor>
  <owner><user uuid="u1">alice</user><project uuid="p1">N/A</project></owner>
  <root type="volume" uuid=""/>
</instance>"#;
        let n = nova(NOVA_1_1, xml).unwrap();
        assert_eq!(n.display_name.as_deref(), Some("web-1"));
        assert_eq!(n.flavor.as_ref().unwrap().memory_mb, Some(2048));
        assert_eq!(n.flavor.as_ref().unwrap().vcpus, Some(2));
        assert_eq!(n.user_name.as_deref(), Some("alice"));
        assert_eq!(n.project_id.as_deref(), Some("p1"));
        assert_eq!(n.project_name, None, "nova writes N/A for an unknown name");
        assert_eq!(n.root_type.as_deref(), Some("volume"));
        assert!(nova(NOVA_1_1, "<instance>").is_err());
    }

    #[test]
    fn opennebula_id_from_the_datastore_when_the_name_is_not_one_n() {
        let xml = "<vm><system_datastore>/var/lib/one//datastores/0/42/</system_datastore><gname>g</gname></vm>";
        assert_eq!(opennebula(xml, "custom").unwrap().vm_id, Some(42));
        assert_eq!(opennebula(xml, "one-7").unwrap().vm_id, Some(7));
    }
}
