//! A GPU's PCI address, in one canonical form whichever tool wrote it:
//! NVML and DCGM (`00000000:3B:00.0`), sysfs (`0000:3b:00.0`) and libvirt's
//! `<address domain='0x0000' bus='0x3b' slot='0x00' function='0x0'/>`.

use std::fmt;
use std::str::FromStr;

/// A PCI address: domain, bus, slot (device) and function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct BusId {
    /// PCI domain (segment).
    pub domain: u32,
    /// Bus.
    pub bus: u8,
    /// Slot (device).
    pub slot: u8,
    /// Function.
    pub function: u8,
}

/// A text that is no PCI address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "`{0}` is not a PCI address: expected DOMAIN:BUS:SLOT.FUNCTION in hex, as \
     nvidia-smi (00000000:3B:00.0) or sysfs (0000:3b:00.0) write it"
)]
pub struct NotABusId(pub String);

impl BusId {
    /// From libvirt's `<address>` attributes (hex, `0x` optional).
    pub fn from_parts(domain: &str, bus: &str, slot: &str, function: &str) -> Option<Self> {
        let hex = |s: &str| {
            let s = s.trim();
            u32::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16).ok()
        };
        Some(Self {
            domain: hex(domain)?,
            bus: u8::try_from(hex(bus)?).ok()?,
            slot: u8::try_from(hex(slot)?).ok()?,
            function: u8::try_from(hex(function)?).ok()?,
        })
    }
}

impl FromStr for BusId {
    type Err = NotABusId;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let bad = || NotABusId(text.to_owned());
        let mut parts = text.trim().rsplitn(3, ':');
        let (Some(slot_function), Some(bus), Some(domain)) =
            (parts.next(), parts.next(), parts.next())
        else {
            return Err(bad());
        };
        let (slot, function) = slot_function.split_once('.').ok_or_else(bad)?;
        Self::from_parts(domain, bus, slot, function).ok_or_else(bad)
    }
}

impl fmt::Display for BusId {
    /// NVML's form, which DCGM's `pci_bus_id` label carries too.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:08X}:{:02X}:{:02X}.{:X}",
            self.domain, self.bus, self.slot, self.function
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_tools_form_is_one_address() {
        let nvml: BusId = "00000000:3B:00.0".parse().unwrap();
        let sysfs: BusId = "0000:3b:00.0".parse().unwrap();
        let libvirt = BusId::from_parts("0x0000", "0x3b", "0x00", "0x0").unwrap();
        assert_eq!(nvml, sysfs);
        assert_eq!(nvml, libvirt);
        assert_eq!(nvml.to_string(), "00000000:3B:00.0");
        assert_eq!(
            "0001:AF:1f.7".parse::<BusId>().unwrap().to_string(),
            "00000001:AF:1F.7"
        );
    }

    #[test]
    fn what_is_no_address_is_named() {
        for text in ["", "3B:00.0", "0000:3b:00", "0000:3b:100.0", "zz:3b:00.0"] {
            let err = text.parse::<BusId>().unwrap_err();
            assert_eq!(err, NotABusId(text.to_owned()));
        }
    }
}
