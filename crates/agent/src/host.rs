//! Who this machine is, for the `host` field of every event: DMI serial and
//! UUID, the boot MAC (BOOTIF= on the command line, else the first NIC with
//! a real address) and the hostname. All reads go through `root`.

use crate::cmdline::Cmdline;
use crate::events::HostId;
use crate::root::{read_attr, Root};

/// `BOOTIF=01-aa-bb-cc-dd-ee-ff` (pxelinux IPAPPEND 2) as `aa:bb:cc:dd:ee:ff`.
pub fn bootif_mac(cmdline: &Cmdline) -> Option<String> {
    let v = cmdline.get("BOOTIF")?.value.as_deref()?;
    let parts: Vec<&str> = v.split(['-', ':']).collect();
    let mac = match parts.len() {
        7 => &parts[1..],
        6 => &parts[..],
        _ => return None,
    };
    mac.iter()
        .all(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| mac.join(":").to_ascii_lowercase())
}

pub fn identify(root: &Root, cmdline: &Cmdline) -> HostId {
    let dmi = root.at("/sys/class/dmi/id");
    let boot_mac = bootif_mac(cmdline).or_else(|| first_nic_mac(root));
    HostId {
        serial: read_attr(&dmi.join("product_serial")),
        uuid: read_attr(&dmi.join("product_uuid")).map(|u| u.to_ascii_lowercase()),
        boot_mac,
        hostname: read_attr(&root.at("/proc/sys/kernel/hostname")),
    }
}

/// The MAC of the first physical NIC (one with a `device` link), by name.
fn first_nic_mac(root: &Root) -> Option<String> {
    let net = root.at("/sys/class/net");
    let mut names: Vec<_> = std::fs::read_dir(&net)
        .ok()?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().to_string())
        .filter(|n| net.join(n).join("device").exists())
        .collect();
    names.sort();
    names.iter().find_map(|n| {
        let mac = read_attr(&net.join(n).join("address"))?;
        (mac != "00:00:00:00:00:00").then_some(mac)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cmdline::parse;

    #[test]
    fn bootif_forms() {
        assert_eq!(
            bootif_mac(&parse("BOOTIF=01-52-54-00-AB-CD-EF")),
            Some("52:54:00:ab:cd:ef".into())
        );
        assert_eq!(
            bootif_mac(&parse("BOOTIF=52:54:00:ab:cd:ef")),
            Some("52:54:00:ab:cd:ef".into())
        );
        assert_eq!(bootif_mac(&parse("BOOTIF=junk")), None);
        assert_eq!(bootif_mac(&parse("quiet")), None);
    }
}
